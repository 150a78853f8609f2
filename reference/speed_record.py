"""What every measurement record in book/measured says about where it came from: the date (UTC), the command
that reproduces it and the CPU (its model name and this machine's core count, as `addmul` writes them).
Standard library only; imported by the reference scripts that write records.
"""
import datetime
import json
import os
import shlex
import sys


def cpu():
    """The CPU as `addmul` writes it: its model name, its family, model and stepping numbers where
    /proc/cpuinfo gives them (virtual machines often show two different processors under one name),
    and this machine's core count: "AMD EPYC (family 26, model 2, stepping 1), 2 cores"."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's lines only
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name", "unknown")
    numbers = [f"{label} {fields[key]}" for key, label in
               (("cpu family", "family"), ("model", "model"), ("stepping", "stepping")) if key in fields]
    # The cores this process may use, as Rust's available_parallelism counts them.
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = "1 core" if count == 1 else f"{count} cores"
    return f"{name} ({', '.join(numbers)}), {cores}" if numbers else f"{name}, {cores}"


def write(path, about, fields):
    """Writes `fields` as JSON to `path`, after `about`, today's date, this command and the CPU."""
    record = {
        "about": about,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
        "cpu": cpu(),
        **fields,
    }
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"recorded in {path}")

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
    """The CPU's model name and this machine's core count, as `addmul` writes them."""
    name = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count() or 1} cores"


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

#!/usr/bin/env python3
"""Turns the JSON that `torch_gpt.py train --out RUN.json` wrote into book/measured/pytorch.json,
the record the book cites its PyTorch figures from (read by xtask/src/chapters/gpt.rs).

    python3 reference/record_pytorch.py RUN.json [--out book/measured/pytorch.json]

Run it from the repository root, on the machine that trained (it records this machine's CPU). It
adds what the run's own JSON lacks: the full command that reproduces the run, the date the run
finished (RUN.json's modification time, UTC), the CPU, and the SHA-256 and size of the text the run
trained on (read from the run's --data, which must still be there). Standard library only.
"""
import argparse
import datetime
import hashlib
import json
import os
import shlex
import sys

import speed_record  # reference/speed_record.py, beside this script

# The run's settings that decide its result, as torch_gpt.py names them.
CONFIG_KEYS = [
    "block_size", "batch_size", "n_layer", "n_head", "n_embd", "gelu", "attn", "max_iters", "lr", "min_lr",
    "warmup_iters", "lr_decay_iters", "beta1", "beta2", "weight_decay", "grad_clip", "eval_iters", "seed",
]


def command(args):
    """The command that reproduces the run: torch_gpt.py with every argument written out."""
    parts = ["python", "reference/torch_gpt.py", args["mode"]]
    for key, value in args.items():
        if key != "mode":
            parts += [f"--{key}", str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def record(run_path):
    """The record of the run in `run_path`."""
    with open(run_path) as f:
        run = json.load(f)
    args = run["args"]
    with open(args["data"], "rb") as f:
        corpus = f.read()
    finished = datetime.datetime.fromtimestamp(os.path.getmtime(run_path), datetime.timezone.utc)
    evals = [{"step": int(step), "train_loss": e["train"], "val_loss": e["val"]}
             for step, e in sorted(run["evals"].items(), key=lambda kv: int(kv[0]))]
    generation = run.get("generation", {}).get("kvcache", {})
    return {
        "about": "PyTorch's figures for the cpu-small recipe, which the book sets beside addmul's. Written by "
                 "`python3 reference/record_pytorch.py RUN.json` from the output of `command`; "
                 "reference/README.md gives the install and the commands.",
        "command": command(args),
        "date": finished.strftime("%Y-%m-%d"),
        "cpu": speed_record.cpu(),
        "python": sys.version.split()[0],
        "torch_version": run["torch_version"],
        "threads": run["threads"],
        "corpus_sha256": hashlib.sha256(corpus).hexdigest(),
        "corpus_bytes": len(corpus),
        "config": {key: args[key] for key in CONFIG_KEYS},
        "vocab_size": run["config"]["vocab_size"],
        "params": run["params"],
        "iters_run": run["iters_run"],
        "stopped_early": run["stopped_early"],
        "evals": evals,
        "median_ms": 1000.0 * run["median_iter_s"],
        "tokens_per_s": run["tokens_per_s"],
        "other_load_max": run["max_window_foreign_frac"],
        "sample_tokens_per_s": generation.get("tokens_per_s"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="the JSON written by torch_gpt.py train --out")
    ap.add_argument("--out", default="book/measured/pytorch.json")
    a = ap.parse_args()
    text = json.dumps(record(a.run), indent=2, ensure_ascii=False) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

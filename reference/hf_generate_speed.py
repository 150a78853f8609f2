"""The PyTorch yardstick of `examples/gpt2_speed.rs`: Hugging Face
`transformers` on a GPT-2-small-shaped model (12 layers, 12 heads, 768
dimensions, vocabulary 50,257; random weights), batch 1, greedy:
prompt processing (one forward pass over the prompt, filling the cache) and
`generate` with the cache for the new tokens.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers
    /tmp/venv/bin/python reference/hf_generate_speed.py --threads 2 --prompt 128 --new 128 --rounds 5

Each round: a fresh prompt; the prompt's forward pass is timed on its own
(with `logits_to_keep=1`, the last position's scores only, as `generate` itself
reads a prompt and as addmul's sampler does),
then `generate(max_new_tokens=new, min_new_tokens=new, do_sample=False)`,
whose time less one prompt pass is the sampling time. One untimed round
first; the medians of the rounds are printed.
"""

import argparse
import os
import statistics
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed_record  # noqa: E402  (reference/speed_record.py)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--record", help="write the medians as JSON (date, command, CPU) to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)).eval()
    prompt_rates, sample_rates = [], []
    for r in range(a.rounds + 1):
        ids = torch.tensor([[(i * 7919 + r * 104729) % 50257 for i in range(a.prompt)]])
        with torch.inference_mode():
            t = time.perf_counter()
            model(ids, use_cache=True, logits_to_keep=1)
            prompt_s = time.perf_counter() - t
            t = time.perf_counter()
            out = model.generate(ids, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False,
                                 pad_token_id=0, use_cache=True)
            total = time.perf_counter() - t
        assert out.shape[1] == a.prompt + a.new
        sample_s = max(total - prompt_s, 1e-9)
        if r > 0:
            prompt_rates.append(a.prompt / prompt_s)
            sample_rates.append(a.new / sample_s)
            print(f"round {r}: prompt {a.prompt / prompt_s:.0f} tokens/s, sampling {a.new / sample_s:.1f} tokens/s")
    print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, {a.threads} threads, "
          f"prompt {a.prompt}, {a.new} new tokens: median of {a.rounds}: prompt processing "
          f"{statistics.median(prompt_rates):.0f} tokens/s, cached sampling {statistics.median(sample_rates):.1f} tokens/s")
    if a.record:
        speed_record.write(a.record, "transformers' generate on a GPT-2-small-shaped model (random weights), batch 1, "
                           "greedy: reference/hf_generate_speed.py", {
            "transformers": __import__("transformers").__version__,
            "torch": torch.__version__,
            "threads": a.threads,
            "prompt_tokens": a.prompt,
            "new_tokens": a.new,
            "rounds": a.rounds,
            "prompt_tokens_per_s": statistics.median(prompt_rates),
            "sampling_tokens_per_s": statistics.median(sample_rates),
            "prompt_tokens_per_s_by_round": prompt_rates,
            "sampling_tokens_per_s_by_round": sample_rates,
        })


if __name__ == "__main__":
    main()

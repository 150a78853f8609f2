"""The PyTorch yardstick of `examples/gpt2_train_speed.rs`: a training step at
GPT-2 small's shape (12 layers, 12 heads, 768 dimensions, vocabulary 50,257;
windows of 256 tokens, batch 4) with `torch_gpt.py`'s model and recipe (the
same architecture and AdamW settings as addmul's `cpu-small`, GPT-2's tanh
GELU, `scaled_dot_product_attention`), on random token ids.

    /tmp/venv/bin/python reference/gpt2_train_speed.py --threads 2 --steps 12 [--record FILE]

Prints the median milliseconds per step (forward, backward, clipping, AdamW)
after two untimed steps, and GFLOP/s counted as addmul counts them (6 per
parameter of the products per token, plus the attention's 12 x layers x T x C
per token, the masked half included).
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed_record  # noqa: E402
import torch_gpt  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--record", help="write the result as JSON (date, command, CPU) to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    args = argparse.Namespace(block_size=256, n_layer=12, n_head=12, n_embd=768, gelu="tanh", attn="sdpa", seed=1,
                              lr=1e-3, min_lr=1e-4, warmup_iters=2, lr_decay_iters=0, max_iters=a.steps + 2,
                              beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0)
    vocab, B, T = 50257, 4, args.block_size
    model, cfg = torch_gpt.build(args, vocab)
    opt = torch_gpt.make_optimizer(model, args)
    gen = torch.Generator().manual_seed(2)
    data = torch.randint(vocab, (200_000,), generator=gen)
    times = []
    for it in range(a.steps + 2):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = torch_gpt.lr_at(it, args)
        x, y = torch_gpt.get_batch(data, B, T, gen)
        _, loss, _ = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        loss.item()
        if it >= 2:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    C, L = args.n_embd, args.n_layer
    matmul_params = L * 12 * C * C + vocab * C
    flops = (6 * matmul_params + 12 * L * T * C) * B * T
    print(f"torch {torch.__version__}, {a.threads} threads, GPT-2 small shape, T {T}, B {B}: median of {a.steps} "
          f"steps {med * 1e3:.1f} ms per step, {B * T / med:.0f} tokens/s, {flops / med / 1e9:.1f} GFLOP/s")
    if a.record:
        speed_record.write(a.record, "a training step at GPT-2 small's shape on random ids: reference/gpt2_train_speed.py", {
            "torch": torch.__version__,
            "threads": a.threads,
            "block_size": T,
            "batch_size": B,
            "steps": a.steps,
            "median_ms": med * 1e3,
            "tokens_per_s": B * T / med,
            "gflops": flops / med / 1e9,
        })


if __name__ == "__main__":
    main()

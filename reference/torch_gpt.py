#!/usr/bin/env python3
# addmul's PyTorch reference: the yardstick the book compares addmul's `cpu-small` run with.
#
# Where it comes from: copied unchanged (apart from this comment) from the project's shared
# reference folder (`../shared/reference/torch_gpt.py`, written for this project: it is not
# nanoGPT's code). It trains the same architecture with the same recipe as addmul's `cpu-small`
# preset (GPT-2 pre-norm blocks with biases, tied head, AdamW 0.9/0.99, weight decay on matrices,
# warmup then cosine decay, gradient clipping) in PyTorch, so that its validation loss and speed
# can be set beside addmul's. It is a measuring aid, never part of addmul's build or tests.
# reference/README.md gives the exact commands that produced the figures in
# book/measured/pytorch.json, which the book cites.
"""Minimal character-level GPT in PyTorch: CPU reference for a from-scratch Rust GPT.

Written from scratch for this project (not nanoGPT's code), same architecture family:
  token embedding (wte) + learned position embedding (wpe)
  n_layer x pre-LayerNorm block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
     attn: causal multi-head self-attention, fused qkv projection (c_attn) + output projection (c_proj)
     mlp : c_fc (C -> 4C), GELU, c_proj (4C -> C)
  final LayerNorm (ln_f), lm_head tied to wte (logits = ln_f(x) @ wte.weight^T)
  no dropout (dropout = 0), biases in every linear and LayerNorm (GPT-2 style), LayerNorm eps 1e-5
  loss = mean cross-entropy over all B*T positions

Install (deps are not part of the Rust project; this is a measurement aid only):
    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch numpy safetensors
  (plain `pip install torch` from PyPI pulls ~5 GB of nvidia-* wheels on Linux; CPU use is fine with them)

Usage:
    /tmp/venv-torch/bin/python torch_gpt.py --help
    # cpu-small (nanoGPT README CPU config), 2 threads, train 2000 iters + gen speed, write JSON:
    /tmp/venv-torch/bin/python torch_gpt.py train --threads 2 --gen_tokens 500 --out /tmp/run_t2.json
    # export initial weights + one batch + logits/loss/grads/one AdamW step for Rust cross-checks:
    /tmp/venv-torch/bin/python torch_gpt.py export --export_path /tmp/gpt_ref.safetensors
    # tiny config for a quick unit-test-sized file:
    /tmp/venv-torch/bin/python torch_gpt.py export --n_layer 2 --n_head 2 --n_embd 16 \
        --block_size 8 --batch_size 2 --export_path /tmp/gpt_tiny.safetensors

Companion files in this folder:
    quiet_run.py    run a command only once the (shared) machine is idle; reports other processes' CPU share
    check_export.py independent numpy forward + AdamW-step (+ finite-difference grads for float64) check of an export
    sgemm_bench.py  numpy/OpenBLAS float32 GEMM ceiling;  shape_bench.py  GEMM rate at this model's matmul shapes
    testdata/gpt_tiny_f32.safetensors, gpt_tiny_f64.safetensors  exports of the tiny config shown above (seed 1337)
Timing output: median / p10 / p90 iteration time after --warmup_skip iterations, plus the same median restricted to
50-iteration windows in which other processes used < 5% of the machine's CPU (the machine is shared; see
LoadMonitor), and a per-phase split (batch, forward+loss, backward, clip+AdamW).

Defaults ("cpu-small"): block_size 64, batch_size 12, n_layer 4, n_head 4, n_embd 128, max_iters 2000,
AdamW lr 1e-3 betas (0.9, 0.99) eps 1e-8 weight_decay 0.1 (applied to 2-D tensors only: wte, wpe and
all linear weights; NOT to biases or LayerNorm params), linear warmup 100 iters then cosine decay to
min_lr 1e-4 at lr_decay_iters (= max_iters), grad-norm clip 1.0, data = tiny shakespeare, 90/10 split.

Learning-rate schedule (it = 0-based index of the optimizer step being taken):
    it <  warmup:          lr = lr_max * (it + 1) / (warmup + 1)
    it >  lr_decay_iters:  lr = min_lr
    else: r = (it - warmup) / (lr_decay_iters - warmup); lr = min_lr + 0.5*(1 + cos(pi*r))*(lr_max - min_lr)

Init: every linear weight and both embeddings ~ N(0, 0.02); attn.c_proj and mlp.c_proj weights
~ N(0, 0.02/sqrt(2*n_layer)); biases 0; LayerNorm weight 1, bias 0.

Vocabulary: sorted set of the characters of the whole file (65 chars for tiny shakespeare);
token id = index in that sorted list. Train = first 90% of tokens, val = last 10%.
Batches: B random offsets i in [0, len(split) - block_size), x = data[i:i+T], y = data[i+1:i+T+1].

----------------------------------------------------------------------------------------------
safetensors export (mode `export`): tensor names and layouts
----------------------------------------------------------------------------------------------
All floats are float32 (or float64 with --export_dtype float64), all ints int64, row-major.
Weights use the HF GPT-2 names and HF GPT-2 "Conv1D" layout [in, out], i.e. y = x @ W + b.
  wte.weight                  [V, C]      token embedding; also the (tied) lm_head: logits = h @ wte^T
  wpe.weight                  [T, C]      position embedding (T = block_size)
  h.{i}.ln_1.weight / .bias   [C]
  h.{i}.attn.c_attn.weight    [C, 3C]     columns [0:C) = q, [C:2C) = k, [2C:3C) = v;
                                          head j of q uses columns j*hs:(j+1)*hs (hs = C / n_head)
  h.{i}.attn.c_attn.bias      [3C]
  h.{i}.attn.c_proj.weight    [C, C]      input = heads concatenated in head order
  h.{i}.attn.c_proj.bias      [C]
  h.{i}.ln_2.weight / .bias   [C]
  h.{i}.mlp.c_fc.weight       [C, 4C]
  h.{i}.mlp.c_fc.bias         [4C]
  h.{i}.mlp.c_proj.weight     [4C, C]
  h.{i}.mlp.c_proj.bias       [C]
  ln_f.weight / ln_f.bias     [C]
  (no lm_head.weight: tied to wte.weight)
The file additionally holds:
  batch.x                     [B, T] int64   input token ids
  batch.y                     [B, T] int64   target token ids (x shifted by one)
  act.emb                     [B, T, C]      wte[x] + wpe[0..T)
  act.h.{i}                   [B, T, C]      residual stream after block i
  act.ln_f                    [B, T, C]      ln_f output
  logits                      [B, T, V]
  loss                        [1]            mean cross-entropy
  grad.<param name>           same shape as the param: d loss / d param (wte grad includes lm_head use)
  grad_norm                   [1]            global L2 norm of all grads before clipping
  step1.<param name>          params after ONE optimizer step: clip grads to norm 1.0, then AdamW
                              with lr = lr(it=0) (metadata "lr_step1"), betas, eps 1e-8, weight decay
                              0.1 on 2-D tensors only (decoupled: p -= lr*wd*p; then Adam update)
Metadata (string map): config (JSON), vocab (JSON string of the chars), gelu, ln_eps, torch_version,
  seed, lr_step1, adamw (JSON), note.
GELU: exact erf form by default (0.5*x*(1+erf(x/sqrt(2)))); `--gelu tanh` selects GPT-2's tanh approx.
Attention: scores = q k^T / sqrt(hs), causal mask (j > i -> -inf), softmax over j, out = p v.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tinyshakespeare.txt")


# ----------------------------------------------------------------------------- model
class Conv1D(nn.Module):
    """Linear layer with HF GPT-2 weight layout [in, out]: y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shp = x.shape[:-1] + (self.weight.shape[1],)
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return y.view(shp)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)
        self.impl = cfg.attn

    def forward(self, x, past=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # B, nh, T, hs
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        Tk = k.shape[2]
        if self.impl == "sdpa":
            if Tk == T:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif T == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
            att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y), present


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd)
        self.approx = "tanh" if cfg.gelu == "tanh" else "none"

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approx))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x, past=None):
        a, present = self.attn(self.ln_1(x), past)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, present


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self._init()

    @torch.no_grad()
    def _init(self):
        std = 0.02
        proj_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, proj_std)
            elif p.dim() == 2:
                p.normal_(0.0, std)
            elif "ln_" in name and name.endswith(".weight"):
                p.fill_(1.0)
            else:
                p.zero_()

    def forward(self, idx, targets=None, past=None, pos0=0, acts=None):
        B, T = idx.shape
        assert pos0 + T <= self.cfg.block_size, "sequence longer than block_size"
        pos = torch.arange(pos0, pos0 + T, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        if acts is not None:
            acts["act.emb"] = x
        presents = []
        for i, blk in enumerate(self.h):
            x, pr = blk(x, None if past is None else past[i])
            presents.append(pr)
            if acts is not None:
                acts[f"act.h.{i}"] = x
        x = self.ln_f(x)
        if acts is not None:
            acts["act.ln_f"] = x
        logits = x @ self.wte.weight.t()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss, presents


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- data
def load_data(path):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    return chars, data[:n], data[n:]


def get_batch(data, B, T, gen):
    ix = torch.randint(len(data) - T, (B,), generator=gen)
    x = torch.stack([data[i:i + T] for i in ix.tolist()])
    y = torch.stack([data[i + 1:i + T + 1] for i in ix.tolist()])
    return x, y


# ----------------------------------------------------------------------------- optim
def make_optimizer(model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)


def lr_at(it, args):
    decay_iters = args.lr_decay_iters or args.max_iters
    if it < args.warmup_iters:
        return args.lr * (it + 1) / (args.warmup_iters + 1)
    if it > decay_iters:
        return args.min_lr
    r = (it - args.warmup_iters) / max(1, decay_iters - args.warmup_iters)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (args.lr - args.min_lr)


@torch.no_grad()
def estimate_loss(model, train, val, args, gen):
    model.eval()
    out = {}
    for name, d in (("train", train), ("val", val)):
        ls = []
        for _ in range(args.eval_iters):
            x, y = get_batch(d, args.batch_size, args.block_size, gen)
            _, loss, _ = model(x, y)
            ls.append(loss.item())
        out[name] = sum(ls) / len(ls)
    model.train()
    return out


# ----------------------------------------------------------------------------- generation
@torch.no_grad()
def generate_nocache(model, idx, n_new, gen, T):
    """Sliding window: every new token runs a full forward over the last <= T tokens."""
    for _ in range(n_new):
        ctx = idx[:, -T:]
        logits, _, _ = model(ctx)
        p = F.softmax(logits[:, -1, :], dim=-1)
        nxt = torch.multinomial(p, 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
    return idx


@torch.no_grad()
def generate_kvcache(model, idx, n_new, gen, T):
    """KV cache. Learned absolute positions make a true sliding window impossible with a cache,
    so when the cache is full (T entries) we re-prefill from the last T//2 tokens and continue
    (context length then varies between T//2 and T; different conditioning than generate_nocache)."""
    ctx = idx[:, -T:]
    logits, _, past = model(ctx)
    n_ctx = ctx.shape[1]
    for i in range(n_new):
        p = F.softmax(logits[:, -1, :], dim=-1)
        nxt = torch.multinomial(p, 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
        if i == n_new - 1:
            break
        if n_ctx >= T:
            ctx = idx[:, -(T // 2):]
            logits, _, past = model(ctx)
            n_ctx = ctx.shape[1]
        else:
            logits, _, past = model(nxt, past=past, pos0=n_ctx)
            n_ctx += 1
    return idx


def gen_bench(model, chars, args):
    model.eval()
    res = {}
    for name, fn in (("nocache", generate_nocache), ("kvcache", generate_kvcache)):
        gen = torch.Generator().manual_seed(args.seed + 7)
        idx = torch.zeros((1, 1), dtype=torch.long)  # token 0 = '\n' for tiny shakespeare
        fn(model, idx, 20, gen, args.block_size)  # warmup
        mon = LoadMonitor()
        m0 = mon.sample()
        t0 = time.perf_counter()
        out = fn(model, idx, args.gen_tokens, gen, args.block_size)
        dt = time.perf_counter() - t0
        ff = mon.foreign_frac(m0, mon.sample())
        res[name] = {"tokens": args.gen_tokens, "seconds": dt, "tokens_per_s": args.gen_tokens / dt,
                     "foreign_frac": ff, "sample_head": "".join(chars[i] for i in out[0, :200].tolist())}
        print(f"generate[{name}] {args.gen_tokens} tokens in {dt:.3f}s = {args.gen_tokens / dt:.1f} tok/s "
              f"(other processes' CPU share {ff:.3f})", flush=True)
    model.train()
    return res


# ----------------------------------------------------------------------------- machine-load accounting
class LoadMonitor:
    """Tracks CPU time used by OTHER processes (from /proc/stat minus our own rusage), so timings taken on a
    shared machine can be restricted to quiet windows. foreign_frac = foreign CPU-seconds / (wall * ncpu)."""

    def __init__(self):
        self.ok = os.path.exists("/proc/stat")
        self.hz = os.sysconf("SC_CLK_TCK") if self.ok else 100
        self.ncpu = os.cpu_count() or 1

    def sample(self):
        if not self.ok:
            return (time.perf_counter(), 0.0, 0.0)
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v) - v[3] - v[4]) / self.hz
        t = os.times()
        return (time.perf_counter(), busy, t.user + t.system)

    def foreign_frac(self, a, b):
        wall = max(1e-9, b[0] - a[0])
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / (wall * self.ncpu))


# ----------------------------------------------------------------------------- modes
def build(args, vocab_size):
    cfg = argparse.Namespace(vocab_size=vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                             n_head=args.n_head, n_embd=args.n_embd, gelu=args.gelu, attn=args.attn)
    torch.manual_seed(args.seed)
    return GPT(cfg), cfg


def flops_per_iter(cfg, B):
    """Matmul FLOPs (2 per MAC) for one fwd+bwd (bwd = 2x fwd) on B*T tokens.
    Non-causal-aware attention (full T x T scores), as most naive kernels compute."""
    C, L, T, V = cfg.n_embd, cfg.n_layer, cfg.block_size, cfg.vocab_size
    n_mm = L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + V * C  # block weights + tied lm_head
    fwd_tok = 2 * n_mm + L * 2 * (2 * T * C)  # qk^T and att@v per token per layer
    return 3 * fwd_tok * B * T, n_mm


def train(args):
    chars, train_d, val_d = load_data(args.data)
    model, cfg = build(args, len(chars))
    nparams = count_params(model)
    fl, n_mm = flops_per_iter(cfg, args.batch_size)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} params={nparams} "
          f"(non-embedding matmul params {n_mm}) flops/iter={fl / 1e9:.3f} GFLOP", flush=True)
    opt = make_optimizer(model, args)
    bgen = torch.Generator().manual_seed(args.seed + 1)
    egen = torch.Generator().manual_seed(args.seed + 2)
    eval_at = sorted(set(int(s) for s in args.eval_at.split(",") if s))
    evals = {}
    if 0 in eval_at:
        evals[0] = estimate_loss(model, train_d, val_d, args, egen)
        print(f"iter 0: train {evals[0]['train']:.4f} val {evals[0]['val']:.4f}", flush=True)
    times = []
    parts = []  # (batch, forward+loss, backward, clip+AdamW) seconds per iteration
    mon = LoadMonitor()
    win = args.load_window
    win_marks = [mon.sample()]
    win_fracs = []  # one per completed window of `win` iterations
    t_start = time.perf_counter()
    train_time = 0.0
    it = 0
    stopped_early = False
    while it < args.max_iters:
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(it, args)
        x, y = get_batch(train_d, args.batch_size, args.block_size, bgen)
        ta = time.perf_counter()
        _, loss, _ = model(x, y)
        tb = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        tc = time.perf_counter()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        lossf = loss.item()
        dt = time.perf_counter() - t0
        parts.append((ta - t0, tb - ta, tc - tb, t0 + dt - tc))
        times.append(dt)
        train_time += dt
        it += 1
        if it % win == 0:
            win_marks.append(mon.sample())
            win_fracs.append(mon.foreign_frac(win_marks[-2], win_marks[-1]))
        if it % args.log_interval == 0:
            print(f"iter {it}: loss {lossf:.4f} {dt * 1000:.1f} ms", flush=True)
        if it in eval_at:
            evals[it] = estimate_loss(model, train_d, val_d, args, egen)
            print(f"iter {it}: train {evals[it]['train']:.4f} val {evals[it]['val']:.4f}", flush=True)
        if args.time_limit and time.perf_counter() - t_start > args.time_limit:
            stopped_early = True
            break
    wall = time.perf_counter() - t_start
    steady = times[args.warmup_skip:] if len(times) > args.warmup_skip else times
    med = statistics.median(steady)
    quiet_idx = [i for i in range(len(times)) if i >= args.warmup_skip and i // win < len(win_fracs)
                 and win_fracs[i // win] < args.quiet_thresh]
    quiet = [times[i] for i in quiet_idx]
    med_quiet = statistics.median(quiet) if quiet else float("nan")
    res = {
        "torch_version": torch.__version__, "threads": torch.get_num_threads(), "config": vars(cfg),
        "args": vars(args), "params": nparams, "matmul_params": n_mm, "flops_per_iter": fl,
        "iters_run": it, "stopped_early": stopped_early,
        "median_iter_s": med, "mean_iter_s": statistics.fmean(steady),
        "p10_iter_s": sorted(steady)[len(steady) // 10], "p90_iter_s": sorted(steady)[(9 * len(steady)) // 10],
        "tokens_per_s": args.batch_size * args.block_size / med,
        "achieved_gflops": fl / med / 1e9,
        "median_parts_s_quiet": dict(zip(["batch", "forward_loss", "backward", "clip_adamw"],
                                         [statistics.median(parts[i][j] for i in quiet_idx)
                                          if quiet else float("nan") for j in range(4)])),
        "load_window_iters": win, "window_foreign_frac": win_fracs, "quiet_thresh": args.quiet_thresh,
        "quiet_iters": len(quiet), "median_iter_s_quiet": med_quiet,
        "tokens_per_s_quiet": args.batch_size * args.block_size / med_quiet if quiet else float("nan"),
        "max_window_foreign_frac": max(win_fracs) if win_fracs else float("nan"),
        "train_time_s": train_time, "wall_time_s": wall,
        "extrapolated_wall_s_for_max_iters": wall / it * args.max_iters if stopped_early else wall,
        "evals": evals,
        "iter_times_s": times,
    }
    print(f"median iter {med * 1000:.2f} ms  ({res['tokens_per_s']:.0f} tok/s, {res['achieved_gflops']:.1f} GFLOP/s); "
          f"wall {wall:.1f}s for {it} iters (train-only {train_time:.1f}s)", flush=True)
    print(f"other processes' CPU share per {win}-iter window: max {res['max_window_foreign_frac']:.3f}; "
          f"median iter over {len(quiet)} quiet iters (<{args.quiet_thresh}) {med_quiet * 1000:.2f} ms; parts (ms) "
          + ", ".join(f"{k} {v * 1000:.2f}" for k, v in res["median_parts_s_quiet"].items()), flush=True)
    if args.gen_tokens > 0:
        res["generation"] = gen_bench(model, chars, args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return res


def export(args):
    from safetensors.torch import save_file
    dt = torch.float64 if args.export_dtype == "float64" else torch.float32
    chars, train_d, _ = load_data(args.data)
    model, cfg = build(args, len(chars))
    model = model.to(dt)  # init happened in float32 then cast: float64 file holds the same values
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bgen = torch.Generator().manual_seed(args.seed + 1)
    x, y = get_batch(train_d, args.batch_size, args.block_size, bgen)
    acts = {}
    logits, loss, _ = model(x, y, acts=acts)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    opt = make_optimizer(model, args)
    lr0 = lr_at(0, args)
    for g in opt.param_groups:
        g["lr"] = lr0
    opt.step()
    t = {}
    t.update({k: v.contiguous() for k, v in init.items()})
    t["batch.x"] = x.contiguous()
    t["batch.y"] = y.contiguous()
    t.update({k: v.detach().contiguous() for k, v in acts.items()})
    t["logits"] = logits.detach().contiguous()
    t["loss"] = loss.detach().reshape(1)
    t.update({"grad." + k: v.contiguous() for k, v in grads.items()})
    t["grad_norm"] = gnorm.detach().reshape(1).to(dt)
    t.update({"step1." + k: p.detach().clone().contiguous() for k, p in model.named_parameters()})
    meta = {
        "config": json.dumps(vars(cfg)), "vocab": json.dumps("".join(chars)), "gelu": args.gelu,
        "ln_eps": "1e-5", "torch_version": torch.__version__, "seed": str(args.seed),
        "lr_step1": repr(lr0),
        "adamw": json.dumps({"betas": [args.beta1, args.beta2], "eps": 1e-8, "weight_decay": args.weight_decay,
                             "decay_on": "2-D tensors only", "grad_clip": args.grad_clip}),
        "note": "weights in HF GPT-2 Conv1D layout [in,out]; lm_head tied to wte; see torch_gpt.py header",
    }
    save_file(t, args.export_path, metadata=meta)
    print(f"wrote {args.export_path}: {len(t)} tensors, params={count_params(model)}, loss={loss.item():.6f}, "
          f"grad_norm={gnorm.item():.6f}, lr_step1={lr0}")


def gen_only(args):
    chars, _, _ = load_data(args.data)
    model, _ = build(args, len(chars))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "sample_head"}
                      for k, v in gen_bench(model, chars, args).items()}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("mode", nargs="?", default="train", choices=["train", "export", "generate"],
                    help="train: train+eval+timing; export: safetensors cross-check file; generate: sampling speed only")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--block_size", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=12)
    ap.add_argument("--n_layer", type=int, default=4)
    ap.add_argument("--n_head", type=int, default=4)
    ap.add_argument("--n_embd", type=int, default=128)
    ap.add_argument("--gelu", choices=["erf", "tanh"], default="erf")
    ap.add_argument("--attn", choices=["sdpa", "manual"], default="sdpa",
                    help="sdpa = F.scaled_dot_product_attention; manual = explicit softmax(qk^T)v")
    ap.add_argument("--max_iters", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min_lr", type=float, default=1e-4)
    ap.add_argument("--warmup_iters", type=int, default=100)
    ap.add_argument("--lr_decay_iters", type=int, default=0, help="0 = max_iters")
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--weight_decay", type=float, default=0.1)
    ap.add_argument("--grad_clip", type=float, default=1.0)
    ap.add_argument("--eval_at", default="0,250,500,1000,1500,2000", help="comma list of iterations to eval at")
    ap.add_argument("--eval_iters", type=int, default=20, help="batches per split per eval")
    ap.add_argument("--log_interval", type=int, default=100)
    ap.add_argument("--warmup_skip", type=int, default=20, help="iterations excluded from timing stats")
    ap.add_argument("--load_window", type=int, default=50, help="iterations per machine-load accounting window")
    ap.add_argument("--quiet_thresh", type=float, default=0.05,
                    help="windows where other processes used more than this share of all CPUs are excluded from *_quiet stats")
    ap.add_argument("--time_limit", type=float, default=900.0, help="stop training after this many seconds (0 = none)")
    ap.add_argument("--gen_tokens", type=int, default=0, help="after training, time sampling this many tokens")
    ap.add_argument("--out", default="", help="write results JSON here")
    ap.add_argument("--export_path", default="gpt_ref.safetensors")
    ap.add_argument("--export_dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mode == "train":
        train(args)
    elif args.mode == "export":
        export(args)
    else:
        gen_only(args)


if __name__ == "__main__":
    main()

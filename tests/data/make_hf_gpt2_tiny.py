"""Makes tests/data/hf_gpt2_tiny/: a folder exactly as Hugging Face
`transformers` saves a GPT-2 (`GPT2LMHeadModel.save_pretrained` and
`GPT2TokenizerFast.save_pretrained`, plus the `vocab.json` + `merges.txt`
pair that transformers 4 also wrote), small enough to commit, with what
`transformers` computes from it.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors
    /tmp/venv/bin/python tests/data/make_hf_gpt2_tiny.py ../shared/data/gpt2

The tokenizer is GPT-2's own, cut after its first 300 merges: `vocab.json`
and `merges.txt` are the first 556 tokens of OpenAI's `encoder.json` and
`vocab.bpe` (the byte alphabet, then the merges), and `<|endoftext|>` gets
the next id, 556, as it gets the id after the last merge (50256) in GPT-2.
The model is a random 2-layer GPT-2 over those 557 ids (weights std 0.3, so
that greedy decoding has clear winners). Made with torch 2.15.0,
transformers 5.25.0.

`ref.json`: `encodings` (text -> ids by the tokenizer, `<|endoftext|>` as
its special id as GPT-2's tokenizer does), `prompt` and `greedy` (the ids
of `generate(do_sample=False, max_new_tokens=20)`), `min_margin` (the
smallest gap between the best and second-best logit along the way) and
`logits` of the prompt's last position; `eval_text` and its `perplexity`
for strides 8, 16 and 24 by the documentation's sliding-window recipe
(`documented_perplexity` below, copied line for line).
"""

import json
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

MERGES = 300
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_gpt2_tiny")


def main(gpt2_dir):
    with open(os.path.join(gpt2_dir, "encoder.json")) as f:
        encoder = json.load(f)
    with open(os.path.join(gpt2_dir, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [line for line in lines[1:] if line][:MERGES]
    n = 256 + MERGES
    vocab = {token: i for token, i in encoder.items() if i < n}
    assert len(vocab) == n
    vocab["<|endoftext|>"] = n
    os.makedirs(OUT, exist_ok=True)
    # transformers 5 takes the vocabulary and the merges themselves.
    tok = GPT2TokenizerFast(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])
    assert tok.eos_token_id == n, tok.eos_token_id

    config = GPT2Config(vocab_size=n + 1, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=n, eos_token_id=n)
    torch.manual_seed(20261205)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(OUT, safe_serialization=True)
    tok.save_pretrained(OUT)
    # transformers 5 writes only tokenizer.json; transformers 4 (and the
    # Hub's gpt2 folder) also have this pair, written here as version 4's
    # save_vocabulary wrote it.
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")

    texts = [
        "Hello world",
        "First Citizen:\nBefore we proceed any further, hear me speak.",
        "  two  spaces, tabs\tand\nnewlines\n\n",
        "caf\u00e9 na\u00efve \u2014 \u65e5\u672c",
        "the end<|endoftext|>The start",
        "",
    ]
    encodings = [{"text": t, "ids": tok(t)["input_ids"]} for t in texts]
    prompt = tok("The quick brown fox")["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=20,
                             pad_token_id=n, eos_token_id=None)
        ids = out[0].tolist()
        margins = []
        for t in range(len(prompt), len(ids)):
            logits = model(torch.tensor([ids[:t]])).logits[0, -1]
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
        last = model(torch.tensor([prompt])).logits[0, -1].tolist()
    eval_text = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
                 "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n")
    encodings_eval = tok(eval_text, return_tensors="pt")
    perplexity = {str(stride): documented_perplexity(model, encodings_eval, stride) for stride in (8, 16, 24)}
    with open(os.path.join(OUT, "ref.json"), "w", encoding="utf-8") as f:
        json.dump({"encodings": encodings, "prompt": prompt, "greedy": ids[len(prompt):],
                   "min_margin": min(margins), "logits": [round(v, 7) for v in last],
                   "eval_text": eval_text, "eval_tokens": encodings_eval.input_ids.size(1),
                   "perplexity": perplexity}, f, ensure_ascii=False)
        f.write("\n")
    print("min margin", min(margins), "greedy", ids[len(prompt):])


def documented_perplexity(model, encodings, stride):
    """The sliding-window recipe of the transformers documentation,
    "Perplexity of fixed-length models", line for line."""
    max_length = model.config.n_positions
    seq_len = encodings.input_ids.size(1)
    nll_sum = 0.0
    n_tokens = 0
    prev_end_loc = 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc  # may be different from stride on last loop
        input_ids = encodings.input_ids[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            outputs = model(input_ids, labels=target_ids)
            neg_log_likelihood = outputs.loss
        num_valid_tokens = (target_ids != -100).sum().item()
        batch_size = target_ids.size(0)
        num_loss_tokens = num_valid_tokens - batch_size  # subtract batch_size due to internal label shift
        nll_sum += neg_log_likelihood * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    avg_nll = nll_sum / n_tokens
    return {"perplexity": float(torch.exp(avg_nll)), "nll": float(avg_nll), "tokens": n_tokens}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/gpt2")

"""Makes tests/data/gpt2_variants/: tiny random GPT-2s saved by Hugging Face
`transformers`, one per config.json field that changes the numbers, with the
logits `GPT2LMHeadModel` computes for a fixed batch.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors
    /tmp/venv/bin/python crates/gpt/tests/data/make_variants.py

Made with torch 2.15.0, transformers 5.25.0 (CPU, float32). Each folder holds
`config.json` and `model.safetensors` as `save_pretrained` writes them, and
`ref.json`: `x` (2 x 8 token ids) and `logits` (2 x 8 x 17). The weights are
drawn wider than GPT-2's initialisation (std 0.3, every bias and LayerNorm
parameter perturbed) so that a field read wrongly changes the logits clearly.
"""

import json
import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt2_variants")

BASE = dict(vocab_size=17, n_positions=8, n_embd=8, n_layer=3, n_head=2,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

# name -> config fields on top of BASE
VARIANTS = {
    "base": {},
    "scale_attn_weights_false": {"scale_attn_weights": False},
    "scale_attn_by_inverse_layer_idx": {"scale_attn_by_inverse_layer_idx": True},
    "unscaled_by_inverse_layer_idx": {"scale_attn_weights": False, "scale_attn_by_inverse_layer_idx": True},
    "reorder_and_upcast_attn": {"reorder_and_upcast_attn": True},
    "gelu_exact": {"activation_function": "gelu"},
    "gelu_pytorch_tanh": {"activation_function": "gelu_pytorch_tanh"},
    "layer_norm_epsilon": {"layer_norm_epsilon": 0.25},
    # Refused by addmul, each with its own error:
    "n_inner": {"n_inner": 24},
    "untied_head": {"tie_word_embeddings": False},
    "relu": {"activation_function": "relu"},
}


def make(name, fields):
    torch.manual_seed(20261205)
    config = GPT2Config(**BASE, **fields)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("ln_1.weight") or pname.endswith("ln_2.weight") or pname.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
        if not config.tie_word_embeddings:
            model.lm_head.weight.copy_(0.3 * torch.randn_like(model.lm_head.weight))
    x = torch.randint(0, BASE["vocab_size"], (2, BASE["n_positions"]), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = model(x).logits
    out = os.path.join(HERE, name)
    model.save_pretrained(out, safe_serialization=True)
    os.remove(os.path.join(out, "generation_config.json"))  # not read by addmul
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"x": x.tolist(), "logits": [[[round(v, 7) for v in row] for row in seq] for seq in logits.tolist()]}, f)
        f.write("\n")


if __name__ == "__main__":
    for name, fields in VARIANTS.items():
        make(name, fields)
        print(name)

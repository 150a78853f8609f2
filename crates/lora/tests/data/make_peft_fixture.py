"""Makes the PEFT fixture that `crates/lora/tests/peft.rs` checks addmul's LoRA against.

A tiny random GPT-2 (Hugging Face `transformers`, float32, seed 0) gets LoRA adapters from
Hugging Face PEFT on `c_attn` and `c_proj` (both the attention's and the MLP's `c_proj`: GPT-2's
`Conv1D` layers), rank 2, alpha 4, no dropout, with `init_lora_weights=False` so that `B` is not
zero and the adapted outputs differ from the base model's. Everything is written to
`peft_gpt2_tiny/` beside this script:

| file | what |
| --- | --- |
| `adapter_model.safetensors`, `adapter_config.json` | the adapter, as `PeftModel.save_pretrained` writes it |
| `base_model/` | the base model, as `GPT2LMHeadModel.save_pretrained` writes it (a few kilobytes) |
| `layer_reference.safetensors` | for `LAYERS` below: the base layer's `weight` (Conv1D, `[in, out]`) and `bias`, an input `x` (`[n, in]`), PEFT's adapted output `y` (`[n, out]`), and the weight after `merge_and_unload()` (`merged_weight`, `[in, out]`), each named `{layer}.{what}` |
| `model_reference.json` | token ids and the adapted model's logits (`[n, vocab]`), for a whole-model test once the GPT takes adapters |

Run it from the repository root with PEFT installed (versions used: see `VERSIONS` in the output's
`model_reference.json`):

    python3 -m venv /tmp/peft-venv
    /tmp/peft-venv/bin/pip install torch transformers peft safetensors numpy
    /tmp/peft-venv/bin/python crates/lora/tests/data/make_peft_fixture.py

The reverse direction (an adapter written by addmul, loaded by PEFT) is a manual check:

    ADDMUL_LORA_EXPORT=/tmp/addmul-lora-export cargo test -p addmul-lora --test peft
    /tmp/peft-venv/bin/python crates/lora/tests/data/make_peft_fixture.py --check /tmp/addmul-lora-export

The Rust test writes an adapter with its own (non-zero) weights and, beside it,
`rust_reference.safetensors` with an input and addmul's output for each layer of `LAYERS`;
`--check` loads the base model and that adapter with `PeftModel.from_pretrained` and compares
PEFT's outputs with addmul's. Last run (torch 2.15.0, transformers 5.25.0, peft 0.21.2,
safetensors 0.8.0, Python 3.11): PEFT loaded addmul's adapter without a missing or unexpected key,
and max |PEFT - addmul| was 2.4e-7, 2.4e-7 and 7.2e-7 on the three layers.

What the fixture showed: PEFT names a layer's tensors `base_model.model.{layer}.lora_A.weight`
(`[r, in]`) and `...lora_B.weight` (`[out, r]`), the layout of an `nn.Linear` weight, also on
GPT-2's `Conv1D` layers; PEFT turns `fan_in_fan_out` on for `Conv1D` (and writes `true` in
`adapter_config.json`), which changes only how it merges into the `[in, out]` base weight.
"""

import json
import os
import sys

import numpy as np
import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "peft_gpt2_tiny")
BASE = os.path.join(OUT, "base_model")
# One layer of each kind: a non-square attention projection, the square attention output
# projection (where a transposed adapter would not show in the shapes), the MLP's output.
LAYERS = ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"]
TOKENS = 5


def module(model, name):
    """The submodule `name` of a (possibly PEFT-wrapped) GPT-2."""
    return model.get_submodule(name)


def base_model():
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=16,
        n_positions=8,
        n_embd=8,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=15,
        eos_token_id=15,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Non-zero biases and weights away from the usual init, so that a mistake shows.
            if name.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif name.endswith(".weight") and p.dim() == 2:
                p.copy_(torch.randn_like(p) * 0.3)
    return model


def make():
    os.makedirs(OUT, exist_ok=True)
    model = base_model()
    model.save_pretrained(BASE, safe_serialization=True)
    model.name_or_path = "base_model"

    torch.manual_seed(1)
    config = LoraConfig(
        r=2,
        lora_alpha=4,
        lora_dropout=0.0,
        target_modules=["c_attn", "c_proj"],
        fan_in_fan_out=True,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, config).eval()
    # No embedding layers are adapted: nothing to look up about the base model's vocabulary.
    peft_model.save_pretrained(OUT, save_embedding_layers=False)
    os.remove(os.path.join(OUT, "README.md"))  # PEFT's model card template: nothing addmul reads
    # PEFT keeps target_modules as a set, saved in hash order: sort it so that reruns give the same file.
    config_path = os.path.join(OUT, "adapter_config.json")
    with open(config_path) as f:
        saved = json.load(f)
    saved["target_modules"] = sorted(saved["target_modules"])
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)

    torch.manual_seed(2)
    tensors = {}
    with torch.no_grad():
        for name in LAYERS:
            layer = module(peft_model.base_model.model, name)
            base = layer.base_layer
            x = torch.randn(TOKENS, base.weight.shape[0])
            tensors[f"{name}.weight"] = base.weight.detach().clone()
            tensors[f"{name}.bias"] = base.bias.detach().clone()
            tensors[f"{name}.x"] = x
            tensors[f"{name}.y"] = layer(x).detach().clone()
        ids = torch.randint(0, 16, (1, TOKENS))
        logits = peft_model(input_ids=ids).logits[0]
        merged = peft_model.merge_and_unload()
        for name in LAYERS:
            tensors[f"{name}.merged_weight"] = module(merged, name).weight.detach().clone()
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "layer_reference.safetensors")
    )
    reference = {
        "ids": ids[0].tolist(),
        "logits": logits.tolist(),
        "VERSIONS": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    with open(os.path.join(OUT, "model_reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")


def check(adapter_dir):
    """Loads an adapter written by addmul with PEFT and compares outputs with addmul's."""
    model = GPT2LMHeadModel.from_pretrained(BASE).eval()
    peft_model = PeftModel.from_pretrained(model, adapter_dir).eval()
    ours = safetensors.torch.load_file(os.path.join(adapter_dir, "rust_reference.safetensors"))
    worst = 0.0
    with torch.no_grad():
        for name in LAYERS:
            layer = module(peft_model.base_model.model, name)
            y = layer(ours[f"{name}.x"])
            err = (y - ours[f"{name}.y"]).abs().max().item()
            print(f"{name}: max |PEFT - addmul| = {err:.3e}")
            worst = max(worst, err)
    assert worst < 1e-5, worst
    print("PEFT loads addmul's adapter and agrees with addmul's outputs")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        make()

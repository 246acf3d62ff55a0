"""Checks a `vitslim export --format hf` folder in Hugging Face transformers itself.

Loads FOLDER with AutoModelForImageClassification (AutoModel when it has no head;
trust_remote_code for vitslim's template), runs the images of the export's --sample file and
compares the outputs with vitslim's logits there (max |diff| <= --tolerance). With --original, the
folder a model was imported from: every tensor must be bit-identical and the class the same (the
round trip transformers -> vitslim -> transformers of an unpruned model; ViTModel's pooler, which is
and DINOv2's mask token, not part of the ViT, left out). Prints one line; exits 1
on a mismatch.

Usage: check_hf_export.py FOLDER SAMPLE [--original DIR] [--stock | --remote] [--tolerance 1e-4]
"""
import argparse
import json
import os
import sys

import torch
import transformers as tf
from safetensors.torch import load_file


def fail(message):
    print(f"check_hf_export: FAIL: {message}")
    sys.exit(1)


def load_folder(folder):
    """Every tensor of a transformers folder: its safetensors files (one, or the shards), else pytorch_model.bin."""
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
        return torch.load(os.path.join(folder, "pytorch_model.bin"), weights_only=True)
    tensors = {}
    for f in files:
        tensors.update(load_file(os.path.join(folder, f)))
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("sample")
    parser.add_argument("--original", help="the transformers folder the model was imported from")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--stock", action="store_true", help="the folder must load without remote code")
    kind.add_argument("--remote", action="store_true", help="the folder must be vitslim's template")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    config = json.load(open(os.path.join(args.folder, "config.json")))
    remote = "auto_map" in config
    if args.stock and remote:
        fail(f"{args.folder} needs remote code; a stock class was expected")
    if args.remote and not remote:
        fail(f"{args.folder} is a stock {config['architectures'][0]}; vitslim's template was expected")
    architecture = config["architectures"][0]
    if remote:
        has_head = config["num_classes"] > 0
        auto = tf.AutoModelForImageClassification if has_head else tf.AutoModel
        model = auto.from_pretrained(args.folder, trust_remote_code=True).eval()
    else:  # the stock class config.json names
        has_head = architecture.endswith(("ForImageClassification", "WithTeacher", "WithProjection"))
        model = getattr(tf, architecture).from_pretrained(args.folder).eval()
    sample = load_file(args.sample)
    with torch.no_grad():
        out = model(pixel_values=sample["images"])
    if not has_head:
        got = out.last_hidden_state[:, 0] if architecture == "ViTModel" else out.pooler_output
    else:
        got = out.image_embeds if architecture.endswith("WithProjection") else out.logits
    diff = (got - sample["logits"]).abs().max().item()
    if diff > args.tolerance:
        fail(f"{args.folder}: outputs differ from vitslim's by {diff:.3g} (> {args.tolerance})")
    if args.original:
        a = load_folder(args.folder)
        # ViTModel's pooler and DINOv2's mask token are not part of the ViT
        b = {k: v for k, v in load_folder(args.original).items() if not k.startswith("pooler.") and "mask_token" not in k}
        a = {k: v for k, v in a.items() if "mask_token" not in k}
        if set(a) != set(b):
            fail(f"keys differ: only in the export {sorted(set(a) - set(b))[:5]}, only in the original "
                 f"{sorted(set(b) - set(a))[:5]}")
        for key in b:
            if not torch.equal(a[key], b[key]):
                fail(f"{key} is not bit-identical to the original")
        original = json.load(open(os.path.join(args.original, "config.json")))
        if original["architectures"] != config["architectures"]:
            fail(f"class {config['architectures']} != the original's {original['architectures']}")
    print(f"check_hf_export: {args.folder} ({config['architectures'][0]}, {'remote code' if remote else 'stock'}): "
          f"max |diff| {diff:.2e}" + (", every tensor bit-identical to the original" if args.original else ""))


if __name__ == "__main__":
    main()

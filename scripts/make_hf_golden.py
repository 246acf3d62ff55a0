"""Golden fixtures for reading Hugging Face transformers checkpoints (tests/unit/test_hf.cpp).

Each case is a small transformers model of one class with seeded random weights, saved with
save_pretrained (config.json + model.safetensors; one case as pytorch_model.bin, one sharded), and
its outputs on seeded images in every attention mode of scripts/make_golden.py (the mode of a block
is applied to the transformers layer itself: full x + a, diluting (2 - lambda) x + lambda a, removed
2x, skipped x; a is the attention branch after its layer scale). No hub access: only the model code.

Usage: make_hf_golden.py --out DIR   (writes DIR/<case>/ and DIR/<case>_expected.safetensors)
"""
import argparse
import json
import os

import torch
import transformers as tf
from safetensors.torch import load_file, save_file

from make_golden import CASES

SMALL = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32,
             patch_size=8, num_channels=3)
LABELS = {str(i): f"class {i}" for i in range(5)}
BATCH = 3


def configs():
    """case -> (model class, config, save options)."""
    vit = dict(SMALL, layer_norm_eps=1e-12, id2label=LABELS, label2id={v: int(k) for k, v in LABELS.items()})
    dino = dict(SMALL, mlp_ratio=2, layerscale_value=0.5)
    dino.pop("intermediate_size")
    clip = dict(SMALL, projection_dim=24, hidden_act="quick_gelu")
    return {
        "vit_classifier": (tf.ViTForImageClassification, tf.ViTConfig(**vit), {}),
        "vit_backbone_bin": (tf.ViTModel, tf.ViTConfig(**SMALL), {"bin": True}),
        "deit": (tf.DeiTForImageClassification, tf.DeiTConfig(**vit), {}),
        "deit_teacher_sharded": (tf.DeiTForImageClassificationWithTeacher, tf.DeiTConfig(**vit),
                                 {"max_shard_size": "20KB"}),
        "dinov2": (tf.Dinov2Model, tf.Dinov2Config(**dino), {}),
        "dinov2_classifier": (tf.Dinov2ForImageClassification, tf.Dinov2Config(**dino, id2label=LABELS), {}),
        "dinov2_registers": (tf.Dinov2WithRegistersModel, tf.Dinov2WithRegistersConfig(**dino, num_register_tokens=2),
                             {}),
        "clip_vision": (tf.CLIPVisionModel, tf.CLIPVisionConfig(**clip), {}),
        "clip_projection": (tf.CLIPVisionModelWithProjection, tf.CLIPVisionConfig(**clip), {}),
    }


def mix(x, a, mode, lam):
    if mode == "full":
        return x + a
    if mode == "diluting":
        return (2.0 - lam) * x + lam * a
    if mode == "removed":
        return 2.0 * x
    if mode == "skipped":
        return x
    raise ValueError(mode)


def first(out):
    return out[0] if isinstance(out, tuple) else out


def layer_forward(layer, x, mode, lam):
    """One transformers encoder layer (transformers 5.25's modules) with the block's attention mode."""
    if hasattr(layer, "layernorm_before"):  # ViT, DeiT
        x = mix(x, first(layer.attention(layer.layernorm_before(x))), mode, lam)
        return x + layer.mlp(layer.layernorm_after(x))
    if hasattr(layer, "layer_scale1"):  # DINOv2
        x = mix(x, layer.layer_scale1(first(layer.attention(layer.norm1(x)))), mode, lam)
        return x + layer.layer_scale2(layer.mlp(layer.norm2(x)))
    # CLIP
    x = mix(x, first(layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=None)), mode, lam)
    return x + layer.mlp(layer.layer_norm2(x))


def encoder_layers(model):
    """The encoder's blocks: the longest ModuleList of modules with a forward of their own."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len))


def output_of(model, images):
    """What vitslim's forward gives: logits, or the pooled (final-normed class token) features."""
    out = model(pixel_values=images)
    for name in ("logits", "image_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if value is not None and not (name == "pooler_output" and isinstance(model, tf.ViTModel)):
            return value
    return out.last_hidden_state[:, 0]  # ViTModel: its pooler (tanh dense) is not part of the ViT


def with_modes(model, images, spec):
    layers = encoder_layers(model)
    originals = [layer.forward for layer in layers]
    as_tuple = isinstance(originals[0](torch.zeros(1, 2, model.config.hidden_size), None), tuple)
    try:
        for b, layer in enumerate(layers):
            mode, lam = spec.get(b, ("full", 1.0))

            def forward(hidden_states, *args, _layer=layer, _mode=mode, _lam=lam, **kwargs):
                y = layer_forward(_layer, hidden_states, _mode, _lam)
                return (y,) if as_tuple else y

            layer.forward = forward
        return output_of(model, images)
    finally:
        for layer, original in zip(layers, originals):
            layer.forward = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed, (case, (cls, config, save)) in enumerate(configs().items()):
        torch.manual_seed(seed)
        model = cls(config).eval()
        with torch.no_grad():
            for p in model.parameters():  # transformers initialises some tensors to 0 or 1: make all informative
                p.add_(torch.randn_like(p) * 0.02)
        folder = os.path.join(args.out, case)
        model.save_pretrained(folder, **{k: v for k, v in save.items() if k != "bin"})
        if save.get("bin"):  # the older pytorch_model.bin: torch.save of the same (hub-named) tensors
            torch.save(load_file(os.path.join(folder, "model.safetensors")), os.path.join(folder, "pytorch_model.bin"))
            os.remove(os.path.join(folder, "model.safetensors"))
        images = torch.randn(BATCH, config.num_channels, config.image_size, config.image_size)
        expected = {"input": images}
        with torch.no_grad():
            plain = output_of(model, images)
            for name, spec in CASES.items():
                expected[f"logits.{name}"] = with_modes(model, images, spec).contiguous()
        assert torch.allclose(expected["logits.full"], plain, atol=1e-6), f"{case}: mode forward != transformers"
        save_file(expected, os.path.join(args.out, f"{case}_expected.safetensors"),
                  metadata={"class": cls.__name__, "transformers": tf.__version__})
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(sorted(configs()), f)
    print(f"transformers fixtures written to {args.out} (transformers {tf.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()

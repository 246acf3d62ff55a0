"""Reference forward of a timm VisionTransformer with vitslim's per-block attention modes
(method.md sections 1, 3, 4), used to make golden fixtures and by the compact-model loader.

modes: one (mode, lambda) per block, mode in full | diluting | skipped | removed.
"""
import torch


def forward_with_modes(model, images, modes):
    x = model.patch_embed(images)
    x = model._pos_embed(x)
    x = model.norm_pre(x)
    for blk, (mode, lam) in zip(model.blocks, modes):
        if mode == "full":
            x = x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
        elif mode == "diluting":
            x = (2.0 - lam) * x + lam * blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
        elif mode == "skipped":
            pass
        elif mode == "removed":
            x = 2.0 * x
        else:
            raise ValueError(f"unknown mode {mode}")
        x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
    x = model.norm(x)
    return model.forward_head(x)


def modes_from_spec(depth, spec):
    """spec: {block: (mode, lambda)}; other blocks are full."""
    return [spec.get(i, ("full", 1.0)) for i in range(depth)]

"""Reference forward of a timm VisionTransformer with vitslim's per-block attention modes
(docs/method.md sections 1, 3, 4), used to make golden fixtures and by the compact-model loader.

modes: one (mode, lambda) per block, mode in full | diluting | skipped | removed.
folded: the weights carry the residual factors (metadata vitslim.residual_folded = 1, written by
`vitslim merge --fold-residual`): removed blocks then leave the stream as it is.
"""
import torch


def forward_with_modes(model, images, modes, folded=False):
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
            x = x if folded else 2.0 * x
        else:
            raise ValueError(f"unknown mode {mode}")
        x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
    x = model.norm(x)
    return model.forward_head(x)


def load_export(path):
    """A vitslim .safetensors export as (timm VisionTransformer, modes, folded): shape from the
    tensors and the vitslim.* metadata, removed blocks without attention weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from timm_compat import timm

    with safe_open(path, "pt") as f:
        meta = f.metadata()
    removed = [int(x) for x in meta.get("vitslim.removed_layers", "").split(",") if x]
    state = load_file(path)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=int(meta["vitslim.img_size"]), patch_size=state["patch_embed.proj.weight"].shape[-1],
        in_chans=state["patch_embed.proj.weight"].shape[1], embed_dim=state["cls_token"].shape[-1], depth=depth,
        num_heads=int(meta["vitslim.num_heads"]), mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0]
        / state["cls_token"].shape[-1], num_classes=state["head.weight"].shape[0]).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = {k for k in missing if any(k.startswith((f"blocks.{b}.attn.", f"blocks.{b}.norm1.")) for b in removed)}
    if set(missing) != allowed or unexpected:
        raise ValueError(f"{path}: keys do not map: missing {sorted(set(missing) - allowed)}, unexpected {unexpected}")
    modes = [("removed", 0.0) if b in removed else ("full", 1.0) for b in range(depth)]
    folded = meta.get("vitslim.residual_folded") == "1"
    if folded:  # LayerNorm eps * s^2 where the stream is s = 2^(removed blocks ahead) times larger
        ahead = 0
        for b in reversed(range(depth)):
            blk = model.blocks[b]
            blk.norm2.eps *= float(4 ** ahead)
            if b in removed:
                ahead += 1
            else:
                blk.norm1.eps *= float(4 ** ahead)
    return model, modes, folded


def modes_from_spec(depth, spec):
    """spec: {block: (mode, lambda)}; other blocks are full."""
    return [spec.get(i, ("full", 1.0)) for i in range(depth)]

#!/usr/bin/env python3
"""Reference token merging (ToMe, Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023),
written from the paper as a patch of timm's VisionTransformer, and the golden fixture vitslim's
implementation must reproduce (tests/unit/test_tome.cpp, to <= 1e-4 in logits and gradients).

The algorithm (paper section 3), per block that merges r tokens, between attention and MLP:
  1. split the tokens alternately into A (even positions) and B (odd positions);
  2. score every A-B pair by the cosine similarity of the attention keys (mean over heads); a block
     whose attention is diluting, skipped or removed merges only with vitslim's --tome-mlp-blocks,
     by its input;
  3. each A token keeps its most similar B token; the r A tokens whose best score is highest merge
     into it (the class token, A's first, never merges);
  4. merged values are the size-weighted average, sizes add up;
  5. the result is the unmerged A tokens in their order, then all B tokens.
Proportional attention adds log(size) of each key to the attention logits.

This file deliberately does it differently from vitslim's tensor code: one image at a time, with
Python lists, so that an indexing mistake in either shows up as a mismatch.

Usage: tome_reference.py --out DIR
  writes DIR/tome_golden_weights.safetensors (timm key names) and DIR/tome_golden.safetensors
  (input, logits and gradients of every case; the cases in its metadata)
"""
import argparse
import math
import os
import sys
import types

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402

# 64 patches + the class token: room for r = 8 in every block.
SHAPE = dict(img_size=64, patch_size=8, in_chans=3, embed_dim=24, depth=4, num_heads=2, num_classes=10)
BATCH = 3
# name: (modes per block, r per block, proportional attention, merge in blocks without attention, train)
CASES = {
    "r1": (["full"] * 4, [1, 1, 1, 1], True, False, False),
    "r4": (["full"] * 4, [4, 4, 4, 4], True, False, False),
    "r8": (["full"] * 4, [8, 8, 8, 8], True, False, False),
    "r8_no_prop": (["full"] * 4, [8, 8, 8, 8], False, False, False),
    "r8_removed": (["removed", "full", "removed", "full"], [8, 8, 8, 8], True, False, False),
    "r4_removed_mlp": (["full", "removed", "full", "full"], [4, 4, 4, 4], True, True, False),
    "r8_mixed_mlp": (["removed", "diluting@0.25", "full", "skipped"], [0, 8, 8, 8], True, True, False),
    "r4_diluting": (["full", "diluting@0.5", "full", "full"], [4, 4, 4, 4], True, False, False),
    "r4_train": (["full"] * 4, [4, 4, 4, 4], True, False, True),
    "r8_removed_train": (["removed", "full", "diluting@0.5", "full"], [8, 8, 8, 8], True, True, True),
    "r1_no_prop_train": (["full", "removed", "full", "full"], [1, 1, 1, 1], False, False, True),
}


def merge_one(x, size, metric, r):
    """One image: x [N, C], size [N], metric [N, D] -> (x [N - r, C], size [N - r])."""
    n = x.shape[0]
    a_idx, b_idx = list(range(0, n, 2)), list(range(1, n, 2))
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        sim = unit[a_idx] @ unit[b_idx].T  # [NA, NB]
        best, partner = sim.max(dim=-1)
        best[0] = -math.inf  # the class token stays
        ranked = sorted(range(len(a_idx)), key=lambda i: -best[i].item())
        merging = set(ranked[:r])
    kept = [i for i in range(len(a_idx)) if i not in merging]
    sums = [x[b] * size[b] for b in b_idx]
    totals = [size[b] for b in b_idx]
    for i in merging:
        j = partner[i].item()
        sums[j] = sums[j] + x[a_idx[i]] * size[a_idx[i]]
        totals[j] = totals[j] + size[a_idx[i]]
    rows = [x[a_idx[i]] for i in kept] + [s / t for s, t in zip(sums, totals)]
    sizes = [size[a_idx[i]] for i in kept] + totals
    return torch.stack(rows), torch.stack(sizes)


def merge(x, size, metric, r):
    """Batch: x [B, N, C], size [B, N] -> merged, one image at a time."""
    out = [merge_one(x[b], size[b], metric[b], r) for b in range(x.shape[0])]
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])


def attention(attn, x, size, prop_attn):
    """timm Attention with proportional attention; returns (output [B, N, C], keys mean over heads)."""
    b, n, c = x.shape
    h = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)  # [B, H, N, D] each
    logits = (q @ k.transpose(-2, -1)) * (c // h) ** -0.5  # [B, H, N, N]
    if prop_attn:
        logits = logits + size.log()[:, None, None, :]
    out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
    return attn.proj(out), k.mean(dim=1)


def patch_tome(model, modes, r, prop_attn, mlp_blocks):
    """Makes model(images) run ToMe with vitslim's attention modes ("full", "removed", "skipped",
    "diluting@lambda")."""
    def forward_features(self, images, **_timm_kwargs):  # attn_mask, is_causal: unused here
        x = self._pos_embed(self.patch_embed(images))
        size = torch.ones(x.shape[:2], dtype=x.dtype)
        for blk, mode, rb in zip(self.blocks, modes, r):
            metric = x  # the block input, unless the attention is full: then its keys
            if mode == "full":
                a, metric = attention(blk.attn, blk.norm1(x), size, prop_attn)
                x = x + a
            elif mode.startswith("diluting"):
                lam = float(mode.split("@")[1])
                a, _ = attention(blk.attn, blk.norm1(x), size, prop_attn)
                x = (2.0 - lam) * x + lam * a
            elif mode == "removed":
                x = 2.0 * x
            elif mode != "skipped":
                raise ValueError(mode)
            if rb > 0 and (mode == "full" or mlp_blocks):
                x, size = merge(x, size, metric, rb)
            x = x + blk.mlp(blk.norm2(x))
        return self.norm(x)

    model.forward_features = types.MethodType(forward_features, model)
    return model


def build(seed):
    torch.manual_seed(seed)
    model = timm.models.vision_transformer.VisionTransformer(**SHAPE, mlp_ratio=4.0, qkv_bias=True)
    with torch.no_grad():  # spread timm's tiny init so that merging moves the logits visibly
        for name, p in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight")) or name == "norm.weight":
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def loss_weights():
    """The training cases' loss is sum(logits * these): a fixed random mix of the logits."""
    return torch.randn(BATCH, SHAPE["num_classes"], generator=torch.Generator().manual_seed(99))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    torch.manual_seed(args.seed + 1)
    images = torch.randn(BATCH, SHAPE["in_chans"], SHAPE["img_size"], SHAPE["img_size"])
    plain = build(args.seed).eval()
    out = {"input": images}
    meta = {"timm": timm.__version__, "torch": torch.__version__}
    with torch.no_grad():
        out["logits.plain"] = plain(images)
    for name, (modes, r, prop_attn, mlp_blocks, train) in CASES.items():
        model = patch_tome(build(args.seed), modes, r, prop_attn, mlp_blocks)
        model.train(train)
        logits = model(images)
        out[f"logits.{name}"] = logits.detach()
        if train:
            (logits * loss_weights()).sum().backward()
            for pname, p in model.named_parameters():
                if p.grad is not None:
                    out[f"grad.{name}.{pname}"] = p.grad.detach().clone()
        meta[f"case.{name}"] = ";".join([f"modes={','.join(modes)}", f"r={','.join(map(str, r))}",
                                         f"prop_attn={int(prop_attn)}", f"mlp_blocks={int(mlp_blocks)}",
                                         f"train={int(train)}"])
    out["loss_weights"] = loss_weights()
    os.makedirs(args.out, exist_ok=True)
    state = {k: v.contiguous() for k, v in build(args.seed).state_dict().items()}
    save_file(state, os.path.join(args.out, "tome_golden_weights.safetensors"), metadata={"format": "pt"})
    save_file(out, os.path.join(args.out, "tome_golden.safetensors"), metadata=meta)
    print(f"ToMe golden fixture written to {args.out} ({len(CASES)} cases, timm {timm.__version__})")


if __name__ == "__main__":
    main()

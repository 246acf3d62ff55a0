"""A vitslim model for Hugging Face transformers (written by `vitslim export --format hf`).

The Vision Transformer of timm with what vitslim changes: blocks whose attention was removed (their
residual doubles the stream, or leaves it as it is when the factors are folded into the weights),
token merging (ToMe: bipartite soft matching after the attention, size-weighted means, proportional
attention, as vitslim runs it), and the variants vitslim reads (class/distillation/register tokens,
average pooling with fc_norm or beside the class token,
pre-norm, LayerScale, QK-norm, QuickGELU). Parameters keep timm's names, so model.safetensors is a
vitslim export as it is. Load it with
    AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
(AutoModel for a backbone without a head). The template lives in the vitslim repository
(src/deploy/hf_template/) and is copied unchanged; the folder's config.json says the shape.
"""
import math

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput


class VitslimConfig(PretrainedConfig):
    model_type = "vitslim_vit"

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                 mlp_hidden=3072, num_classes=1000, class_token=True, reg_tokens=0, distilled=False,
                 no_embed_class=False, global_pool="token", fc_norm=False, pre_norm=False, qkv_bias=True,
                 qk_norm=False, layer_scale=False, act_layer="gelu", norm_eps=1e-6, removed_layers=(),
                 residual_folded=False, token_merging=None, **kwargs):
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.embed_dim, self.depth, self.num_heads, self.mlp_hidden = embed_dim, depth, num_heads, mlp_hidden
        self.num_classes, self.class_token, self.reg_tokens, self.distilled = num_classes, class_token, reg_tokens, distilled
        self.no_embed_class, self.global_pool, self.fc_norm, self.pre_norm = no_embed_class, global_pool, fc_norm, pre_norm
        self.qkv_bias, self.qk_norm, self.layer_scale, self.act_layer = qkv_bias, qk_norm, layer_scale, act_layer
        self.norm_eps, self.removed_layers, self.residual_folded = norm_eps, list(removed_layers), residual_folded
        # {"r": pairs merged per block, "prop_attn": bool, "mlp_blocks": bool}, or None
        self.token_merging = token_merging
        super().__init__(**kwargs)

    @property
    def prefix_tokens(self):
        return int(self.class_token) + int(self.distilled) + self.reg_tokens


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_heads
        head_dim = c.embed_dim // c.num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(c.embed_dim, 3 * c.embed_dim, bias=c.qkv_bias)
        self.q_norm = nn.LayerNorm(head_dim, eps=c.norm_eps) if c.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=c.norm_eps) if c.qk_norm else nn.Identity()
        self.proj = nn.Linear(c.embed_dim, c.embed_dim)

    def forward(self, x, size=None):  # [B, N, C], token sizes [B, N, 1] -> [B, N, C], ToMe metric [B, N, D]
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # [B, H, N, D]
        q, k = self.q_norm(q), self.k_norm(k)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if size is not None:  # proportional attention: each key counts as the tokens it stands for
            attn = attn + size.log()[:, None, :, 0][:, :, None, :]
        x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, C)), k.sum(dim=1)


def merge_tokens(x, size, metric, r, prefix):
    """ToMe's bipartite soft matching as vitslim does it: tokens alternate into A (even positions) and
    B (odd); the prefix tokens never merge; the r A tokens most similar (cosine of `metric`) to
    their best B partner merge into it as size-weighted means. Out: the prefix, the other A tokens in
    their order, then B. x [B, N, C], size [B, N, 1] -> [B, N - r, C], [B, N - r, 1]."""
    batch, n, channels = x.shape
    pa, pb = (prefix + 1) // 2, prefix // 2
    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, ::2] @ m[:, 1::2].transpose(-1, -2)  # [B, NA, NB]
    scores[:, :pa] = -math.inf
    scores[:, :, :pb] = -math.inf
    best, partner = scores.max(dim=-1)
    src = best.topk(r, dim=-1).indices  # [B, r]: A tokens that merge
    dst = partner.gather(1, src)  # [B, r]: their B partners
    na, nb = (n + 1) // 2, n // 2
    stays = torch.ones(batch, na, dtype=torch.bool, device=x.device).scatter(1, src, False)
    stays[:, :pa] = False
    kept = na - pa - r
    unmerged = torch.arange(na, device=x.device).expand(batch, na)[stays].view(batch, kept)
    keep = torch.cat([torch.arange(prefix, device=x.device).expand(batch, prefix), unmerged * 2,
                      (torch.arange(pb, nb, device=x.device) * 2 + 1).expand(batch, nb - pb)], dim=1)
    into = (dst - pb + prefix + kept)[..., None]  # [B, r, 1]: output rows of the partners
    rows = lambda t, index: t.gather(1, index.expand(-1, -1, t.shape[-1]))  # noqa: E731
    new_size = rows(size, keep[..., None]).scatter_add(1, into, rows(size, (src * 2)[..., None]))
    out = rows(x, keep[..., None])
    weight = rows(size, (src * 2)[..., None]) / rows(new_size, into)
    delta = (rows(x, (src * 2)[..., None]) - rows(out, into)) * weight
    return out.scatter_add(1, into.expand(-1, -1, channels), delta), new_size


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.embed_dim, c.mlp_hidden)
        self.act = QuickGELU() if c.act_layer == "quick_gelu" else nn.GELU()
        self.fc2 = nn.Linear(c.mlp_hidden, c.embed_dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c, index):
        super().__init__()
        self.has_attention = index not in c.removed_layers
        self.folded = c.residual_folded
        if self.has_attention:
            self.norm1 = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
            self.attn = Attention(c)
            self.ls1 = LayerScale(c.embed_dim) if c.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.mlp = Mlp(c)
        self.ls2 = LayerScale(c.embed_dim) if c.layer_scale else nn.Identity()

    def forward(self, x, size=None, r=0, prefix=1, prop_attn=True):  # [B, N, C] (ToMe: N - r out)
        metric = x  # ToMe's similarity: the keys of the attention, else the block input
        if self.has_attention:
            a, metric = self.attn(self.norm1(x), size if prop_attn else None)
            x = x + self.ls1(a)
        elif not self.folded:
            x = 2.0 * x  # the removed branch is the identity: x + x
        if r > 0:
            if size is None:
                size = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype, device=x.device)
            x, size = merge_tokens(x, size, metric, r, prefix)
        return x + self.ls2(self.mlp(self.norm2(x))), size


class PatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(c.in_chans, c.embed_dim, c.patch_size, c.patch_size, bias=not c.pre_norm)

    def forward(self, x):  # [B, C_in, H, W] -> [B, N, C]
        return self.proj(x).flatten(2).transpose(1, 2)


class VitslimVisionTransformer(PreTrainedModel):
    config_class = VitslimConfig
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        c = config
        grid = c.img_size // c.patch_size
        self.patch_embed = PatchEmbed(c)
        if c.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        if c.distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        if c.reg_tokens:
            self.reg_token = nn.Parameter(torch.zeros(1, c.reg_tokens, c.embed_dim))
        pos_tokens = grid * grid + (0 if c.no_embed_class else c.prefix_tokens)
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_tokens, c.embed_dim))
        self.norm_pre = nn.LayerNorm(c.embed_dim, eps=c.norm_eps) if c.pre_norm else nn.Identity()
        self.blocks = nn.ModuleList(Block(c, b) for b in range(c.depth))
        if c.fc_norm:
            self.fc_norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
        else:
            self.norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
        if c.num_classes:
            pooled = 2 * c.embed_dim if c.global_pool == "token_avg" else c.embed_dim
            self.head = nn.Linear(pooled, c.num_classes)
            if c.distilled:
                self.head_dist = nn.Linear(c.embed_dim, c.num_classes)
        if c.residual_folded:  # the stream is 2^(removed blocks so far) larger: LayerNorm's eps scales with it
            ahead = 0
            for b in reversed(range(c.depth)):
                blk = self.blocks[b]
                blk.norm2.eps *= float(4 ** ahead)
                if blk.has_attention:
                    blk.norm1.eps *= float(4 ** ahead)
                else:
                    ahead += 1
        self.post_init()

    def _init_weights(self, module):
        pass  # every parameter comes from model.safetensors

    def features(self, pixel_values):  # [B, C_in, H, W] -> tokens [B, T, C], sizes [B, T, 1] (None: all 1)
        x = self.patch_embed(pixel_values)
        prefix = [t.expand(x.shape[0], -1, -1) for t in
                  (getattr(self, "cls_token", None), getattr(self, "dist_token", None), getattr(self, "reg_token", None))
                  if t is not None]
        if self.config.no_embed_class:
            x = torch.cat(prefix + [x + self.pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        x = self.norm_pre(x)
        tm = self.config.token_merging or {}
        size = None
        for b, blk in enumerate(self.blocks):
            r = tm["r"][b] if tm and b < len(tm["r"]) and (blk.has_attention or tm["mlp_blocks"]) else 0
            x, size = blk(x, size, r, self.config.prefix_tokens, tm.get("prop_attn", True))
        return (x if self.config.fc_norm else self.norm(x)), size

    def pool(self, x, size=None):  # [B, T, C] -> [B, C] ([B, 2C] for token_avg)
        if self.config.global_pool == "token":
            pooled = x[:, 0]
            if self.config.distilled:  # the pre-logits of both tokens (the logits use each head apart)
                pooled = (pooled + x[:, 1]) / 2
            return self.fc_norm(pooled) if self.config.fc_norm else pooled
        patches = x[:, self.config.prefix_tokens:]
        if size is None:
            mean = patches.mean(dim=1)
        else:  # merged tokens stand for several patches
            weight = size[:, self.config.prefix_tokens:]
            mean = (patches * weight).sum(dim=1) / weight.sum(dim=1)
        if self.config.global_pool == "token_avg":
            return torch.cat([x[:, 0], mean], dim=1)
        return self.fc_norm(mean) if self.config.fc_norm else mean

    def forward(self, pixel_values, labels=None, **kwargs):
        tokens, size = self.features(pixel_values)
        pooled = self.pool(tokens, size)
        if not self.config.num_classes:
            return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=pooled)
        if self.config.distilled:  # each head reads its own token; the logits are their mean
            logits = (self.head(tokens[:, 0]) + self.head_dist(tokens[:, 1])) / 2
        else:
            logits = self.head(pooled)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


__all__ = ["VitslimConfig", "VitslimVisionTransformer"]

#!/usr/bin/env python3
"""Checkpoints the C++ tests read, written with torch.save exactly as users' files are:
good variants of the golden weights (wrapped, flat OrderedDict, fp16, shared-storage views,
pickle protocol 4, extra non-tensor entries, a DeiT training checkpoint, a deflated archive),
broken ones (truncated, legacy format, renamed keys, wrong shapes, a pickle that would run a
shell command if executed, a flipped byte under a valid zip header, a record that inflates far
beyond its tensor), and timm's full-size
deit_tiny / deit_base state dicts (random weights, no download) with their logits for 2 images.
Usage: make_test_checkpoints.py --fixture tests/fixtures --out DIR [--no-base]
"""
import argparse
import collections
import os
import sys
import zipfile

import numpy as np

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402

PWNED_MARKER = "vitslim_pickle_executed"


class RunsCommand:
    """Pickles into os.system(...): a reader that executes pickles would create the marker."""

    def __init__(self, marker_path):
        self.marker_path = marker_path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker_path}",))


def write_train_golden(fixture, path):
    """Three training steps of the golden model in PyTorch: block 1 diluting at lambda 0.5, a
    mixup batch (lam 0.7 with the reversed batch) with label smoothing 0.1, soft-target
    cross-entropy, torch.optim.AdamW with timm's no-decay group and a changing lr."""
    from make_golden import SHAPE
    from vit_modes import forward_with_modes, modes_from_spec

    model = timm.models.vision_transformer.VisionTransformer(**SHAPE, mlp_ratio=4.0, qkv_bias=True)
    model.load_state_dict(load_file(os.path.join(fixture, "golden_vit_test.safetensors")))
    model.train()
    modes = modes_from_spec(SHAPE["depth"], {1: ("diluting", 0.5)})
    torch.manual_seed(7)
    raw = torch.randn(4, SHAPE["in_chans"], SHAPE["img_size"], SHAPE["img_size"])
    labels = torch.tensor([0, 3, 3, 9])
    lam, smoothing, classes = 0.7, 0.1, SHAPE["num_classes"]
    off = smoothing / classes
    onehot = torch.full((4, classes), off).scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)
    images = raw * lam + raw.flip(0) * (1.0 - lam)
    targets = onehot * lam + onehot.flip(0) * (1.0 - lam)
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n in ("pos_embed", "cls_token")]
    decay = [p for n, p in model.named_parameters() if not (p.ndim <= 1 or n in ("pos_embed", "cls_token"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    lrs = [1e-3, 8e-4, 5e-4]
    result = {"raw": raw, "labels": labels, "input": images, "targets": targets, "lrs": torch.tensor(lrs)}
    for k, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        logits = forward_with_modes(model, images, modes)
        loss = torch.sum(-targets * torch.log_softmax(logits, -1), -1).mean()
        loss.backward()
        opt.step()
        result[f"loss.{k}"] = loss.detach().reshape(1)
    for n, p in model.named_parameters():
        result[f"param.{n}"] = p.detach().clone()
    save_file(result, path)


def write_distill_golden(path):
    """Distillation losses by PyTorch's own functions on random logits: soft = tau^2 x
    F.kl_div(log_softmax(student / tau), log_softmax(teacher / tau), reduction="batchmean",
    log_target=True), hard = F.cross_entropy(student, teacher.argmax(1)), each mixed as
    (1 - alpha) soft-target CE + alpha KD, with the gradient of the loss by the student's logits."""
    import torch.nn.functional as F

    torch.manual_seed(11)
    batch, classes = 6, 10
    student = torch.randn(batch, classes) * 3
    teacher = torch.randn(batch, classes) * 3
    targets = torch.softmax(torch.randn(batch, classes), -1)
    result = {"student": student, "teacher": teacher, "targets": targets}
    for kind, tau, alpha in (("soft", 1.0, 0.5), ("soft", 4.0, 0.7), ("hard", 1.0, 0.5)):
        s = student.clone().requires_grad_(True)
        ce = torch.sum(-targets * torch.log_softmax(s, -1), -1).mean()
        if kind == "soft":
            kd = F.kl_div(F.log_softmax(s / tau, 1), F.log_softmax(teacher / tau, 1), reduction="batchmean",
                          log_target=True) * tau * tau
        else:
            kd = F.cross_entropy(s, teacher.argmax(1))
        loss = (1 - alpha) * ce + alpha * kd
        loss.backward()
        key = f"{kind}.tau{tau:g}.alpha{alpha:g}"
        result[f"loss.{key}"] = loss.detach().reshape(1)
        result[f"grad.{key}"] = s.grad.clone()
    save_file(result, path)


def write_criteria_golden(fixture, path):
    """Per-block scores of the search criteria on the golden model in timm, over 8 random images:
    cosine = 1 - mean over tokens of cos(x, x + attn(norm1(x))) (LLM-Drop), bi = 1 - mean of
    cos(x, block(x)) (ShortGPT), entropy = sum_c ln sigma_c of the attention branch's rows."""
    import torch.nn.functional as F
    from make_golden import SHAPE

    model = timm.models.vision_transformer.VisionTransformer(**SHAPE, mlp_ratio=4.0, qkv_bias=True)
    model.load_state_dict(load_file(os.path.join(fixture, "golden_vit_test.safetensors")))
    model.eval()
    torch.manual_seed(13)
    images = torch.randn(8, SHAPE["in_chans"], SHAPE["img_size"], SHAPE["img_size"])
    cosine, bi, entropy = [], [], []
    with torch.no_grad():
        x = model._pos_embed(model.patch_embed(images))
        for block in model.blocks:
            a = block.attn(block.norm1(x))
            y = block(x)
            cosine.append(1 - F.cosine_similarity(x, x + a, dim=-1).mean().item())
            bi.append(1 - F.cosine_similarity(x, y, dim=-1).mean().item())
            rows = a.reshape(-1, a.shape[-1]).double()
            entropy.append(torch.log(rows.var(0, unbiased=False).sqrt()).sum().item())
            x = y
    save_file({"images": images, "cosine": torch.tensor(cosine, dtype=torch.float64),
               "bi": torch.tensor(bi, dtype=torch.float64), "entropy": torch.tensor(entropy, dtype=torch.float64)},
              path)


def write_train_checkpoint(sd, path):
    """What DeiT's main.py saves each epoch: model, optimizer, lr_scheduler, epoch, model_ema,
    scaler and the argparse Namespace, plus a numpy scalar as timm's metric."""
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    sched = {"t_initial": 300, "lr_min": 1e-5, "noise_range_t": None, "base_values": [5e-4], "t_in_epochs": True}
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
              "_growth_tracker": 0}
    args = argparse.Namespace(model="deit_tiny_patch16_224", lr=5e-4, input_size=224, smoothing=0.1,
                              mixup=0.8, repeated_aug=True, output_dir="", resume=None)
    torch.save({"model": sd, "optimizer": opt.state_dict(), "lr_scheduler": sched, "epoch": 299,
                "model_ema": collections.OrderedDict(sd), "scaler": scaler, "args": args,
                "max_accuracy": np.float64(72.2), "dtype": np.dtype("float32"), "shape": torch.Size([3, 4])}, path)


def rewrite_zip(src, dst, change=None, compression=zipfile.ZIP_STORED):
    """Copies a torch.save archive member by member; `change(name, data)` may replace a member's
    bytes (returns (data, compression))."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data, method = zin.read(info.filename), compression
            if change:
                data, method = change(info.filename, data, method)
            zout.writestr(zipfile.ZipInfo(info.filename), data, compress_type=method)


def flip_byte_in_record(src, dst, record_suffix):
    """A byte of a tensor record flipped, the zip headers (and the CRC they hold) left as they were."""
    blob = bytearray(open(src, "rb").read())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(record_suffix))
        at = info.header_offset
        name_len = int.from_bytes(blob[at + 26:at + 28], "little")
        extra_len = int.from_bytes(blob[at + 28:at + 30], "little")
        blob[at + 30 + name_len + extra_len + 5] ^= 0x10
    open(dst, "wb").write(bytes(blob))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-base", action="store_true", help="skip the 346 MB deit_base file")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    sd = collections.OrderedDict(load_file(os.path.join(args.fixture, "golden_vit_test.safetensors")).items())

    torch.save({"model": sd, "epoch": 7, "args": __import__("argparse").Namespace(lr=5e-4), "note": "x"},
               out("golden_wrapped.pth"))
    torch.save(sd, out("golden_flat.pth"))
    torch.save(collections.OrderedDict((k, v.half()) for k, v in sd.items()), out("golden_fp16.pth"))
    torch.save(sd, out("golden_proto4.pth"), pickle_protocol=4)
    # Views sharing one storage: qkv and proj weights of block 0 cut out of one buffer.
    shared = dict(sd)
    q, p = sd["blocks.0.attn.qkv.weight"], sd["blocks.0.attn.proj.weight"]
    buf = torch.cat([q.flatten(), p.flatten(), torch.zeros(5)])
    shared["blocks.0.attn.qkv.weight"] = buf[: q.numel()].view_as(q)
    shared["blocks.0.attn.proj.weight"] = buf[q.numel(): q.numel() + p.numel()].view_as(p)
    torch.save({"state_dict": shared}, out("golden_views.pth"))
    # Transposed (non-contiguous) tensor saved as such.
    strided = dict(sd)
    strided["head.weight"] = sd["head.weight"].t().contiguous().t()
    torch.save(strided, out("golden_strided.pth"))

    marker = out(PWNED_MARKER)
    torch.save({"model": sd, "payload": RunsCommand(marker)}, out("golden_with_payload.pth"))
    torch.save({"model": {**sd, "blocks.0.attn.qkv.weight": RunsCommand(marker)}}, out("payload_in_state.pth"))
    torch.save({"model": {"head.weight": sd["head.weight"]}}, out("single_entry.pth"))
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in sd.items()), out("golden_ddp.pth"))
    renamed = collections.OrderedDict(sd)
    renamed["blocks.3.mlp.fc3.weight"] = renamed.pop("blocks.3.mlp.fc2.weight")
    del renamed["norm.bias"]
    torch.save(renamed, out("wrong_keys.pth"))
    bad_shape = dict(sd)
    bad_shape["blocks.1.mlp.fc1.weight"] = torch.zeros(50, 24)
    torch.save(bad_shape, out("wrong_shape.pth"))
    nan = dict(sd)
    nan["blocks.2.mlp.fc2.bias"] = torch.full_like(sd["blocks.2.mlp.fc2.bias"], float("nan"))
    torch.save(nan, out("nan_values.pth"))
    torch.save(sd, out("legacy.pth"), _use_new_zipfile_serialization=False)
    write_train_checkpoint(sd, out("deit_train_checkpoint.pth"))
    rewrite_zip(out("golden_flat.pth"), out("golden_deflated.pth"), compression=zipfile.ZIP_DEFLATED)
    flip_byte_in_record(out("golden_flat.pth"), out("crc_mismatch.pth"), "/data/1")
    # 24 floats declared, a record of 64 MiB of zeros deflated to 64 KiB stored for them.
    torch.save({"head.bias": torch.zeros(24)}, out("small.pth"))
    rewrite_zip(out("small.pth"), out("inflate_bomb.pth"),
                lambda name, data, method: (bytes(64 << 20), zipfile.ZIP_DEFLATED) if name.endswith("/data/0")
                else (data, method))
    os.remove(out("small.pth"))
    with open(out("golden_flat.pth"), "rb") as f:
        blob = f.read()
    with open(out("truncated.pth"), "wb") as f:
        f.write(blob[: len(blob) // 2])
    st = open(os.path.join(args.fixture, "golden_vit_test.safetensors"), "rb").read()
    with open(out("truncated.safetensors"), "wb") as f:
        f.write(st[: len(st) // 2])
    with open(out("garbage.bin"), "wb") as f:
        f.write(b"this is not a checkpoint\n" * 10)

    names = ["deit_tiny_patch16_224"] + ([] if args.no_base else ["deit_base_patch16_224"])
    for name in names:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        torch.manual_seed(1)
        images = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            logits = model(images)
        short = name.split("_patch")[0]
        torch.save({"model": model.state_dict()}, out(f"{short}.pth"))
        if short == "deit_tiny":
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out(f"{short}.safetensors"))
        save_file({"input": images, "logits": logits}, out(f"{short}_expected.safetensors"))
    write_train_golden(args.fixture, out("train_golden.safetensors"))
    write_distill_golden(out("distill_golden.safetensors"))
    write_criteria_golden(args.fixture, out("criteria_golden.safetensors"))
    print(f"test checkpoints written to {args.out}")


if __name__ == "__main__":
    main()

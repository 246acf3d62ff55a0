#!/usr/bin/env python3
"""The peer of the GPU kit's DeiT-B numbers (scripts/gpu_smoke.sh): timm's deit_base_patch16_224
training step at the recipe `vitslim train` runs there (bf16 autocast, drop-path 0.1, soft-target
cross-entropy on mixed labels, fused AdamW with timm's no-decay group), in PyTorch eager and with
torch.compile, on a uint8 batch normalised on the device each step. Prints one line per mode with
images/s (median step after warm-up) and MFU at the same executed-FLOP count as vitslim's line.

Usage: scripts/gpu_peer_train.py [--device cuda] [--batch-size 256] [--steps 12] [--no-compile]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3


def step_times(model, opt, args, torch):
    b = args.batch_size
    pixels = torch.randint(0, 256, (b, 3, 224, 224), dtype=torch.uint8, device=args.device)
    targets = torch.softmax(torch.randn(b, 1000, device=args.device), 1)
    mean = torch.tensor((0.485, 0.456, 0.406), device=args.device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=args.device).view(1, 3, 1, 1)
    times = []
    for _ in range(WARMUP + args.steps):
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        x = (pixels.float() / 255 - mean) / std
        with torch.autocast(args.device, dtype=torch.bfloat16):
            logits = model(x)
        loss = torch.sum(-targets * torch.log_softmax(logits.float(), 1), 1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--peak-tflops", type=float, default=float(os.environ.get("VITSLIM_PEAK_TFLOPS", 989)))
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    import torch
    from gpu_compare import deit_base_macs
    from timm_compat import timm

    macs = deit_base_macs(set())
    for mode in ["eager"] + ([] if args.no_compile else ["compile"]):
        torch.manual_seed(0)
        model = timm.create_model("deit_base_patch16_224", pretrained=False, drop_path_rate=0.1).to(args.device).train()
        no_decay = [q for n, q in model.named_parameters() if q.ndim <= 1 or n in ("pos_embed", "cls_token")]
        decay = [q for n, q in model.named_parameters() if not (q.ndim <= 1 or n in ("pos_embed", "cls_token"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=5e-4 * args.batch_size / 512, fused=args.device == "cuda")
        step_model = torch.compile(model) if mode == "compile" else model
        rate = args.batch_size / statistics.median(step_times(step_model, opt, args, torch))
        mfu = 6 * macs * rate / (args.peak_tflops * 1e12)
        print(f"timm {mode} DeiT-B bf16 batch {args.batch_size}: {rate:.0f} img/s training, "
              f"MFU {100 * mfu:.1f}% of {args.peak_tflops:g} TFLOPS (torch {torch.__version__})", flush=True)
        del model, opt, step_model
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

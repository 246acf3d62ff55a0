#!/usr/bin/env python3
"""Forward throughput, vitslim vs timm's VisionTransformer in PyTorch eager, side by side.

Both run on this machine in one invocation with the same torch build (the wheel vitslim links),
the same thread count, batch and model (default DeiT-Ti at 224 px, batch 32, inference mode,
random weights and input). Rounds alternate between the two so drift hits both; each round
reports the median of its timed iterations; the table shows the best round of each and the ratio.
Usage: scripts/bench_forward.py [--model deit_tiny] [--batch-size 32] [--threads N] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMM_NAMES = {"deit_tiny": "deit_tiny_patch16_224", "deit_small": "deit_small_patch16_224",
              "deit_base": "deit_base_patch16_224"}


def bench_timm(model, batch, warmup, iters):
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            model(batch)
            t1 = time.perf_counter()
            if i >= warmup:
                times.append(t1 - t0)
    return statistics.median(times) * 1000.0


def bench_vitslim(binary, args, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        # Inference only (--train=false): the training step is not compared here.
        subprocess.run([binary, "bench", "--model", args.model, "--batch-size", str(args.batch_size),
                        "--warmup", str(args.warmup), "--iters", str(args.iters), "--threads", str(threads),
                        "--train=false", "--json", out, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            result = json.load(f)
        # bench --json: one row per model in "models" (only "full" here: no --remove-layers), each
        # with "inference" and (unless --train=false) "train_step" timings.
        full = next(row for row in result["models"] if row["model"] == "full")
        return full["inference"]["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="deit_tiny", choices=sorted(TIMM_NAMES))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "vitslim"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = timm.create_model(TIMM_NAMES[args.model], pretrained=False).eval()
    batch = torch.randn(args.batch_size, 3, 224, 224)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(bench_vitslim(args.binary, args, args.threads))
        theirs.append(bench_timm(model, batch, args.warmup, args.iters))
    ms_ours, ms_theirs = min(ours), min(theirs)
    ips_ours = 1000.0 * args.batch_size / ms_ours
    ips_theirs = 1000.0 * args.batch_size / ms_theirs
    print(f"forward, {args.model}, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}, "
          f"timm {timm.__version__}, best of {args.rounds} rounds (median of {args.iters} iterations each)")
    print(f"| implementation | ms/batch | images/s |")
    print(f"|---|---|---|")
    print(f"| vitslim (LibTorch C++) | {ms_ours:.1f} | {ips_ours:.1f} |")
    print(f"| timm (PyTorch eager) | {ms_theirs:.1f} | {ips_theirs:.1f} |")
    print(f"ratio vitslim / timm: {ips_ours / ips_theirs:.3f} (goal >= 1.0)")
    print("rounds ms vitslim:", " ".join(f"{x:.1f}" for x in ours), "| timm:", " ".join(f"{x:.1f}" for x in theirs))


if __name__ == "__main__":
    main()

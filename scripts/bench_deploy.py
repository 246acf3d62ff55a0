#!/usr/bin/env python3
"""Inference speed where a pruned ViT is deployed, side by side in one run.

For DeiT-Ti, DeiT-B and DeiT-B with attention removed in 5 of 12 blocks (0,1,3,4,6), at batch 1
and 32, on this machine's CPU with the same thread count everywhere, random weights and input:
  - vitslim fp32 and --bf16 (`vitslim bench --train=false`);
  - timm eager fp32 and bf16 autocast (a pruned block is x -> 2x, then its MLP);
  - ONNX Runtime fp32 (CPU provider) on `vitslim export --format onnx`;
  - OpenVINO fp32 and bf16 (CPU inference precision hint) on the same ONNX file.
It prints images/s per runtime, the pruned/full ratio of each runtime for DeiT-B, and the goals:
vitslim bf16 >= timm bf16 and >= 2x vitslim fp32; pruned/full >= 1.2x everywhere; ONNX Runtime
within 10% of the fastest runtime on the pruned model, and of the fastest float32 one.
Usage: scripts/bench_deploy.py [--models deit_tiny,deit_base] [--batches 1,32] [--json out.json]
       [--pruned 0,1,3,4,6] [--tome-r R]
--pruned and --tome-r make "pruned" another candidate (what `vitslim plan` chose, to check its
measured speed-up independently); with --tome-r the timm rows of the pruned model are n/a (timm
has no token merging).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMM_NAMES = {"deit_tiny": "deit_tiny_patch16_224", "deit_small": "deit_small_patch16_224",
              "deit_base": "deit_base_patch16_224"}
PRUNED = [0, 1, 3, 4, 6]  # DeiT-B with 5 of 12 attention layers removed (docs/results.md's bench)
RUNTIMES = ["vitslim fp32", "vitslim bf16", "timm fp32", "timm bf16", "onnxruntime fp32", "openvino fp32",
            "openvino bf16"]


class RemovedBlock(torch.nn.Module):
    """A timm block whose attention is removed: x -> 2x, then the MLP (docs/method.md section 4)."""

    def __init__(self, block):
        super().__init__()
        self.norm2, self.mlp = block.norm2, block.mlp

    def forward(self, x):
        x = 2.0 * x
        return x + self.mlp(self.norm2(x))


def median_ms(run, warmup, iters):
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        run()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def vitslim_ms(args, model, removed, batch, bf16):
    """{'full': ms, 'pruned': ms} from one `vitslim bench` run (pruned: with --tome-r when given)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [args.binary, "bench", "--model", model, "--batch-size", str(batch), "--warmup", str(args.warmup),
               "--iters", str(args.iters), "--threads", str(args.threads), "--train=false", "--json", out, "--quiet"]
        if removed:
            cmd += ["--remove-layers", ",".join(map(str, removed))]
        if bf16:
            cmd.append("--bf16")
        if args.tome_r:
            cmd += ["--tome-r", str(args.tome_r)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            rows = {row["model"]: row["inference"]["median_ms"] for row in json.load(f)["models"]}
    pruned = "pruned + ToMe" if args.tome_r else "pruned"
    return {"full": rows["full"], "pruned": rows.get(pruned)}


def export_onnx(args, model, removed, path):
    cmd = [args.binary, "export", "--model", model, "--out", path, "--data-set", "imagenet", "--quiet", "--force"]
    if removed:
        cmd += ["--remove-layers", ",".join(map(str, removed))]
        if args.tome_r:
            cmd += ["--tome-r", str(args.tome_r)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def timm_model(model, removed):
    m = timm.create_model(TIMM_NAMES[model], pretrained=False).eval()
    for b in removed:
        m.blocks[b] = RemovedBlock(m.blocks[b])
    return m


def timm_ms(args, m, images, bf16):
    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m(images)
    return median_ms(run, args.warmup, args.iters)


def ort_ms(args, path, images):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return median_ms(lambda: sess.run(["logits"], {"images": images}), args.warmup, args.iters)


def openvino_ms(args, path, images, precision):
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": args.threads,
              "PERFORMANCE_HINT": "LATENCY"}
    try:
        compiled = core.compile_model(core.read_model(path), "CPU", config)
    except RuntimeError as e:  # bf16 on a CPU without it
        print(f"openvino {precision}: not supported here ({str(e).splitlines()[0]})", file=sys.stderr)
        return None
    request = compiled.create_infer_request()
    return median_ms(lambda: request.infer({0: images}), args.warmup, args.iters)


def measure(args, model, batch, tmp):
    """ms per batch of each runtime, for the full model and (deit_base) the pruned one."""
    variants = {"full": []}
    if model == "deit_base":
        variants["pruned"] = [int(b) for b in args.pruned.split(",")]
    images = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    timed = {v: {} for v in variants}
    for bf16 in (False, True):
        ms = vitslim_ms(args, model, variants.get("pruned", []), batch, bf16)
        for v in variants:
            timed[v][f"vitslim {'bf16' if bf16 else 'fp32'}"] = ms[v]
    for v, removed in variants.items():
        if v == "full" or not args.tome_r:
            m = timm_model(model, removed)
            torch_images = torch.from_numpy(images)
            timed[v]["timm fp32"] = timm_ms(args, m, torch_images, False)
            timed[v]["timm bf16"] = timm_ms(args, m, torch_images, True)
            del m
        else:  # timm has no token merging
            timed[v]["timm fp32"] = timed[v]["timm bf16"] = None
        path = os.path.join(tmp, f"{model}_{v}.onnx")
        export_onnx(args, model, removed, path)
        timed[v]["onnxruntime fp32"] = ort_ms(args, path, images)
        timed[v]["openvino fp32"] = openvino_ms(args, path, images, "f32")
        timed[v]["openvino bf16"] = openvino_ms(args, path, images, "bf16")
    return {v: {r: (None if t is None else 1000.0 * batch / t) for r, t in rows.items()} for v, rows in timed.items()}


def report(results, args):
    goals = []
    for key, variants in results.items():
        model, batch = key.split("@")
        print(f"\n{model}, batch {batch}: images/s ({args.threads} threads, median of {args.iters})")
        names = list(variants)
        print("| runtime | " + " | ".join(names) + (" | pruned/full |" if "pruned" in variants else " |"))
        print("|---" * (len(names) + 1 + ("pruned" in variants)) + "|")
        for r in RUNTIMES:
            cells = [variants[v].get(r) for v in names]
            row = f"| {r} | " + " | ".join("n/a" if c is None else f"{c:.1f}" for c in cells)
            if "pruned" in variants and None not in cells:
                ratio = variants["pruned"][r] / variants["full"][r]
                row += f" | {ratio:.2f}x"
                goals.append((f"{model} b{batch} {r}: pruned/full >= 1.2", ratio >= 1.2, f"{ratio:.2f}x"))
            print(row + " |")
        for v in names:
            ips = variants[v]
            ours, timm_bf16, fp32 = ips["vitslim bf16"], ips["timm bf16"], ips["vitslim fp32"]
            if timm_bf16 is not None:
                goals.append((f"{model} {v} b{batch}: vitslim bf16 >= timm bf16", ours >= timm_bf16,
                              f"{ours / timm_bf16:.2f}x"))
            goals.append((f"{model} {v} b{batch}: vitslim bf16 >= 2x fp32", ours >= 2 * fp32, f"{ours / fp32:.2f}x"))
        if "pruned" in variants:
            ips = {r: s for r, s in variants["pruned"].items() if s is not None}
            best = max(ips, key=ips.get)
            share = ips["onnxruntime fp32"] / ips[best]
            goals.append((f"{model} pruned b{batch}: onnxruntime within 10% of the fastest ({best})", share >= 0.9,
                          f"{share:.2f}"))
            fp32 = {r: v for r, v in ips.items() if r.endswith("fp32")}
            best32 = max(fp32, key=fp32.get)
            share32 = ips["onnxruntime fp32"] / fp32[best32]
            goals.append((f"{model} pruned b{batch}: onnxruntime within 10% of the fastest fp32 ({best32})",
                          share32 >= 0.9, f"{share32:.2f}"))
    print("\n| goal | met | measured |\n|---|---|---|")
    for name, met, value in goals:
        print(f"| {name} | {'yes' if met else 'no'} | {value} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="deit_tiny,deit_base")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "vitslim"))
    ap.add_argument("--json", help="write the images/s table here")
    ap.add_argument("--pruned", default=",".join(map(str, PRUNED)), help="DeiT-B's removed attention layers")
    ap.add_argument("--tome-r", type=int, default=0, help="token merging r of the pruned DeiT-B (vitslim, ONNX)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, timm {timm.__version__}, CPU threads {args.threads}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for batch in map(int, args.batches.split(",")):
                results[f"{model}@{batch}"] = measure(args, model, batch, tmp)
    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

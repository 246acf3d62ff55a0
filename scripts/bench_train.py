#!/usr/bin/env python3
"""Training-step benchmark of `vitslim train`, side by side in one invocation:

1. vitslim vs timm's VisionTransformer with the same recipe in PyTorch eager and with
   torch.compile (same torch build, threads, batch, model): mixup on the batch, soft-target
   cross-entropy, drop-path 0.1, AdamW with timm's no-decay group. vitslim's number is its own
   trace (images/s of each optimizer step, batch loading included); the peers time the same step
   on a random uint8 batch converted and normalised each step. Median over the timed steps, best
   of --rounds rounds; memory is the process's peak resident memory above its level when the
   first step starts (VmHWM - VmRSS), the same measure on both sides.
   vitslim's run also prints its per-phase table (`train --profile`: data, forward, backward,
   all-reduce wait, optimizer, EMA, record) and the step's ratio to its own forward + backward.
2. Data-parallel efficiency: 2 ranks x 1 thread against 1 rank x 1 thread at the same per-rank
   batch (step time of 1 rank / step time of 2 ranks), with the gradient all-reduce wait.

Usage: scripts/bench_train.py [--model deit_tiny] [--batch-size 32] [--threads 2] [--steps 8]
                              [--rounds 2] [--no-compile] [--skip-ranks] [--ranks-batch 16]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMM_NAMES = {"deit_tiny": "deit_tiny_patch16_224", "deit_small": "deit_small_patch16_224",
              "deit_base": "deit_base_patch16_224"}
SKIP_STEPS = 2  # first steps warm caches and allocators (and compile)
DROP_PATH = 0.1
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peer(args):
    """One timm run in this process (called as a subprocess); prints a JSON line."""
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timm_compat import timm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAMES[args.model], pretrained=False, drop_path_rate=DROP_PATH).train()
    step_model = torch.compile(model) if args.peer == "compile" else model
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n in ("pos_embed", "cls_token")]
    decay = [p for n, p in model.named_parameters() if not (p.ndim <= 1 or n in ("pos_embed", "cls_token"))]
    lr = 5e-4 * args.batch_size / 512
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    b, classes = args.batch_size, model.num_classes
    pixels = torch.randint(0, 256, (b, 3, 224, 224), dtype=torch.uint8)
    labels = torch.randint(0, classes, (b,))
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    times = []
    rss_start = status_mib("VmRSS")
    for step in range(args.steps + SKIP_STEPS):
        t0 = time.perf_counter()
        x = (pixels.float() / 255.0 - mean) / std
        lam = float(torch.distributions.Beta(0.8, 0.8).sample())
        x = x * lam + x.flip(0) * (1 - lam)
        off = 0.1 / classes
        y = torch.full((b, classes), off).scatter_(1, labels.view(-1, 1), 1 - 0.1 + off)
        y = y * lam + y.flip(0) * (1 - lam)
        loss = torch.sum(-y * torch.log_softmax(step_model(x), -1), -1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= SKIP_STEPS:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"images_per_s": b / statistics.median(times),
                      "peak_above_start_mib": status_mib("VmHWM") - rss_start}))


def run_peer(args, kind):
    cmd = [sys.executable, os.path.abspath(__file__), "--peer", kind, "--model", args.model, "--batch-size",
           str(args.batch_size), "--threads", str(args.threads), "--steps", str(args.steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_vitslim(args, ranks=1, threads=None, batch=None):
    import h5py

    threads = threads or args.threads
    batch = batch or args.batch_size
    steps = args.steps + SKIP_STEPS
    work = tempfile.mkdtemp(prefix="vitslim_bench_train_")
    try:
        cmd = [args.binary, "train", "--model", args.model, "--data-set", "synthetic",
               "--calib-images", str(max(256, batch * steps * ranks)), "--batch-size", str(batch), "--epochs", "1",
               "--warmup-epochs", "0", "--steps-per-epoch", str(steps), "--eval-images", str(batch),
               "--entropy-images", "0", "--drop-path", str(DROP_PATH), "--threads", str(threads), "--quiet", "--profile",
               "--out-dir", os.path.join(work, "run")]
        if ranks > 1:
            cmd = [args.mpiexec, "-np", str(ranks)] + cmd
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with h5py.File(os.path.join(work, "run", "train.h5"), "r") as f:
            rows = f["/train/step"][:]
        summary = json.load(open(os.path.join(work, "run", "train.json")))
        timed = rows[SKIP_STEPS:]
        rate = float(statistics.median(timed[:, 5]))
        wait = (rows[-1, 7] - rows[SKIP_STEPS - 1, 7]) / len(timed)  # cumulative all-reduce wait per step
        return {"images_per_s": rate, "step_s": batch * ranks / rate, "comm_wait_s": wait,
                "peak_above_start_mib": summary["rss_peak_mib"] - summary["rss_start_mib"],
                "phases": summary.get("phases", {})}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def step_benchmark(args):
    kinds = ["vitslim", "eager"] + ([] if args.no_compile else ["compile"])
    best = {}
    for r in range(args.rounds):
        for kind in kinds:
            res = run_vitslim(args) if kind == "vitslim" else run_peer(args, kind)
            print(f"round {r + 1} {kind}: {res['images_per_s']:.2f} img/s, peak +{res['peak_above_start_mib']:.0f} MiB",
                  file=sys.stderr)
            if kind not in best or res["images_per_s"] > best[kind]["images_per_s"]:
                best[kind] = res
    print(f"\nTraining step, {args.model}, batch {args.batch_size}, {args.threads} thread(s), CPU "
          f"(mixup + soft CE + drop-path {DROP_PATH} + AdamW; best of {args.rounds} rounds, median of {args.steps} steps)")
    print("| implementation | images/s | peak memory above start (MiB) | vitslim speed-up |")
    print("|---|---|---|---|")
    names = {"vitslim": "vitslim train", "eager": "timm + PyTorch eager", "compile": "timm + torch.compile"}
    for kind in kinds:
        res = best[kind]
        ratio = best["vitslim"]["images_per_s"] / res["images_per_s"]
        print(f"| {names[kind]} | {res['images_per_s']:.2f} | {res['peak_above_start_mib']:.0f} | {ratio:.3f}x |")
    print_phases(best["vitslim"]["phases"])


def print_phases(phases):
    """vitslim's per-phase table (train.json "phases", seconds summed over its steps)."""
    steps = phases.pop("steps", 0)
    if not steps:
        return
    total = sum(phases.values())
    print(f"\nvitslim train per phase ({steps:.0f} steps after the first)")
    print("| phase | ms/step | share |")
    print("|---|---|---|")
    for name, seconds in phases.items():
        print(f"| {name} | {1e3 * seconds / steps:.2f} | {100 * seconds / total:.1f}% |")
    model = phases["forward"] + phases["backward"]
    print(f"step / (forward + backward): {total / model:.3f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="deit_tiny", choices=sorted(TIMM_NAMES))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run")
    ap.add_argument("--rounds", type=int, default=2, help="0: only the data-parallel part")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--skip-ranks", action="store_true")
    ap.add_argument("--ranks-batch", type=int, default=16, help="per-rank batch of the 2-rank comparison")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "vitslim"))
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--peer", choices=["eager", "compile"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return peer(args)
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    if os.geteuid() == 0:  # Open MPI refuses root without these
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

    if args.rounds > 0:
        step_benchmark(args)
    if args.skip_ranks:
        return
    one = run_vitslim(args, ranks=1, threads=1, batch=args.ranks_batch)
    two = run_vitslim(args, ranks=2, threads=1, batch=args.ranks_batch)
    print(f"\nData-parallel efficiency, {args.model}, {args.ranks_batch} images per rank, 1 thread per rank")
    print("| ranks | step s | images/s | all-reduce wait s/step |")
    print("|---|---|---|---|")
    for n, res in ((1, one), (2, two)):
        print(f"| {n} | {res['step_s']:.3f} | {res['images_per_s']:.2f} | {res['comm_wait_s']:.4f} |")
    print(f"step-time efficiency (1-rank step / 2-rank step): {100 * one['step_s'] / two['step_s']:.1f}%")


if __name__ == "__main__":
    main()

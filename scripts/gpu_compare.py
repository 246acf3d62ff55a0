#!/usr/bin/env python3
"""The comparisons of scripts/gpu_smoke.sh: one GPU output against its CPU twin, each printing one
line that starts with "ok " or "bad " (the smoke script turns it into PASS/FAIL). Python's standard
library only (the GPU machine's python3 is not the project's venv).

  entropy CPU.json GPU.json TOL      every block's attention/MLP entropy and the head's, relative
  search CPU.json GPU.json           the same selected layers at every ratio
  eval CPU.json GPU.json             the same top-1 and top-5 counts
  tensors CPU.st GPU.st NAME TOL     tensor NAME of two .safetensors, max absolute difference
  tome CPU.json GPU.json TOL         tome-sweep: the same points, top-1 within TOL points
  train CPU.json GPU.json TOL        train.json: the last loss, relative, and a finished run
  mfu TRAIN.json PEAK_TFLOPS NAME REMOVED   images/s and MFU of a synthetic DeiT-B train run
"""
import json
import math
import struct
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def say(ok, text):
    print(("ok " if ok else "bad ") + text)


def entropy(cpu, gpu, tol):
    a, b = load(cpu), load(gpu)
    worst, where = 0.0, ""
    pairs = [(f"block {x['block']} {k}", x[k], y[k]) for x, y in zip(a["blocks"], b["blocks"])
             for k in ("attn_entropy", "mlp_entropy")]
    pairs.append(("head", a["head"]["entropy"], b["head"]["entropy"]))
    for name, x, y in pairs:
        if x is None or y is None:
            if x != y:
                return say(False, f"{name}: {x} on the CPU, {y} on CUDA")
            continue
        rel = abs(x - y) / max(abs(x), 1e-12)
        if rel > worst:
            worst, where = rel, name
    say(len(a["blocks"]) == len(b["blocks"]) and worst <= float(tol),
        f"{len(pairs)} entropies, largest relative difference {worst:.1e} ({where or '-'}), limit {tol}")


def search(cpu, gpu):
    a = {s["ratio"]: s["layers"] for s in load(cpu)["selections"]}
    b = {s["ratio"]: s["layers"] for s in load(gpu)["selections"]}
    say(a == b and a, "NOSE picks " + "; ".join(f"{r}: {a[r]} vs {b.get(r)}" for r in sorted(a)))


def evaluate(cpu, gpu):
    a, b = load(cpu), load(gpu)
    same = a["top1_correct"] == b["top1_correct"] and a["top5_correct"] == b["top5_correct"]
    say(same, f"top-1 {b['top1_correct']}/{b['images']} vs CPU {a['top1_correct']}/{a['images']}, "
              f"top-5 {b['top5_correct']} vs {a['top5_correct']}")


def read_safetensors(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[name]
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        data = f.read(end - begin)
    return info["shape"], struct.unpack(f"<{len(data) // 4}f", data)


def tensors(cpu, gpu, name, tol):
    sa, a = read_safetensors(cpu, name)
    sb, b = read_safetensors(gpu, name)
    worst = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    say(sa == sb and worst <= float(tol), f"{name} {sb}, largest difference {worst:.1e}, limit {tol}")


def tome(cpu, gpu, tol):
    a = {(p["r"], p["start"]): p["top1"] for p in load(cpu)["points"]}
    b = {(p["r"], p["start"]): p["top1"] for p in load(gpu)["points"]}
    worst = max((abs(a[k] - b[k]) for k in a if k in b), default=math.inf)
    say(a.keys() == b.keys() and worst <= float(tol),
        f"{len(b)} ToMe points, top-1 within {worst:.2f} points of the CPU's, limit {tol}")


def train(cpu, gpu, tol):
    a, b = load(cpu), load(gpu)
    rel = abs(b["last_loss"] - a["last_loss"]) / abs(a["last_loss"])
    ok = b["finished"] and b["last_top1"] >= 0 and rel <= float(tol)
    say(ok, f"step-3 loss {b['last_loss']:.5f} vs CPU {a['last_loss']:.5f} (relative {rel:.1e}, limit {tol}), "
            f"end-of-epoch top-1 {b['last_top1']:.2f}% vs CPU {a['last_top1']:.2f}%")


def deit_base_macs(removed):
    """Multiply-adds per image that DeiT-B executes at 224 px: patch embedding, 12 blocks (attention
    skipped in `removed`), the last block on its CLS row only after its keys and values (every
    token), the head."""
    d, n, depth, hidden, classes = 768, 197, 12, 3072, 1000
    macs = 196 * d * 3 * 16 * 16
    for b in range(depth):
        rows = 1 if b == depth - 1 else n  # query rows the block computes
        if b not in removed:
            macs += n * d * 2 * d  # keys and values of every token
            macs += rows * d * d  # queries
            macs += 2 * rows * n * d  # scores and the weighted sum
            macs += rows * d * d  # output projection
        macs += rows * 2 * d * hidden  # MLP
    return macs + d * classes


def mfu(path, peak_tflops, name, removed):
    j = load(path)
    steps = j["epochs"] * j["steps_per_epoch"]
    rate = steps * j["global_batch"] / j["step_seconds"]
    removed = {int(x) for x in removed.split(",") if x}
    macs = deit_base_macs(removed)
    util = 6 * macs * rate / (float(peak_tflops) * 1e12)  # forward + backward: 3 x 2 FLOPs per MAC
    print(f"DeiT-B bf16 batch {j['global_batch']} {name}: {rate:.0f} img/s training (vitslim train, {steps} steps, "
          f"synthetic data), {macs / 1e9:.2f} GMACs executed per image, MFU {100 * util:.1f}% of {peak_tflops} TFLOPS")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {"entropy": entropy, "search": search, "eval": evaluate, "tensors": tensors, "tome": tome,
             "train": train, "mfu": mfu}
    try:
        table[cmd](*args)
    except (OSError, KeyError, ValueError, TypeError, ZeroDivisionError, json.JSONDecodeError) as e:
        say(False, f"cannot compare: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compares two .safetensors files tensor by tensor (the same keys and shapes; the largest
absolute difference at most --tol, 0 meaning bit-identical). Optionally compares the per-step
loss of two vitslim train traces (train.h5) as well. Exit 1 with the worst key on mismatch.

Usage: compare_weights.py A.safetensors B.safetensors [--tol 1e-5] [--traces A.h5 B.h5]
"""
import argparse
import sys

import h5py
import numpy as np
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=0.0)
    ap.add_argument("--traces", nargs=2)
    args = ap.parse_args()
    a, b = load_file(args.a), load_file(args.b)
    if a.keys() != b.keys():
        sys.exit(f"different keys: only in A {sorted(a.keys() - b.keys())[:5]}, only in B {sorted(b.keys() - a.keys())[:5]}")
    worst, worst_key = 0.0, None
    for k in a:
        if a[k].shape != b[k].shape:
            sys.exit(f"{k}: shape {a[k].shape} vs {b[k].shape}")
        d = float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) if a[k].size else 0.0
        if d > worst or (worst_key is None):
            worst, worst_key = d, k
    print(f"{len(a)} tensors, max |A - B| = {worst:.3g} ({worst_key})")
    if worst > args.tol:
        sys.exit(f"FAIL: {worst_key} differs by {worst:.3g} > {args.tol:.3g}")
    if args.traces:
        rows = []
        for path in args.traces:
            with h5py.File(path, "r", libver="latest", swmr=True) as f:
                rows.append(f["/train/step"][:, :3])  # global_step, epoch, loss
        if rows[0].shape != rows[1].shape or not np.array_equal(rows[0], rows[1]):
            sys.exit(f"FAIL: per-step losses differ ({rows[0].shape} vs {rows[1].shape} rows)")
        print(f"trace: {rows[0].shape[0]} step rows, identical step/epoch/loss")


if __name__ == "__main__":
    main()

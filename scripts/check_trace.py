#!/usr/bin/env python3
"""Reads a vitslim entropy trace with h5py and checks it (used by the tests; handy by hand).

  check_trace.py TRACE [--swmr --wait-rows N --while-pid PID] [--json SUMMARY] [--compare OTHER.json]
                       [--expect-complete | --expect-incomplete] [--expect-images N] [--min-rows N]
Exit 0 when every requested check holds; one line per failed check otherwise.
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import numpy as np

REL_TOL = 1e-9  # float64 shard merging vs one pass


def open_trace(path, swmr):
    if swmr:
        return h5py.File(path, "r", libver="latest", swmr=True)
    return h5py.File(path, "r")


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_rows(path, rows, pid):
    """Polls the trace until it has `rows` rows; fails once process `pid` (the writer) has ended
    without writing them. No clock decides: a slow writer only makes the wait longer."""
    while True:
        writer_alive = alive(pid)  # before reading: rows written before it ended still count
        try:
            with open_trace(path, True) as f:
                ds = f["entropy/images"]
                ds.refresh()
                if ds.shape[0] >= rows:
                    values = ds[:]
                    assert np.all(np.diff(values) > 0), "images per row must grow"
                    f["entropy/attn"].refresh()
                    assert f["entropy/attn"].shape[0] >= rows
                    print(f"read {ds.shape[0]} rows of {path} while it was being written")
                    return
        except (OSError, KeyError):
            pass  # not created yet
        if not writer_alive:
            sys.exit(f"FAIL: {path} did not reach {rows} rows before its writer (pid {pid}) ended")
        time.sleep(0.05)


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--swmr", action="store_true")
    ap.add_argument("--wait-rows", type=int)
    ap.add_argument("--while-pid", type=int, help="with --wait-rows: the writer's pid (fail once it ends)")
    ap.add_argument("--json")
    ap.add_argument("--compare")
    ap.add_argument("--expect-complete", action="store_true")
    ap.add_argument("--expect-incomplete", action="store_true")
    ap.add_argument("--expect-images", type=int)
    ap.add_argument("--min-rows", type=int)
    ap.add_argument("--world-size", type=int)
    a = ap.parse_args()
    if a.wait_rows:
        if not a.while_pid:
            ap.error("--wait-rows needs --while-pid")
        wait_rows(a.trace, a.wait_rows, a.while_pid)
        return
    errors = []
    with open_trace(a.trace, a.swmr) as f:
        for key in ("program", "version", "config", "job", "schema"):
            if key not in f.attrs:
                errors.append(f"root attribute {key} missing")
        g = f["entropy"]
        images = g["images"][:]
        attn, mlp, head = g["attn"][:], g["mlp"][:], g["head"][:]
        rows = images.shape[0]
        if attn.shape[0] != rows or mlp.shape[0] != rows or head.shape[0] != rows:
            errors.append("series lengths differ")
        complete = g["complete"][0] == 1.0
        if a.expect_complete and not complete:
            errors.append("trace is not marked complete")
        if a.expect_incomplete and complete:
            errors.append("trace is marked complete")
        if a.min_rows and rows < a.min_rows:
            errors.append(f"{rows} rows < {a.min_rows}")
        if a.expect_images is not None and (rows == 0 or images[-1] != a.expect_images):
            errors.append(f"last row merged {images[-1] if rows else 0} images, expected {a.expect_images}")
        if a.world_size and int(g.attrs["world_size"]) != a.world_size:
            errors.append(f"world_size {g.attrs['world_size']}")
        if complete:
            sigma = g["mlp_sigma"][:]
            recomputed = np.log(sigma).sum(axis=1)
            if not np.allclose(recomputed, mlp[-1], rtol=1e-9):
                errors.append("final MLP entropies differ from sum ln sigma of the stored sigmas")
        if a.json:
            summary = json.load(open(a.json))
            for b, block in enumerate(summary["blocks"]):
                if not close(block["mlp_entropy"], float(mlp[-1][b])):
                    errors.append(f"json/trace mismatch, block {b} mlp")
                if not close(block["attn_entropy"], float(attn[-1][b])):
                    errors.append(f"json/trace mismatch, block {b} attn")
            if not close(summary["head"]["entropy"], float(head[-1])):
                errors.append("json/trace mismatch, head")
            if a.compare:
                other = json.load(open(a.compare))
                for b, (x, y) in enumerate(zip(summary["blocks"], other["blocks"])):
                    for key in ("attn_entropy", "mlp_entropy"):
                        if not close(x[key], y[key]):
                            errors.append(f"{a.json} vs {a.compare}: block {b} {key} {x[key]} != {y[key]}")
                if not close(summary["head"]["entropy"], other["head"]["entropy"]):
                    errors.append("head entropy differs between runs")
                print(f"{a.json} equals {a.compare} (rel tol {REL_TOL}) over {len(summary['blocks'])} blocks")
        print(f"{a.trace}: {rows} rows, {int(images[-1]) if rows else 0} images, complete={complete}")
    for e in errors:
        print("FAIL:", e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()

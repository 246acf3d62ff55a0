#!/usr/bin/env python3
"""Compares two `vitslim search --json` results: the same selections, and every step's
candidate scores identical (exact float equality unless --rel-tol is given). Used by the tests.
Usage: compare_search.py A.json B.json [--rel-tol X] [--expect-fewer-items] [--exhaustive-not-worse]
"""
import argparse
import json
import math
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rel-tol", type=float, default=0.0)
    ap.add_argument("--expect-resumed", action="store_true", help="B resumed items from a killed run")
    ap.add_argument("--exhaustive-not-worse", action="store_true",
                    help="B is exhaustive: its |TE| per ratio is at most A's")
    args = ap.parse_args()
    a, b = json.load(open(args.a)), json.load(open(args.b))
    errors = []

    def same(x, y):
        return x == y if args.rel_tol == 0 else math.isclose(x, y, rel_tol=args.rel_tol, abs_tol=1e-12)

    if args.exhaustive_not_worse:
        for sa, sb in zip(a["selections"], b["selections"]):
            if abs(sb["te"]) > abs(sa["te"]) + 1e-12:
                errors.append(f"exhaustive |TE| {sb['te']} worse than greedy {sa['te']} for {sa['count']} layers")
    else:
        if not same(a["full_entropy"], b["full_entropy"]):
            errors.append(f"full entropy {a['full_entropy']} != {b['full_entropy']}")
        for sa, sb in zip(a["selections"], b["selections"]):
            if sa["layers"] != sb["layers"] or not same(sa["te"], sb["te"]):
                errors.append(f"selection differs: {sa} vs {sb}")
        for sa, sb in zip(a["steps"], b["steps"]):
            ca = {tuple(c["layers"]): c["te"] for c in sa["candidates"]}
            cb = {tuple(c["layers"]): c["te"] for c in sb["candidates"]}
            if ca.keys() != cb.keys() or any(not same(ca[k], cb[k]) for k in ca):
                errors.append(f"step {sa['step']} candidate scores differ")
    if args.expect_resumed:
        total = a["items_scored"] + a["items_resumed"]
        if b["items_resumed"] <= 0 or b["items_scored"] + b["items_resumed"] != total:
            errors.append(f"resume: {b['items_resumed']} resumed + {b['items_scored']} scored, expected {total} in all")
        else:
            print(f"resumed {b['items_resumed']} of {total} items, scored the other {b['items_scored']}")
    for e in errors:
        print("FAIL:", e)
    if not errors:
        print(f"{args.a} and {args.b} agree ({len(a['steps'])} steps, selections "
              + ", ".join(str(s["layers"]) for s in b["selections"]) + ")")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()

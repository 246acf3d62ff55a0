#!/usr/bin/env python3
"""Top-1 against images/s from `vitslim tome-sweep --csv` files: one curve per model (e.g. the full
model and the pruned one), its r = 0 point drawn as the model alone and the others as model + ToMe,
the Pareto front joined and the chosen setting circled.

Usage: plot_tome.py --sweep full=full.csv --sweep "NOSE 50%=pruned.csv" --out tome.png
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "top1" not in rows[0]:
        raise SystemExit(f"{path}: not a tome-sweep CSV (no rows or no top1 column)")
    for r in rows:
        for k in ("r", "start", "pareto", "chosen"):
            r[k] = int(r[k])
        for k in ("top1", "images_per_s"):
            r[k] = float(r[k])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", action="append", required=True, help="LABEL=FILE.csv (repeatable)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, spec in enumerate(args.sweep):
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--sweep {spec}: expected LABEL=FILE.csv")
        rows = read(path)
        color = f"C{i}"
        alone = [r for r in rows if r["r"] == 0]
        merged = [r for r in rows if r["r"] > 0]
        ax.scatter([r["images_per_s"] for r in merged], [r["top1"] for r in merged], color=color, s=14, alpha=0.6,
                   label=f"{label} + ToMe")
        ax.scatter([r["images_per_s"] for r in alone], [r["top1"] for r in alone], color=color, marker="s", s=50,
                   label=f"{label}")
        front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["images_per_s"])
        ax.plot([r["images_per_s"] for r in front], [r["top1"] for r in front], color=color, lw=1)
        for r in rows:
            if r["chosen"] and r["r"] > 0:
                ax.scatter([r["images_per_s"]], [r["top1"]], facecolors="none", edgecolors=color, s=160, lw=1.5)
                ax.annotate(f"r={r['r']}, start {r['start']}", (r["images_per_s"], r["top1"]), fontsize=8,
                            xytext=(6, -12), textcoords="offset points")
    ax.set_xlabel("inference images/s")
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

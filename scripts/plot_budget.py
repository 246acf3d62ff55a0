#!/usr/bin/env python3
"""The fine-tuning budget study's summary (scripts/reproduce_budget.sh): from the finished stages'
reports in RESULTS (results/budget/<model>-e<epochs>.json, each a `vitslim pipeline` report.json),
writes RESULTS/summary.md and a figure of the top-1 drop against the budget per model.

Per stage, the drop of each row is against the unpruned control of the same stage (same budget,
seeds and data order): the paired per-seed difference, its mean and, with several seeds, its
standard deviation. The answers at the end are computed from the table: the first budget at which
NOSE 50% comes within 0.3 points of the control per model, whether NOSE 50% beats random 50% at
every budget, and, at the largest budget of vit_fmnist12, the largest NOSE ratio within 0.3 points.

Usage: scripts/plot_budget.py RESULTS [--figure docs/figures/budget.png]
"""
import argparse
import glob
import json
import os
import re
import sys

WITHIN = 0.3  # points: "within noise of the control" for the study's question
MODELS = {"fmnist": "vit_fmnist (6 blocks)", "fmnist12": "vit_fmnist12 (12 blocks)"}


def load(results):
    stages = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        m = re.fullmatch(r"(fmnist(?:12)?)-e(\d+)\.json", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            report = json.load(f)
        stages[(m.group(1), int(m.group(2)))] = {r["run"]: r for r in report["runs"]}
    return stages


def spread(row):
    seeds = row.get("delta_seeds") or []
    std = f" ± {row['delta_std']:.2f}" if len(seeds) > 1 else ""
    return f"{row['delta_points']:+.2f}{std}"


def nose_minus_random(rows):
    nose, rand = rows.get("nose-0.5"), rows.get("random-0.5")
    if not nose or not rand:
        return None
    diffs = [a - b for a, b in zip(nose["top1_seeds"], rand["top1_seeds"])]
    return sum(diffs) / len(diffs)


def table(stages):
    lines = ["| model | budget (epochs) | seeds | unpruned top-1 | NOSE 50% vs unpruned | random 50% vs unpruned "
             "| NOSE - random (points) |", "|---|---|---|---|---|---|---|"]
    for (model, epochs), rows in sorted(stages.items()):
        base = rows["unpruned"]
        nr = nose_minus_random(rows)
        lines.append(f"| {MODELS[model]} | {epochs} | {len(base['top1_seeds'])} | {base['top1']:.2f} | "
                     f"{spread(rows['nose-0.5']) if 'nose-0.5' in rows else '-'} | "
                     f"{spread(rows['random-0.5']) if 'random-0.5' in rows else '-'} | "
                     f"{'-' if nr is None else f'{nr:+.2f}'} |")
    return lines


def ratio_table(stages):
    lines = []
    for (model, epochs), rows in sorted(stages.items()):
        ratios = sorted(r for r in rows if r.startswith("nose-"))
        if len(ratios) <= 1:
            continue
        lines += ["", f"NOSE at every ratio, {MODELS[model]}, {epochs} epochs:", "",
                  "| ratio | blocks | layers | vs unpruned (points) |", "|---|---|---|---|"]
        for name in sorted(ratios, key=lambda n: rows[n]["ratio"]):
            row = rows[name]
            lines.append(f"| {row['ratio']:g} | {len(row['removed_layers'])} | "
                         f"{','.join(map(str, row['removed_layers']))} | {spread(row)} |")
    return lines


def answers(stages):
    out = []
    for model in MODELS:
        budgets = sorted(e for (m, e) in stages if m == model)
        if not budgets:
            continue
        within = [e for e in budgets if "nose-0.5" in stages[(model, e)]
                  and stages[(model, e)]["nose-0.5"]["delta_points"] >= -WITHIN]
        first = f"at {within[0]} epochs" if within else f"at none of {', '.join(map(str, budgets))} epochs"
        out.append(f"- {MODELS[model]}: NOSE 50% comes within {WITHIN} points of the unpruned control {first}.")
        beats = [(e, nose_minus_random(stages[(model, e)])) for e in budgets]
        beats = [(e, d) for e, d in beats if d is not None]
        if beats:
            every = all(d > 0 for _, d in beats)
            detail = ", ".join(f"{d:+.2f} points at {e} epochs" for e, d in beats)
            out.append(f"- {MODELS[model]}: NOSE 50% {'beats' if every else 'does not beat'} random 50% at every "
                       f"budget measured (NOSE - random: {detail}).")
        largest = budgets[-1]
        rows = stages[(model, largest)]
        ratios = [rows[n] for n in rows if n.startswith("nose-")]
        if len(ratios) > 1:
            ok = [r["ratio"] for r in ratios if r["delta_points"] >= -WITHIN]
            out.append(f"- {MODELS[model]} at {largest} epochs: the largest NOSE ratio within {WITHIN} points is "
                       f"{max(ok):g}." if ok else f"- {MODELS[model]} at {largest} epochs: no NOSE ratio is within "
                       f"{WITHIN} points.")
    return out


def figure(stages, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(10, 3.6), sharey=True)
    for ax, model in zip(axes, MODELS):
        budgets = sorted(e for (m, e) in stages if m == model)
        for row, style in (("nose-0.5", "o-"), ("random-0.5", "s--")):
            pts = [(e, stages[(model, e)][row]) for e in budgets if row in stages[(model, e)]]
            if pts:
                ax.errorbar([e for e, _ in pts], [r["delta_points"] for _, r in pts],
                            yerr=[r["delta_std"] if len(r["delta_seeds"]) > 1 else 0 for _, r in pts],
                            fmt=style, capsize=3, label=row.replace("-0.5", " 50%").replace("nose", "NOSE"))
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(-WITHIN, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks([2, 6, 18])
        ax.set_xticklabels(["2", "6", "18"])
        ax.set_title(MODELS[model])
        ax.set_xlabel("fine-tuning epochs")
    axes[0].set_ylabel("top-1 vs unpruned control (points)")
    axes[0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=120)
    os.replace(path + ".tmp.png", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--figure", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "docs", "figures", "budget.png"))
    args = ap.parse_args()
    stages = load(args.results)
    if not stages:
        print(f"plot_budget: no finished stage in {args.results}", file=sys.stderr)
        return 1
    lines = ["# Fine-tuning budget study (scripts/reproduce_budget.sh)", "",
             "Top-1 on the Fashion-MNIST test split; each row against the unpruned control of the same "
             "budget (paired by seed; ± one standard deviation over 3 seeds at 2 epochs).", ""]
    lines += table(stages) + ratio_table(stages) + ["", "Answers (from the rows above):", ""] + answers(stages)
    out = os.path.join(args.results, "summary.md")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)
    figure(stages, args.figure)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

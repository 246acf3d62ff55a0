#!/usr/bin/env python3
"""Figures of a `vitslim pipeline` run, made from its HDF5 traces (h5py + matplotlib), written to
<out-dir>/plots/ where report.md embeds them:
  entropy.png   per-block entropy of the attention vs the MLP branch of the pretrained model
                (the paper's first figure: attention carries less information than the MLP);
  search.png    |TE| of every NOSE candidate against the number of removed layers, the chosen one
                marked;
  training.png  dilution fine-tuning of the NOSE run at the largest ratio (seed 0): lambda of the
                diluted blocks, the training loss per step (moving average), and test top-1 per
                epoch, with the unpruned run;
  ratios.png    test top-1 against the removal ratio per criterion, mean with std over the seeds as
                error bars (report.json).

Usage: scripts/plot_pipeline.py [runs/pipeline]
"""
import json
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def open_trace(path):
    return h5py.File(path, "r", libver="latest", swmr=True)


def entropy_plot(out, plots):
    with open_trace(os.path.join(out, "entropy.h5")) as f:
        attn, mlp = f["/entropy/attn"][-1], f["/entropy/mlp"][-1]
    blocks = np.arange(len(attn))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(blocks, attn, "o-", label="attention branch")
    ax.plot(blocks, mlp, "s-", label="MLP branch")
    ax.set_xlabel("block")
    ax.set_ylabel("entropy  sum ln sigma_c (nats)")
    ax.set_xticks(blocks)
    ax.set_title("Entropy of each branch, pretrained model")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "entropy.png"), dpi=120)
    plt.close(fig)


def layers_of(mask):
    return [b for b in range(64) if int(mask) >> b & 1]


def search_plot(out, plots):
    with open_trace(os.path.join(out, "search.h5")) as f:
        cand = f["/search/candidates"][:]  # step, mask, size, H, TE, seconds; step k removes k layers
    cand = cand[cand[:, 0] > 0]  # step 0 is the full model (TE 0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.unique(cand[:, 0]).astype(int)
    for step in steps:
        rows = cand[cand[:, 0] == step]
        te = np.abs(rows[:, 4])
        ax.scatter(np.full(len(rows), step), te, color="0.6", s=18)
        best = rows[np.argmin(te)]
        ax.scatter([step], [abs(best[4])], color="C3", s=40, zorder=3)
        ax.annotate(",".join(map(str, layers_of(best[1]))), (step, abs(best[4])), textcoords="offset points",
                    xytext=(6, 0), fontsize=8)
    ax.set_xticks(steps)
    ax.set_xlabel("attention layers removed")
    ax.set_ylabel("|TE| to the logits")
    ax.set_yscale("log")
    ax.set_title("NOSE: every candidate (grey), the chosen set (red)")
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "search.png"), dpi=120)
    plt.close(fig)


SMOOTH_STEPS = 25  # moving-average window of the training loss


def smooth(values, window=SMOOTH_STEPS):
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def training_plot(out, plots):
    report = json.load(open(os.path.join(out, "report.json")))
    nose_rows = [r for r in report["runs"] if r["choice"] == "nose" and not r["distill"]]
    if not nose_rows:
        return
    name = max(nose_rows, key=lambda r: r["ratio"])["run"]
    nose = os.path.join(out, f"finetune-{name}-seed0")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    with open_trace(os.path.join(nose, "train.h5")) as f:
        step, lam, epoch = f["/train/step"][:], f["/train/step_lambda"][:], f["/train/epoch"][:]
        diluted = [int(b) for b in f["/train"].attrs["dilute_layers"].split(",") if b]
    for b in diluted:
        axes[0].plot(step[:, 0], lam[:, b], label=f"block {b}")
    axes[0].set_title("lambda of the diluted blocks")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=7)
    w = min(SMOOTH_STEPS, len(step))
    axes[1].plot(step[w - 1:, 0], smooth(step[:, 2], w), lw=1, label=name)
    axes[2].plot(epoch[:, 0] + 1, epoch[:, 2], "o-", label=name)
    unpruned = os.path.join(out, "finetune-unpruned-seed0", "train.h5")
    if os.path.exists(unpruned):
        with open_trace(unpruned) as f:
            s, e = f["/train/step"][:], f["/train/epoch"][:]
        axes[1].plot(s[w - 1:, 0], smooth(s[:, 2], w), lw=1, alpha=0.8, label="unpruned")
        axes[2].plot(e[:, 0] + 1, e[:, 2], "s-", label="unpruned")
    axes[1].set_title(f"training loss (moving average of {w} steps)")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=7)
    axes[2].set_title("test top-1 (%) per epoch")
    axes[2].set_xlabel("epoch")
    axes[2].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "training.png"), dpi=120)
    plt.close(fig)


def ratios_plot(out, plots):
    report = json.load(open(os.path.join(out, "report.json")))
    runs = report["runs"]
    base = next(r for r in runs if r["run"] == "unpruned")
    fig, ax = plt.subplots(figsize=(6, 3.8))
    series = {}
    for r in runs:
        if r["choice"] == "none":
            continue
        label = r["choice"] + (" + distillation" if r["distill"] else "")
        series.setdefault(label, []).append(r)
    for i, (label, rows) in enumerate(sorted(series.items())):
        rows = sorted(rows, key=lambda r: r["ratio"])
        if label == "nose":
            rows = [base] + rows
        x = [r["ratio"] for r in rows]
        y = [r["top1"] for r in rows]
        err = [r["top1_std"] for r in rows]
        ax.errorbar(x, y, yerr=err, marker="os^vDP*"[i % 7], capsize=3, linestyle="-" if len(x) > 1 else "none",
                    label=label)
    ax.errorbar([0], [base["top1"]], yerr=[base["top1_std"]], marker="o", color="k", capsize=3, linestyle="none",
                label="unpruned")
    ax.set_xlabel("fraction of attention layers removed")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"Top-1 against removal ratio ({report['seeds']} seed(s), mean ± std)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "ratios.png"), dpi=120)
    plt.close(fig)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/pipeline"
    if not os.path.exists(os.path.join(out, "report.json")):
        sys.exit(f"{out}: no report.json; run `vitslim pipeline --out-dir {out}` first")
    plots = os.path.join(out, "plots")
    os.makedirs(plots, exist_ok=True)
    entropy_plot(out, plots)
    search_plot(out, plots)
    training_plot(out, plots)
    ratios_plot(out, plots)
    report = json.load(open(os.path.join(out, "report.json")))
    print(f"figures written to {plots} ({len(report['runs'])} runs in the report)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Figures of a `vitslim pipeline` run, made from its HDF5 traces (h5py + matplotlib), written to
<out-dir>/plots/ where report.md embeds them:
  entropy.png   per-block entropy of the attention vs the MLP branch of the pretrained model
                (the paper's first figure: attention carries less information than the MLP);
  search.png    |TE| of every NOSE candidate per greedy step, the chosen one marked;
  training.png  dilution fine-tuning of the NOSE run at the largest ratio: lambda of the diluted
                blocks, the training loss per step, and test top-1 per epoch, with the unpruned run.

Usage: scripts/plot_pipeline.py [runs/pipeline]
"""
import glob
import json
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
        cand = f["/search/candidates"][:]  # step, mask, size, H, TE, seconds
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for step in np.unique(cand[:, 0]):
        rows = cand[cand[:, 0] == step]
        te = np.abs(rows[:, 4])
        ax.scatter(np.full(len(rows), step + 1), te, color="0.6", s=18)
        best = rows[np.argmin(te)]
        ax.scatter([step + 1], [abs(best[4])], color="C3", s=40, zorder=3)
        ax.annotate(",".join(map(str, layers_of(best[1]))), (step + 1, abs(best[4])), textcoords="offset points",
                    xytext=(6, 0), fontsize=8)
    ax.set_xlabel("greedy step (layers removed)")
    ax.set_ylabel("|TE| to the logits")
    ax.set_yscale("log")
    ax.set_title("NOSE: every candidate (grey), the chosen set (red)")
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "search.png"), dpi=120)
    plt.close(fig)


def training_plot(out, plots):
    runs = sorted(glob.glob(os.path.join(out, "finetune-nose-*")), key=lambda p: float(p.rsplit("-", 1)[1]))
    if not runs:
        return
    nose = runs[-1]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    with open_trace(os.path.join(nose, "train.h5")) as f:
        step, lam, epoch = f["/train/step"][:], f["/train/step_lambda"][:], f["/train/epoch"][:]
        diluted = [int(b) for b in f["/train"].attrs["dilute_layers"].split(",") if b]
    for b in diluted:
        axes[0].plot(step[:, 0], lam[:, b], label=f"block {b}")
    axes[0].set_title("lambda of the diluted blocks")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=7)
    axes[1].plot(step[:, 0], step[:, 2], lw=0.6, label=os.path.basename(nose))
    axes[2].plot(epoch[:, 0] + 1, epoch[:, 2], "o-", label=os.path.basename(nose))
    unpruned = os.path.join(out, "finetune-unpruned", "train.h5")
    if os.path.exists(unpruned):
        with open_trace(unpruned) as f:
            s, e = f["/train/step"][:], f["/train/epoch"][:]
        axes[1].plot(s[:, 0], s[:, 2], lw=0.6, alpha=0.7, label="unpruned")
        axes[2].plot(e[:, 0] + 1, e[:, 2], "s-", label="unpruned")
    axes[1].set_title("training loss")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=7)
    axes[2].set_title("test top-1 (%) per epoch")
    axes[2].set_xlabel("epoch")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "training.png"), dpi=120)
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
    report = json.load(open(os.path.join(out, "report.json")))
    print(f"figures written to {plots} ({len(report['runs'])} runs in the report)")


if __name__ == "__main__":
    main()

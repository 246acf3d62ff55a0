#!/usr/bin/env python3
"""The figure of a `vitslim plan` run: accuracy against measured speed-up, one curve per runtime.

Usage: scripts/plot_plan.py OUT_DIR   (reads OUT_DIR/plan.json, writes OUT_DIR/plots/plan.png)

Each runtime's front (speed-up against |TE|) is drawn with the probe top-1 of its candidates (or
-|TE| when the plan ran without probes), the chosen candidate circled, the target as a dashed line.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    with open(os.path.join(out_dir, "plan.json")) as f:
        plan = json.load(f)
    cands = plan["candidates"]
    probed = plan["unpruned_probe_top1"] is not None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for runtime in plan["runtimes"]:
        front = [cands[i] for i in plan["fronts"][runtime]]
        points = [(c["timings"][runtime]["speedup"], c["probe_top1"] if probed else -abs(c["te"]), c["label"])
                  for c in front if not probed or c["probe_top1"] is not None]
        points.sort()
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=runtime)
        for x, y, label in points:
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        chosen = plan["choices"][runtime]["chosen"]
        if chosen is not None and (not probed or cands[chosen]["probe_top1"] is not None):
            c = cands[chosen]
            y = c["probe_top1"] if probed else -abs(c["te"])
            ax.plot([c["timings"][runtime]["speedup"]], [y], marker="o", markersize=14, fillstyle="none",
                    color=line.get_color())
    if plan["target"]["speedup"] is not None:
        ax.axvline(plan["target"]["speedup"], linestyle="--", color="grey", label="target")
    ax.set_xlabel("measured speed-up over the unpruned model")
    ax.set_ylabel("probe top-1 (%)" if probed else "-|transfer entropy|")
    ax.set_title(f"vitslim plan: {plan['model']}, batch {plan['batch']}", fontsize=8)
    ax.legend(fontsize=8)
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    path = os.path.join(out_dir, "plots", "plan.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

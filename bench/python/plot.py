"""Draws results.png from results.json: conversion throughput and peak RSS vs input size,
Rust beside the peers (log-log), plus the per-benchmark ratios against their targets."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "rust codec": ("#b7410e", "o", "-"),
    "serde_json floor": ("#888888", "s", ":"),
    "python boto3+pyarrow (streaming)": ("#3572a5", "^", "-"),
    "python awswrangler": ("#2e8b57", "v", "-"),
}


def main(src, dst):
    with open(src) as f:
        results = json.load(f)
    conv = [m for m in results["measurements"] if m["bench"] == "conversion"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    for ax, metric, unit in [(axes[0], "throughput", "items/s"), (axes[1], "peak RSS", "MiB")]:
        for subject, (color, marker, line) in STYLE.items():
            pts = sorted((m["size"], m["median"]) for m in conv if m["subject"] == subject and m["metric"] == metric)
            if pts:
                ax.plot(*zip(*pts), marker=marker, linestyle=line, color=color, label=subject)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input size (items)")
        ax.set_ylabel(unit)
        ax.set_title(f"DynamoDB-JSON → Parquet: {metric}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    comps = [c for c in results["comparisons"] if c["ratio"] == c["ratio"]]  # drop NaN
    labels = [f'{c["bench"]}: {c["what"][:48]}' for c in comps]
    colors = ["#2e8b57" if c["met"] is True else "#c0392b" if c["met"] is False else "#888888" for c in comps]
    ax.barh(range(len(comps)), [c["ratio"] for c in comps], color=colors)
    ax.set_yticks(range(len(comps)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ratio (see results.md; green: target met, red: missed, grey: no target)")
    ax.set_title("ratios")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    meta = results.get("meta", {})
    fig.suptitle(f'dynabridge benchmarks — {meta.get("machine", "")}, {meta.get("cpus", "")}, {meta.get("mode", "")} run, {meta.get("date", "")}', fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

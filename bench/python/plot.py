"""Draws results.png from results.json: throughput and peak RSS vs input size, Rust beside
the peers (log-log), for the conversion, aged-export and incremental-sync benchmarks, plus
the per-benchmark ratios against their targets."""

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
EXPORT_STYLE = {
    "rust aged-export": ("#b7410e", "o", "-"),
    "bare Scan (same table, same segments)": ("#888888", "s", ":"),
    "python awswrangler read_items + to_parquet": ("#2e8b57", "v", "-"),
}
SYNC_STYLE = {
    "rust incremental-sync": ("#b7410e", "o", "-"),
    "python awswrangler put_df": ("#2e8b57", "v", "-"),
}


def lines(ax, measurements, styles, metric, title, unit):
    drawn = False
    for subject, (color, marker, line) in styles.items():
        pts = sorted((m["size"], m["median"]) for m in measurements if m["subject"] == subject and m["metric"] == metric)
        if pts:
            ax.plot(*zip(*pts), marker=marker, linestyle=line, color=color, label=subject)
            drawn = True
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input size (items)")
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)


def main(src, dst):
    with open(src) as f:
        results = json.load(f)
    by_bench = {}
    for m in results["measurements"]:
        by_bench.setdefault(m["bench"], []).append(m)
    fig, grid = plt.subplots(2, 3, figsize=(18, 10.4))
    axes = grid[0]
    conv = by_bench.get("conversion", [])
    for ax, metric, unit in [(axes[0], "throughput", "items/s"), (axes[1], "peak RSS", "MiB")]:
        lines(ax, conv, STYLE, metric, f"DynamoDB-JSON → Parquet: {metric}", unit)
    export = by_bench.get("aged-export", [])
    lines(grid[1][0], export, EXPORT_STYLE, "throughput", "aged-export: table → Parquet in S3, throughput", "items/s")
    ax = grid[1][1]
    lines(ax, export, EXPORT_STYLE, "peak RSS", "aged-export: peak RSS (target ≤ 64 MB at 1M items)", "MiB")
    ax.axhline(64e6 / 2**20, color="#c0392b", linestyle="--", linewidth=1)
    sync = by_bench.get("incremental-sync", [])
    ax = grid[1][2]
    lines(ax, sync, SYNC_STYLE, "throughput", "incremental-sync: Parquet → table, throughput", "items/s")
    for m in sync:
        if m["metric"] == "DynamoDB requests per 1,000 items" and m["median"] == m["median"]:
            ax.annotate(f'{m["median"]:.1f} req/1k', (m["size"], 1), xycoords=("data", "axes fraction"),
                        xytext=(0, -28 if m["subject"].startswith("rust") else -38), textcoords="offset points",
                        fontsize=6, ha="center", color=SYNC_STYLE.get(m["subject"], ("#000",))[0])
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

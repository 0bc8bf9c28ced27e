"""Draw bench/plots/*.png from bench/results/*.json (run with the peers venv: it has matplotlib).

    bench/.peers-venv/bin/python bench/plot.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent
OURS, PEER = "#1f77b4", "#999999"


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def bars(ax, rows, value, xlabel, title, log=False):  # type: ignore[no-untyped-def]
    labels = [r["label"] for r in rows]
    values = [r[value] for r in rows]
    colors = [OURS if r["system"] == "luasched" else PEER for r in rows]
    y = range(len(rows))
    ax.barh(list(y), values, color=colors)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    out = BENCH / "plots" if args.results.name != "quick" else args.results
    out.mkdir(exist_ok=True)

    t = load(args.results, "throughput")
    if t:
        fig, ax = plt.subplots(figsize=(9, 6))
        bars(ax, sorted(t["rows"], key=lambda r: -r["rate"]), "rate", "tasks/s (median)",
             f"End-to-end throughput: {t['n']:,} no-op tasks, one worker process")
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=100)
        plt.close(fig)

    lat = load(args.results, "latency")
    if lat:
        fig, ax = plt.subplots(figsize=(9, 5))
        rows = sorted(lat["rows"], key=lambda r: r["p50_ms"])
        y = list(range(len(rows)))
        ax.barh([i - 0.2 for i in y], [r["p50_ms"] for r in rows], height=0.4, label="p50",
                color=[OURS if r["system"] == "luasched" else PEER for r in rows])
        ax.barh([i + 0.2 for i in y], [r["p99_ms"] for r in rows], height=0.4, label="p99", color="#ff7f0e",
                alpha=0.6)
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("ms from submit to task start (log scale)")
        ax.set_title("Latency at low load: p50 (blue/grey) and p99 (orange)")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=100)
        plt.close(fig)

    d = load(args.results, "dispatch")
    if d:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, key, x, label in ((a1, "by_processors", "processors", "registered processors"),
                                  (a2, "by_queue", "queued", "tasks queued")):
            rows = d[key]
            xs = [r[x] for r in rows]
            ax.plot(xs, [r["server_us_per_task"] for r in rows], "o-", color=OURS, label="in the script")
            ax.plot(xs, [r["client_us_per_task"] for r in rows], "s--", color=PEER, label="with the round trip")
            if key == "by_processors" and d.get("by_registered"):
                reg = d["by_registered"]
                ax.plot([r[x] for r in reg], [r["server_us_per_task"] for r in reg], "^:", color=OURS,
                        alpha=0.6, label="in the script, 10 idle")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        a1.set_ylabel("µs per dispatched task")
        a1.legend()
        fig.suptitle("Dispatch cost per task (limit 100 per call)")
        fig.tight_layout()
        fig.savefig(out / "dispatch.png", dpi=100)
        plt.close(fig)
    print(f"plots in {out}")


if __name__ == "__main__":
    main()

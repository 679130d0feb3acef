"""One PNG per workload: throughput against p99 for TorchServe, each peer and the true limit.

    python -m bench.plot bench/results/latest.json   # (re)draws the PNGs next to it

Every round's closed-loop sweep is drawn (the rounds' spread is the noise to read the lines
against); the limit is a horizontal line at its median over the rounds: no server can go above it.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from bench.peer_results import peers_of  # noqa: E402

COLOURS = {"torchserve": "tab:blue", "fastapi": "tab:orange", "litserve": "tab:green", "bentoml": "tab:purple"}


def _sweep(ax: Any, steps: list[dict[str, Any]], label: str | None, colour: str) -> None:
    points = [(s["p99_ms"], s["rps"]) for s in steps if s["p99_ms"] and not s["failures"]]
    if points:
        ax.plot(*zip(*points), marker="o", markersize=3, color=colour, alpha=0.8, label=label)


def draw(results: dict[str, Any], name: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    rounds = [o["workloads"][name] for o in results["rounds"] if name in o["workloads"]]
    for number, r in enumerate(rounds):
        first = number == 0
        _sweep(ax, r["served"]["sweep"], "TorchServe" if first else None, COLOURS["torchserve"])
        for peer, p in peers_of(r).items():
            if "sweep" in p:
                _sweep(ax, p["sweep"], f"{p['label']} ({p['processes']} proc.)" if first else None,
                       COLOURS.get(peer, "tab:gray"))
    limit = statistics.median(r["limit"]["items_per_s"] for r in rounds)
    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"true limit ({limit:.0f}/s)")
    ax.set_xscale("log")
    ax.set_xlabel("p99 latency, ms (log)")
    ax.set_ylabel("throughput, req/s")
    ax.set_title(f"{name}: throughput against p99 ({results['machine']['device']}, "
                 f"{results['machine']['cores_usable']} cores, {len(rounds)} round(s))")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_all(results: dict[str, Any], results_file: Path) -> dict[str, str]:
    """{workload: PNG file name}: <results file stem>-<workload>.png beside the results file (latest.md)."""
    return {name: draw(results, name, results_file.with_name(f"{results_file.stem}-{name}.png")).name
            for name in results["rounds"][0]["workloads"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    draw_all(json.loads(args.results.read_text()), args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

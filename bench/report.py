"""`python -m bench.report`: results -> ratios (ratios.py), targets (targets.py), medians over the
rounds (repeats.py), Markdown (report_markdown.py); the results file's schema and well-formedness.

Plain functions over the results dict (no Locust, no torch) so unit tests can check them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import repeats
from bench.peer_results import peers_of
from bench.ratios import ratios
from bench.report_markdown import markdown
from bench.targets import targets

__all__ = ["SCHEMA_VERSION", "markdown", "problems", "ratios", "summarize", "targets", "write_json"]

SCHEMA_VERSION = 2  # 2: results["rounds"] holds each round; workloads, targets, cold_start their medians


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute every round's ratios and targets, then the medians over the rounds, in place."""
    cores = results["machine"]["cores_usable"]
    if "rounds" not in results:  # schema 1: one round, stored at the top level
        results["rounds"] = [{"workloads": results["workloads"], "cold_start": results["cold_start"]}]
        results["schema"] = SCHEMA_VERSION
    for one_round in results["rounds"]:
        for r in one_round["workloads"].values():
            r["ratios"] = ratios(r, cores)
        one_round["targets"] = targets(one_round, cores)
    names = list(results["rounds"][0]["workloads"])
    results["workloads"] = {name: repeats.summarize_workload([o["workloads"][name] for o in results["rounds"]])
                            for name in names}
    results["cold_start"] = repeats.combine_cold_starts([o["cold_start"] for o in results["rounds"]])
    results["targets"] = repeats.combine_targets([o["targets"] for o in results["rounds"]])
    return results


# --- well-formedness (the smoke test) -------------------------------------------------------------

REQUIRED_WORKLOAD_KEYS = ("kind", "serving", "limit", "served", "batch1", "half_load", "ratios")


def write_json(path: Path, data: Any) -> Path:
    """`data` as indented JSON at `path`, its folder created: every results file the bench writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def problems(results: dict[str, Any]) -> list[str]:
    """What is missing or malformed in a results dict (empty when well-formed)."""
    found = []
    for key in ("schema", "machine", "settings", "rounds", "workloads", "cold_start", "targets", "duration_s"):
        if key not in results:
            found.append(f"missing {key}")
    if not results.get("rounds"):
        found.append("no rounds")
    for number, one_round in enumerate(results.get("rounds") or [], 1):
        for name, r in one_round.get("workloads", {}).items():
            found += [f"round {number} {name}: missing {k}" for k in REQUIRED_WORKLOAD_KEYS if k not in r]
            if not (r.get("limit") or {}).get("items_per_s", 0) > 0:
                found.append(f"round {number} {name}: no in-process limit")
            if not (r.get("served") or {}).get("saturation"):
                found.append(f"round {number} {name}: no served saturation point")
            if "peers" not in r and "peer" not in r:
                found.append(f"round {number} {name}: missing peers")
            found += [f"round {number} {name}: no OIP x{n} saturation point"
                      for n, o in (r.get("oip") or {}).items() if not o.get("saturation")]
            for peer, p in peers_of(r).items() if ("peers" in r or "peer" in r) else []:
                if "not_run" not in p and not p.get("saturation"):
                    found.append(f"round {number} {name}: no {peer} saturation point")
        if not (one_round.get("cold_start") or {}).get("seconds", 0) > 0:
            found.append(f"round {number}: no cold start time")
    for name, w in results.get("workloads", {}).items():
        if not w.get("ratios"):
            found.append(f"{name}: no median ratios")
    if not (results.get("cold_start") or {}).get("seconds", 0) > 0:
        found.append("no cold start time")
    return found


def main(argv: list[str] | None = None) -> int:
    """Re-render latest.md and its PNGs (ratios, medians and targets recomputed) from a latest.json."""
    import argparse

    from bench import plot  # matplotlib: only when drawing

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    results = summarize(json.loads(args.results.read_text()))
    results["plots"] = plot.draw_all(results, args.results)
    write_json(args.results, results)
    args.results.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""After a run: read Locust's CSV files, draw the per-model chart, print the SLO summary.

    python -m loadtest.report reports/loadtest/<timestamp> [--slo-override ...]

Reads `<prefix>_stats.csv` (final numbers) and `<prefix>_stats_history.csv` (one row per model
and second, written with --csv-full-history) and writes `latency.png`: per model, Locust's own
p50/p95/p99 over time (its rolling ~10 s window) with the p95 SLO as a dashed line, and the
request and failure rates below. Percentiles are Locust's, never recomputed from buckets.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtest import slo
from loadtest.measurement import Measurement, from_stats_row, number_or_none
from stackctl.catalog.specs import load_specs

PREFIX = "locust"
CHART = "latency.png"
PERCENTILES = (("50%", "p50", ":"), ("95%", "p95", "-"), ("99%", "p99", "--"))
PERCENTILES_KEYS = tuple((key, label) for key, label, _ in PERCENTILES)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def observed_from_csv(stats_csv: Path, models: list[str]) -> dict[str, Measurement]:
    """Per-model measurements from Locust's final `<prefix>_stats.csv`."""
    rows = {row["Name"]: row for row in read_rows(stats_csv) if row.get("Name") != "Aggregated"}

    def one(name: str) -> Measurement | None:
        row = rows.get(name)
        if row is None or not int(row["Request Count"]):
            return None
        return from_stats_row(name, row)

    return {m: slo.merge(m, one(m), one(m + slo.BAD_SUFFIX)) for m in models}


@dataclass
class Series:
    t: list[float]
    values: dict[str, list[float | None]]


def history_by_model(history_csv: Path, models: list[str]) -> dict[str, Series]:
    """Time series per model (seconds since the first row) from `<prefix>_stats_history.csv`."""
    rows = read_rows(history_csv)
    if not rows:
        return {}
    t0 = min(int(r["Timestamp"]) for r in rows)
    keys = [k for k, _, _ in PERCENTILES] + ["Requests/s", "Failures/s", "User Count"]
    bad_rates: dict[tuple[str, int], tuple[float, float]] = {}
    for row in rows:
        if row["Name"].endswith(slo.BAD_SUFFIX):
            bad_rates[(row["Name"][: -len(slo.BAD_SUFFIX)], int(row["Timestamp"]))] = (
                number_or_none(row["Requests/s"]) or 0.0, number_or_none(row["Failures/s"]) or 0.0)
    out: dict[str, Series] = {}
    for row in rows:
        if row["Name"] not in models:
            continue
        series = out.setdefault(row["Name"], Series([], {k: [] for k in keys}))
        series.t.append(int(row["Timestamp"]) - t0)
        # Locust writes 0 for every percentile until its rolling window holds samples.
        window_empty = not number_or_none(row.get("100%"))
        for k in keys:
            series.values[k].append(None if window_empty and k in dict(PERCENTILES_KEYS) else number_or_none(row.get(k)))
        # the model's deliberately bad requests count towards its request and failure rates
        extra_requests, extra_failures = bad_rates.get((row["Name"], int(row["Timestamp"])), (0.0, 0.0))
        for k, extra in (("Requests/s", extra_requests), ("Failures/s", extra_failures)):
            if series.values[k][-1] is not None:
                series.values[k][-1] += extra  # type: ignore[operator]
    return out


def draw_chart(history: dict[str, Series], slos: dict[str, slo.Slo], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    models = sorted(history) or sorted(slos)
    fig, axes = plt.subplots(2, max(1, len(models)), figsize=(6.5 * max(1, len(models)), 7.5),
                             sharex=True, squeeze=False)
    for col, model in enumerate(models):
        lat, rate = axes[0][col], axes[1][col]
        series = history.get(model)
        if series is not None:
            for key, label, style in PERCENTILES:
                points = [(t, v) for t, v in zip(series.t, series.values[key]) if v is not None]
                if points:
                    lat.plot(*zip(*points), style, label=label)
            for key, label in (("Requests/s", "requests/s"), ("Failures/s", "failures/s")):
                points = [(t, v) for t, v in zip(series.t, series.values[key]) if v is not None]
                if points:
                    rate.plot(*zip(*points), label=label)
        if model in slos:
            lat.axhline(slos[model].p95_ms, color="red", linestyle="-.", linewidth=1,
                        label=f"p95 SLO {slos[model].p95_ms:g} ms")
        lat.set_title(f"{model}: latency (Locust, ~10 s window)")
        lat.set_ylabel("ms")
        lat.legend(loc="upper left", fontsize="small")
        rate.set_title(f"{model}: throughput")
        rate.set_ylabel("per second")
        rate.set_xlabel("seconds since start")
        rate.legend(loc="upper left", fontsize="small")
        lat.grid(alpha=0.3)
        rate.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_report(folder: Path, overrides: str = "", prefix: str = PREFIX) -> tuple[list[slo.Verdict], Path]:
    """Chart + verdicts for a finished run in `folder`."""
    specs = load_specs()
    slos = slo.apply_overrides({s.name: s.slo for s in specs}, slo.parse_overrides(overrides))
    models = sorted(slos)
    gate_json = folder / f"{prefix}{slo.GATE_JSON_SUFFIX}"
    if gate_json.is_file() and not overrides:  # the gate's own verdicts, from Locust's final in-memory stats
        verdicts = slo.from_json(json.loads(gate_json.read_text(encoding="utf-8")))
    else:  # the last CSV snapshot (Locust writes it once a second, so it may miss the final second)
        verdicts = slo.judge(slos, observed_from_csv(folder / f"{prefix}_stats.csv", models))
    history_csv = folder / f"{prefix}_stats_history.csv"
    history = history_by_model(history_csv, models) if history_csv.is_file() else {}
    chart = draw_chart(history, slos, folder / CHART, f"Load test {folder.name}")
    return verdicts, chart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path, help="a reports/loadtest/<timestamp> folder")
    parser.add_argument("--slo-override", default="", help="same syntax as the Locust option")
    args = parser.parse_args(argv)
    verdicts, chart = build_report(args.folder, args.slo_override)
    print(slo.format_summary(verdicts))
    print(f"\nchart: {chart}")
    return slo.exit_code(verdicts)


if __name__ == "__main__":
    sys.exit(main())

"""`make capacity`'s files: capacity.csv (one row per model), steps.csv (every step), capacity.md.

`capacity_rps` is the highest offered rate that passed; `capacity` says how much that number is
worth: "425.0" when a failing rate was found within the tolerance above it, "≥ 128.6" when the
budget ended the search first (a lower bound, not a maximum).
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest import slo

# capacity.Result and capacity.Step, by their fields: capacity.py imports this module
Result = Any

COLUMNS = ("model", "capacity", "capacity_rps", "complete", "first_failing_rps", "closed_loop_rps",
           "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "users", "slo_p95_ms", "stopped_because", "streams", "chunks_per_s")


LOWER_BOUND_NOTE = ("\"≥ X\": the time budget ended the search before a failing rate was found close above X; "
                    "X is a lower bound, not the maximum.")


STREAM_NOTE = ("{}: a request is one chunk of a stream, so req/s are chunks/s; \"concurrent streams\" is the "
               "number of streams open at the capacity found (one per paced user).")


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_rows(results: Sequence[Result], slos: dict[str, slo.Slo]) -> list[dict[str, str]]:
    rows = []
    for r in results:
        b, s = r.best, r.search
        m = b.measured if b else None
        rows.append({"model": r.model, "capacity": s.label, "capacity_rps": f"{s.capacity:.1f}",
                     "complete": str(s.complete).lower(), "first_failing_rps": _fmt(s.failed, 1),
                     "closed_loop_rps": _fmt(r.estimate and r.estimate.measured.rps, 1),
                     "achieved_rps": _fmt(m and m.rps, 1),
                     "p50_ms": _fmt(m and m.p50_ms), "p95_ms": _fmt(m and m.p95_ms), "p99_ms": _fmt(m and m.p99_ms),
                     "mean_batch_size": _fmt(b and b.mean_batch_size, 2), "users": str(m.users) if m else "-",
                     "slo_p95_ms": f"{slos[r.model].p95_ms:g}", "stopped_because": s.stopped_because,
                     # a streaming model's requests are chunks and its users streams (users.StreamUser)
                     "streams": str(m.users) if m and r.streaming else "-",
                     "chunks_per_s": f"{s.capacity:.1f}" if r.streaming else "-"})
    return rows


def write_outputs(folder: Path, results: Sequence[Result], slos: dict[str, slo.Slo]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results, slos)
    with (folder / "capacity.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with (folder / "steps.csv").open("w", newline="", encoding="utf-8") as handle:
        steps = [s for r in results for s in r.steps]
        writer = csv.DictWriter(handle, fieldnames=list(steps[0].to_row()) if steps else ["model"])
        writer.writeheader()
        writer.writerows(s.to_row() for s in steps)
    header: tuple[str, ...] = ("model", "capacity req/s within SLO", "first failing req/s", "closed-loop req/s",
                               "p50 ms", "p95 ms", "p99 ms", "mean batch", "SLO p95 ms", "stopped because")
    keys: tuple[str, ...] = ("model", "capacity", "first_failing_rps", "closed_loop_rps", "p50_ms", "p95_ms",
                             "p99_ms", "mean_batch_size", "slo_p95_ms", "stopped_because")
    streaming = [r.model for r in results if r.streaming]
    if streaming:  # the column only where a streaming model was measured: other tables keep their shape
        header, keys = header + ("concurrent streams",), keys + ("streams",)
    markdown = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(row[k] for k in keys) + " |" for row in rows]
                         + ["", LOWER_BOUND_NOTE] + ([STREAM_NOTE.format(", ".join(streaming))] if streaming else []))
    (folder / "capacity.md").write_text(markdown + "\n", encoding="utf-8")
    return markdown

"""The chaos report: per scenario, what the requests got (requests.csv has every one) and how
long recovery took; the invariant checked; a timeline of statuses and latency with the faults."""
from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.chaos.plan import Plan, Stage
from loadtest.chaos.record import Record
from loadtest.chaos.recovery import first_200


@dataclass
class Row:
    scenario: str
    model: str
    sent: int
    ok: int
    errors: dict[str, int]        # "status type" -> count
    unanswered: int               # no answer within the front door's bound
    wrong: int
    first_200_s: float | None
    workers_ready_s: float | None
    readiness_s: float | None
    faulted: bool = False         # this model's workers were the fault's target


def _unanswered(record: Record, bound: int) -> bool:
    return record.status == 0 and (record.error == "unanswered" or record.seconds >= bound)


def rows(records: list[Record], stages: list[Stage], plan: Plan) -> list[Row]:
    table = []
    for stage in stages:
        start, end = stage.window
        for model in sorted(plan.rates):
            mine = [r for r in records if r.model == model and start <= r.sent < end]
            errors = Counter(f"{r.status} {r.error}".strip() for r in mine
                             if r.status != 200 and not _unanswered(r, plan.bounds[model]))
            faulted = model == stage.fault.model or stage.fault.whole_server
            table.append(Row(stage.fault.scenario, model, len(mine), sum(r.status == 200 for r in mine),
                             dict(errors), sum(_unanswered(r, plan.bounds[model]) for r in mine),
                             sum(r.wrong for r in mine),
                             first_200(records, stage.fault, model) if faulted else None,
                             stage.recovery.workers_ready_s if faulted else None,
                             stage.recovery.readiness_s if faulted or not stage.fault.model else None, faulted))
    return table


def verdicts(table: list[Row], plan: Plan, stages: Sequence[Stage] = ()) -> list[str]:
    """The invariant (docs/faults.md), one line per breach; empty when it held."""
    broken = [f"{s.fault.scenario}: a model's request-rate series did not come back within {plan.recover_limit_s:g} s"
              for s in stages if _restarts_series(s) and s.recovery.series_s is None]
    for row in table:
        if row.unanswered:
            broken.append(f"{row.scenario}: {row.model}: {row.unanswered} request(s) unanswered at the bound")
        if row.wrong:
            broken.append(f"{row.scenario}: {row.model}: {row.wrong} 200(s) with a wrong answer")
        if not row.faulted and row.sent != row.ok:
            broken.append(f"{row.scenario}: {row.model} (not faulted) lost {row.sent - row.ok} request(s): {row.errors}")
        if row.faulted and row.readiness_s is None:
            broken.append(f"{row.scenario}: {row.model}: readiness not back within {plan.recover_limit_s:g} s")
    return broken


def _restarts_series(stage: Stage) -> bool:
    """Prometheus restarted, or TorchServe (its counters start again from 0)."""
    return stage.fault.scenario.startswith("Prometheus") or stage.fault.whole_server


def _series_note(stage: Stage) -> str:
    if not _restarts_series(stage):
        return ""
    back = stage.recovery.series_s
    return (f", every model's request-rate series (`rate(ts_inference_requests_total[1m])`) back "
            f"{back:g} s after the restart" if back is not None else ", request-rate series NOT back")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def markdown(table: list[Row], stages: list[Stage], plan: Plan, broken: list[str], source: str) -> str:
    lines = [f"# Chaos run: faults on `{plan.model}`", "",
             f"Load: {', '.join(f'{m} {r:g} req/s' for m, r in plan.rates.items())} ({source}); bound on waiting: "
             + ", ".join(f"{m} {b} s" for m, b in plan.bounds.items()) + ".", "",
             "| scenario | model | sent | 200 | errors by status | unanswered | wrong 200 | first 200 | workers READY | readiness |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in table:
        errors = ", ".join(f"{n} × {k}" for k, n in sorted(row.errors.items())) or "0"
        lines.append(f"| {row.scenario} | {row.model} | {row.sent} | {row.ok} | {errors} | {row.unanswered} | {row.wrong} "
                     f"| {_cell(row.first_200_s)} | {_cell(row.workers_ready_s)} | {_cell(row.readiness_s)} |")
    lines += ["", "Recovery times count from the end of the fault (the last signal; for SIGSTOP, the SIGCONT).", "",
              "Faults: " + "; ".join(f"{s.fault.scenario}: {s.fault.describe()}" + _series_note(s) for s in stages), "",
              "**Invariant held**" if not broken else "**Invariant broken:**\n\n" + "\n".join(f"- {b}" for b in broken), ""]
    return "\n".join(lines)


def timeline(records: list[Record], stages: list[Stage], plan: Plan, target: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min((r.sent for r in records), default=0.0)
    models = sorted(plan.rates)
    fig, axes = plt.subplots(len(models), 1, figsize=(13, 3.2 * len(models)), sharex=True, squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        mine = [r for r in records if r.model == model]
        statuses = sorted({r.status if not _unanswered(r, plan.bounds[model]) else -1 for r in mine})
        for status in statuses:
            chosen = [r for r in mine if (r.status if not _unanswered(r, plan.bounds[model]) else -1) == status]
            label = {-1: "unanswered", 0: "no connection", 200: "200"}.get(status, str(status))
            ax.scatter([r.sent - t0 for r in chosen], [max(r.seconds, 1e-3) * 1000 for r in chosen], s=6,
                       marker="x" if status == -1 else "o", label=f"{label} ({len(chosen)})")
        for stage in stages:
            ax.axvspan(stage.fault.began - t0, max(stage.fault.ended, stage.fault.began + 0.3) - t0, color="red", alpha=0.15)
            ax.text(stage.fault.began - t0, 1, stage.fault.scenario, fontsize=7, rotation=90, va="bottom")
        ax.axhline(plan.bounds[model] * 1000, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel(f"{model}: latency (ms)")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the first request (faults shaded; dashed: the bound)")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def write(folder: Path, records: list[Record], stages: list[Stage], plan: Plan, source: str) -> tuple[Path, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    table = rows(records, stages, plan)
    broken = verdicts(table, plan, stages)
    (folder / "summary.md").write_text(markdown(table, stages, plan, broken, source))
    (folder / "summary.json").write_text(json.dumps({"rows": [asdict(r) for r in table], "broken": broken,
                                                     "faults": [asdict(s.fault) for s in stages]}, indent=1) + "\n")
    with open(folder / "requests.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["model", "seq", "sent", "seconds", "status", "error", "wrong"])
        writer.writerows([r.model, r.seq, f"{r.sent:.3f}", f"{r.seconds:.4f}", r.status, r.error, int(r.wrong)]
                         for r in sorted(records, key=lambda r: r.sent))
    timeline(records, stages, plan, folder / "timeline.png")
    return folder, broken

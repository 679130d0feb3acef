"""`make loadtest`: one headless Locust run into reports/loadtest/<timestamp>/, then the report.

    python -m loadtest.run --host http://127.0.0.1:8080 --users 10 --spawn-rate 5 --duration 60s

The folder gets Locust's CSV files (locust_stats.csv, locust_failures.csv, locust_exceptions.csv,
locust_stats_history.csv), its HTML report (report.html), the console log (locust.log), the chart
(latency.png) and run.json (what was asked for). Exit status: Locust's, i.e. non-zero when the SLO
gate failed; the report is written either way.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtest import report, shapes, slo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORTS = ROOT / "reports" / "loadtest"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     epilog="Arguments after `--` go to Locust unchanged.")
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="TorchServe inference URL")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--duration", default="60s", help="Locust --run-time, e.g. 30s, 5m")
    parser.add_argument("--shape", choices=[*shapes.SHAPES, "none"], default=os.environ.get(shapes.SHAPE_ENV) or "none",
                        help="load shape instead of --users/--duration (see loadtest/shapes.py)")
    parser.add_argument("--user-rate", type=float, default=None, help="open loop: requests/s per user")
    parser.add_argument("--bad-request-share", type=float, default=None)
    parser.add_argument("--slo-override", default="", help='e.g. "digits.p95_ms=50"')
    parser.add_argument("--out", type=Path, default=REPORTS, help="parent folder of the run folder")
    parser.add_argument("locust_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.host.startswith(("http://", "https://")):
        parser.error(f"--host/HOST must be a URL such as http://127.0.0.1:8080, got {args.host!r} "
                     "(is HOST exported by your shell? pass HOST=http://... to make)")
    slo.parse_overrides(args.slo_override)  # fail before starting Locust
    return args


def locust_command(args: argparse.Namespace, folder: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--config", str(HERE / "locust.conf"),
           "--headless", "--host", args.host, "--csv", str(folder / report.PREFIX), "--csv-full-history",
           "--html", str(folder / "report.html")]
    if args.shape == "none":
        cmd += ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", args.duration]
    for flag, value in (("--user-rate", args.user_rate), ("--bad-request-share", args.bad_request_share),
                        ("--slo-override", args.slo_override or None)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd + list(args.locust_args)


def run_locust(cmd: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Run Locust, echoing its output to the console and to `log_path`."""
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.out / time.strftime("%Y%m%d-%H%M%S")
    while folder.exists():  # two runs in the same second
        folder = folder.with_name(folder.name + "-1")
    folder.mkdir(parents=True)
    cmd = locust_command(args, folder)
    env = {**os.environ, shapes.SHAPE_ENV: "" if args.shape == "none" else args.shape}
    (folder / "run.json").write_text(json.dumps({
        "host": args.host, "users": args.users, "spawn_rate": args.spawn_rate, "duration": args.duration,
        "shape": args.shape, "user_rate": args.user_rate, "bad_request_share": args.bad_request_share,
        "slo_override": args.slo_override, "command": cmd, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2) + "\n")
    code = run_locust(cmd, folder / "locust.log", env)
    stats_csv = folder / f"{report.PREFIX}_stats.csv"
    if not stats_csv.is_file():
        print(f"Locust wrote no statistics (exit code {code}); see {folder / 'locust.log'}", file=sys.stderr)
        return code or 1
    verdicts, chart = report.build_report(folder, args.slo_override)
    print(f"\n=== Load test summary ({folder}) ===")
    print(slo.format_summary(verdicts))
    print(f"\nreport folder: {folder}\n  chart: {chart.name}  html: report.html  csv: {report.PREFIX}_*.csv")
    return code if code else slo.exit_code(verdicts)


if __name__ == "__main__":
    sys.exit(main())

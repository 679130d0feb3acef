"""The bench's saturation step against a server that is already running: the closed-loop sweep of
`make bench` (1, 2, 4, ... users until throughput stops rising), per model.

    python -m bench.saturation --host http://127.0.0.1:8080 [--models digits langid]

What `make capacity` is checked against: run both back to back on the same server and compare
the ratio (on a shared host the absolute numbers move between runs, the ratio much less).
"""
from __future__ import annotations

import argparse
import json
import sys

import locust  # noqa: F401  (first: gevent monkey-patching, before anything opens a socket)

from bench import loadgen
from bench.run import LEVELS
from loadtest.payloads import payloads_for
from stackctl.catalog.specs import get_spec, load_specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="inference URL (loopback)")
    parser.add_argument("--models", nargs="+", default=None, help="default: every served model (config/models/)")
    parser.add_argument("--window", type=float, default=4.8, help="seconds measured per step (`make bench` at its default budget: 4.8)")
    parser.add_argument("--warmup", type=float, default=1.6, help="seconds before each window (`make bench`: 1.6)")
    args = parser.parse_args(argv)
    found = {}
    for name in args.models or [spec.name for spec in load_specs()]:
        spec = get_spec(name)
        target = loadgen.Target("torchserve", args.host, f"/predictions/{name}")
        with loadgen.Load(target, spec, list(payloads_for(spec).good)) as load:
            steps = loadgen.sweep(load, LEVELS, args.warmup, args.window, log=lambda line: print(line, flush=True))
        best = loadgen.saturation(steps)
        found[name] = {"saturation_rps": best.measured.rps if best else 0.0, "users": best.measured.users if best else None,
                       "p95_ms": best.measured.p95_ms if best else None}
        print(f"{name}: saturation {found[name]}", flush=True)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())

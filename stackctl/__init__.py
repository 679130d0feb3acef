"""Tooling for the serving stack: model specs, archives, the native launcher and readiness checks.

Every entry point is `python -m stackctl <command>` (see stackctl/__main__.py) or a module's own
`python -m <module>`; `python -m stackctl --help` lists them all (stackctl/commands.py, bench's and
loadtest's included) and `python -m stackctl run <name>` runs any of them. The Makefile only calls these.
"""

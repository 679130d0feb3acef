"""Tooling for the serving stack: model specs, archives, the native launcher and readiness checks.

Every entry point is `python -m stackctl <command>` (see stackctl/__main__.py) or a module's own
`python -m stackctl.<module>`; the Makefile only calls these.
"""

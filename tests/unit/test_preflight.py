"""stackctl.preflight: the one-line-per-missing-tool guard `make test` runs before pytest."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stackctl import paths, preflight, tools


def test_a_missing_tool_is_named_with_how_to_get_it():
    with pytest.raises(tools.ToolMissing, match=r"^no-such-tool-4711 is not installed: apt-get install it$"):
        tools.find("no-such-tool-4711", "apt-get install it")


def test_venv_tools_are_found_without_the_venv_on_path(monkeypatch):
    # make calls .venv/bin/python directly, so PATH need not contain the venv's bin folder.
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tools.find("kubectl", "make venv").startswith(os.path.dirname(sys.executable))


def test_preflight_prints_one_line_per_missing_tool_and_fails(tmp_path):
    # A python outside the venv and a PATH with nothing on it: every tool is missing.
    env = {"PATH": str(tmp_path), "AUDIT_VENV": str(tmp_path / "no-audit-venv"), "PYTHONPATH": str(paths.ROOT)}
    base_python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    proc = subprocess.run([base_python, "-S", "-c", "import sys; sys.path.append(sys.argv[1]); "
                           "from stackctl import preflight; sys.exit(preflight.main())",
                           str(paths.ROOT)], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    if "No module named 'yaml'" in proc.stderr:
        pytest.fail(f"preflight must not import third-party modules:\n{proc.stderr}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert all(line.startswith("preflight: ") for line in lines), lines
    named = {line.split()[1] for line in lines}
    assert {"kubectl", "hadolint", "promtool", "prometheus", "java", "checkov"} <= named, lines


def test_java_version_is_read_from_java_itself():
    assert (preflight.java_major(tools.find("java", "make system-deps")) or 0) >= 17

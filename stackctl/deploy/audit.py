"""Security and dependency audit: checkov on the deploy files, pip-audit on the pinned requirements.

    python -m stackctl.deploy.audit checkov   # offline: Dockerfiles, compose files, every rendered k8s overlay
    python -m stackctl.deploy.audit deps      # pip-audit on requirements.txt (needs its vulnerability database)
    python -m stackctl.deploy.audit all       # both; exit status non-zero if either part did not pass

checkov runs with no skips; a finding passes only when audit/checkov-accepted.yaml lists it with a
reason (or the object carries an inline checkov skip with a reason), and every accepted finding is
printed with that reason. pip-audit reports a dependency it could not look up as "skipped" and
still exits 0; here any such dependency makes the `deps` part fail with a plain message, because
a check that did not happen is not a pass.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackctl import paths, tools
from stackctl.deploy import k8s
from stackctl.tools import ToolMissing

AUDIT_DIR = paths.ROOT / "audit"
ACCEPTED_FILE = AUDIT_DIR / "checkov-accepted.yaml"
# The Makefile exports AUDIT_VENV relative to the repo; checkov runs from temp dirs, so anchor it.
AUDIT_VENV = paths.ROOT / os.environ.get("AUDIT_VENV", ".venv-audit")
REQUIREMENTS = paths.ROOT / "requirements.txt"

# Exit statuses, so CI and people can tell "found problems" from "could not check".
OK, FINDINGS, NOT_CHECKED = 0, 1, 3


# ------------------------------------------------------------------------------------------------
# checkov

@dataclass(frozen=True)
class Accepted:
    check_id: str
    reason: str
    resources: tuple[str, ...] = ("*",)

    def covers(self, check_id: str, resource: str) -> bool:
        return check_id == self.check_id and any(fnmatch.fnmatchcase(resource, g) for g in self.resources)


@dataclass
class Finding:
    target: str
    check_id: str
    title: str
    resource: str
    file_path: str
    reason: str = ""          # for accepted / inline-skipped findings


@dataclass
class CheckovResult:
    failed: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    inline_skipped: list[Finding] = field(default_factory=list)
    stale: list[Accepted] = field(default_factory=list)
    passed: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stale


def load_accepted(path: Path = ACCEPTED_FILE) -> list[Accepted]:
    doc = yaml.safe_load(path.read_text()) or {}
    accepted = []
    for check_id, entry in doc.items():
        reason = str((entry or {}).get("reason", "")).strip()
        if not reason:
            raise ValueError(f"{path}: {check_id} has no reason; every accepted finding needs one")
        globs = tuple((entry or {}).get("resources") or ("*",))
        accepted.append(Accepted(check_id, reason, globs))
    return accepted


def checkov_bin() -> Path:
    exe = AUDIT_VENV / "bin" / "checkov"
    if not exe.exists():
        raise ToolMissing(f"checkov is not installed ({exe} missing): run `make audit-tools` "
                          "(installs audit/requirements.txt into .venv-audit, ~1 min)")
    return exe


def dockerfiles() -> list[Path]:
    found = {*paths.ROOT.glob("Dockerfile*"), *paths.ROOT.glob("docker/**/Dockerfile*")}
    return sorted(found)


def compose_files() -> list[Path]:
    return sorted({*paths.ROOT.glob("docker-compose*.yml"), *paths.ROOT.glob("compose*.yaml"),
                   *paths.ROOT.glob("docker-compose*.yaml")})


def render_all_overlays(out_dir: Path) -> list[Path]:
    """Every overlay with every component, one file each: every object that can be deployed."""
    files = []
    for overlay in k8s.overlays():
        path = out_dir / f"{overlay}.yaml"
        path.write_text(k8s.render(overlay, k8s.components()))
        files.append(path)
    return files


def run_checkov(target: str, frameworks: list[str], files: list[Path], cwd: Path) -> list[dict[str, Any]]:
    """checkov's JSON reports for `files`, offline (no guideline download, no upload)."""
    if not files:
        return []
    cmd = [str(checkov_bin()), "--framework", *frameworks, "--skip-download", "--output", "json", "--compact"]
    for f in files:
        cmd += ["--file", os.path.relpath(f, cwd)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    # checkov exits 1 when it found failures; anything else unparsable is a tool error.
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"checkov ({target}) printed no JSON (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}") from exc
    reports = data if isinstance(data, list) else [data]
    for report in reports:
        if report.get("summary", {}).get("parsing_errors"):
            raise RuntimeError(f"checkov ({target}) could not parse some files: {report['results'].get('parsing_errors')}")
    return reports


def classify(target: str, reports: list[dict[str, Any]], accepted: list[Accepted], result: CheckovResult,
             used: set[Accepted]) -> None:
    for report in reports:
        results = report.get("results") or {}
        result.passed += int((report.get("summary") or {}).get("passed", 0))
        for check in results.get("failed_checks") or []:
            finding = Finding(target, check["check_id"], check.get("check_name", ""), check.get("resource", ""),
                              check.get("file_path", ""))
            rule = next((a for a in accepted if a.covers(finding.check_id, finding.resource)), None)
            if rule is None:
                result.failed.append(finding)
            else:
                used.add(rule)
                finding.reason = rule.reason
                result.accepted.append(finding)
        for check in results.get("skipped_checks") or []:
            finding = Finding(target, check["check_id"], check.get("check_name", ""), check.get("resource", ""),
                              check.get("file_path", ""), (check.get("suppress_comment") or "").strip())
            result.inline_skipped.append(finding)
            if not finding.reason or finding.reason.lower().startswith("no comment"):
                # An inline skip without a reason is not an accepted finding.
                result.failed.append(finding)


def checkov_audit(accepted_file: Path = ACCEPTED_FILE) -> CheckovResult:
    accepted = load_accepted(accepted_file)
    result, used = CheckovResult(), set[Accepted]()
    with tempfile.TemporaryDirectory(prefix="audit-k8s-") as tmp:
        rendered = render_all_overlays(Path(tmp))
        targets = [
            ("Dockerfiles", ["dockerfile", "secrets"], dockerfiles(), paths.ROOT),
            # checkov has no Compose policies: compose files get its secrets scan (hard-coded keys,
            # passwords); their hardening is checked by tests/deploy (read-only, cap_drop, ports).
            ("compose", ["secrets"], compose_files(), paths.ROOT),
            ("kubernetes", ["kubernetes", "secrets"], rendered, Path(tmp)),
        ]
        for target, frameworks, files, cwd in targets:
            classify(target, run_checkov(target, frameworks, files, cwd), accepted, result, used)
    result.stale = [a for a in accepted if a not in used]
    return result


def print_checkov(result: CheckovResult) -> None:
    print(f"checkov: {result.passed} checks passed, {len(result.failed)} failed, "
          f"{len(result.accepted)} accepted, {len(result.inline_skipped)} skipped inline")
    by_check: dict[str, list[Finding]] = {}
    for f in result.accepted:
        by_check.setdefault(f.check_id, []).append(f)
    for check_id, findings in by_check.items():
        where = ", ".join(sorted({f"{f.resource} ({f.target})" for f in findings}))
        print(f"  ACCEPTED {check_id} {findings[0].title}\n    on: {where}\n    reason: {findings[0].reason}")
    for f in result.inline_skipped:
        print(f"  SKIPPED  {f.check_id} {f.resource} ({f.target}): {f.reason or 'NO REASON GIVEN'}")
    for f in result.failed:
        print(f"  FAILED   {f.check_id} {f.resource} ({f.target}, {f.file_path}): {f.title}")
    for a in result.stale:
        print(f"  STALE    {a.check_id}: listed in {ACCEPTED_FILE.relative_to(paths.ROOT)} but no longer "
              "found; remove the entry")
    print("checkov: PASS" if result.ok else "checkov: FAIL")


# ------------------------------------------------------------------------------------------------
# pip-audit

_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==[^=\s;]+(\s*;.*)?$")


def unpinned_lines(requirements: Path) -> list[str]:
    bad = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-") and not _PIN.match(line):
            bad.append(line)
    return bad


@dataclass
class DepsResult:
    status: int
    lines: list[str]


def pip_audit_bin() -> Path:
    return Path(tools.find("pip-audit", "`make venv` installs it from requirements.txt"))


def deps_audit(requirements: Path = REQUIREMENTS, timeout: int = 600) -> DepsResult:
    unpinned = unpinned_lines(requirements)
    if unpinned:
        return DepsResult(FINDINGS, [f"requirements not pinned with ==: {', '.join(unpinned)}"])
    cmd = [str(pip_audit_bin()), "--requirement", str(requirements), "--no-deps", "--disable-pip",
           "--format", "json", "--progress-spinner", "off"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return DepsResult(NOT_CHECKED, [f"pip-audit: NOT CHECKED: no answer within {timeout} s from the "
                                        "vulnerability database"])
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return DepsResult(NOT_CHECKED, ["pip-audit: NOT CHECKED: the vulnerability database could not be "
                                        "reached; nothing was audited. pip-audit said:", *tail])
    deps = report.get("dependencies") or []
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    lines = []
    for d in vulnerable:
        for v in d["vulns"]:
            fixes = ", ".join(v.get("fix_versions") or []) or "none yet"
            lines.append(f"  VULNERABLE {d['name']}=={d.get('version')}: {v.get('id')} (fixed in: {fixes})")
    if skipped:
        lines.append(f"pip-audit: NOT CHECKED: {len(skipped)} of {len(deps)} pinned packages could not be "
                     "looked up in the vulnerability database (PyPI's JSON API, https://pypi.org/pypi/<name>/"
                     "<version>/json, is unreachable or answers 404 from here), so no pass can be claimed. "
                     "First reason: " + skipped[0]["skip_reason"])
        lines.append("  run `make audit-deps` where https://pypi.org is reachable (or set "
                     "PIP_AUDIT_VULNERABILITY_SERVICE=osv with https://api.osv.dev reachable)")
        return DepsResult(NOT_CHECKED, lines)
    if vulnerable:
        lines.insert(0, f"pip-audit: {len(vulnerable)} of {len(deps)} packages have known vulnerabilities")
        return DepsResult(FINDINGS, lines)
    return DepsResult(OK, [f"pip-audit: PASS: {len(deps)} pinned packages checked, no known vulnerabilities"])


# ------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("part", choices=["checkov", "deps", "all"])
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    args = parser.parse_args(argv)
    status = OK
    if args.part in ("checkov", "all"):
        try:
            result = checkov_audit()
            print_checkov(result)
            status = max(status, OK if result.ok else FINDINGS)
        except ToolMissing as exc:
            print(f"checkov: NOT CHECKED: {exc}")
            status = max(status, NOT_CHECKED)
    if args.part in ("deps", "all"):
        try:
            deps = deps_audit(args.requirements)
            print("\n".join(deps.lines))
            status = max(status, deps.status)
        except ToolMissing as exc:
            print(f"pip-audit: NOT CHECKED: {exc}")
            status = max(status, NOT_CHECKED)
    return status


if __name__ == "__main__":
    sys.exit(main())

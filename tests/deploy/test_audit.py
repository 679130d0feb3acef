"""The offline part of `make audit`: checkov over Dockerfiles, compose files and every rendered
Kubernetes overlay, with every accepted finding carrying its reason; and the pip-audit wrapper's
promise never to report a pass it did not check (tested against canned pip-audit answers, since
the vulnerability database is not reachable offline).

checkov lives in .venv-audit (`make audit-tools`). Without it these tests FAIL, unless
AUDIT_ALLOW_NO_CHECKOV=1 is set to skip them on purpose."""
from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from stackctl.deploy import audit, k8s


@pytest.fixture(scope="module")
def checkov_available() -> None:
    if (audit.AUDIT_VENV / "bin" / "checkov").exists():
        return
    if os.environ.get("AUDIT_ALLOW_NO_CHECKOV") == "1":
        pytest.skip("checkov not installed and AUDIT_ALLOW_NO_CHECKOV=1")
    pytest.fail(f"checkov is not installed in {audit.AUDIT_VENV}: run `make audit-tools` "
                "(or set AUDIT_ALLOW_NO_CHECKOV=1 to skip the checkov tests deliberately)")


def test_every_accepted_finding_has_a_reason():
    doc = yaml.safe_load(audit.ACCEPTED_FILE.read_text())
    assert doc, "audit/checkov-accepted.yaml is empty"
    for check_id, entry in doc.items():
        assert check_id.startswith(("CKV_", "CKV2_")), check_id
        assert len(str(entry.get("reason", "")).split()) >= 8, f"{check_id}: give a real reason"
    assert len(audit.load_accepted()) == len(doc)


def test_checkov_passes_with_only_reasoned_and_live_acceptances(checkov_available):
    result = audit.checkov_audit()
    audit.print_checkov(result)
    assert not result.failed, [f"{f.check_id} {f.resource} ({f.target})" for f in result.failed]
    assert not result.stale, [a.check_id for a in result.stale]
    assert result.passed > 100, "checkov ran suspiciously few checks"
    assert {f.target for f in result.accepted} | {"compose"} >= {"kubernetes", "Dockerfiles", "compose"}
    for finding in result.accepted + result.inline_skipped:
        assert finding.reason


def test_checkov_flags_a_privileged_container(checkov_available, tmp_path):
    """The scan is not a no-op: the rendered Deployment made privileged and root fails it."""
    docs = [d for d in yaml.safe_load_all(k8s.render("cpu")) if d]
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(deployment))
    reports = audit.run_checkov("kubernetes", ["kubernetes"], [tmp_path / "bad.yaml"], tmp_path)
    failed = {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= failed  # privileged, allowPrivilegeEscalation


def test_checkov_secrets_scan_covers_compose_files(checkov_available, tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  app:\n    image: example/app:1.0\n    environment:\n"
                       "      AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE\n"
                       "      AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    reports = audit.run_checkov("compose", ["secrets"], [compose], tmp_path)
    assert any(r["results"]["failed_checks"] for r in reports)


def test_accepted_findings_are_scoped_and_stale_ones_fail():
    accepted = [audit.Accepted("CKV_K8S_43", "digest pinned at deploy time", ("Deployment.*",)),
                audit.Accepted("CKV_K8S_16", "an acceptance whose finding no longer exists")]
    report = {"summary": {"passed": 5}, "results": {"failed_checks": [
        {"check_id": "CKV_K8S_43", "check_name": "digest", "resource": "Deployment.ns.torchserve", "file_path": "x"},
        {"check_id": "CKV_K8S_43", "check_name": "digest", "resource": "Job.ns.locust", "file_path": "x"}]}}
    result, used = audit.CheckovResult(), set()
    audit.classify("kubernetes", [report], accepted, result, used)
    result.stale = [a for a in accepted if a not in used]
    assert [f.resource for f in result.accepted] == ["Deployment.ns.torchserve"]
    assert [f.resource for f in result.failed] == ["Job.ns.locust"]   # outside the accepted scope
    assert [a.check_id for a in result.stale] == ["CKV_K8S_16"] and not result.ok


# ------------------------------------------------------------------------------------------------
# pip-audit wrapper

def fake_pip_audit(tmp_path: Path, monkeypatch, stdout: str, exit_code: int = 0) -> None:
    script = tmp_path / "pip-audit"
    (tmp_path / "out.txt").write_text(stdout)
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'out.txt'}\necho 'some log line' >&2\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(audit, "pip_audit_bin", lambda: script)


def pinned(tmp_path: Path) -> Path:
    req = tmp_path / "requirements.txt"
    req.write_text("# pins\nrequests==2.34.2\npyyaml==6.0.4  # comment\n")
    return req


def test_unreachable_vulnerability_db_is_not_a_pass(tmp_path, monkeypatch):
    answer = {"dependencies": [
        {"name": "requests", "skip_reason": "Dependency not found on PyPI and could not be audited: requests (2.34.2)"},
        {"name": "pyyaml", "version": "6.0.4", "vulns": []}]}
    fake_pip_audit(tmp_path, monkeypatch, json.dumps(answer))
    result = audit.deps_audit(pinned(tmp_path))
    assert result.status == audit.NOT_CHECKED
    assert "NOT CHECKED" in result.lines[0] and "1 of 2" in result.lines[0]


def test_pip_audit_crash_is_not_a_pass(tmp_path, monkeypatch):
    fake_pip_audit(tmp_path, monkeypatch, "Traceback ... ConnectionError: api.osv.dev", exit_code=1)
    result = audit.deps_audit(pinned(tmp_path))
    assert result.status == audit.NOT_CHECKED and "could not be reached" in result.lines[0]


def test_known_vulnerability_fails(tmp_path, monkeypatch):
    answer = {"dependencies": [
        {"name": "requests", "version": "2.34.2", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["2.35.0"]}]},
        {"name": "pyyaml", "version": "6.0.4", "vulns": []}]}
    fake_pip_audit(tmp_path, monkeypatch, json.dumps(answer), exit_code=1)
    result = audit.deps_audit(pinned(tmp_path))
    assert result.status == audit.FINDINGS and any("GHSA-xxxx" in line for line in result.lines)


def test_clean_audit_passes(tmp_path, monkeypatch):
    answer = {"dependencies": [{"name": "requests", "version": "2.34.2", "vulns": []},
                               {"name": "pyyaml", "version": "6.0.4", "vulns": []}]}
    fake_pip_audit(tmp_path, monkeypatch, json.dumps(answer))
    result = audit.deps_audit(pinned(tmp_path))
    assert result.status == audit.OK and "2 pinned packages" in result.lines[0]


def test_unpinned_requirement_fails_before_auditing(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("requests>=2\nnumpy==2.4.6\n")
    result = audit.deps_audit(req)
    assert result.status == audit.FINDINGS and "requests>=2" in result.lines[0]


def test_project_requirements_are_all_pinned():
    assert audit.unpinned_lines(audit.REQUIREMENTS) == []
    assert audit.unpinned_lines(audit.AUDIT_DIR / "requirements.txt") == []

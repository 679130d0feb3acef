"""Third-party images are pinned by digest, or listed with a reason in docker/unpinned-images.txt.

First-party images are this project's own (`torchserve-stack/...`): built here, and deployed by the
digests `make push` records (k8s/overlays/*/release, tests/deploy/test_release.py). Every other
image a deploy file references is third-party: its reference must carry `@sha256:<digest>`, so a
re-tagged upstream image cannot change what runs, or be an allow-list entry, which says why not.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from stackctl import paths

ROOT = paths.ROOT
ALLOW = ROOT / "docker" / "unpinned-images.txt"
FIRST_PARTY = re.compile(r"(^|/)torchserve-stack/")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# `image: x` in compose and k8s files; `FROM x` and `ARG *IMAGE=x` in Dockerfiles.
IMAGE_KEY = re.compile(r"^\s*-?\s*image:\s*[\"']?([^\s\"'#]+)", re.M)
FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)", re.M)
ARG_IMAGE = re.compile(r"^ARG\s+\w*IMAGE=(\S+)", re.M)


def default_of(reference: str) -> str:
    """`${VAR:-default}` -> default; a reference without a variable as it is."""
    match = re.fullmatch(r"\$\{\w+:?-([^}]+)\}", reference)
    return match[1] if match else reference


def deploy_files() -> list[Path]:
    files = sorted(ROOT.glob("docker-compose*.yml")) + sorted((ROOT / "k8s").rglob("*.yaml"))
    return files + sorted(p for p in (ROOT / "docker").iterdir() if p.name.endswith("Dockerfile"))


def references() -> dict[str, list[str]]:
    """Every image reference -> the files naming it. Stage names and ARG-built names are not images."""
    found: dict[str, list[str]] = {}
    for path in deploy_files():
        text = path.read_text()
        if path.name.endswith("Dockerfile"):
            stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))
            refs = [r for r in FROM.findall(text) if r not in stages and "$" not in r] + ARG_IMAGE.findall(text)
        else:
            refs = [default_of(r) for r in IMAGE_KEY.findall(text)]
            refs += kustomize_images(text) if path.name == "kustomization.yaml" else []
        for ref in refs:
            found.setdefault(ref, []).append(str(path.relative_to(ROOT)))
    return found


def kustomize_images(text: str) -> list[str]:
    """A kustomization's `images:` entries, as the reference each one makes."""
    refs = []
    for doc in yaml.safe_load_all(text):
        for entry in (doc or {}).get("images", []) or []:
            name = entry.get("newName", entry["name"])
            refs.append(f"{name}@{entry['digest']}" if "digest" in entry else f"{name}:{entry.get('newTag', 'latest')}")
    return refs


def allow_list() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in ALLOW.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            ref, _, reason = line.strip().partition(" ")
            assert len(reason.strip()) > 20, f"{ref}: the allow-list needs a reason"
            assert ref not in entries, f"{ref}: listed twice"
            entries[ref] = reason.strip()
    return entries


def test_the_scan_sees_every_kind_of_reference() -> None:
    found = references()
    assert "torchserve-stack/torchserve:gpu" in found, "compose image:"
    assert "torchserve-stack/debian:bookworm" in found, "Dockerfile ARG BASE_IMAGE default"
    assert "prom/prometheus:v2.53.4" in found, "a ${VAR:-default} image"
    assert any(f.startswith("k8s/") for files in found.values() for f in files), "k8s image: and images:"


def test_every_third_party_image_is_pinned_by_digest_or_listed_with_a_reason() -> None:
    allowed = allow_list()
    for ref, files in sorted(references().items()):
        if FIRST_PARTY.search(ref):
            continue
        assert DIGEST.search(ref) or ref in allowed, (
            f"{ref} ({', '.join(files)}): pin it by digest (name:tag@sha256:...) or list it with a "
            f"reason in {ALLOW.relative_to(ROOT)}")


def test_every_allow_list_entry_is_still_referenced_and_unpinned() -> None:
    found = references()
    for ref in allow_list():
        assert ref in found, f"{ref}: listed in {ALLOW.name} but referenced nowhere; delete the line"
        assert not DIGEST.search(ref) and not FIRST_PARTY.search(ref), ref

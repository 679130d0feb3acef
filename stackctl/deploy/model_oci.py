"""Model archives as OCI artifacts: pushed apart from the image, pulled by digest into a model store.

    python -m stackctl.deploy.model_oci push --registry r [--store model_store] [--record FILE] [--plain-http]
    python -m stackctl.deploy.model_oci pull --refs FILE --dest /app/model_store [--plain-http]
    python -m stackctl.deploy.model_oci fetch URI DEST [URI DEST ...]        # KServe's storage initializer

push: every archive of the store (every version: <name>.mar and <name>@<version>.mar) becomes one
artifact, r/torchserve-stack/models/<name>:<version>, whose single layer is the .mar (media type
application/vnd.torchserve.mar, file name kept in the standard title annotation, so the default
version stays <name>.mar). The manifest digests the registry returned are written to --record,
one `repository@sha256:...` a line: what k8s/components/model-oci deploys.

pull: the init container of k8s/components/model-oci. Each reference is pulled by digest, and
every file is checked against its layer's sha256 before it is moved into the store: a registry
(or a path in between) that serves other bytes fails the pod's start instead of serving them.

fetch: the same pull, called as KServe calls a storage initializer (k8s/kserve/: its
ClusterStorageContainer for `torchserve-oci://` URIs): arguments in pairs, a storageUri and the
folder to fill. The URI is `torchserve-oci://<repository>@sha256:<digest>`, one pinned artifact.

oras-py (PyPI `oras`) speaks the registry protocol and reads credentials from a Docker config
(~/.docker/config.json, e.g. a mounted registry Secret). --plain-http (or
MODEL_REGISTRY_PLAIN_HTTP=1, for the init container): registries on plain HTTP, loopback tests.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from stackctl import paths
from stackctl.catalog.archive_files import NotAnArchive, read_manifest

MEDIA_TYPE = "application/vnd.torchserve.mar"
REPOSITORY = "torchserve-stack/models"
TITLE = "org.opencontainers.image.title"
PINNED = re.compile(r"(?P<repo>[a-z0-9][a-z0-9._:/-]*)@(?P<digest>sha256:[0-9a-f]{64})")
# The storageUri scheme of k8s/kserve (not oci://: KServe takes every oci:// and oci+<mode>:// URI
# for an image to mount as a modelcar, and these artifacts are single .mar blobs, not images).
URI_SCHEME = "torchserve-oci://"


class ModelOciError(RuntimeError):
    """An archive that cannot be pushed, or a pull that did not deliver the pinned bytes."""


def client(plain_http: bool) -> Any:
    try:
        import oras.client  # PyPI `oras` (requirements.txt); imported here so the rest needs none
    except ImportError:
        raise ModelOciError("oras-py is not installed: pip install -r requirements.txt") from None
    return oras.client.OrasClient(insecure=plain_http)


def archive_identity(mar: Path) -> tuple[str, str]:
    """(model name, version) from the archive's own MAR-INF/MANIFEST.json."""
    try:
        model = read_manifest(mar)["model"]
        return model["modelName"], str(model.get("modelVersion") or "1.0")
    except (NotAnArchive, KeyError) as exc:
        raise ModelOciError(str(exc)) from None


def tag_for(version: str) -> str:
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", version)
    return tag if tag[:1].isalnum() or tag[:1] == "_" else f"v{tag}"


def push(registry: str, store: Path, plain_http: bool = False) -> list[str]:
    """Push every archive of `store`; the `repo@digest` of each, in file-name order."""
    archives = sorted(store.glob("*.mar"))
    if not archives:
        raise ModelOciError(f"no archives in {store}: make models first")
    oras = client(plain_http)
    pinned = []
    for mar in archives:
        name, version = archive_identity(mar)
        repo = f"{registry.rstrip('/')}/{REPOSITORY}/{name}"
        response = oras.push(target=f"{repo}:{tag_for(version)}", files=[f"{mar}:{MEDIA_TYPE}"],
                             disable_path_validation=True, quiet=True,
                             manifest_annotations={"org.opencontainers.image.version": version,
                                                   "org.pytorch.torchserve.model.name": name})
        digest = response.headers.get("Docker-Content-Digest", "")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ModelOciError(f"{repo}:{tag_for(version)}: the registry reported no digest")
        pinned.append(f"{repo}@{digest}")
        print(f"pushed {mar.name} -> {repo}:{tag_for(version)} = {digest}")
    return pinned


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def pull(refs: list[str], dest: Path, plain_http: bool = False) -> list[Path]:
    """Pull each `repo@sha256:...` into `dest`, every file checked against its layer digest."""
    oras = client(plain_http)
    dest.mkdir(parents=True, exist_ok=True)
    placed = []
    for ref in refs:
        if not PINNED.fullmatch(ref):
            raise ModelOciError(f"{ref!r} is not pinned by digest (repository@sha256:<64 hex>)")
        manifest = oras.get_manifest(ref)
        layers = [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == MEDIA_TYPE]
        if not layers:
            raise ModelOciError(f"{ref} holds no {MEDIA_TYPE} layer")
        with tempfile.TemporaryDirectory(dir=dest, prefix=".pull-") as tmp:
            for layer in layers:
                title = Path((layer.get("annotations") or {}).get(TITLE, "")).name
                if not title.endswith(".mar"):
                    raise ModelOciError(f"{ref}: layer {layer['digest']} names no .mar file")
                blob = Path(tmp, title)
                oras.download_blob(ref.split("@")[0], layer["digest"], str(blob))
                if sha256_of(blob) != layer["digest"]:
                    raise ModelOciError(f"{ref}: {title} does not match its digest {layer['digest']}")
                shutil.move(str(blob), dest / title)
                placed.append(dest / title)
                print(f"pulled {ref} -> {dest / title}")
    return placed


def ref_of_uri(uri: str) -> str:
    """`torchserve-oci://repo@sha256:...` -> `repo@sha256:...` (pinned by digest, or refused)."""
    if not uri.startswith(URI_SCHEME):
        raise ModelOciError(f"{uri!r} is not a {URI_SCHEME} URI")
    ref = uri[len(URI_SCHEME):]
    if not PINNED.fullmatch(ref):
        raise ModelOciError(f"{uri!r} is not pinned by digest ({URI_SCHEME}repository@sha256:<64 hex>): "
                            "run `make push-models REGISTRY=r` and `make kserve-generate`")
    return ref


def fetch(pairs: list[str], plain_http: bool = False) -> list[Path]:
    """KServe's storage-initializer call: URI DEST [URI DEST ...], each URI pulled into its DEST."""
    if not pairs or len(pairs) % 2:
        raise ModelOciError(f"expected URI DEST pairs, got {len(pairs)} argument(s)")
    jobs = [(ref_of_uri(uri), Path(dest)) for uri, dest in zip(pairs[::2], pairs[1::2], strict=True)]
    placed: list[Path] = []
    for ref, dest in jobs:
        placed += pull([ref], dest, plain_http)
    return placed


def read_refs(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_push = sub.add_parser("push", help="push every archive of the store")
    p_push.add_argument("--registry", required=True)
    p_push.add_argument("--store", type=Path, default=paths.MODEL_STORE)
    p_push.add_argument("--record", type=Path, help="write the pushed repo@digest references here")
    p_pull = sub.add_parser("pull", help="pull pinned archives into a model store")
    p_pull.add_argument("--refs", type=Path, required=True, help="a file of repo@sha256:... lines")
    p_pull.add_argument("--dest", type=Path, required=True)
    p_fetch = sub.add_parser("fetch", help="KServe storage initializer: pull each torchserve-oci:// URI into its folder")
    p_fetch.add_argument("pairs", nargs="+", metavar="URI DEST", help=f"{URI_SCHEME}repo@sha256:... and a folder")
    for p in (p_push, p_pull, p_fetch):
        p.add_argument("--plain-http", action="store_true", help="registry on plain HTTP (loopback tests)")
    args = parser.parse_args(argv)
    args.plain_http = args.plain_http or os.environ.get("MODEL_REGISTRY_PLAIN_HTTP") == "1"
    try:
        if args.command == "push":
            pinned = push(args.registry, args.store, args.plain_http)
            if args.record:
                args.record.write_text("# Written by `make push-models` (stackctl/deploy/model_oci.py): the archives\n"
                                       "# k8s/components/model-oci pulls, by digest.\n" + "\n".join(pinned) + "\n")
        elif args.command == "fetch":
            fetch(args.pairs, args.plain_http)
        else:
            refs = read_refs(args.refs)
            if not refs:
                raise ModelOciError(f"{args.refs} lists no archives: run make push-models first")
            pull(refs, args.dest, args.plain_http)
    except (ModelOciError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # oras/requests errors: one clear line, not a traceback, in a pod's log
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

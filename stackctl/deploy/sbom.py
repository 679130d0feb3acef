"""An SBOM per image (`make sbom`): CycloneDX JSON in build/sbom/<image>.cdx.json.

    python -m stackctl.deploy.sbom [--image torchserve-stack/torchserve:cpu ...] [--out build/sbom]

For each image: its Python environment (/opt/venv) through cyclonedx-py (PyPI cyclonedx-bom, in
its own venv .venv-sbom: audit/sbom-requirements.txt), and its Debian packages from the image's
dpkg database, as pkg:deb components; the image itself (name and content digest, the ID `docker
push` preserves in the config) is the SBOM's subject. The packages are read from the image, not
from requirements.txt, so the SBOM lists what shipped.

cyclonedx-py `environment` needs a Python interpreter to ask for its sys.path: the image's
site-packages metadata (*.dist-info only, a few MB, no code) is copied into a throw-away venv
made with this host's python3, which is then what it inspects.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from stackctl import paths

IMAGES = ("torchserve-stack/torchserve:gpu", "torchserve-stack/torchserve:cpu", "torchserve-stack/locust:latest")
OUT = paths.ROOT / "build" / "sbom"
CYCLONEDX = Path(os.environ.get("CYCLONEDX_PY", str(paths.ROOT / ".venv-sbom" / "bin" / "cyclonedx-py")))
SITE = "/opt/venv/lib/python3.11/site-packages"


class SbomError(RuntimeError):
    """A missing image or tool, or a command that failed."""


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, timeout=600, check=False, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise SbomError(f"{' '.join(argv[:4])} ...: {err.strip()[-1500:]}")
    return proc


def image_id(image: str) -> str:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True,
                          text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise SbomError(f"{image} is not built here: `make push` (or docker/build.sh) builds every image")
    return proc.stdout.strip()


def python_components(image: str, tmp: Path) -> dict:
    """CycloneDX of the image's /opt/venv, from its dist-info metadata."""
    venv = tmp / "venv"
    host_python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    run([host_python, "-m", "venv", "--without-pip", str(venv)])
    site = next((venv / "lib").glob("python3*/site-packages"))
    tar = run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", f"cd {SITE} && tar -c *.dist-info"]).stdout
    run(["tar", "-x", "-C", str(site)], input=tar)
    out = tmp / "python.cdx.json"
    if not CYCLONEDX.exists():
        raise SbomError(f"no {CYCLONEDX}: `make sbom` installs cyclonedx-bom into .venv-sbom")
    run([str(CYCLONEDX), "environment", "--of", "JSON", "--output-reproducible", "-o", str(out), str(venv / "bin" / "python")])
    return json.loads(out.read_text())


def debian_components(image: str) -> list[dict]:
    fmt = r"${Package}\t${Version}\t${Architecture}\t${source:Package}\n"
    listing = run(["docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f", fmt]).stdout.decode()
    components = []
    for line in sorted(listing.splitlines()):
        name, version, arch, source = line.split("\t")
        purl = f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-12"
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl,
                           "properties": [{"name": "debian:source", "value": source}]})
    return components


def sbom(image: str) -> dict:
    digest = image_id(image)
    with tempfile.TemporaryDirectory(prefix="sbom-") as tmp:
        bom = python_components(image, Path(tmp))
    bom["components"] = bom.get("components", []) + debian_components(image)
    name, _, tag = image.partition(":")
    bom.setdefault("metadata", {})["component"] = {
        "type": "container", "bom-ref": f"{image}@{digest}", "name": name, "version": tag or "latest",
        "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]}
    return bom


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", action="append", help=f"default: {', '.join(IMAGES)}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for image in args.image or IMAGES:
            bom = sbom(image)
            path = args.out / (image.replace("/", "_").replace(":", "_") + ".cdx.json")
            path.write_text(json.dumps(bom, indent=1) + "\n")
            print(f"sbom: {path} ({len(bom['components'])} components)")
    except SbomError as exc:
        print(f"sbom: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

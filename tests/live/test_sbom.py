"""`make sbom` on real images: one CycloneDX document per image, valid against the CycloneDX 1.6
schema (cyclonedx-python-lib's validator), naming the image by its content digest and listing
what the image holds (its Python packages at their installed versions, its Debian packages)."""
from __future__ import annotations

import json
import subprocess

from tests.live.dockerlib import ROOT, docker

SBOM_DIR = ROOT / "build" / "sbom"
VALIDATE = """
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
sys.exit(str(error) if error else 0)
"""


def installed(image: str, package: str) -> str:
    return docker("run", "--rm", "--entrypoint", "python", image, "-c",
                  f"import importlib.metadata as m; print(m.version('{package}'))").stdout.strip()


def test_make_sbom_writes_a_valid_sbom_per_image(images) -> None:
    wanted = [images["torchserve"], images["locust"]]
    result = subprocess.run(["make", "--no-print-directory", "sbom", f"SBOM_IMAGES={' '.join(wanted)}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for image in wanted:
        path = SBOM_DIR / (image.replace("/", "_").replace(":", "_") + ".cdx.json")
        check = subprocess.run([str(ROOT / ".venv-sbom" / "bin" / "python"), "-c", VALIDATE, str(path)],
                               capture_output=True, text=True, timeout=120, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        bom = json.loads(path.read_text())
        subject = bom["metadata"]["component"]
        image_id = docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        assert subject["type"] == "container" and subject["hashes"][0]["content"] == image_id.removeprefix("sha256:")
        versions = {c["name"].lower(): c.get("version") for c in bom["components"]}
        assert versions["torch"] == installed(image, "torch")
        assert any(c["purl"].startswith("pkg:deb/debian/python3.11@") for c in bom["components"] if "purl" in c)
    assert versions.get("locust") == installed(images["locust"], "locust")

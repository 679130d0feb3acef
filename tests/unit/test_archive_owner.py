"""One owner for archives: stackctl.catalog.archive builds any archive into any store (skipping one whose
inputs have not changed) and reads any archive's config; no other module opens or builds one."""
from __future__ import annotations

import ast
from pathlib import Path

from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.archive import Contents, archive
from stackctl.catalog.archive_files import read_config, read_manifest
from stackctl.catalog.specs import get_spec

PACKAGES = ("handlers", "models", "stackctl", "loadtest", "bench")
OWNER = paths.ROOT / "stackctl" / "catalog" / "archive.py"
# Its reading half, apart so that the serving image (no jsonschema for the spec loader) can read
# archives too: versions, wait bounds, the model puller.
ALSO_READS = {paths.ROOT / "stackctl" / "catalog" / "archive_files.py"}


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (paths.ROOT / package).rglob("*.py"))


def test_only_the_archive_module_opens_or_builds_archives() -> None:
    found = []
    for source in _sources():
        text = source.read_text()
        imports = {alias.name for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import | ast.ImportFrom)
                   for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        if source != OWNER and "torch-model-archiver" in text:
            found.append(f"{paths.shown(source)} runs torch-model-archiver")
        if source not in {OWNER, *ALSO_READS} and "zipfile" in imports:
            found.append(f"{paths.shown(source)} opens archives (zipfile)")
    assert not found, "\n".join(found)


def test_any_spec_is_archived_into_any_store_once(tmp_path: Path) -> None:
    spec = get_spec("digits")
    contents = Contents(spec.model_config({"workers_on_host": 1}), {"labels.json": spec.labels_path},
                        "built by tests/unit/test_archive_owner.py", note="a test's store")
    store = tmp_path / "model_store"
    built = archive(spec, store, contents)
    assert built == store / "digits.mar" and (store / ".digits.mar.fingerprint").is_file()
    first = built.stat().st_mtime_ns
    assert archive(spec, store, contents) == built and built.stat().st_mtime_ns == first  # unchanged: skipped
    config = read_config(built)
    assert config == contents.config
    assert read_manifest(built)["model"]["modelName"] == "digits"
    assert ServingSettings.from_config(config) == spec.serving
    assert HandlerSettings.from_config(config["handler"]).image == spec.handler.image

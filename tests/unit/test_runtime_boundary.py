"""Only the TorchServe adapter imports TorchServe (`ts`): the model core, the input stage, the
decoders and everything outside handlers/ stay runtime-neutral, so a second runtime (Triton) can
sit over the same core. Read from the source (AST), so imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

from stackctl import paths

SCANNED = ("handlers", "models", "bench", "loadtest", "stackctl")
# The modules allowed to import TorchServe, each for its one job:
ADAPTER_MODULES = {
    "handlers/base.py",      # the TorchServe handler class over handlers.core.ModelCore
    "handlers/metrics.py",   # the core's metrics through TorchServe's metrics cache
    "handlers/stream_classifier.py",  # the TorchServe handler class over handlers.stream_core.StreamCore
    "stackctl/catalog/inprocess.py", # runs an archive's handler in process with TorchServe's own Context
}


def imports_of(source: str) -> set[str]:
    """Top-level package names a module imports, anywhere in its body (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def torchserve_importers() -> set[str]:
    return {path.relative_to(paths.ROOT).as_posix()
            for package in SCANNED for path in sorted((paths.ROOT / package).rglob("*.py"))
            if "ts" in imports_of(path.read_text(encoding="utf-8"))}


def test_only_the_adapter_modules_import_torchserve() -> None:
    assert torchserve_importers() - ADAPTER_MODULES == set()


def test_the_named_adapter_modules_exist() -> None:
    # A renamed adapter must be renamed here too, not silently drop out of the allowed list.
    assert all((paths.ROOT / module).is_file() for module in ADAPTER_MODULES)


def test_the_scan_sees_every_spelling_of_a_torchserve_import(tmp_path: Path) -> None:
    for line in ("import ts", "import ts.context", "from ts.context import Context",
                 "def f():\n    from ts.metrics.metric_type_enum import MetricTypes"):
        assert "ts" in imports_of(line), line
    assert "ts" not in imports_of("import tsv\nfrom tests import ts\nfrom . import ts")


# The Triton adapter's modules: the only ones that import the Python backend's utilities (which
# exist only inside its stub process).
TRITON_MODULES = {"handlers/triton_model.py", "handlers/triton_metrics.py"}


def test_only_the_triton_adapter_imports_the_python_backend() -> None:
    importers = {path.relative_to(paths.ROOT).as_posix()
                 for package in SCANNED for path in sorted((paths.ROOT / package).rglob("*.py"))
                 if "triton_python_backend_utils" in imports_of(path.read_text(encoding="utf-8"))}
    assert importers == TRITON_MODULES

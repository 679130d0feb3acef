"""What the OIP gateway says about the models it fronts: the catalog read from the model store,
and the server and model metadata of the Open Inference Protocol (KServe v2), as plain dicts that
the REST routes (stackctl.serve.oip_rest) answer as JSON and the gRPC service
(stackctl.serve.oip_grpc) copies into its messages, so both say the same thing.

The catalog is read once at start: TorchServe serves exactly the archives of its store (the
model API is closed, config.properties enable_model_api=false). Each archive's task kind (the
input section its handler settings write: `image` or `text`) and top_k come from its
model-config.yaml; the tensors they imply are handlers.oip_contract's, the one place the handlers
validate against too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers import oip_contract
from handlers.settings import HandlerSettings
from stackctl.catalog import versions
from stackctl.catalog.archive_files import read_config, read_manifest

SERVER_NAME = "torchserve-stack"
SERVER_VERSION = "0.1.0"  # pyproject.toml's version
EXTENSIONS = ("binary_tensor_data",)
DEFAULT_VERSION = "1.0"


class UnknownModel(LookupError):
    """A model or version this server does not serve; str() is the OIP error text (404)."""


@dataclass(frozen=True)
class ServedModel:
    """One archive of the store: a version of a model."""

    name: str
    version: str
    kind: oip_contract.Kind
    top_k: int
    backend: str

    @property
    def platform(self) -> str:
        return f"torchserve_{self.backend}"


@dataclass(frozen=True)
class Catalog:
    """{model: {version: ServedModel}} and each model's default version (that of `<name>.mar`,
    which the launchers register first: stackctl.catalog.versions)."""

    models: dict[str, dict[str, ServedModel]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            raise UnknownModel(f"model_not_found: model {name!r} is not served here "
                               f"(served: {', '.join(sorted(self.models)) or 'none'})")
        if version is None:
            return served[self.defaults[name]]
        if version not in served:
            raise UnknownModel(f"model_version_not_found: model {name!r} has no version {version!r} "
                               f"(versions: {', '.join(sorted(served))})")
        return served[version]


def archive_version(archive: Path) -> str:
    """The version TorchServe serves an archive as (its default, 1.0, for a manifest without one)."""
    return str(read_manifest(archive)["model"].get("modelVersion", DEFAULT_VERSION))


def served_versions(store: Path) -> dict[str, list[str]]:
    """{model: [version, ...]} of the archives in `store`."""
    served: dict[str, list[str]] = {}
    for archive in sorted(Path(store).glob("*.mar")):
        served.setdefault(versions.model_name(archive), []).append(archive_version(archive))
    return served


def archive_model(archive: Path) -> ServedModel:
    handler = read_config(archive).get("handler") or {}
    kind = oip_contract.task_kind(handler, read_manifest(archive)["model"].get("handler"))
    return ServedModel(name=versions.model_name(archive), version=archive_version(archive), kind=kind,
                       top_k=oip_contract.handler_top_k(handler),
                       backend=HandlerSettings.from_config(handler).backend)


def read_catalog(store: Path) -> Catalog:
    catalog = Catalog()
    for archive in versions.load_order(Path(store)):
        model = archive_model(Path(store) / archive)
        catalog.models.setdefault(model.name, {})[model.version] = model
        # load_order lists `<name>.mar` first: the first version seen is the default.
        catalog.defaults.setdefault(model.name, model.version)
    return catalog


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


def model_metadata(catalog: Catalog, name: str, version: str | None = None) -> dict[str, Any]:
    """The OIP model metadata; raises UnknownModel. `versions` lists every version served."""
    model = catalog.get(name, version)
    inputs, outputs = oip_contract.tensors(model.kind, model.top_k)
    return {"name": model.name, "versions": sorted(catalog.models[name]), "platform": model.platform,
            "inputs": inputs, "outputs": outputs}

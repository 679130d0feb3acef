"""Two versions of one model, served side by side: which archive is the default.

A spec `config/models/<name>.yaml` is archived as `<name>.mar`, another version
`<name>@<version>.yaml` as `<name>@<version>.mar`; all carry the model name `<name>` and their own
version, so TorchServe serves each at /predictions/<name>/<version>. /predictions/<name> goes to
the default version, and TorchServe 0.12 makes that the version it registered first, in the order
the file system lists the store (File.listFiles, unsorted): not something a user chooses. So once
the server is ready, the launchers (native and the container's) name the default through the
management API: the version of `<name>.mar`. `PUT .../set-default` works with the model API
closed (enable_model_api=false guards registering and deleting only).
"""
from __future__ import annotations

import urllib.request
from pathlib import Path

from stackctl.catalog.archive_files import read_manifest

SEPARATOR = "@"


def model_name(archive: Path) -> str:
    """The model an archive in the store serves: `digits` for digits.mar and digits@2.0.mar."""
    return archive.stem.split(SEPARATOR, 1)[0]


def archive_version(archive: Path) -> str:
    return str(read_manifest(archive)["model"]["modelVersion"])


def default_versions(store: Path) -> dict[str, str]:
    """{model: version of <model>.mar} for each model with more than one archive in `store`."""
    archives = sorted(Path(store).glob("*.mar"))
    versioned = {model_name(a) for a in archives if SEPARATOR in a.stem}
    return {name: archive_version(Path(store) / f"{name}.mar") for name in sorted(versioned)
            if (Path(store) / f"{name}.mar").is_file()}


def load_order(store: Path) -> list[str]:
    """The archives of `store` in the order TorchServe must register them: defaults first."""
    archives = sorted(Path(store).glob("*.mar"))
    return [a.name for a in archives if SEPARATOR not in a.stem] + [a.name for a in archives if SEPARATOR in a.stem]


def ordered_models(command: list[str]) -> list[str]:
    """`command` with `--models all` replaced by the store's archives in load_order, when the
    store holds several versions of a model (otherwise the order does not matter)."""
    if "--model-store" not in command or "--models" not in command:
        return command
    at = command.index("--models") + 1
    store = Path(command[command.index("--model-store") + 1])
    if at >= len(command) or command[at].lower() != "all" or not default_versions(store):
        return command
    return [*command[:at], *load_order(store), *command[at + 1:]]


def set_default(management_url: str, name: str, version: str, token: str | None = None,
                timeout: float = 10.0) -> None:
    request = urllib.request.Request(f"{management_url.rstrip('/')}/models/{name}/{version}/set-default",
                                     method="PUT")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 (loopback/cluster URL)
        pass


def apply_default_versions(management_url: str, store: Path, token: str | None = None) -> dict[str, str]:
    """Make <name>.mar's version the default of every model served in several versions."""
    defaults = default_versions(store)
    for name, version in defaults.items():
        set_default(management_url, name, version, token)
    return defaults

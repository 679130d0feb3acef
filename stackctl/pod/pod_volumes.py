"""A container's volumeMounts as `docker run` arguments: emptyDir as an exec tmpfs, ConfigMap
volumes as files staged by the runner and bind-mounted read-only, an optional Secret that the
rendered output does not hold as the empty folder a kubelet mounts for it.

An emptyDir that several containers of the pod mount (an init container fills it, the server
reads it) cannot be a `--tmpfs`: each would be a file system of its own. It becomes a named Docker
volume of the local driver with type tmpfs and the same options (`shared_volumes`), which the
runner creates before the first container, keeps mounted by a holder container for the pod's life
(a tmpfs volume is emptied when no container mounts it; stackctl/pod/pod_container.py), and removes
with the pod.

Part of the pod-spec -> `docker run` translation (stackctl/pod/pod_translate.py holds the whole mapping).
"""
from __future__ import annotations

from typing import Any

from stackctl.pod.pod_fields import TranslationError, quantity

EMPTYDIR_MODE = "2777"           # kubelet: 0777 for a disk emptyDir, plus setgid for fsGroup


def configmaps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


def secret_names(docs: list[dict[str, Any]]) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d.get("kind") == "Secret"}


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def tmpfs_options(volume: dict[str, Any], fs_group: int | None) -> list[str]:
    """An emptyDir's mount options: exec (kubelet emptyDirs are; Docker's --tmpfs is noexec by
    default, and TorchServe silently drops from epoll and Unix sockets to NIO and TCP on a noexec
    /tmp), the sizeLimit, and the group fsGroup gives."""
    options = ["rw", "exec", "nosuid", "nodev", f"mode={EMPTYDIR_MODE}"]
    size = (volume["emptyDir"] or {}).get("sizeLimit")
    if size is not None:
        options.append(f"size={int(quantity(size))}")
    if fs_group is not None:
        options.append(f"gid={fs_group}")
    if (volume["emptyDir"] or {}).get("medium") not in (None, "", "Memory"):
        raise TranslationError(f"emptyDir {volume['name']}: medium {volume['emptyDir']['medium']} not translated")
    return options


def shared_volumes(spec: dict[str, Any], prefix: str, fs_group: int | None) -> dict[str, tuple[str, list[str]]]:
    """emptyDir name -> (Docker volume name, `docker volume create` options) for every emptyDir
    that more than one container of the pod mounts."""
    users: dict[str, int] = {}
    for c in all_containers(spec):
        for name in {m["name"] for m in c.get("volumeMounts") or []}:
            users[name] = users.get(name, 0) + 1
    shared = {}
    for volume in spec.get("volumes") or []:
        if "emptyDir" in volume and users.get(volume["name"], 0) > 1:
            options = ",".join(o for o in tmpfs_options(volume, fs_group) if o != "rw")
            shared[volume["name"]] = (f"{prefix}-{volume['name']}",
                                      ["--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                                       "--opt", f"o={options}"])
    return shared


def volume_args(container: dict[str, Any], spec: dict[str, Any], maps: dict[str, dict[str, str]],
                fs_group: int | None, shared: dict[str, tuple[str, list[str]]] | None = None,
                secrets: set[str] | frozenset[str] = frozenset()) -> tuple[list[str], dict[str, str], list[str]]:
    """(docker arguments, files to stage, notes) for every volumeMount of the container. Staged
    files live under volumes/<volume>/ of the caller's staging folder; the bind sources are written
    as `@STAGING@/...`, which the runner replaces with that folder. `shared` (shared_volumes)
    names the emptyDirs mounted as Docker volumes."""
    shared = shared or {}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    args: list[str] = []
    files: dict[str, str] = {}
    notes: list[str] = []
    empty_dir_mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise TranslationError(f"volumeMount {mount['name']} names no volume of the pod")
        target = mount["mountPath"]
        if mount["name"] in shared:
            if mount.get("subPath"):
                raise TranslationError(f"emptyDir {mount['name']} mounted with subPath: not translated")
            readonly = ",readonly" if mount.get("readOnly") else ""
            args += ["--mount", f"type=volume,source={shared[mount['name']][0]},target={target}{readonly}"]
        elif "emptyDir" in volume:
            if mount["name"] in empty_dir_mounts or mount.get("subPath"):
                # Two tmpfs mounts would be two separate file systems, not one shared volume.
                raise TranslationError(f"emptyDir {mount['name']} mounted twice or with subPath: not translated")
            empty_dir_mounts[mount["name"]] = target
            if mount.get("readOnly"):
                raise TranslationError(f"emptyDir {mount['name']} mounted read-only by its only container: "
                                       "not translated")
            args += ["--tmpfs", f"{target}:{','.join(tmpfs_options(volume, fs_group))}"]
        elif "configMap" in volume:
            ref = volume["configMap"]
            data = maps.get(ref["name"])
            if data is None:
                raise TranslationError(f"volume {mount['name']}: ConfigMap {ref['name']} is not in the rendered output")
            items = {i["key"]: i["path"] for i in ref.get("items") or []} or {k: k for k in data}
            for key, path in items.items():
                if key not in data:
                    raise TranslationError(f"ConfigMap {ref['name']} has no key {key}")
                files[f"volumes/{mount['name']}/{path}"] = data[key]
            source = f"@STAGING@/volumes/{mount['name']}"
            if mount.get("subPath"):
                if mount["subPath"] not in items.values():
                    raise TranslationError(f"subPath {mount['subPath']} is not a file of ConfigMap {ref['name']}")
                source += "/" + mount["subPath"]
            # ConfigMap volumes are always read-only on a kubelet, whatever the mount says.
            args += ["--mount", f"type=bind,source={source},target={target},readonly"]
        elif "secret" in volume and volume["secret"].get("optional") and volume["secret"]["secretName"] not in secrets:
            # A kubelet mounts an optional Secret that does not exist as an empty folder; the
            # rendered output holds no Secret here (none is committed), so it is that folder.
            files[f"volumes/{mount['name']}/"] = ""          # a folder: the runner makes it, empty
            args += ["--mount", f"type=bind,source=@STAGING@/volumes/{mount['name']},target={target},readonly"]
            notes.append(f"optional Secret {volume['secret']['secretName']} (volume {mount['name']}) is not in the "
                         "rendered output: mounted as an empty folder, as a kubelet does")
        else:
            kind = next((k for k in volume if k != "name"), "?")
            raise TranslationError(f"volume {mount['name']} ({kind}) is not translated; "
                                   "render without the component that adds it")
    return args, files, notes

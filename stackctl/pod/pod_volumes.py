"""A container's volumeMounts as `docker run` arguments: emptyDir as an exec tmpfs, ConfigMap
volumes as files staged by the runner and bind-mounted read-only.

Part of the pod-spec -> `docker run` translation (stackctl/pod/pod_translate.py holds the whole mapping).
"""
from __future__ import annotations

from typing import Any

from stackctl.pod.pod_fields import TranslationError, quantity

EMPTYDIR_MODE = "2777"           # kubelet: 0777 for a disk emptyDir, plus setgid for fsGroup


def configmaps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


def volume_args(container: dict[str, Any], spec: dict[str, Any], maps: dict[str, dict[str, str]],
                fs_group: int | None) -> tuple[list[str], dict[str, str], list[str]]:
    """(docker arguments, files to stage, notes) for every volumeMount of the container. Staged
    files live under volumes/<volume>/ of the caller's staging folder; the bind sources are written
    as `@STAGING@/...`, which the runner replaces with that folder."""
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
        if "emptyDir" in volume:
            if mount["name"] in empty_dir_mounts or mount.get("subPath"):
                # Two tmpfs mounts would be two separate file systems, not one shared volume.
                raise TranslationError(f"emptyDir {mount['name']} mounted twice or with subPath: not translated")
            empty_dir_mounts[mount["name"]] = target
            options = ["rw", "exec", "nosuid", "nodev", f"mode={EMPTYDIR_MODE}"]
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            if size is not None:
                options.append(f"size={int(quantity(size))}")
            if fs_group is not None:
                options.append(f"gid={fs_group}")
            if (volume["emptyDir"] or {}).get("medium") not in (None, "", "Memory"):
                raise TranslationError(f"emptyDir {mount['name']}: medium {volume['emptyDir']['medium']} not translated")
            args += ["--tmpfs", f"{target}:{','.join(options)}"]
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
        else:
            kind = next((k for k in volume if k != "name"), "?")
            raise TranslationError(f"volume {mount['name']} ({kind}) is not translated; "
                                   "render without the component that adds it")
    return args, files, notes

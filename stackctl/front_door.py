"""The front door: nginx on the public inference address, in front of TorchServe's inference API.

Why it is there and the little it changes are in config/front-door.conf.template. This module
renders that template into a run folder (values from the same config.properties TorchServe
reads) and builds the nginx command line; stackctl.native and stackctl.container start it.
"""
from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from stackctl import paths, tools

TEMPLATE = paths.CONFIG / "front-door.conf.template"
NGINX_HINT = "`make system-deps` (Debian package nginx-light)"
# Where nginx keeps request bodies and responses it spools (read-only root: these must be writable).
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class SettingMissing(RuntimeError):
    """config.properties has no value for a setting the front door is built from."""


def server_setting(name: str, config: Path = paths.SERVER_CONFIG, env: Mapping[str, str] | None = None) -> str:
    """A TorchServe setting as TorchServe itself reads it: TS_<NAME> when set (config.properties
    has enable_envvars_config=true), else the file's value."""
    override = (os.environ if env is None else env).get(f"TS_{name.upper()}")
    if override:
        return override
    for line in config.read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals and not key.lstrip().startswith(("#", "!")) and key.strip() == name:
            return value.strip()
    raise SettingMissing(f"{config} has no {name}")


def host_port(address: str) -> str:
    """'http://0.0.0.0:8080' (a TS_*_ADDRESS) -> '0.0.0.0:8080' (what nginx listens on or proxies to)."""
    parsed = urlparse(address if "//" in address else f"http://{address}")
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"{address!r} names no host and port")
    return f"{parsed.hostname}:{parsed.port}"


def _user_line() -> str:
    # As root, nginx would run its workers as `nobody`, who cannot write the run folder.
    return f"user {pwd.getpwuid(0).pw_name};" if os.geteuid() == 0 else ""


def render(run_dir: Path, listen: str, upstream: str, config: Path = paths.SERVER_CONFIG,
           env: Mapping[str, str] | None = None) -> Path:
    """run_dir/nginx.conf for a front door on `listen` (host:port) in front of `upstream` (host:port)."""
    values = {"run_dir": str(run_dir.resolve()), "listen": listen, "upstream": upstream, "user": _user_line(),
              "max_request_size": server_setting("max_request_size", config, env)}
    text = re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], TEMPLATE.read_text())
    for folder in TEMP_FOLDERS:
        (run_dir / folder).mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(text)
    return conf


def command(conf: Path) -> list[str]:
    """nginx in the foreground on a rendered config; its errors go to stderr from the first line
    (-e: otherwise it opens /var/log/nginx/error.log before reading the config)."""
    return [tools.find("nginx", NGINX_HINT), "-e", "stderr", "-p", f"{conf.parent}/", "-c", str(conf)]

"""The front door: nginx on the public inference address, in front of TorchServe's inference API.

Why it is there and the little it changes are in config/front-door.conf.template. This module
renders that template into a run folder (values from the same config.properties TorchServe
reads, and each model's bound on waiting from the archives it serves: stackctl.serve.wait_bounds) and
builds the nginx command line; stackctl.serve.native and stackctl.serve.container start it.
"""
from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from stackctl import paths, tools
from stackctl.serve import front_door_oip, oip_models, wait_bounds
from stackctl.serve.wait_bounds import WaitBound

TEMPLATE = paths.CONFIG / "front-door.conf.template"
NGINX_HINT = "`make system-deps` (Debian package nginx-light)"
# Where nginx keeps request bodies and responses it spools (read-only root: these must be writable).
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# The memory budget (config/front-door.conf.template): the part of a body held in memory, and how
# many requests with a body of 100 kB or more may be in progress at once (their temp files).
BODY_BUFFER = "64k"
SPILLED_BODIES = 64
# No OIP gateway (a front door rendered on its own, in tests): nothing listens on port 1, so GET
# /v2... gets the door's 502 in the OIP shape.
NO_GATEWAY = "127.0.0.1:1"
# A graceful stop waits this much longer than the longest bound on waiting (stop_wait_s).
STOP_MARGIN_S = 5


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


# One model's requests (/predictions/<model>[/<version>], /explanations/...): its own bound, and
# answers that name it, in the two steps of `location /` (the template says why). A 502 after the
# request reached TorchServe (bytes sent) is a connection TorchServe dropped mid-request: 503
# worker_lost; before that, the 502 of the server.
MODEL_LOCATION = """
        location ~ ^/(predictions|explanations)/{pattern}(/|$) {{
            error_page 413 @too_large;
            error_page 418 = @torchserve_{name};
            recursive_error_pages on;
            return 418;
        }}
        location @torchserve_{name} {{
            proxy_pass http://torchserve;
            proxy_send_timeout {seconds}s;
            proxy_read_timeout {seconds}s;
            proxy_intercept_errors on;
            error_page 429 @too_many_large_bodies;
            error_page 502 = @lost_{name};  # "=": the status the named location returns
            error_page 503 @model_unavailable;
            error_page 504 @timeout_{name};
        }}
        location @lost_{name} {{
            default_type application/json;
            if ($upstream_bytes_sent = 0) {{
                return 502 '{bad_gateway}';
            }}
            return 503 '{{"error": {{"code": 503, "type": "worker_lost", "message": "model {model}: the model server closed the connection without answering (its worker or the server was lost mid-request); retry with backoff"}}}}\\n';
        }}
        location @timeout_{name} {{
            default_type application/json;
            return 504 '{{"error": {{"code": 504, "type": "upstream_timeout", "message": "model {model} gave no answer within {seconds} s (queue wait {queue:g} s + maxBatchDelay {delay:g} ms + responseTimeout {timeout:g} s + margin); retry with backoff"}}}}\\n';
        }}
"""
BAD_GATEWAY = ('{"error": {"code": 502, "type": "bad_gateway", "message": "the model server is not answering '
               '(starting or restarting?); retry with backoff"}}\\n')


def default_response_timeout(config: Path = paths.SERVER_CONFIG, env: Mapping[str, str] | None = None) -> float:
    """What a model without responseTimeout gets (config.properties' default_response_timeout)."""
    try:
        return float(server_setting("default_response_timeout", config, env))
    except SettingMissing:
        return 120.0  # TorchServe 0.12's own default


def model_locations(bounds: Mapping[str, WaitBound]) -> str:
    """The location blocks of every model whose name nginx can take as it is (others fall to `/`)."""
    blocks = []
    for index, (model, bound) in enumerate(sorted(bounds.items())):
        if not wait_bounds.SAFE_NAME.match(model):
            continue
        blocks.append(MODEL_LOCATION.format(
            pattern=re.escape(model), name=f"m{index}", model=model, seconds=bound.seconds,
            queue=bound.queue_wait_s, delay=bound.batch_delay_ms, timeout=bound.response_timeout_s,
            bad_gateway=BAD_GATEWAY))
    return "".join(blocks)


def stop_wait_s(config: Path = paths.SERVER_CONFIG, env: Mapping[str, str] | None = None,
                model_store: Path | None = None) -> int:
    """How long a graceful stop (SIGQUIT) may take: the door holds no request longer than the
    longest bound (TorchServe's answer or the door's 504 by then), so it finishes every request
    within the models' responseTimeout, plus STOP_MARGIN_S to write the last answers out."""
    default_timeout = default_response_timeout(config, env)
    bounds = wait_bounds.from_store(model_store or paths.MODEL_STORE, default_timeout)
    return wait_bounds.longest(bounds, default_timeout) + STOP_MARGIN_S


def render(run_dir: Path, listen: str, upstream: str, config: Path = paths.SERVER_CONFIG,
           env: Mapping[str, str] | None = None, model_store: Path | None = None,
           gateway: str | None = None) -> Path:
    """run_dir/nginx.conf for a front door on `listen` (host:port) in front of `upstream` (host:port),
    with the wait bound of each model in `model_store` (default: the repository's, or the image's),
    and GET /v2... proxied to the OIP gateway's REST address `gateway` (host:port; without one,
    those answer 502 in the OIP shape)."""
    default_timeout = default_response_timeout(config, env)
    store = model_store or paths.MODEL_STORE
    bounds = wait_bounds.from_store(store, default_timeout)
    values = {"run_dir": str(run_dir.resolve()), "listen": listen, "upstream": upstream, "user": _user_line(),
              "max_request_size": server_setting("max_request_size", config, env),
              "body_buffer": BODY_BUFFER, "spilled_bodies": str(SPILLED_BODIES),
              "longest_bound": str(wait_bounds.longest(bounds, default_timeout)),
              "model_locations": model_locations(bounds),
              "oip_model_locations": front_door_oip.model_locations(bounds), "oip_gzip": front_door_oip.GZIP,
              "oip_not_found": front_door_oip.not_found_map(oip_models.served_versions(store)),
              "gateway": gateway or NO_GATEWAY}
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

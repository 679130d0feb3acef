"""The front door's Open Inference Protocol (v2) locations, rendered into the template by
stackctl.serve.front_door (config/front-door.conf.template says where each piece goes).

POST /v2/models/<m>[/versions/<v>]/infer goes to TorchServe as /predictions/<m>[/<v>] with
`X-Inference-Protocol: v2` (every other location sets it to "", so a client can never set it),
through the two steps and the per-model bound on waiting that /predictions has
(stackctl.serve.wait_bounds); the handler reads the protocol (handlers/oip.py). The errors nginx or
TorchServe answer on these paths (404 unknown model/version, 413, 429, 502/503/504) get the OIP
shape {"error": "<type>: <message>"} with the codes and texts of the /predictions answers. GET
/v2... goes to the OIP gateway (stackctl.serve.oip_gateway).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from stackctl.serve import wait_bounds
from stackctl.serve.wait_bounds import WaitBound

# A model or version name as the v2 locations take it (wait_bounds.SAFE_NAME); anything else
# falls to `location /v2/`, the gateway, which answers 404.
NAME = "[A-Za-z0-9][A-Za-z0-9_.-]*"
# The header lines every proxying location has: a location with any proxy_set_header of its own
# inherits none from the server, so the v2 ones repeat the server's and add the protocol.
V2_HEADERS = """proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header Content-Type $upstream_content_type;
            proxy_set_header X-Original-Content-Type $original_content_type;
            proxy_set_header X-Inference-Protocol v2;"""

# Response compression on the v2 locations, only for a client that asks (Accept-Encoding: gzip;
# tritonclient's response_compression_algorithm). Answers under 1 kB (one or a few instances)
# stay as they are: compressing them costs more than the bytes saved. Level 1: the front door's
# one worker shares the cores with the models. /predictions answers are never compressed.
GZIP = """gzip on;
            gzip_proxied any;
            gzip_types application/json application/octet-stream;
            gzip_min_length 1024;
            gzip_comp_level 1;
            gzip_vary on;"""

OIP_MODEL_LOCATION = """
        location ~ ^/v2/models/{pattern}(/versions/{any_name})?/infer$ {{
            error_page 413 @oip_too_large;
            error_page 418 = @oip_{name};
            recursive_error_pages on;
            return 418;
        }}
        location @oip_{name} {{
            proxy_pass http://torchserve$oip_target;
            {headers}
            proxy_send_timeout {seconds}s;
            proxy_read_timeout {seconds}s;
            {gzip}
            proxy_intercept_errors on;
            error_page 404 @oip_not_found;
            error_page 429 @oip_too_many_large_bodies;
            error_page 502 = @oip_lost_{name};
            error_page 503 @oip_model_unavailable;
            error_page 504 @oip_timeout_{name};
        }}
        location @oip_lost_{name} {{
            default_type application/json;
            if ($upstream_bytes_sent = 0) {{
                return 502 '{{"error": "bad_gateway: the model server is not answering (starting or restarting?); retry with backoff"}}\\n';
            }}
            return 503 '{{"error": "worker_lost: model {model}: the model server closed the connection without answering (its worker or the server was lost mid-request); retry with backoff"}}\\n';
        }}
        location @oip_timeout_{name} {{
            default_type application/json;
            return 504 '{{"error": "upstream_timeout: model {model} gave no answer within {seconds} s (queue wait {queue:g} s + maxBatchDelay {delay:g} ms + responseTimeout {timeout:g} s + margin); retry with backoff"}}\\n';
        }}
"""


def model_locations(bounds: Mapping[str, WaitBound]) -> str:
    """The v2 infer locations of every model nginx can name as it is (as front_door.model_locations)."""
    blocks = []
    for index, (model, bound) in enumerate(sorted(bounds.items())):
        if not wait_bounds.SAFE_NAME.match(model):
            continue
        blocks.append(OIP_MODEL_LOCATION.format(
            pattern=re.escape(model), any_name=NAME, name=f"m{index}", model=model, headers=V2_HEADERS, gzip=GZIP,
            seconds=bound.seconds, queue=bound.queue_wait_s, delay=bound.batch_delay_ms,
            timeout=bound.response_timeout_s))
    return "".join(blocks)


def not_found_map(models: Mapping[str, list[str]]) -> str:
    """Lines of `map $uri $oip_not_found`: the 404 text for a v2 infer path TorchServe does not
    know, the same text the gateway gives (stackctl.serve.oip_models.Catalog.get)."""
    served = ", ".join(sorted(models)) or "none"
    lines = []
    for model, model_versions in sorted(models.items()):
        if wait_bounds.SAFE_NAME.match(model):
            lines.append(f'"~^/v2/models/{re.escape(model)}/versions/(?<oip_nv>{NAME})/infer$" '
                         f'"model_version_not_found: model \'{model}\' has no version \'$oip_nv\' '
                         f'(versions: {", ".join(sorted(model_versions))})";')
    lines.append(f'"~^/v2/models/(?<oip_nm>{NAME})(/versions/{NAME})?/infer$" '
                 f'"model_not_found: model \'$oip_nm\' is not served here (served: {served})";')
    return "\n        ".join(lines)

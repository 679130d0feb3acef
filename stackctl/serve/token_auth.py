"""TorchServe token authorization: how to turn it on, and where clients find the keys.

What TorchServe 0.12 does (read from its frontend, org.pytorch.serve.util.TokenAuthorization, and
checked live by tests/integration/test_token_auth.py):
* Auth is on unless `disable_token_authorization=true` (our config.properties) or the launcher's
  `--disable-token-auth`. Turning it on = drop the flag and set TS_DISABLE_TOKEN_AUTHORIZATION=false.
* At start-up it generates three random keys and writes them to `key_file.json` in its WORKING
  DIRECTORY (mode 0600): {"management": {"key", "expiration time"}, "inference": {...},
  "API": {"key"}}. Keys cannot be supplied; the file is the only way to learn them.
* Every inference-port request (including GET /ping) needs `Authorization: Bearer <inference key>`;
  every management request needs the management key; /metrics stays open. A missing or wrong key
  gets HTTP 400 {"type": "InvalidKeyException"} (not 401).
* Inference and management keys expire after `token_expiration_min` (default 60). The API key
  never expires: GET <management>/token?type=inference|management with it makes a new key and
  rewrites the file.

So clients read the key from the key file, shared with them through a volume (or copied into a
secret after start-up). See docs/security.md for compose and Kubernetes.

    python -m stackctl.serve.token_auth inference --key-file run/auth/key_file.json   # print a key
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from stackctl import paths

KEY_FILE_NAME = "key_file.json"
KINDS = ("inference", "management", "API")
# Environment a client reads: a key directly, or the key file TorchServe wrote.
KEY_ENV = {"inference": "TS_INFERENCE_KEY", "management": "TS_MANAGEMENT_KEY", "API": "TS_API_KEY"}
KEY_FILE_ENV = "TS_KEY_FILE"


def server_env(expiration_min: float | None = None) -> dict[str, str]:
    """TorchServe environment for token auth. The server then runs in a writable directory of its
    own (where it writes the key file), so metrics.yaml is given by absolute path."""
    env = {"TS_DISABLE_TOKEN_AUTHORIZATION": "false", "TS_METRICS_CONFIG": str(paths.METRICS_CONFIG)}
    if expiration_min is not None:
        env["TS_TOKEN_EXPIRATION_MIN"] = f"{expiration_min:g}"
    return env


def server_command(model_store: Path, workdir: Path) -> list[str]:
    """The usual server command line without --disable-token-auth, run from `workdir`."""
    from stackctl.serve.native import torchserve_command  # not at the top: Locust imports this module

    command = [arg for arg in torchserve_command(model_store) if arg != "--disable-token-auth"]
    return ["env", "-C", str(workdir), *command]


def read_key_file(path: Path, timeout: float = 0.0) -> dict[str, str]:
    """{"inference": key, "management": key, "API": key}. TorchServe creates the file empty and
    fills it a moment later, so poll until it parses (up to `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            document = json.loads(Path(path).read_text())
            return {kind: document[kind]["key"] for kind in KINDS}
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def key_from_env(kind: str = "inference") -> str | None:
    """The `kind` key from TS_<KIND>_KEY, else from the key file named by TS_KEY_FILE, else None."""
    if os.environ.get(KEY_ENV[kind]):
        return os.environ[KEY_ENV[kind]]
    key_file = os.environ.get(KEY_FILE_ENV)
    if key_file and Path(key_file).is_file():
        return read_key_file(Path(key_file))[kind]
    return None


def management_token() -> str | None:
    """Management key for `python -m stackctl ready` and the OIP gateway against a
    token-authorised server; None while there is none to read."""
    try:
        return key_from_env("management")
    # TorchServe writes the key file empty for a moment at start-up (and may be replacing it)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def auth_headers(kind: str = "inference") -> dict[str, str]:
    """{"Authorization": "Bearer <key>"} when a key is configured, else {} (auth off)."""
    key = key_from_env(kind)
    return {"Authorization": f"Bearer {key}"} if key else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackctl.serve.token_auth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="which key to print")
    parser.add_argument("--key-file", type=Path, help=f"default: ${KEY_FILE_ENV}")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the file to appear")
    args = parser.parse_args(argv)
    path = args.key_file or (Path(os.environ[KEY_FILE_ENV]) if os.environ.get(KEY_FILE_ENV) else None)
    if path is None:
        print(f"no key file: pass --key-file or set {KEY_FILE_ENV}", file=sys.stderr)
        return 2
    try:
        print(read_key_file(path, args.wait)[args.kind])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

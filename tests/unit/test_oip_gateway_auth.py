"""The OIP gateway's management key with token auth on (stackctl.serve.oip_status.management_headers):
from TS_MANAGEMENT_KEY, else from the key file TorchServe writes (TS_KEY_FILE, as the image sets it),
re-read on every call because TorchServe renews keys by rewriting that file.
tests/integration/test_token_auth.py checks the gateway's ready against a token-authorised server.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackctl.serve import token_auth
from stackctl.serve.oip_status import management_headers


def write_key_file(path: Path, management: str) -> None:
    """key_file.json as TorchServe 0.12 writes it (TokenAuthorization.generateKeyFile)."""
    path.write_text(json.dumps({
        "management": {"key": management, "expiration time": "2026-12-08T01:20:44.123Z"},
        "inference": {"key": "inference-key", "expiration time": "2026-12-08T01:20:44.123Z"},
        "API": {"key": "api-key"}}, indent=2))
    path.chmod(0o600)


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / token_auth.KEY_FILE_NAME
    monkeypatch.delenv(token_auth.KEY_ENV["management"], raising=False)
    monkeypatch.setenv(token_auth.KEY_FILE_ENV, str(path))
    return path


def test_the_key_comes_from_the_key_file_and_follows_a_renewal(key_file: Path) -> None:
    write_key_file(key_file, "first")
    assert management_headers() == {"Authorization": "Bearer first"}
    write_key_file(key_file, "renewed")  # GET /token?type=management rewrites the file
    assert management_headers() == {"Authorization": "Bearer renewed"}


def test_the_environment_key_wins_over_the_file(key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_key_file(key_file, "from-file")
    monkeypatch.setenv(token_auth.KEY_ENV["management"], "from-env")
    assert management_headers() == {"Authorization": "Bearer from-env"}


@pytest.mark.parametrize("content", [None, "", "{", '{"inference": {"key": "x"}}'])
def test_no_header_while_there_is_no_key_to_read(key_file: Path, content: str | None) -> None:
    """Auth off (no file), or the file TorchServe creates empty and fills a moment later."""
    if content is not None:
        key_file.write_text(content)
    assert management_headers() == {}

"""Secrets, file modes, rate limits and REST metadata (issue 11), without servers."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

from xiaoer.channels.rest import clean_metadata, valid_sender, validate_payload
from xiaoer.core import security
from xiaoer.core.ratelimit import SlidingWindow
from xiaoer.servers.rasaserver import rasa_argv


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_generated_secret_is_private_from_its_creation(tmp_path, monkeypatch):
    monkeypatch.delenv(security.API_TOKEN_ENV, raising=False)
    opened = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        opened.append((str(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    token = security.api_token(tmp_path / "var")
    path = tmp_path / "var" / "api_token"
    assert len(token) >= 32 and path.read_text() == token
    assert opened == [(str(path), 0o600)]  # created 0600, not chmod-ed afterwards
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert security.api_token(tmp_path / "var") == token  # kept
    monkeypatch.setenv(security.API_TOKEN_ENV, "from-env")
    assert security.api_token(tmp_path / "var") == "from-env"


def test_files_written_after_process_start_are_private(tmp_path):
    code = (
        "import sqlite3, sys; from xiaoer.core.security import process_start;"
        "process_start(check=False); d = sys.argv[1];"
        "import os; os.makedirs(d + '/var/logs');"
        "sqlite3.connect(d + '/var/x.db').execute('create table t (a)');"
        "open(d + '/var/logs/a.log', 'w').write('x')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    for path in [tmp_path / "var", *(tmp_path / "var").rglob("*")]:
        assert mode(path) & 0o077 == 0, f"{path}: {oct(mode(path))}"


def test_a_readable_data_dir_is_reported(tmp_path, caplog):
    var = tmp_path / "var"
    var.mkdir(mode=0o700)
    (var / "xiaoer.db").write_text("")
    (var / "xiaoer.db").chmod(0o600)
    assert security.check_data_dir(var) == []
    (var / "xiaoer.db").chmod(0o644)
    var.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        exposed = security.check_data_dir(var)
    assert set(exposed) == {var, var / "xiaoer.db"}
    assert "SECURITY" in caplog.text and "chmod -R go-rwx" in caplog.text


def test_the_rasa_launcher_keeps_the_token_off_the_command_line(monkeypatch):
    monkeypatch.setenv(security.API_TOKEN_ENV, "s3cret-token")
    assert rasa_argv(["--enable-api", "--port", "1"])[-2:] == ["--auth-token", "s3cret-token"]
    assert "--auth-token" not in rasa_argv(["--port", "1"])
    with pytest.raises(SystemExit):
        rasa_argv(["--enable-api", "--auth-token", "visible"])


def test_same_secret_never_raises_on_non_ascii():
    assert security.same_secret("abc", "abc")
    assert not security.same_secret("签名", "abc")
    assert not security.same_secret("\udce9", "abc")
    assert not security.same_secret(None, "abc")


def test_sliding_window():
    now = [0.0]
    window = SlidingWindow(2, 60, clock=lambda: now[0])
    assert window.allow("a") and window.allow("a") and not window.allow("a")
    assert window.allow("b")
    assert window.retry_after("a") == 61
    now[0] = 61
    assert window.allow("a")


def test_rest_metadata_allow_list():
    forged = {
        "buyer_id": "buyer_demo_001", "nickname": "管理员", "handoff_limited": False,
        "lead_card": {"card_id": "x"}, "is_external": True, "product_id": "P1001",
        "attachments": [{"type": "image", "url": "https://img.example/a.jpg"},
                        {"type": "video", "url": "https://v.example/a.mp4"}, "x"],
    }  # fmt: skip
    assert clean_metadata(forged, ("product_id", "attachments")) == {
        "product_id": "P1001",
        "attachments": [{"type": "image", "url": "https://img.example/a.jpg"}],
    }
    assert clean_metadata({"product_id": {"nested": 1}}, ("product_id",)) == {}
    payload, error = validate_payload(
        b'{"sender": "a", "message": "hi", "metadata": {"buyer_id": "b"}}'
    )
    assert error is None and payload == {"sender": "a", "message": "hi", "metadata": {}}


def test_rest_sender_ids_are_url_safe():
    assert valid_sender("cli-1a2b") and valid_sender("user@example.com")
    for bad in ("", "a/b", "a?b", "a b", "%41", "张三", "x" * 129, 5, None):
        assert not valid_sender(bad)


def test_the_openapi_description_covers_the_public_endpoints():
    import yaml

    from xiaoer.core.config import PROJECT_ROOT

    doc = yaml.safe_load((PROJECT_ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/webhooks/rest/webhook", "/webhooks/rest/inbox", "/webhooks/douyin/webhook",
                 "/webhooks/doudian_push/webhook", "/login", "/api/handoffs/{request_id}/reply",
                 "/leads/{lead_id}/note", "/api/openapi.yaml"):  # fmt: skip
        assert path in paths, path
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation.get("responses"), f"{method} {path}"

"""The `xiaoer` command's own logic (the servers are covered end to end)."""

from __future__ import annotations

import shutil
from pathlib import Path

from xiaoer import cli
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop.urges import get_urge_store

ROOT = Path(__file__).resolve().parents[2]


def test_queue_lists_handoffs_and_urges_without_full_phone_numbers(data_dir, capsys):
    get_handoff_store().request("buyer-1", "change_address", "新地址 李四 13912345678 浙江省杭州市")
    get_urge_store().record("buyer-2", "6938271045123400001", 26.0)
    assert cli.main(["queue"]) == 0
    out = capsys.readouterr().out
    assert "待人工处理（1）" in out and "change_address" in out and "139****5678" in out
    assert "13912345678" not in out
    assert "订单 6938271045123400001 已超时 26 小时" in out


def test_training_fingerprint_follows_data_domain_config_and_component_code(tmp_path):
    for name in ("config.yml", "domain.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "data", tmp_path / "data")
    for name in cli.TRAINING_INPUTS:
        source, target = ROOT / name, tmp_path / name
        if source.is_dir() and not target.exists():
            shutil.copytree(source, target)
        elif source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    before = cli.training_fingerprint(tmp_path)
    assert cli.training_fingerprint(tmp_path) == before
    (tmp_path / "README.md").write_text("docs do not matter")
    assert cli.training_fingerprint(tmp_path) == before
    with (tmp_path / "data" / "nlu" / "orders.yml").open("a", encoding="utf-8") as f:
        f.write("\n")
    changed = cli.training_fingerprint(tmp_path)
    assert changed != before
    with (tmp_path / "xiaoer" / "text" / "normalize.py").open("a", encoding="utf-8") as f:
        f.write("\n# the normaliser changed\n")
    assert cli.training_fingerprint(tmp_path) != changed
    changed = cli.training_fingerprint(tmp_path)
    with (tmp_path / "xiaoer" / "text" / "pinyin_typing.py").open("a", encoding="utf-8") as f:
        f.write("\n# the pinyin lexicon changed\n")
    assert cli.training_fingerprint(tmp_path) != changed


def test_api_token_comes_from_the_environment_or_a_private_file(data_dir, monkeypatch):
    monkeypatch.setenv("XIAOER_API_TOKEN", "from-env")
    assert cli.api_token() == "from-env"
    monkeypatch.delenv("XIAOER_API_TOKEN")
    token = cli.api_token()
    path = data_dir / "api_token"
    assert len(token) >= 24 and path.read_text() == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert cli.api_token() == token

"""The `xiaoer` command's own logic (the servers are covered end to end)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


def test_model_fingerprint_follows_the_training_configuration_in_use(
    data_dir, tmp_path, monkeypatch
):
    before = cli.model_fingerprint(ROOT)
    other = tmp_path / "seed7.yml"
    other.write_text(
        (ROOT / "config.yml").read_text("utf-8").replace("random_seed: 42", "random_seed: 7")
    )
    monkeypatch.setenv("XIAOER_TRAINING_CONFIG", str(other))
    # another configuration is another model: `xiaoer train` must not call the old one current
    assert cli.model_fingerprint(ROOT) != before
    monkeypatch.delenv("XIAOER_TRAINING_CONFIG")
    assert cli.model_fingerprint(ROOT) == before


def test_api_token_comes_from_the_environment_or_a_private_file(data_dir, monkeypatch):
    monkeypatch.setenv("XIAOER_API_TOKEN", "from-env")
    assert cli.api_token() == "from-env"
    monkeypatch.delenv("XIAOER_API_TOKEN")
    token = cli.api_token()
    path = data_dir / "api_token"
    assert len(token) >= 24 and path.read_text() == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert cli.api_token() == token


# --- issue 19: the smaller points ---------------------------------------------------------
def test_seed_reset_clears_what_the_try_it_table_touches(data_dir, capsys):
    from xiaoer.douyin.store import get_douyin_store
    from xiaoer.shop.access import get_order_check_store

    assert cli.main(["seed"]) == 0
    checks = get_order_check_store()
    for sender in ("a", "b", "c"):  # three wrong answers: the order is locked for everyone
        checks.record_failure(sender, "6938271045123400001")
    get_urge_store().record("buyer-2", "6938271045123400001", 26.0)
    douyin = get_douyin_store()
    douyin.update_conversation("dy-1", last_greeted_at=time.time(), last_customer_at=time.time())
    capsys.readouterr()
    assert cli.main(["seed", "--reset"]) == 0
    out = capsys.readouterr().out
    assert "已清除催发货记录：1 条" in out
    assert "已清除订单查询和身份核实记录：3 条" in out
    assert "已清除抖音欢迎语记录：1 个会话" in out
    assert checks.failures("6938271045123400001") == 0
    assert get_urge_store().for_order("6938271045123400001") == []
    conv = douyin.conversation("dy-1")
    assert conv.last_greeted_at == 0.0 and conv.last_customer_at == 0.0


def test_create_admin_refuses_a_weak_password_before_asking_again(data_dir, monkeypatch, capsys):
    import getpass

    from xiaoer.agents import get_agent_store

    prompts: list[str] = []

    def ask(prompt: str = "") -> str:
        prompts.append(prompt)
        return "short1"

    monkeypatch.delenv("XIAOER_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(getpass, "getpass", ask)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert cli.main(["create-admin", "boss"]) == 1
    assert len(prompts) == 1  # no "再次输入密码" for a password that cannot be used
    assert "至少" in capsys.readouterr().out
    assert get_agent_store().by_username("boss") is None


def quiet_env(data_dir: Path) -> dict[str, str]:
    """A shell outside make: none of the variables the Makefile exports."""
    env = {k: v for k, v in os.environ.items() if k not in QUIET_VARS}
    return {**env, "PYTHONPATH": str(ROOT), "XIAOER_DATA_DIR": str(data_dir)}


QUIET_VARS = {
    "RASA_TELEMETRY_ENABLED", "SQLALCHEMY_SILENCE_UBER_WARNING", "TF_CPP_MIN_LOG_LEVEL",
    "PYTHONWARNINGS",
}  # fmt: skip


def test_a_closed_pipe_ends_quietly(data_dir):
    """`xiaoer queue | head`: no BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.cli", "queue"],
        env=quiet_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader has gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    assert "BrokenPipeError" not in err and "Traceback" not in err and err == ""


def test_queue_piped_into_head_in_a_shell(data_dir):
    for n in range(60):
        get_urge_store().record(f"buyer-{n}", f"69382710451234{n:05d}", 26.0)
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; python -m xiaoer.cli queue | head -n 1"],
        env={**quiet_env(data_dir), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "待人工处理（0）\n", done.stderr
    assert done.stderr == ""


def test_no_deprecation_warnings_outside_make(data_dir):
    """The servers' commands print no library deprecation warnings (about 15 lines before)."""
    done = subprocess.run(
        [sys.executable, "-m", "xiaoer.servers.rasaserver", "--help"],
        env=quiet_env(data_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "usage: rasa run" in done.stdout
    assert "Warning" not in done.stderr, done.stderr


def test_plain_rasa_is_quiet_after_sourcing_the_env_file(data_dir):
    done = subprocess.run(
        ["bash", "-c", "source scripts/env.sh && rasa data validate --fail-on-warnings"],
        cwd=ROOT, env=quiet_env(data_dir), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "Warning:" not in output and "DeprecationWarning" not in output, output[:2000]
    assert "No story structure conflicts found" in output

"""``xiaoer shell`` / ``xiaoer interactive``: the Rasa command lines they build (ports,
model, endpoints, export paths) and that domain.yml is never written (issue 19)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from xiaoer import cli
from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools import designer

TOKEN = "designer-test-secret-token"


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> list[dict[str, Any]]:
    """Rasa's command is recorded instead of run (with its environment and the
    endpoints file it was given, read while it exists); ``--actions-url``: no server."""
    seen: list[dict[str, Any]] = []

    def call(command: list[str], cwd: Path, env: dict[str, str]) -> int:  # as call_rasa
        endpoints = yaml.safe_load(Path(option(command, "--endpoints")).read_text())
        seen.append({"command": command, "cwd": cwd, "env": env, "endpoints": endpoints})
        if "--domain" in command:  # Rasa's export: the domain merged with a new response
            exported = yaml.safe_load(Path(option(command, "--domain")).read_text())
            exported["responses"]["utter_designer_new"] = [{"text": "新的回复"}]
            exported["actions"].append("utter_designer_new")
            Path(option(command, "--domain")).write_text(yaml.safe_dump(exported))
        return 0

    monkeypatch.setattr(designer, "call_rasa", call)
    monkeypatch.setenv("XIAOER_ACTION_TOKEN", TOKEN)
    return seen


def test_shell_runs_the_given_model_on_a_free_local_port(calls, tmp_path):
    model = tmp_path / "m.tar.gz"
    code = designer.run("shell", model=model, actions_url="http://127.0.0.1:5055", extra=[])
    assert code == 0
    [run] = calls
    command = run["command"]
    assert command[1:3] == ["shell", "--model"] and option(command, "--model") == str(model)
    assert option(command, "--interface") == "127.0.0.1"
    port = int(option(command, "--port"))
    assert port not in (5005, 5055) and bindable(port)
    # the action server's secret travels in the environment, not on the command line
    assert TOKEN not in " ".join(command) and run["env"]["XIAOER_ACTION_TOKEN"] == TOKEN
    # endpoints: the running action server only; no tracker store or event broker (the
    # designer's test conversations never become leads)
    assert run["endpoints"] == {
        "action_endpoint": {
            "url": "http://127.0.0.1:5055/webhook",
            "headers": {"X-Xiaoer-Action-Token": "${XIAOER_ACTION_TOKEN}"},
        }
    }
    assert run["cwd"] == PROJECT_ROOT


def test_the_current_model_is_used_without_retraining(calls, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    current = models / "20261130-000000-current.tar.gz"
    current.write_bytes(b"model")
    (models / f"{cli.model_fingerprint(PROJECT_ROOT)}.model").write_text(current.name)

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"retrained: {args}")

    monkeypatch.setattr(cli.subprocess, "run", no_training)
    train = cli.train
    monkeypatch.setattr(cli, "train", lambda: train(out=models))
    assert designer.run("shell", actions_url="http://127.0.0.1:5055", extra=["--debug"]) == 0
    command = calls[0]["command"]
    assert option(command, "--model") == str(current) and command[-1] == "--debug"


def test_interactive_exports_into_the_layout_and_never_writes_domain_yml(calls, capsys):
    domain = PROJECT_ROOT / "domain.yml"
    before = domain.read_bytes()
    code = designer.run(
        "interactive", model=Path("m.tar.gz"), actions_url="http://127.0.0.1:5055", extra=[]
    )
    assert code == 0
    command = calls[0]["command"]
    assert command[1:3] == ["-m", "xiaoer.devtools.interactive"]
    copy = Path(option(command, "--domain"))
    assert copy != domain and not copy.exists()  # a temporary copy, discarded
    port = int(option(command, "--port"))
    assert bindable(port) and bindable(port + 1)  # the story graph is served on port + 1
    assert domain.read_bytes() == before
    out = capsys.readouterr().out
    assert "data/stories/interactive.yml" in out and "domain.yml unchanged" in out
    assert "utter_designer_new" in out and "新的回复" in out  # to add by hand


def test_the_export_proposals_are_the_projects_layout():
    from rasa.core.training import interactive as rasa_interactive

    from xiaoer.devtools.interactive import set_export_defaults

    saved, port = dict(rasa_interactive.PATHS), rasa_interactive.DEFAULT_SERVER_PORT
    try:
        paths = set_export_defaults(["--model", "m.tar.gz", "--port", "40123"])
        assert paths["stories"] == "data/stories/interactive.yml"
        assert paths["nlu"] == "data/nlu/interactive.yml"
        assert (PROJECT_ROOT / "data" / "stories").is_dir()
        assert (PROJECT_ROOT / "data" / "nlu").is_dir()
        # the story graph's address Rasa prints follows the port (it said 5006)
        assert rasa_interactive.DEFAULT_SERVER_PORT == 40123
    finally:
        rasa_interactive.PATHS.update(saved)
        rasa_interactive.DEFAULT_SERVER_PORT = port


def test_domain_additions_name_only_what_the_session_created():
    original = {"intents": ["greet", {"bye": {"use_entities": []}}], "actions": ["a"],
                "responses": {"utter_hi": [{"text": "hi"}]}}  # fmt: skip
    exported = {"intents": ["greet", "bye", "new_intent"], "actions": ["a", "b"],
                "responses": {"utter_hi": [{"text": "hi"}], "utter_new": [{"text": "x"}]}}  # fmt: skip
    assert designer.domain_additions(original, exported) == {
        "intents": ["new_intent"],
        "responses": {"utter_new": [{"text": "x"}]},
        "actions": ["b"],
    }


def test_a_free_port_pair_is_free_twice():
    port = designer.free_port_pair()
    assert bindable(port) and bindable(port + 1)


def test_a_missing_action_server_is_a_clear_error(calls, monkeypatch, capsys):
    def never(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
        return False

    monkeypatch.setattr(designer, "wait_http", never)
    assert designer.run("shell", model=Path("m.tar.gz"), extra=[]) == 1
    assert "action server did not start" in capsys.readouterr().out and calls == []


def test_rasas_own_options_pass_through_the_command(monkeypatch):
    seen: dict[str, Any] = {}

    def fake_run(kind: str, **kwargs: Any) -> int:
        seen.update(kind=kind, **kwargs)
        return 0

    monkeypatch.setattr(designer, "run", fake_run)
    argv = ["interactive", "--model", "m.tar.gz", "--skip-visualization", "--e2e"]
    assert cli.main(argv) == 0
    assert seen == {"kind": "interactive", "model": Path("m.tar.gz"), "actions_url": None,
                    "extra": ["--skip-visualization", "--e2e"]}  # fmt: skip


WRAPPER = """
import os, sys
from pathlib import Path
from xiaoer.devtools.designer import call_rasa
child = [sys.executable, "-c",
         "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
sys.exit(call_rasa(child, Path.cwd(), dict(os.environ)))
"""


def test_ctrl_c_is_rasas_and_sigterm_stops_rasa_too(tmp_path):
    import os
    import signal
    import time

    wrapper = subprocess.Popen(
        [sys.executable, "-c", WRAPPER], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    try:
        assert wrapper.stdout is not None
        rasa_pid = int(wrapper.stdout.readline())
        # Ctrl-C reaches Rasa (rasa interactive's stop menu); the wrapper waits on
        wrapper.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert wrapper.poll() is None
        # a closed terminal or a supervisor: the wrapper stops Rasa and exits
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(10) == 143
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(rasa_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("Rasa's process survived the wrapper")
    finally:
        wrapper.kill()
        wrapper.wait()

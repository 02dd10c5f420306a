"""The scale-out profile runs docs/deployment.md's blocks: a doc that misses a step or a
variable fails before anything starts (the e2e test then runs the commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from xiaoer.devtools.scaleout import DOC, StartError, command, documented_env, documented_steps

MACHINE = {
    "XIAOER_PG_HOST": "127.0.0.1", "XIAOER_PG_PORT": "6543", "XIAOER_PG_PASSWORD": "pw",
    "XIAOER_REDIS_HOST": "127.0.0.1", "XIAOER_REDIS_PORT": "6380",
    "XIAOER_ACTIONS_URL": "http://127.0.0.1:5056/webhook", "XIAOER_API_TOKEN": "t",
    "XIAOER_ACTION_TOKEN": "a",
}  # fmt: skip


def test_the_documented_steps_are_complete_and_use_the_virtualenv() -> None:
    steps = documented_steps()
    env = documented_env(steps["env"], MACHINE)
    assert env["XIAOER_DATABASE_URL"] == "postgresql://xiaoer:pw@127.0.0.1:6543/xiaoer_app"
    assert {env["XIAOER_PG_DB"], env["XIAOER_PG_EVENTS_DB"]} == {"xiaoer", "xiaoer_events"}
    _, migrate = command(steps["migrate"], {})
    assert migrate[1:] == ["migrate", "--endpoints", "deploy/endpoints.scale-out.yml"]
    assert Path(migrate[0]).parent == Path(sys.executable).parent
    extra, worker = command(
        steps["worker"], {"<a replica or the load balancer>:5005": "127.0.0.1:5999"}
    )
    assert extra == {"XIAOER_RASA_URL": "http://127.0.0.1:5999"}
    assert worker[1:] == ["worker", "--endpoints", "deploy/endpoints.scale-out.yml"]


def test_a_doc_without_the_api_token_or_a_step_fails(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    steps = documented_steps()
    without_token = steps["env"].replace(" XIAOER_API_TOKEN=…", "")
    with pytest.raises(StartError, match="misses XIAOER_API_TOKEN"):
        documented_env(without_token, MACHINE)
    broken = tmp_path / "deployment.md"
    broken.write_text(text.replace("<!-- run: scale-out migrate -->", ""), encoding="utf-8")
    with pytest.raises(StartError, match="scale-out migrate"):
        documented_steps(broken)
    with pytest.raises(StartError, match="nothing to fill"):
        command(steps["replica"], {"<private address>": "127.0.0.1"}, 5005)  # no model

"""End to end, the learning loop: a message the model gets wrong is collected into the
inbox from the event stream (the worker's learning follower), accepted in the console as
an example of ``request_human``, written to ``data/nlu/service.yml``, and after the
retrain and the hot swap (``xiaoer.training``: the worker's ``training.retrain`` job) the
running Rasa server understands it.

The project's Rasa files are copied into the stack's folder (the console writes there);
its config is made small (fewer epochs) so that the retrain takes a few minutes. Needs
the training package (the knowledge-base work); skipped where it is not installed.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from xiaoer.agents.store import AgentStore
from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

training = pytest.importorskip("xiaoer.training", reason="needs the retrain and hot swap")

PASSWORD = "learning-e2e-pass-1"
MESSAGE = (
    "呼叫小二本尊出来说话"  # not in the data; the shipped model does not read it as a human request
)
RETRAIN_SECONDS = 1800


def small_config(path: Path) -> None:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for component in config["pipeline"] + config["policies"]:
        if "epochs" in component:
            component["epochs"] = 20
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack-learning")
    for name in ("data", "domain.yml", "config.yml", "actions/messages.yml"):
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    small_config(workdir / "config.yml")
    with running_stack(trained_model, workdir, console=True) as s:
        AgentStore(workdir / "var" / "xiaoer.db").create("boss", PASSWORD, role="admin")
        s.say("warm-up", "你好")
        yield s


def parse(stack: Stack, text: str) -> str:
    r = requests.post(f"{stack.rasa_url}/model/parse", params={"token": stack.token},
                      json={"text": text}, timeout=60)  # fmt: skip
    r.raise_for_status()
    return str(r.json()["intent"]["name"])


def login(stack: Stack) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{stack.console_url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = s.post(f"{stack.console_url}/login",
               data={"username": "boss", "password": PASSWORD, "csrf_token": token}, timeout=10)  # fmt: skip
    assert r.status_code == 200
    s.headers["X-CSRF-Token"] = re.search(  # type: ignore[union-attr]
        r'<meta name="csrf-token" content="([^"]+)"',
        s.get(f"{stack.console_url}/learning", timeout=10).text,
    ).group(1)
    return s


def test_a_misunderstood_message_is_learned_and_understood_after_the_swap(stack: Stack) -> None:
    assert parse(stack, MESSAGE) != "request_human"
    sender = f"learn-{uuid.uuid4().hex[:8]}"
    stack.say(sender, MESSAGE)
    console = login(stack)
    # the worker's learning follower collects it
    deadline, item_id = time.monotonic() + 30, None
    while time.monotonic() < deadline and item_id is None:
        groups = console.get(f"{stack.console_url}/learning", headers={"Accept": "application/json"},
                             timeout=10).json()["groups"]  # fmt: skip
        for g in groups:
            for item in g["items"]:
                if item["text"] == MESSAGE:
                    item_id = item["id"]
        time.sleep(0.5)
    assert item_id is not None, stack.log("worker")[-3000:]
    preview = console.post(f"{stack.console_url}/learning/preview",
                           data={"ids": [item_id], "intent": "request_human"}, timeout=30)  # fmt: skip
    assert preview.status_code == 200 and f"+    - {MESSAGE}" in preview.text
    digest = re.search(r'name="digest" value="([^"]+)"', preview.text).group(1)  # type: ignore[union-attr]
    accepted = console.post(f"{stack.console_url}/learning/accept",
                            data={"ids": [item_id], "intent": "request_human", "digest": digest},
                            headers={"Accept": "application/json"}, timeout=600)  # fmt: skip
    assert accepted.status_code == 200, accepted.text[:2000]
    body = accepted.json()
    assert body["written"] and body["run_id"]
    assert f"    - {MESSAGE}\n" in (stack.workdir / "data/nlu/service.yml").read_text(
        encoding="utf-8"
    )
    run = training.wait_live(body["run_id"], timeout=RETRAIN_SECONDS)
    assert run["state"] == "live", run
    assert parse(stack, MESSAGE) == "request_human"
    replies = stack.say(f"after-{sender}", MESSAGE)
    assert any("人工" in (r.get("text") or "") for r in replies), replies

"""End to end on a real stack (Rasa server, action server, worker): what the learning
follower reads from Rasa's event broker.

* A message the assistant does not understand lands in the inbox (待学习), once however
  often the same customer repeats it; the console's test chat is never collected.
* The greeting is chosen by the bandit: the bot event carries the chosen variant in its
  metadata, the worker records the exposure, and the customer's "谢谢" closes it as
  ``thanked`` (a success).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from xiaoer.devtools.stack import Stack, running_stack
from xiaoer.learning.inbox import InboxStore
from xiaoer.learning.variants import VariantStore, message_catalogue, variant_key

pytestmark = [pytest.mark.e2e, pytest.mark.model]

GIBBERISH = "叽里咕噜哇啦哇啦巴拉巴拉"


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("stack-learning")) as s:
        s.say("warm-up", "在吗")
        yield s


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    return check()


def test_a_misunderstood_message_lands_in_the_inbox_once(stack: Stack) -> None:
    inbox = InboxStore(stack.workdir / "var" / "xiaoer.db")
    sender = f"inbox-{uuid.uuid4().hex[:6]}"
    assert stack.say(sender, GIBBERISH)  # the bot answered (asks to rephrase)
    stack.say(sender, GIBBERISH)
    # the console's test chat talks to Rasa's API as test-chat:<agent>: never collected
    r = requests.post(
        f"{stack.rasa_url}/conversations/test-chat:{sender}/messages",
        params={"token": stack.token},
        json={"text": "稀里哗啦咕噜咕噜", "sender": "user"},
        timeout=60,
    )
    assert r.status_code == 200, r.text

    def found() -> Any:  # both messages read
        return [i for i in inbox.items() if i.text == GIBBERISH and i.count == 2]

    items = eventually(found)
    assert items, stack.log("worker")[-3000:]
    assert "fallback" in items[0].reasons
    assert items[0].last_sender == stack.conversation(sender)
    time.sleep(1.5)
    assert not [i for i in inbox.items() if "咕噜咕噜" in i.text]


def test_the_greeting_variant_and_its_outcome_are_recorded(stack: Stack) -> None:
    store = VariantStore(stack.workdir / "var" / "xiaoer.db")
    sender = f"greet-{uuid.uuid4().hex[:6]}"
    replies = stack.say(sender, "你好")
    texts = {v["text"] for v in message_catalogue()["greet_intro"]}
    shown = [r["text"] for r in replies if r.get("text")]
    assert shown, replies
    stack.say(sender, "谢谢")

    def closed() -> Any:
        counts = store.outcome_counts("greet_intro")
        return sum(c.get("thanked", 0) for c in counts.values())

    assert eventually(closed) == 1, stack.log("worker")[-3000:]
    [(key, outcomes)] = store.outcome_counts("greet_intro").items()
    assert outcomes == {"thanked": 1}
    # the recorded variant is the one the customer read (its text, filled in)
    keys = {variant_key(t) for t in texts}
    assert key in keys
    assert store.stats("greet_intro")[key].successes == 1

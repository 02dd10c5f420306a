"""End-to-end: the REST rate limits hold across the Sanic workers of a Rasa server.

With ``server.workers: 2`` each worker is a process of its own; the counts are shared
(xiaoer/core/ratelimit.py), so a sender gets the configured allowance, not twice it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from xiaoer.channels.rest import TOO_MANY
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PER_SENDER = 4


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("rate-limit-workers")
    rest = {
        "rate_limit": {"per_sender_per_minute": PER_SENDER, "per_address_per_minute": 0},
        "new_handoffs_per_address_per_hour": 0,
    }
    with running_stack(trained_model, workdir, env_extra={"SANIC_WORKERS": "2"}, rest=rest) as s:
        deadline = time.monotonic() + 300  # both workers up, not just the first one
        while s.log("rasa").count("models warmed up") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield s


def test_the_next_message_in_the_window_is_refused_whichever_worker_gets_it(
    stack: Stack,
) -> None:
    sender = f"rl-{uuid.uuid4().hex[:8]}"

    def say(_: int) -> requests.Response:
        # a new connection each time: the kernel spreads them over both workers
        return requests.post(stack.webhook, json={"sender": sender, "message": "你好"}, timeout=120)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(say, range(12)))
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) == PER_SENDER and len(refused) == 12 - PER_SENDER
    assert all(r.json()["message"] == TOO_MANY for r in refused)
    assert all(1 <= int(r.headers["Retry-After"]) <= 61 for r in refused)
    assert all(r.json() for r in ok)  # the allowed ones were answered
    # and later ones too, one at a time, on fresh connections
    for _ in range(6):
        late = say(0)
        assert late.status_code == 429 and late.json()["message"] == TOO_MANY
    # another customer is not affected
    other = requests.post(
        stack.webhook, json={"sender": f"{sender}-b", "message": "你好"}, timeout=120
    )
    assert other.status_code == 200 and other.json()

"""Short fuzz run in CI (a few hundred generated requests) against real servers: the REST
webhook and inbox, the Douyin and Doudian webhooks, the console's JSON and form endpoints.
No 5xx, no crash, nothing stored from a rejected request (tests/fuzz/harness.py; the
long run is bench/fuzz.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.harness import (
    DOUDIAN_CREDENTIALS,
    DOUYIN_ENV,
    FUZZ_SETTINGS,
    FuzzRun,
    create_admin,
)
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

CI_REQUESTS = {
    "rest": 120, "inbox": 40, "douyin": 50, "douyin_signed": 30, "doudian": 50,
    "console_form": 60, "console_json": 30, "console_get": 30,
}  # fmt: skip


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("fuzz")
    create_admin(workdir / "var")
    with running_stack(
        trained_model, workdir, console=True, env_extra=DOUYIN_ENV,
        credentials_extra=DOUDIAN_CREDENTIALS, settings=FUZZ_SETTINGS,
    ) as s:  # fmt: skip
        yield s


def test_generated_requests_get_no_5xx_and_rejected_ones_store_nothing(stack: Stack):
    run = FuzzRun(stack)
    run.run(CI_REQUESTS, seed=0)
    assert run.requests >= 300, run.histogram()
    assert run.servers_alive() == []
    assert not any(status >= 500 for (_, status) in run.statuses)
    # each endpoint was reached and also refused something
    endpoints = {endpoint for (endpoint, _) in run.statuses}
    assert {"rest webhook", "rest inbox", "douyin webhook", "douyin webhook (signed)",
            "doudian push", "console json reply"} <= endpoints  # fmt: skip

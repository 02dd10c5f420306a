"""The README's try-it table, line by line, on a test stack (issue 19): after
``xiaoer seed --reset`` every line gets the answer the table promises, twice in a row —
the lines that change the demo shop (cancel, new address, return, urge) are undone by the
reset, so the demo is reproducible."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.docs import TryIt, try_it_table
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
ROWS = try_it_table(ROOT / "README.md")
# the replies of a bot that did not understand (actions/messages.yml)
FALLBACK = re.compile(r"没太明白|没看懂|一直没理解")


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("stack-try-it")) as s:
        yield s


def seed_reset(stack: Stack) -> str:
    env = {
        **os.environ,
        "XIAOER_DATA_DIR": str(stack.workdir / "var"),
        "XIAOER_CONFIG": str(stack.workdir / "xiaoer.yml"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "xiaoer.cli", "seed", "--reset"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def play(stack: Stack, row: TryIt) -> list[str]:
    """The problems of one row: missing fragments, fallbacks."""
    problems = []
    for messages, fragments in row.groups():
        sender = f"try-{uuid.uuid4().hex[:10]}"
        replies = []
        for message in messages:
            said = stack.say(sender, message)
            # what the customer sees: the texts and the buttons' titles
            shown = [r.get("text") or "" for r in said]
            shown += [b.get("title") or "" for r in said for b in r.get("buttons") or []]
            replies.append((message, "\n".join(shown)))
        text = "\n".join(reply for _, reply in replies)
        missing = [f for f in fragments if f not in text]
        fell_back = [m for m, reply in replies if FALLBACK.search(reply)]
        if missing or fell_back:
            problems.append(f"README.md:{row.line} {messages}: missing {missing}, "
                            f"not understood {fell_back}\n{text}")  # fmt: skip
    return problems


def test_every_line_of_the_try_it_table_twice_with_a_reset_between(stack: Stack):
    out = seed_reset(stack)
    assert "已创建演示店铺数据" in out
    for round_ in (1, 2):
        problems = [p for row in ROWS for p in play(stack, row)]
        assert not problems, f"round {round_}:\n" + "\n\n".join(problems)
        out = seed_reset(stack)
        if round_ == 1:  # the first round urged and checked orders: the reset says so
            assert re.search(r"已清除催发货记录：[1-9]", out), out
            assert re.search(r"已清除订单查询和身份核实记录：[1-9]", out), out


def test_without_the_reset_the_changed_orders_answer_differently(stack: Stack):
    """What the reset is for: a second cancel of the same order is refused."""
    seed_reset(stack)
    cancel = next(r for r in ROWS if any("取消" in m for m in r.conversations[0]))
    assert not play(stack, cancel)
    assert play(stack, cancel), "a cancelled order was cancelled again"
    seed_reset(stack)
    assert not play(stack, cancel)

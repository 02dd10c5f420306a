"""Smoke test of ``xiaoer interactive`` in a pseudo-terminal: Rasa's interactive learning
with the project's own action server and endpoints, the given model (no training), one
turn driven through its prompts (the message, the intent confirmed, the bot's actions
confirmed, the bot's answer from the action server), then stopped without exporting."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.stack import RASA_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][A-Z0-9]|\r")


class Terminal:
    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        # a real terminal's size (a new pty has 0 x 0, and Rasa's history table would
        # divide its width by it)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.proc = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.seen = ""  # everything read, escape codes removed
        self.pos = 0

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            if "\x1b[6n" in text:  # prompt_toolkit asks where the cursor is: answer
                os.write(self.master, b"\x1b[1;1R")
            self.seen += ANSI.sub("", text)

    def expect(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while time.monotonic() < deadline:
            found = regex.search(self.seen, self.pos)
            if found:
                self.pos = found.end()
                return found.group(0)
            if self.proc.poll() is not None:
                self.read(0.2)
                break
            self.read(0.5)
        raise AssertionError(f"waited for {pattern!r}; the terminal showed:\n{self.seen[-3000:]}")

    def expect_all(self, patterns: list[str], timeout: float) -> None:
        """Every pattern after the current position, in any order."""
        deadline = time.monotonic() + timeout
        regexes = [re.compile(p, re.S) for p in patterns]
        while time.monotonic() < deadline:
            found = [r.search(self.seen, self.pos) for r in regexes]
            if all(found):
                self.pos = max(f.end() for f in found if f)
                return
            if self.proc.poll() is not None:
                self.read(0.2)
                break
            self.read(0.5)
        missing = [
            p for p, r in zip(patterns, regexes, strict=True) if not r.search(self.seen, self.pos)
        ]
        raise AssertionError(f"waited for {missing!r}; the terminal showed:\n{self.seen[-3000:]}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode("utf-8"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group only
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        os.close(self.master)
        return int(self.proc.returncode)


def test_interactive_drives_one_turn_with_the_projects_action_server(
    trained_model: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(tmp_path / "var"),
           "TERM": "xterm", "COLUMNS": "160", "LINES": "50"}  # fmt: skip
    env.pop("XIAOER_ACTION_TOKEN", None)
    stories = PROJECT_ROOT / "data" / "stories" / "interactive.yml"
    before = stories.read_bytes() if stories.exists() else None
    term = Terminal(
        [sys.executable, "-m", "xiaoer.cli", "interactive", "--model", str(trained_model),
         "--skip-visualization"],
        env, PROJECT_ROOT,
    )  # fmt: skip
    try:
        term.expect(
            r"==> rasa interactive \(model .*action server http://127\.0\.0\.1:\d+/webhook\)", 300
        )
        term.expect(r"Your input", 300)
        term.send("你好\r")
        term.expect(r"intent 'greet'.*?correct", 120)
        term.send("y")
        term.expect(r"wants to run 'action_greet'.*?correct", 120)
        term.send("y")
        # the introduction comes from the action server (actions/messages.yml greet_intro:
        # every variant, whichever the bandit picks, offers order lookups)
        # the answer's history table and the next prompt come in either order (prompt_toolkit
        # draws the prompt, then Rasa prints the table): both after the confirmation
        term.expect_all([r"查订单", r"wants to run 'action_listen'.*?correct"], 120)
        term.send("y")
        term.expect(r"Your input", 120)
    finally:
        term.stop()
    after = stories.read_bytes() if stories.exists() else None
    assert after == before  # stopped without exporting: nothing written
    assert "address already in use" not in term.seen.lower()

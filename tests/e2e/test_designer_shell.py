"""End-to-end: ``xiaoer shell`` answers messages piped on stdin while the default ports
(5005, 5055) are taken, as they are while ``make run`` serves (issue 19): its own action
server and Rasa's shell on free ports, the given model, no training."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.stack import RASA_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture()
def default_ports_taken() -> Iterator[None]:
    """A listener on each default port still free (one already taken stays taken)."""
    with ExitStack() as stack:
        for port in (5005, 5055):
            s = stack.enter_context(socket.socket())
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by someone else already: as good
            s.listen()
        yield


def test_shell_answers_piped_messages_beside_running_servers(
    default_ports_taken, trained_model: Path, tmp_path: Path
):
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(tmp_path / "var")}
    env.pop("XIAOER_ACTION_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "xiaoer.cli", "shell", "--model", str(trained_model)],
        input="订单6938271045123400002到哪了\n/stop\n",
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "SF1234567890123" in out  # the order's tracking number, from the action server
    assert "address already in use" not in out.lower()
    assert "rasa train" not in out  # the model given is used as it is

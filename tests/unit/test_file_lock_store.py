"""The file lock store (xiaoer/plugins/locks.py): the turns of one conversation never run
at once, neither in one process nor across the processes of one machine (Sanic workers),
and a killed holder does not block the conversation."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig

from xiaoer.plugins.locks import FileLockStore

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from xiaoer.plugins.locks import FileLockStore

    path, journal, conversation, turns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = FileLockStore(path=path)

    def write(line):
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, (line + "\\n").encode())
        os.close(fd)

    async def turn(i):
        async with store.lock(conversation):
            write(f"in {os.getpid()} {i}")
            await asyncio.sleep(0.002)
            write(f"out {os.getpid()} {i}")

    async def main():
        await asyncio.gather(*(turn(i) for i in range(turns)))

    asyncio.run(main())
    """
)


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_two_processes_never_hold_one_conversation_at_once(tmp_path: Path) -> None:
    lock, journal = str(tmp_path / "locks" / "c.lock"), str(tmp_path / "journal")
    procs = [_spawn(lock, journal, "rest:same", "25") for _ in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    lines = Path(journal).read_text().splitlines()
    assert len(lines) == 3 * 25 * 2
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("in ") and leave.startswith("out ")
        assert enter.split()[1:] == leave.split()[1:]  # the same process and turn


def test_other_conversations_are_not_held_up(tmp_path: Path) -> None:
    store = FileLockStore(path=str(tmp_path / "c.lock"))
    other = FileLockStore(path=str(tmp_path / "c.lock"))

    async def scenario() -> list[str]:
        order: list[str] = []
        async with store.lock("rest:a"):
            order.append("a held")
            async with other.lock("rest:b", lock_lifetime=5):
                order.append("b while a held")
        return order

    assert asyncio.run(scenario()) == ["a held", "b while a held"]


def test_one_process_serves_a_conversation_first_come_first_served(tmp_path: Path) -> None:
    store = FileLockStore(EndpointConfig(type="x", path=str(tmp_path / "c.lock")))
    inside: list[int] = []
    order: list[int] = []

    async def turn(i: int) -> None:
        async with store.lock("douyin:x"):
            inside.append(i)
            assert len(inside) == 1
            order.append(i)
            await asyncio.sleep(0)
            inside.remove(i)

    async def scenario() -> None:
        await asyncio.gather(*(turn(i) for i in range(20)))

    asyncio.run(scenario())
    assert order == list(range(20))
    assert store._local == {}  # nothing kept for idle conversations


def test_a_killed_holder_does_not_block_the_conversation(tmp_path: Path) -> None:
    lock, ready = tmp_path / "c.lock", tmp_path / "holding"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import asyncio, pathlib
            from xiaoer.plugins.locks import FileLockStore
            async def main():
                async with FileLockStore(path={str(lock)!r}).lock("rest:k"):
                    pathlib.Path({str(ready)!r}).write_text("yes")
                    await asyncio.sleep(3600)
            asyncio.run(main())
        """)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        store = FileLockStore(path=str(lock))

        async def try_once() -> None:
            async with store.lock("rest:k", lock_lifetime=0.2):
                pass

        with pytest.raises(LockError):  # held by the other process
            asyncio.run(try_once())
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)

        async def take() -> str:
            async with store.lock("rest:k", lock_lifetime=30):
                return "taken"

        assert asyncio.run(take()) == "taken"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_default_file_is_in_the_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XIAOER_DATA_DIR", str(tmp_path / "var"))
    store = FileLockStore()

    async def scenario() -> None:
        async with store.lock("rest:x"):
            pass

    asyncio.run(scenario())
    path = tmp_path / "var" / "locks" / "conversations.lock"
    assert store.path == str(path) and path.exists()
    assert path.stat().st_mode & 0o077 == 0  # private, like every file of the data folder

"""Rate limits counted together by several processes: the Sanic workers of one machine
(a shared SQLite file) and the servers of the scale-out profile (Redis)."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.core.ratelimit import (
    RedisSlidingWindow,
    SharedSlidingWindow,
    shared_window,
)
from xiaoer.devtools.services import Redis, running_redis


def test_two_holders_of_one_file_share_the_allowance(tmp_path: Path) -> None:
    now = [1000.0]
    a = SharedSlidingWindow("sender", 3, 60, tmp_path / "rl.db", clock=lambda: now[0])
    b = SharedSlidingWindow("sender", 3, 60, tmp_path / "rl.db", clock=lambda: now[0])
    assert [a.allow("x"), b.allow("x"), a.allow("x")] == [True, True, True]
    assert not b.allow("x") and not a.allow("x")  # the 4th, whichever worker gets it
    assert b.allow("y")  # another sender has its own allowance
    assert a.count("x") == 3
    assert b.retry_after("x") == 61
    now[0] += 60.5
    assert b.allow("x")  # the window moved on


def test_windows_of_one_file_are_kept_apart(tmp_path: Path) -> None:
    per_sender = SharedSlidingWindow("sender", 1, 60, tmp_path / "rl.db")
    per_address = SharedSlidingWindow("address", 1, 60, tmp_path / "rl.db")
    assert per_sender.allow("k") and per_address.allow("k")
    assert not per_sender.allow("k") and not per_address.allow("k")


def test_hit_counts_beyond_the_limit_and_zero_means_off(tmp_path: Path) -> None:
    window = SharedSlidingWindow("handoffs", 2, 3600, tmp_path / "rl.db")
    for _ in range(3):
        window.hit("addr")
    assert window.count("addr") == 3
    off = SharedSlidingWindow("off", 0, 60, tmp_path / "rl.db")
    assert all(off.allow("a") for _ in range(50))


def _take(path: str, n: int, out: multiprocessing.Queue) -> None:
    window = SharedSlidingWindow("sender", 10, 60, path)
    out.put(sum(window.allow("buyer") for _ in range(n)))


def test_processes_together_get_exactly_the_limit(tmp_path: Path) -> None:
    """Four processes ask at once for 8 each: 10 allowed in all, not 10 each."""
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_take, args=(str(tmp_path / "rl.db"), 8, out)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert allowed == 10


def test_an_unusable_file_lets_messages_through(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    window = SharedSlidingWindow("sender", 1, 60, tmp_path / "dir")  # a directory: no db
    assert window.allow("x") and window.allow("x")


def test_shared_window_follows_the_environment(data_dir, monkeypatch) -> None:
    monkeypatch.delenv("XIAOER_REDIS_HOST", raising=False)
    window = shared_window("rest_sender", 5, 60)
    assert isinstance(window, SharedSlidingWindow)
    assert window.allow("x")
    assert Path(window.path) == data_dir / "ratelimit.db"
    assert (data_dir / "ratelimit.db").stat().st_mode & 0o077 == 0  # private to its owner


needs_redis = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="redis-server not installed (scripts/system-deps.sh)"
)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@needs_redis
def test_servers_share_the_allowance_through_redis(redis_server: Redis, monkeypatch) -> None:
    monkeypatch.setenv("XIAOER_REDIS_HOST", redis_server.host)
    monkeypatch.setenv("XIAOER_REDIS_PORT", str(redis_server.port))
    one, two = shared_window("t_sender", 3, 60), shared_window("t_sender", 3, 60)
    assert isinstance(one, RedisSlidingWindow) and isinstance(two, RedisSlidingWindow)
    assert [one.allow("x"), two.allow("x"), two.allow("x")] == [True, True, True]
    assert not one.allow("x") and not two.allow("x")
    assert one.count("x") == 3
    assert 1 <= one.retry_after("x") <= 61
    assert one.allow("other")
    handoffs = shared_window("t_handoffs", 1, 3600)
    handoffs.hit("a")
    handoffs.hit("a")
    assert two.count("x") == 3 and handoffs.count("a") == 2


@needs_redis
def test_redis_down_lets_messages_through(monkeypatch) -> None:
    from xiaoer.devtools.stack import free_port

    monkeypatch.setenv("XIAOER_REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("XIAOER_REDIS_PORT", str(free_port()))  # nothing listens there
    window = shared_window("t_down", 1, 60)
    assert window.allow("x") and window.allow("x")

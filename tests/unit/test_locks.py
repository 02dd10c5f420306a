"""The atomic Redis lock store against a real Redis server: turns of one conversation
never overlap across replicas, run first come first served, and a dead holder does not
block the conversation beyond the lock lifetime."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig

from xiaoer.devtools.services import Redis, running_redis
from xiaoer.plugins.locks import AtomicRedisLockStore

pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="redis-server not installed (scripts/system-deps.sh)"
)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def replica(server: Redis) -> AtomicRedisLockStore:
    """A lock store as Rasa builds it from endpoints.yml (one per Rasa server)."""
    config = EndpointConfig(
        url=server.host, port=server.port, db=1, type="xiaoer.plugins.locks.AtomicRedisLockStore"
    )
    return AtomicRedisLockStore(endpoint_config=config)


def test_turns_never_overlap_across_replicas(redis_server: Redis):
    """Eight replicas (threads, each with its own event loop and store, as separate Rasa
    servers) take turns on one conversation at the same moment."""
    shared = {"value": 0, "inside": 0, "overlaps": 0}
    guard = threading.Lock()

    async def turns(store: AtomicRedisLockStore) -> None:
        for _ in range(5):
            async with store.lock("conv-overlap"):
                with guard:
                    shared["inside"] += 1
                    shared["overlaps"] += shared["inside"] > 1
                value = shared["value"]
                await asyncio.sleep(0.005)  # a read-modify-write that a race would break
                shared["value"] = value + 1
                with guard:
                    shared["inside"] -= 1

    threads = [
        threading.Thread(target=lambda: asyncio.run(turns(replica(redis_server)))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert shared["overlaps"] == 0, "two turns of one conversation ran at once"
    assert shared["value"] == 40


def test_first_come_first_served(redis_server: Redis):
    stores = [replica(redis_server), replica(redis_server)]
    order: list[int] = []

    async def turn(i: int) -> None:
        await asyncio.sleep(i * 0.005)  # arrive in order 0, 1, 2, ...
        async with stores[i % 2].lock("conv-fifo"):
            order.append(i)
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(*(turn(i) for i in range(10)))

    asyncio.run(main())
    assert order == list(range(10))


def test_other_conversations_are_not_blocked(redis_server: Redis):
    store = replica(redis_server)
    done: list[str] = []

    async def main() -> None:
        async with store.lock("conv-a"):
            async with store.lock("conv-b"):
                done.append("b")

    asyncio.run(asyncio.wait_for(main(), 5))
    assert done == ["b"]


def test_a_dead_holder_blocks_only_for_the_lock_lifetime(redis_server: Redis):
    """A replica that crashed while holding the lock never releases it: its ticket
    expires with the lock lifetime and the next message is served."""
    store = replica(redis_server)
    next_key, serving_key, alive = store._keys("conv-dead")
    store._issue(keys=[next_key, serving_key, alive], args=[300, 60_000])  # crashed holder

    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with store.lock("conv-dead", lock_lifetime=5):
            return loop.time() - started

    waited = asyncio.run(main())
    assert 0.2 <= waited < 2


def test_a_waiter_gives_up_after_the_lifetime(redis_server: Redis):
    store = replica(redis_server)

    async def main() -> None:
        async with store.lock("conv-busy", lock_lifetime=30):
            with pytest.raises(LockError):
                async with store.lock("conv-busy", lock_lifetime=0.3):
                    pass
        # the conversation is usable afterwards
        async with store.lock("conv-busy", lock_lifetime=1):
            pass

    asyncio.run(asyncio.wait_for(main(), 10))


def test_endpoints_yml_of_the_scale_out_profile_uses_it():
    text = (Path(__file__).resolve().parents[2] / "deploy" / "endpoints.scale-out.yml").read_text()
    assert "type: xiaoer.plugins.locks.AtomicRedisLockStore" in text

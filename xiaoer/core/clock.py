"""The shop's clock: Beijing time (UTC+8), whatever the server's time zone."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

BEIJING = timezone(timedelta(hours=8), name="Asia/Shanghai")


def now_beijing() -> datetime:
    return datetime.now(BEIJING)


# --- the demo clock (``xiaoer demo-traffic``) ----------------------------------------------
# A Rasa server started with $XIAOER_DEMO_CLOCK=<file> stamps its conversation events with
# the real time plus the offset (seconds) written in that file, so that simulated traffic
# lands on the days it pretends to happen on: the analytics store reads only the events'
# own timestamps. Nothing else of the server moves (HTTP, timeouts, locks use real time).
DEMO_CLOCK_ENV = "XIAOER_DEMO_CLOCK"
_offset_cache: dict[str, Any] = {"stamp": None, "value": 0.0}


def demo_offset() -> float:
    """The demo clock's offset in seconds (0 without $XIAOER_DEMO_CLOCK)."""
    path = os.environ.get(DEMO_CLOCK_ENV)
    if not path:
        return 0.0
    try:
        stamp = os.stat(path).st_mtime_ns
        if stamp != _offset_cache["stamp"]:
            with open(path, encoding="utf-8") as handle:
                _offset_cache["value"] = float(handle.read().strip() or 0)
            _offset_cache["stamp"] = stamp
    except (OSError, ValueError):
        return float(_offset_cache["value"])
    return float(_offset_cache["value"])


def set_demo_time(path: str | os.PathLike[str], moment: float) -> None:
    """Move the demo clock of the servers reading ``path`` so that now is ``moment``."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(repr(moment - time.time()))
    os.replace(tmp, path)


class _DemoTime:
    """The ``time`` module as Rasa's event code sees it under the demo clock."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def time() -> float:
        return time.time() + demo_offset()


def install_demo_clock() -> bool:
    """With $XIAOER_DEMO_CLOCK: Rasa's events, trackers and session expiry use the demo
    clock (the only modules that read the time for conversation data)."""
    if not os.environ.get(DEMO_CLOCK_ENV):
        return False
    import rasa.core.processor
    import rasa.shared.core.events
    import rasa.shared.core.trackers

    for module in (rasa.core.processor, rasa.shared.core.events, rasa.shared.core.trackers):
        module.time = _DemoTime()
    logging.getLogger(__name__).warning(
        "demo clock on (%s): conversation events are stamped with simulated times",
        os.environ[DEMO_CLOCK_ENV],
    )
    return True

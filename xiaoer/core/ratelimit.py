"""In-memory sliding-window rate limits (per process).

Enough for the embedded profile (one Rasa server); several replicas each count their own
requests, so the effective limit is the configured one times the number of replicas
(docs/deployment.md)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` events per key within ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._prune(now)
            events = self._events[key] = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]:
            del self._events[key]
        if len(self._events) >= self.max_keys:  # still full: forget the oldest keys
            for key in list(self._events)[: self.max_keys // 10]:
                del self._events[key]

    def count(self, key: str) -> int:
        return len(self._recent(key, self.clock()))

    def allow(self, key: str) -> bool:
        """Record one event for ``key`` unless the limit is reached (then False)."""
        if self.limit <= 0:
            return True
        now = self.clock()
        events = self._recent(key, now)
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def hit(self, key: str) -> None:
        """Record one event regardless of the limit."""
        self._recent(key, self.clock()).append(self.clock())

    def retry_after(self, key: str) -> int:
        events = self._recent(key, self.clock())
        if not events:
            return 0
        return max(1, int(events[0] + self.window - self.clock()) + 1)

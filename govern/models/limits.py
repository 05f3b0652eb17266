"""How many calls may be in flight to one endpoint, adapted to its rate limits.

Additive increase, multiplicative decrease, as TCP does: a rate-limited attempt
(HTTP 429) halves the endpoint's limit, and each run of as many successful
attempts as the limit allows raises it by one, up to the ceiling the manifest
or ``--concurrency`` set. A slot is held for one attempt, not across the
backoff after a refusal, so calls waiting to retry do not crowd the server;
attempts over a lowered limit finish, new ones wait.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

UNLIMITED = 1 << 30  # the ceiling of a client no router limits


class AdaptiveLimit:
    def __init__(self, ceiling: int, run_slots: asyncio.Semaphore | None = None) -> None:
        if ceiling < 1:
            raise ValueError("a concurrency limit is at least 1")
        self.run_slots = run_slots  # the run's own bound, taken after this one, per attempt
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.lowest = ceiling  # the lowest the limit went, for the record
        self._successes = 0
        self._changed = asyncio.Condition()

    def rate_limited(self) -> None:
        """An attempt was refused for its rate: halve the limit (at least 1)."""
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        self._successes = 0

    async def __aenter__(self) -> AdaptiveLimit:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        if self.run_slots is not None:
            try:
                await self.run_slots.acquire()
            except BaseException:
                await self._release()
                raise
        return self

    def succeeded(self) -> None:
        """An attempt got its reply: after as many as the limit, one more may be in flight."""
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._successes = 0

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.run_slots is not None:
            self.run_slots.release()
        await self._release()

    async def _release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

"""Rate limits: an endpoint's in-flight limit halves on a 429 and grows back on success, and a
run against a server that refuses a crowd completes without failures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govern.models.limits import AdaptiveLimit
from govern.run.runner import execute
from tests.test_litellm_client import FakeServer, Reply, completion, error, server  # noqa: F401
from tests.test_sampling import SENATE, prepared_against

TOO_MANY = Reply(
    429, error("Rate limit reached", "rate_limit_exceeded"), (("Retry-After", "0.05"),)
)


@given(st.integers(1, 64), st.lists(st.booleans(), max_size=200))
def test_the_limit_stays_between_one_and_its_ceiling(ceiling: int, events: list[bool]) -> None:
    limit = AdaptiveLimit(ceiling)
    for refused in events:
        before = limit.limit
        if refused:
            limit.rate_limited()
            assert limit.limit == max(1, before // 2)
        else:
            limit.succeeded()
            assert limit.limit in (before, before + 1)
        assert 1 <= limit.lowest <= limit.limit <= ceiling


def test_a_halved_limit_grows_back_one_per_round_of_successes() -> None:
    limit = AdaptiveLimit(8)
    limit.rate_limited()
    limit.rate_limited()
    assert limit.limit == 2 and limit.lowest == 2
    for _ in range(2):
        limit.succeeded()
    assert limit.limit == 3
    for _ in range(3):
        limit.succeeded()
    assert limit.limit == 4


def test_no_more_attempts_than_the_limit_are_in_flight() -> None:
    async def scenario() -> int:
        limit = AdaptiveLimit(4)
        limit.rate_limited()  # now 2
        most = 0

        async def attempt() -> None:
            nonlocal most
            async with limit:
                most = max(most, limit.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(attempt() for _ in range(10)))
        return most

    assert asyncio.run(scenario()) == 2


@dataclass
class Crowded:
    """A server with room for ``room`` requests at once: one more is refused with a 429."""

    room: int
    hold: float = 0.1
    now: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, loopback: FakeServer) -> Crowded:
        answer = loopback.next_reply

        def crowded(path: str, raw: bytes, headers: dict[str, str]) -> Reply:
            with self.lock:
                if self.now >= self.room:
                    self.refused += 1
                    return TOO_MANY
                self.now += 1
            time.sleep(self.hold)
            with self.lock:
                self.now -= 1
            return answer(path, raw, headers)

        loopback.next_reply = crowded  # type: ignore[method-assign]
        return self


def test_a_run_against_a_crowded_server_completes_without_failures(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    text = SENATE + "parsing: tolerant\n"  # one reply serves as answer, ballot and decision
    run = prepared_against(server, tmp_path, text, model="openai/test-model")
    run.context.router.concurrency = 8  # five senators at once against room for two
    aye = Reply(body=completion("Sound.\n#### 18\nVOTE: yes\nDECISION: approve"))
    server.script = [aye] * 40
    crowd = Crowded(room=2).watch(server)
    asyncio.run(execute(run))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert crowd.refused > 0  # the server did refuse the crowd
    assert summary["failures"] == {} and summary["outcomes"] == {"completed": 1}
    (limit,) = run.context.router.limits.values()
    assert limit.lowest <= 2  # halved to what the server has room for
    assert summary["calls_per_item"] > 5


@pytest.mark.parametrize("ceiling", [0, -1])
def test_a_limit_below_one_is_refused(ceiling: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(ceiling)


def test_a_call_backing_off_holds_no_slot_of_the_run(
    server: FakeServer,  # noqa: F811
) -> None:
    """One server refusing with a Retry-After does not hold up another server's calls."""
    from govern.models.base import ModelRequest, Oracle
    from govern.models.router import ModelRouter
    from govern.spec.models import Endpoint
    from tests.test_litellm_client import server as start_server

    slow_refusal = Reply(
        429, error("Rate limit reached", "rate_limit_exceeded"), (("Retry-After", "2"),)
    )
    server.script = [slow_refusal] * 8
    serving = start_server.__wrapped__()
    other = next(serving)
    router = ModelRouter(
        api_key="test-key",
        concurrency=2,
        endpoints={
            "openai/a": Endpoint(api_base=server.url),
            "openai/b": Endpoint(api_base=other.url),
        },
        max_retries=1,
    )

    def request(model: str) -> ModelRequest:
        oracle = Oracle("i", None, "solve", "s", "x#1", 1)
        return ModelRequest(model, [{"role": "user", "content": "1+1?"}], oracle, max_tokens=8)

    async def scenario() -> float:
        refused = [asyncio.create_task(router.complete(request("openai/a"))) for _ in range(2)]
        await asyncio.sleep(0.5)  # both calls to A are backing off now
        started = time.perf_counter()
        await router.complete(request("openai/b"))
        took = time.perf_counter() - started
        await asyncio.gather(*refused, return_exceptions=True)
        return took

    try:
        assert asyncio.run(scenario()) < 1.5  # not behind A's 2 s backoff
    finally:
        next(serving, None)  # stops the second server


def test_a_retry_after_past_the_backoff_limit_fails_at_once_saying_so(
    server: FakeServer,  # noqa: F811
) -> None:
    from govern.models.base import ModelError, ModelRequest, Oracle
    from govern.models.router import ModelRouter

    server.script = [
        Reply(429, error("Rate limit reached", "rate_limit_exceeded"), (("Retry-After", "3600"),))
    ] * 4
    router = ModelRouter(api_base=server.url, api_key="test-key")
    oracle = Oracle("i", None, "solve", "s", "x#1", 1)
    request = ModelRequest("openai/a", [{"role": "user", "content": "1+1?"}], oracle)
    with pytest.raises(ModelError, match="asks to wait 3600 s, longer than govern's 20 s"):
        asyncio.run(router.complete(request))
    assert len(server.raw) == 1

"""The response cache: a repeated real-model run is answered without a call and costs nothing;
what decides a reply decides the key; a damaged cache is refused, never trusted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from govern.models.base import ModelRequest, Oracle
from govern.models.cache import ResponseCache, request_key
from govern.run.request import RunSetupError
from govern.run.runner import execute
from tests.test_litellm_client import FakeServer, server  # noqa: F401 - the fixture
from tests.test_sampling import prepared_against, turns

BARE = "id: bare\ninstitution: bare.yaml\ntask: {name: gsm8k}\n"


def run_bare(loopback: FakeServer, folder: Path) -> dict:
    (folder / "bare.yaml").parent.mkdir(parents=True, exist_ok=True)
    (folder / "bare.yaml").write_text(
        (Path(__file__).parents[1] / "institutions" / "bare.yaml").read_text()
    )
    asyncio.run(execute(prepared_against(loopback, folder, BARE, model="openai/test-model")))
    return json.loads((folder / "run" / "summary.json").read_text())


def test_a_repeated_run_is_answered_from_the_cache_without_a_call(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVERN_CACHE", str(tmp_path / "responses.sqlite"))
    first = run_bare(server, tmp_path / "first")
    asked = len(server.raw)
    assert asked >= 1 and first["cached_calls"] == 0
    second = run_bare(server, tmp_path / "second")
    assert len(server.raw) == asked  # no HTTP call at all
    assert second["cached_calls"] == asked and second["cost"] == 0.0
    again = turns(tmp_path / "second" / "run")
    assert all(t["cached"] for t in again)
    assert [t["text"] for t in again] == [t["text"] for t in turns(tmp_path / "first" / "run")]


def test_off_means_every_call_is_made(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:  # the test environment sets GOVERN_CACHE=off
    run_bare(server, tmp_path / "first")
    asked = len(server.raw)
    second = run_bare(server, tmp_path / "second")
    assert len(server.raw) == 2 * asked and second["cached_calls"] == 0


def _request(**changes: object) -> ModelRequest:
    fields: dict = {
        "model": "openai/m",
        "messages": [{"role": "user", "content": "6 x 7?"}],
        "oracle": Oracle("i", "42", "solve", "s", "a#1", 1),
        "seed": 7,
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "extra": {"top_k": 40},
    }
    return ModelRequest(**{**fields, **changes})


@pytest.mark.parametrize(
    "change",
    [
        {"model": "openai/n"},
        {"messages": [{"role": "user", "content": "6 x 8?"}]},
        {"seed": 8},
        {"max_tokens": 65},
        {"temperature": 0.0},
        {"top_p": 1.0},
        {"extra": {"top_k": 41}},
    ],
)
def test_whatever_decides_a_reply_changes_the_key(change: dict) -> None:
    assert request_key(_request(**change), None) != request_key(_request(), None)


def test_the_server_and_not_the_hidden_oracle_change_the_key() -> None:
    assert request_key(_request(), "http://a/v1") != request_key(_request(), "http://b/v1")
    other_oracle = _request(oracle=Oracle("j", "41", "vote", "t", "b#2", 3))
    assert request_key(other_oracle, None) == request_key(_request(), None)


def test_a_damaged_cache_file_is_refused_and_left_as_it_was(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    damaged = tmp_path / "responses.sqlite"
    damaged.write_bytes(b"not a database " * 100)
    monkeypatch.setenv("GOVERN_CACHE", str(damaged))
    with pytest.raises(RunSetupError, match="cannot be used"):
        run_bare(server, tmp_path / "run")
    assert damaged.read_bytes() == b"not a database " * 100


def test_stats_and_clear(tmp_path: Path) -> None:
    from govern.models.base import ModelResponse

    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("k", ModelResponse("#### 42", "openai/m", 3, 2, None, 0.5))
    assert cache.stats() == {"openai/m": 1}
    kept = cache.get("k")
    assert kept is not None and kept.cached and kept.cost == 0.0 and kept.text == "#### 42"
    assert cache.clear() == 1 and cache.get("k") is None
    cache.close()


def test_govern_cache_shows_and_clears_what_is_kept(tmp_path: Path) -> None:
    from govern.models.base import ModelResponse
    from tests.conftest import run_cli

    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    for n in range(3):
        cache.put(f"k{n}", ModelResponse("#### 42", "openai/m", 3, 2, None, 0.5))
    cache.close()
    shown = run_cli("cache", "stats", GOVERN_CACHE=str(path))
    assert shown.returncode == 0 and "3 responses kept" in shown.stdout
    assert "openai/m" in shown.stdout
    cleared = run_cli("cache", "clear", GOVERN_CACHE=str(path))
    assert cleared.returncode == 0 and "3 responses forgotten" in cleared.stdout
    assert "0 responses kept" in run_cli("cache", "stats", GOVERN_CACHE=str(path)).stdout
    path.write_bytes(b"garbage" * 50)
    damaged = run_cli("cache", "stats", GOVERN_CACHE=str(path))
    assert damaged.returncode == 2 and "cannot be used" in damaged.stderr
    assert "Traceback" not in damaged.stderr


def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "app.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE responses (key TEXT, body TEXT)")
    db.execute("INSERT INTO responses VALUES ('a', 'b')")
    db.commit()
    db.close()
    before = other.read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="not govern's response cache"):
        ResponseCache(other)
    assert other.read_bytes() == before


def test_a_reply_that_cannot_be_kept_or_read_back_is_still_an_answer(tmp_path: Path) -> None:
    from govern.models.base import ModelResponse

    cache = ResponseCache(tmp_path / "c.sqlite")
    cache._db.execute("UPDATE responses SET response = 'x'")  # nothing yet: a no-op
    cache.put("k", ModelResponse("#### 42", "openai/m", 3, 2, None, 0.5))
    cache._db.execute('UPDATE responses SET response = \'{"text": 1, "bogus": 2}\'')
    assert cache.get("k") is None  # unreadable: a miss, never a crash
    cache._db.execute("PRAGMA query_only = ON")  # as a file that cannot be written
    cache.put("j", ModelResponse("#### 7", "openai/m", 3, 2, None, 0.5))  # warns, no raise
    cache.close()


def test_a_cached_turn_says_so_in_the_ledger(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVERN_CACHE", str(tmp_path / "responses.sqlite"))
    run_bare(server, tmp_path / "first")
    run_bare(server, tmp_path / "second")
    ledger = (tmp_path / "second" / "run" / "ledger.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in ledger]
    kept = [e["body"] for e in entries if e["kind"] == "turn"]
    assert kept and all(body.get("cached") for body in kept)

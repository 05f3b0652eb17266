"""Real models misbehaving: every fault a provider or a proxy can produce, through litellm.

Each fault mode of ``tests/fault_server.py`` goes through ``LiteLLMClient`` and
must end in an answer or a ``ModelError`` whose reason says truthfully what
happened. Then a 500-item run against the mixed mode must end every item
scored or failed with its reason, with bounded retries and an intact ledger,
and the console must group why items failed and exit 1 when all of them did.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from govern.models.base import ModelError, ModelRequest, ModelResponse, Oracle
from govern.models.litellm_client import LiteLLMClient
from govern.models.router import ModelRouter
from govern.run.report import report_failures
from govern.run.runner import RunRequest, execute, prepare
from govern.run.summary import Summary, failure_reason, failures, summarise
from tests.conftest import ROOT, TEST_KEYS, run_cli
from tests.fault_server import MIXED_WEIGHTS, FaultServer

MODEL = "openai/fault-model"
BARE = ROOT / "institutions" / "bare.yaml"


class Sleeps:
    """A no-op ``sleep`` that remembers the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(server: FaultServer, sleeps: Sleeps | None = None, **options: object) -> LiteLLMClient:
    settings: dict = {
        "api_base": server.url,
        "api_key": "test-key",
        "timeout": 2.0,
        "max_retries": 2,
        "sleep": sleeps or Sleeps(),
    }
    return LiteLLMClient(**(settings | options))


def request(text: str = "What is 6 x 7? [answer 42]") -> ModelRequest:
    oracle = Oracle(
        item_id="item-1", gold="42", act="solve", stage="solve", agent="solver", visit=1
    )
    return ModelRequest(model=MODEL, messages=[{"role": "user", "content": text}], oracle=oracle)


def complete(model_client: LiteLLMClient) -> ModelResponse:
    return asyncio.run(model_client.complete(request()))


def fail(model_client: LiteLLMClient) -> ModelError:
    with pytest.raises(ModelError) as caught:
        complete(model_client)
    return caught.value


# --- one mode at a time ------------------------------------------------------------


def test_ok_and_latency_answer() -> None:
    with FaultServer("latency", latency=0.3) as server:
        response = complete(client(server))
    assert response.text.endswith("#### 42") and response.attempts == 1
    assert response.latency >= 0.3 and server.requests == 1


def test_rate_limit_waits_as_long_as_the_server_asks() -> None:
    sleeps = Sleeps()
    with FaultServer("ok", script=["rate_limit"], retry_after=2) as server:
        response = complete(client(server, sleeps))
    assert response.attempts == 2 and server.requests == 2 and sleeps.delays == [2.0]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("server_error", "server error (HTTP 500)"),
        ("unavailable", "server error (HTTP 503)"),
        ("rate_limit", "rate limited (HTTP 429)"),
        ("reset", "connection failed: reset by the server"),
        ("cut", "connection failed: reply cut short"),
        ("garbage", "invalid response: not JSON"),
        ("html", "invalid response: not JSON (an HTML page)"),
        ("empty_choices", "empty response: no choices"),
        ("null_content", "empty response: null content (finish_reason stop)"),
    ],
)
def test_a_persistent_fault_is_retried_a_bounded_number_of_times_and_named(
    mode: str, reason: str
) -> None:
    sleeps = Sleeps()
    with FaultServer(mode) as server:
        err = fail(client(server, sleeps, max_retries=2))
    assert err.reason == reason  # truthful: an HTML page with status 200 is no "HTTP 500"
    assert err.retryable and err.attempts == 3 and server.requests == 3
    assert len(sleeps.delays) == 2
    assert str(err) == f"{MODEL}: {reason} after 3 attempts"


@pytest.mark.parametrize(
    "mode", ["reset", "cut", "garbage", "html", "empty_choices", "null_content", "unavailable"]
)
def test_a_passing_fault_is_retried_into_an_answer(mode: str) -> None:
    with FaultServer("ok", script=[mode]) as server:
        response = complete(client(server))
    assert response.attempts == 2 and server.requests == 2
    assert response.text.endswith("#### 42")


def test_a_null_content_the_model_finished_on_is_not_retried() -> None:
    with FaultServer("null_content", null_finish="length") as server:
        err = fail(client(server))
    assert err.reason == "empty response: null content (finish_reason length)"
    assert not err.retryable and err.attempts == 1 and server.requests == 1


def test_a_wrong_key_is_not_retried() -> None:
    with FaultServer("unauthorized") as server:
        err = fail(client(server))
    assert err.reason == "authentication failed (HTTP 401); check the API key"
    assert err.attempts == 1 and server.requests == 1


def test_a_drip_is_cut_off_by_the_attempts_timeout_not_just_per_read() -> None:
    # a byte every 0.1 s never trips a per-read timeout of 0.5 s; the attempt's does
    with FaultServer("drip", drip_interval=0.1) as server:
        started = time.perf_counter()
        err = fail(client(server, timeout=0.5, max_retries=1))
        elapsed = time.perf_counter() - started
    assert err.reason == "timed out (0.5 s per attempt)" and err.attempts == 2
    assert server.requests == 2 and elapsed < 3.0


def test_the_whole_call_has_a_deadline_across_its_attempts() -> None:
    with FaultServer("drip", drip_interval=0.1) as server:
        started = time.perf_counter()
        err = fail(client(server, timeout=0.4, deadline=1.0, max_retries=10, backoff_base=0.0))
        elapsed = time.perf_counter() - started
    assert err.reason == "no reply within the call's 1 s deadline"
    assert 0.9 <= elapsed < 2.5
    assert err.attempts == server.requests == 3  # 0.4 + 0.4 + the last 0.2


def test_a_backoff_longer_than_the_time_left_gives_up_at_once() -> None:
    sleeps = Sleeps()
    with FaultServer("unavailable") as server:
        err = fail(client(server, sleeps, deadline=2.0, backoff_base=5.0, backoff_max=5.0))
    assert err.attempts == 1 and server.requests == 1 and not sleeps.delays
    assert err.reason == "server error (HTTP 503); no time left before the call's 2 s deadline"


def test_mixed_mode_is_deterministic_and_serves_every_fault() -> None:
    first, again = FaultServer("mixed", seed=7), FaultServer("mixed", seed=7)
    picks = [first.pick(n) for n in range(2000)]
    assert picks == [again.pick(n) for n in range(2000)]
    assert picks != [FaultServer("mixed", seed=8).pick(n) for n in range(2000)]
    counts = Counter(picks)
    assert set(counts) == set(MIXED_WEIGHTS)
    assert 0.4 < counts["ok"] / len(picks) < 0.6


def test_mixed_mode_through_the_client_ends_in_answers_or_named_errors() -> None:
    with FaultServer("mixed", seed=3, latency=0.05, drip_interval=0.1) as server:
        model_client = client(server, timeout=0.3, deadline=1.0, max_retries=3)

        async def many() -> list[ModelResponse | BaseException]:
            calls = [model_client.complete(request()) for _ in range(40)]
            return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(many())
    answers = [r for r in results if isinstance(r, ModelResponse)]
    errors = [r for r in results if isinstance(r, ModelError)]
    assert len(answers) + len(errors) == 40 and answers
    assert all(a.text.endswith("#### 42") for a in answers)
    assert server.requests <= 40 * 4


# --- failure reasons, grouped ------------------------------------------------------


def record(item: str, outcome: str, errors: list[str], path: list[str]) -> dict:
    return {
        "id": item,
        "outcome": outcome,
        "errors": errors,
        "path": path,
        "correct_strict": False,
        "correct_flexible": False,
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "unparsable": 0,
        "turns": [],
    }


def test_reasons_are_grouped_without_stage_prefixes_ids_or_byte_counts() -> None:
    records = [
        record(
            "gen/1", "error", ["vote: vote: m: server error (HTTP 503) after 4 attempts"], ["vote"]
        ),
        record("gen/2", "error", ["solve: m: server error (HTTP 503) after 4 attempts"], ["solve"]),
        record("gen/3", "error", ["solve: ValueError: gen/3 broke at 0x7f3a9c"], ["solve"]),
        record("gen/4", "error", ["ValueError: gen/4 broke at 0x7f00aa"], []),
        record("gen/5", "error", ["solve: m: received 151 of 303 bytes"], ["solve"]),
        record("gen/6", "error", ["solve: m: received 99 of 303 bytes"], ["solve"]),
        record("gen/7", "completed", [], ["solve"]),
        record("gen/8", "error", [], ["solve"]),
    ]
    assert failure_reason(records[6]) is None
    assert failures(records) == {
        "ValueError: <item> broke at 0x…": 2,
        "m: received N bytes": 2,
        "m: server error (HTTP 503) after 4 attempts": 2,
        "failed without a recorded error": 1,
    }


def summary_of(records: list[dict]) -> Summary:
    return summarise(
        records,
        simulated=False,
        complete=True,
        manifest="m",
        institution="bare",
        pattern="pipeline",
        task="gsm8k",
        data_source="test",
        benchmark=False,
        n_planned=len(records),
        wall_seconds=1.0,
        models={"solver": MODEL},
        seed=0,
        concurrency=1,
        started="",
        finished="",
        govern_version="test",
    )


def test_the_console_groups_failures_and_a_run_that_failed_entirely_exits_1() -> None:
    refused = "solve: openai/x: connection failed: refused after 4 attempts"
    busy = "solve: openai/x: server error (HTTP 503) after 4 attempts"
    records = [record(f"i{n}", "error", [refused], ["solve"]) for n in range(312)]
    records += [record(f"j{n}", "error", [busy], ["solve"]) for n in range(188)]
    out = io.StringIO()
    assert report_failures(summary_of(records), out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "failures: 500 of 500 items failed:"
    assert lines[1] == "  312  openai/x: connection failed: refused after 4 attempts"
    assert lines[2].strip().startswith("188  openai/x: server error (HTTP 503)")
    assert lines[-1] == "govern: every item failed (500 of 500): nothing was scored"

    records.append(record("k", "completed", [], ["solve"]))
    out = io.StringIO()
    assert report_failures(summary_of(records), out) == 0
    assert "500 of 501 items failed" in out.getvalue() and "every item" not in out.getvalue()
    assert report_failures(summary_of([record("k", "completed", [], ["solve"])]), out) == 0


def test_govern_run_exits_1_with_the_reason_when_every_item_fails(tmp_path: Path) -> None:
    with FaultServer("unauthorized") as server:
        done = run_cli(
            "run", str(BARE), "--task", "gsm8k", "--limit", "5", "--model", MODEL,
            "--api-base", server.url, "--out", str(tmp_path / "run"),
            OPENAI_API_KEY="wrong", **TEST_KEYS,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "failures: 5 of 5 items failed:" in done.stderr
    assert f"5  {MODEL}: authentication failed (HTTP 401); check the API key" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "govern: every item failed (5 of 5): nothing was scored"
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failures"] == {
        f"{MODEL}: authentication failed (HTTP 401); check the API key": 5
    }


def test_govern_run_exits_0_when_some_items_were_scored(tmp_path: Path) -> None:
    with FaultServer("ok", script=["unauthorized"]) as server:
        done = run_cli(
            "run", str(BARE), "--task", "gsm8k", "--limit", "3", "--model", MODEL,
            "--api-base", server.url, "--out", str(tmp_path / "run"), "--concurrency", "1",
            OPENAI_API_KEY="test", **TEST_KEYS,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "failures: 1 of 3 items failed:" in done.stderr


# --- 500 items against the mixed server ----------------------------------------------


def write_items(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as file:
        for i in range(n):
            a, b = 17 * i % 97, 31 * i % 89
            question = f"Problem {i}: what is {a} plus {b}? [answer {a + b}]"
            answer = f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"
            file.write(json.dumps({"question": question, "answer": answer}) + "\n")


def test_500_items_against_a_misbehaving_server(tmp_path: Path) -> None:
    from govern.ledger.keys import load_keyring
    from govern.ledger.verifier import verify

    items, retries = 500, 3
    data = tmp_path / "items.jsonl"
    write_items(data, items)
    with FaultServer("mixed", seed=11, latency=0.05, drip_interval=0.1) as server:
        router = ModelRouter(
            api_base=server.url,
            api_key="test-key",
            timeout=0.5,
            deadline=1.5,
            max_retries=retries,
            backoff_base=0.0,
            backoff_max=0.0,
            concurrency=16,
        )
        run = prepare(
            RunRequest(
                BARE,
                task="gsm8k",
                model=MODEL,
                data=data,
                out=tmp_path / "run",
                concurrency=16,
                api_base=server.url,
            ),
            router,
        )
        started = time.perf_counter()
        summary = asyncio.run(execute(run))
        wall = time.perf_counter() - started
    print(f"\n500 items in {wall:.1f} s, {server.requests} requests, {dict(server.served)}")

    records = [json.loads(line) for line in (run.folder / "results.jsonl").read_text().splitlines()]
    assert len(records) == summary.n == items and summary.complete
    assert len({r["id"] for r in records}) == items
    failed = [r for r in records if r["outcome"] == "error"]
    scored = [r for r in records if r["outcome"] != "error"]
    # every item is scored, or failed with its reason
    assert all(r["outcome"] == "completed" and r["correct_strict"] for r in scored)
    assert all(r["errors"] and failure_reason(r) for r in failed)
    assert scored and failed
    assert sum(summary.failures.values()) == len(failed) == summary.outcomes.get("error", 0)
    # reasons group: a handful of kinds, none naming an item
    assert len(summary.failures) <= 20, summary.failures
    assert not any(re.search(r"Problem|gsm8k/|\d+ of \d+ bytes", k) for k in summary.failures)
    assert all(k.startswith(f"{MODEL}: ") for k in summary.failures)
    # retries are bounded: one call per item (every answer parses), each at most 1 + retries
    assert server.requests <= items * (retries + 1)
    assert all(t["attempts"] <= retries + 1 for r in scored for t in r["turns"])
    # unparsable output is not how faults show up any more
    assert summary.unparsable_outputs == 0
    report = verify(run.folder / "ledger.jsonl", load_keyring())
    assert report.intact and report.complete, report.summary()


class FailingIn:
    """Scripted answers, except that one stage's calls fail as a real model's would."""

    def __init__(self, stage: str) -> None:
        from govern.models.sim.scripted import ScriptedClient

        self.stage = stage
        self.scripted = ScriptedClient({})

    async def complete(self, model_request: ModelRequest) -> ModelResponse:
        if model_request.oracle.stage == self.stage:
            raise ModelError("sim/medium", "server error (HTTP 503)", attempts=4, retryable=True)
        return await self.scripted.complete(model_request)


def test_a_parallel_seats_failure_is_recorded_once_with_one_stage_prefix(tmp_path: Path) -> None:
    from govern.tasks.gsm8k import SAMPLE

    router = ModelRouter(clients={"sim/medium": FailingIn("division")})
    run = prepare(
        RunRequest(
            ROOT / "manifests" / "senate.yaml",
            task="gsm8k",
            limit=2,
            out=tmp_path / "run",
            data=SAMPLE,
        ),
        router,
    )
    summary = asyncio.run(execute(run))
    records = [json.loads(line) for line in (run.folder / "results.jsonl").read_text().splitlines()]
    for failed in records:
        assert failed["outcome"] == "error"
        assert (
            failed["errors"][-1] == "division: sim/medium: server error (HTTP 503) after 4 attempts"
        )
        assert not any(e.startswith("division: division: ") for e in failed["errors"])
    assert summary.failures == {"sim/medium: server error (HTTP 503) after 4 attempts": 2}

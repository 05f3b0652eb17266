"""summary.json is tallied as items finish (no record is kept): the tally gives exactly the
summary the list of every record gave before, on real runs' records and on generated ones."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.models.router import ModelRouter
from govern.models.sim.params import is_simulated
from govern.models.sim.scripted import ScriptedClient
from govern.run.runner import RunRequest, execute, prepare
from govern.run.stats import wilson
from govern.run.summary import (
    SIMULATED_LABEL,
    Summary,
    Tally,
    failure_reason,
    partly_simulated_label,
    summarise,
)
from tests.conftest import ROOT

SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"


def summarise_the_list(records: list[dict[str, Any]], **fields: Any) -> Summary:
    """The summary as govern computed it before the tally, over the list of every record
    (kept here as the reference the tally must equal)."""
    n = len(records)
    costs = [r["cost"] for r in records]
    turns = [t for r in records for t in r["turns"]]
    share = sum(is_simulated(t["model"]) for t in turns) / len(turns) if turns else None
    label = (
        SIMULATED_LABEL if fields["simulated"] else partly_simulated_label(share) if share else None
    )
    reasons = Counter(r for r in map(failure_reason, records) if r is not None)
    return Summary(
        label=label,
        unparsed_turns=sum(not t["parsed"] for t in turns),
        reasks=sum(r.get("reasks", 0) for r in records),
        reasks_answered=sum(bool(t.get("reask")) and t["parsed"] for t in turns),
        simulated_calls=None if share is None else round(share, 4),
        cached_calls=sum(bool(t.get("cached")) for t in turns),
        n=n,
        accuracy_strict=wilson(sum(r["correct_strict"] for r in records), n),
        accuracy_flexible=wilson(sum(r["correct_flexible"] for r in records), n),
        calls_per_item=sum(r["calls"] for r in records) / n if n else None,
        failed_attempts=sum(r.get("failed_attempts", 0) for r in records),
        tokens_per_item=(
            sum(r["prompt_tokens"] + r["completion_tokens"] for r in records) / n if n else None
        ),
        cost=None if any(c is None for c in costs) else round(sum(costs), 6),
        unparsable_outputs=sum(r["unparsable"] for r in records),
        outcomes=dict(Counter(r["outcome"] or "unknown" for r in records)),
        items_with_errors=sum(bool(r["errors"]) for r in records),
        failures=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        **fields,
    )


FIELDS: dict[str, Any] = {
    "complete": True,
    "manifest": "m",
    "institution": "i",
    "pattern": "pipeline",
    "task": "gsm8k",
    "data_source": "test",
    "benchmark": False,
    "n_planned": 0,
    "wall_seconds": 1.0,
    "models": {},
    "seed": 0,
    "concurrency": 1,
    "started": "",
    "finished": "",
    "govern_version": "test",
}


def both(records: list[dict[str, Any]], simulated: bool) -> tuple[str, str]:
    tally = Tally()
    for record in records:
        tally.add(record)
    fields = {**FIELDS, "simulated": simulated}
    return (
        tally.summary(**fields).model_dump_json(),
        summarise_the_list(records, **fields).model_dump_json(),
    )


def records_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("spec", "model"),
    [
        ("manifests/senate.yaml", "sim/weak"),  # malformed outputs, send-backs, ballots
        ("manifests/chancery_governed.yaml", None),  # sanctions, stand-ins
        ("institutions/athens.yaml", "sim/medium"),
    ],
)
def test_a_runs_summary_equals_the_one_over_all_its_records(
    tmp_path: Path, spec: str, model: str | None
) -> None:
    request = RunRequest(
        ROOT / spec, task="gsm8k", data=SAMPLE, model=model, concurrency=4, out=tmp_path / "r"
    )
    run = prepare(request)
    written = asyncio.run(execute(run))
    records = records_of(tmp_path / "r")
    assert len(records) == written.n == 40
    fields = {k: v for k, v in written.model_dump().items() if k in FIELDS or k == "simulated"}
    expected = summarise_the_list(records, **fields)
    assert written == expected
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == expected.model_dump(
        mode="json"
    )
    assert summarise(records, **fields) == expected


class FailsSometimes(ScriptedClient):
    """Scripted answers, with every seventh call failing as a real model's would."""

    def __init__(self) -> None:
        super().__init__({"review": ["reject", "!", "approve"]})
        self.calls = 0

    async def complete(self, request):
        from govern.models.base import ModelError

        self.calls += 1
        if self.calls % 7 == 0:
            raise ModelError(request.model, f"server error (HTTP 503) at call {self.calls}", 4)
        return await super().complete(request)


def test_failed_items_tally_as_the_list_did(tmp_path: Path) -> None:
    router = ModelRouter(clients={"test/flaky": FailsSometimes()})
    request = RunRequest(
        ROOT / "institutions" / "tang.yaml",
        task="gsm8k",
        data=SAMPLE,
        model="test/flaky",
        concurrency=1,
        out=tmp_path / "r",
    )
    written = asyncio.run(execute(prepare(request, router)))
    records = records_of(tmp_path / "r")
    assert written.outcomes.get("error") and written.failures
    fields = {k: v for k, v in written.model_dump().items() if k in FIELDS or k == "simulated"}
    assert written == summarise_the_list(records, **fields)


MODELS = st.sampled_from(["sim/weak", "sim/strong", "openai/gpt-4o-mini", "test/model"])
TURN = st.fixed_dictionaries(
    {"model": MODELS, "parsed": st.booleans()},
    optional={"reask": st.integers(0, 3), "cached": st.booleans()},
)
ERROR = st.sampled_from(
    [
        "solve: m: server error (HTTP 503) after 4 attempts",
        "review: m: received 1234 bytes",
        "ValueError: broke at 0xdeadbeef",
        "solve: connection failed: refused",
    ]
)
RECORD = st.fixed_dictionaries(
    {
        "id": st.from_regex(re.compile(r"[a-z]{1,3}/\d{1,2}"), fullmatch=True),
        "correct_strict": st.booleans(),
        "correct_flexible": st.booleans(),
        "outcome": st.sampled_from(["completed", "rejected", "no_answer", "error", None]),
        "path": st.lists(st.sampled_from(["solve", "review", "done"]), max_size=4),
        "calls": st.integers(0, 40),
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**5),
        "cost": st.one_of(
            st.none(),
            st.floats(0, 5, allow_nan=False, allow_infinity=False),
            st.just(0.1),
            st.just(0.2),
        ),
        "unparsable": st.integers(0, 5),
        "errors": st.lists(ERROR, max_size=2),
        "turns": st.lists(TURN, max_size=6),
    },
    optional={"failed_attempts": st.integers(0, 8), "reasks": st.integers(0, 4)},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD, max_size=30), simulated=st.booleans())
def test_the_tally_equals_the_list_on_any_records(
    records: list[dict[str, Any]], simulated: bool
) -> None:
    tallied, listed = both(records, simulated)
    assert tallied == listed  # the JSON, so floats and the order of every mapping agree too

"""The runner: results on disk as items finish, failures kept per item, nothing lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from govern.models.base import ModelError, ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.scripted import ScriptedClient
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.models import Budgets
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import ROOT
from tests.engine_harness import institution_at, run_item

SENATE = ROOT / "manifests" / "senate.yaml"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class FailingFor:
    """Scripted answers, except that calls about one item fail in a given way."""

    def __init__(self, item_id: str, error: Exception) -> None:
        self.item_id, self.error = item_id, error
        self.scripted = ScriptedClient({})

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if request.oracle.item_id == self.item_id:
            raise self.error
        return await self.scripted.complete(request)


def prepared(tmp_path: Path, client=None, limit: int = 6):
    """The senate on the project's sample, whatever GOVERN_GSM8K says."""
    router = ModelRouter(clients={"sim/medium": client}) if client else None
    request = RunRequest(SENATE, task="gsm8k", limit=limit, out=tmp_path / "run", data=SAMPLE)
    return prepare(request, router)


def test_a_run_writes_every_item_and_a_labelled_summary(tmp_path: Path) -> None:
    run = prepared(tmp_path)
    summary = asyncio.run(execute(run))
    records = lines(run.folder / "results.jsonl")
    assert len(records) == summary.n == 6 and summary.complete and summary.simulated
    assert summary.label and "not LLM results" in summary.label
    assert all(r["simulated"] and r["path"][0] == "motion" and r["calls"] > 0 for r in records)
    on_disk = json.loads((run.folder / "summary.json").read_text())
    assert on_disk["accuracy_strict"]["n"] == 6 and on_disk["complete"] is True
    assert (run.folder / "graph.mmd").read_text().startswith("flowchart TD")
    resolved = json.loads((run.folder / "manifest.json").read_text())
    assert resolved["models"] == {
        "consul": "sim/medium",
        "senator": "sim/medium",
        "tribune": "sim/medium",
    }


def test_a_failing_model_call_is_that_items_error_and_the_run_goes_on(tmp_path: Path) -> None:
    error = ModelError(model="sim/medium", reason="server error (HTTP 500)", attempts=4)
    run = prepared(tmp_path, FailingFor("sample/0002", error))
    summary = asyncio.run(execute(run))
    records = {r["id"]: r for r in lines(run.folder / "results.jsonl")}
    assert summary.complete and summary.n == 6 and summary.items_with_errors == 1
    failed = records["sample/0002"]
    assert failed["outcome"] == "error" and "HTTP 500" in failed["errors"][0]
    assert failed["path"] == ["motion"] and not failed["correct_strict"]


def test_an_unexpected_exception_is_recorded_not_raised(tmp_path: Path) -> None:
    run = prepared(tmp_path, FailingFor("sample/0001", ZeroDivisionError("bug")))
    summary = asyncio.run(execute(run))
    records = {r["id"]: r for r in lines(run.folder / "results.jsonl")}
    assert summary.complete and "ZeroDivisionError: bug" in records["sample/0001"]["errors"][0]


class Blocking:
    """Never answers for one item, so the run can be cancelled with the rest finished."""

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        self.scripted = ScriptedClient({})

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if request.oracle.item_id == self.item_id:
            await asyncio.Event().wait()
        return await self.scripted.complete(request)


def test_cancelling_a_run_keeps_finished_items_and_marks_the_summary(tmp_path: Path) -> None:
    run = prepared(tmp_path, Blocking("sample/0003"))
    results = run.folder / "results.jsonl"

    async def cancel_when_the_rest_are_done() -> None:
        task = asyncio.create_task(execute(run))
        while not results.exists() or len(results.read_text().splitlines()) < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_when_the_rest_are_done())
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["complete"] is False and summary["n"] == 5 and summary["n_planned"] == 6
    assert len(lines(results)) == 5


def test_budgets_cut_an_item_off() -> None:
    state = run_item(
        institution_at("manifests/senate.yaml"),
        ScriptedClient({}),
        budgets=Budgets(max_calls_per_item=3),
    )
    assert state["outcome"] == "cut_off" and state["path"] == ["motion", "debate"]


def test_an_institution_runs_under_a_default_manifest(tmp_path: Path) -> None:
    run = prepare(
        RunRequest(
            ROOT / "institutions" / "tang.yaml",
            task="gsm8k",
            limit=2,
            out=tmp_path / "tang",
            data=SAMPLE,
        )
    )
    assert run.manifest.id == "tang" and set(run.context.role_models.values()) == {"sim/medium"}
    assert asyncio.run(execute(run)).n == 2


def test_a_run_puts_the_garbage_collectors_settings_back(tmp_path: Path) -> None:
    """A run collects garbage less often while it goes on (govern/run/gc_policy.py); the
    last run to end puts the thresholds back and unfreezes what it froze."""
    import gc

    from govern.run import gc_policy

    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    asyncio.run(
        execute(prepared(tmp_path, limit=2), on_item=lambda r: seen.append(gc.get_threshold()))
    )
    assert seen and all(t[0] >= gc_policy.THRESHOLDS[0] for t in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc_policy.hold()
    gc_policy.hold()  # two runs at once in one process
    gc_policy.release()
    assert gc.get_threshold()[0] >= gc_policy.THRESHOLDS[0]
    gc_policy.release()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0

"""A decompose stage with a planner: GSM8K problems split into sub-questions voted on in
parallel branches and integrated at the end or whenever DTI fires, every branch's votes and
every merge on a verified ledger; a plan that cannot be read; a real HTTP round-trip; and
the language's and the runner's refusals."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from govern.run.runner import RunRequest, RunSetupError, execute, prepare
from govern.spec.models import DTIParams
from govern.trace.dti import DTIMonitor
from tests.conftest import ROOT, TEST_KEYS, spec_errors, write
from tests.conftest import run_cli as govern
from tests.fault_server import FaultServer

PLAIN = (ROOT / "institutions" / "maker" / "decomposed.yaml").read_text()
WITH_DTI = (ROOT / "institutions" / "maker" / "decomposed_dti.yaml").read_text()
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"


def project(folder: Path, institution: str, model: str = "sim/medium", limit: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    write(folder, "institution.yaml", institution)
    return write(
        folder,
        "run.yaml",
        "id: run\ndescription: d\ninstitution: institution.yaml\n"
        f"models: {{default: {model}}}\ntask: {{name: gsm8k, limit: {limit}}}\nseed: 3\n",
    )


def run(path: Path, out: Path, router=None) -> list[dict[str, Any]]:
    prepared = prepare(RunRequest(path, out=out, data=SAMPLE), router=router)
    asyncio.run(execute(prepared))
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def entries(out: Path, kind: str) -> list[dict[str, Any]]:
    lines = (out / "ledger.jsonl").read_text().splitlines()
    return [e["body"] for e in map(json.loads, lines) if e["kind"] == kind]


def fires(branches: int, params: DTIParams) -> int:
    """Integrations DTI calls for before the last of ``branches`` answers, by the monitor."""
    monitor, fired = DTIMonitor(params), 0
    for _ in range(branches - 1):
        if monitor.coordination("root"):
            monitor.integrated("root")
            fired += 1
    return fired


def test_dti_integrates_as_its_law_says_and_every_merge_is_on_the_ledger(tmp_path: Path) -> None:
    out = tmp_path / "run"
    records = run(project(tmp_path, WITH_DTI), out)
    planned = [r for r in records if "maker" in r]
    for record in records:  # the simulator's planner writes prose at its malformed rate
        if record not in planned:
            assert (
                record["outcome"] == "rejected" and "plan could not be read" in record["errors"][0]
            )
    assert len(planned) >= 9
    merges = entries(out, "merge")
    params = DTIParams()
    for record in planned:
        maker = record["maker"]
        assert maker["dti_integrations"] == fires(maker["branches"], params)
        assert maker["integrations"] == maker["dti_integrations"] + 1
        mine = [m for m in merges if m["item"] == record["id"]]
        assert [m["trigger"] for m in mine] == ["dti"] * maker["dti_integrations"] + ["end"]
        covered = [b for m in mine for b in range(m["branches"][0], m["branches"][1] + 1)]
        assert covered == list(range(maker["branches"]))  # each branch integrated once
        for merge in mine[:-1]:  # the deficit that fired it: a t^beta - M > delta
            t, merged = merge["segment"]
            assert merge["deficit"] == pytest.approx(t**0.6 - merged) and merge["deficit"] > 2
        steps = [s for s in entries(out, "steps") if s["item"] == record["id"]]
        decided = [answer for block in steps for answer, *_ in block["steps"]]
        assert len(decided) == maker["branches"]  # every branch's vote, with its counts
        for block in steps:
            for _answer, _rounds, _samples, winner, *others in block["steps"]:
                assert winner - max(others, default=0) >= 2
    assert any(r["maker"]["dti_integrations"] for r in planned)
    assert govern("audit", str(out), cwd=tmp_path, **TEST_KEYS).returncode == 0


def test_without_dti_each_problem_is_integrated_once_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    records = [r for r in run(project(tmp_path, PLAIN), out) if "maker" in r]
    assert all(r["maker"]["integrations"] == 1 and r["maker"]["dti"] is None for r in records)
    assert {m["trigger"] for m in entries(out, "merge")} == {"end"}
    assert sum(r["correct_strict"] for r in records) > 0


def test_the_same_run_integrates_the_same_way_twice(tmp_path: Path) -> None:
    first = run(project(tmp_path / "a", WITH_DTI), tmp_path / "a" / "run")
    second = run(project(tmp_path / "b", WITH_DTI), tmp_path / "b" / "run")
    keys = ("prediction_strict", "maker", "calls", "outcome")
    assert [[r.get(k) for k in keys] for r in first] == [[r.get(k) for k in keys] for r in second]


# --- a plan that cannot be read, and a real model's path --------------------------------------


def served(body: dict) -> str:
    """A loopback 'model' playing every role by what its prompt asks."""
    user = body["messages"][-1]["content"]
    if "Plan the work" in user:
        return "Two steps.\nSUBQUESTION: How many in all?\nSUBQUESTION: How many are left?"
    if "Answer only sub-question 1" in user:
        return "Counting them.\n#### 12"
    if "Answer only sub-question 2" in user:
        return "Taking away.\n#### 7"
    return "Combining 12 and 7.\n#### 7"


def test_branches_round_trip_through_litellm_to_a_loopback_server(tmp_path: Path) -> None:
    from govern.models.router import ModelRouter

    with FaultServer("ok", answer=served) as server:
        router = ModelRouter(api_base=server.url, api_key="test-key", timeout=10, max_retries=0)
        path = project(tmp_path, WITH_DTI, model="openai/any", limit=1)
        (record,) = run(path, tmp_path / "run", router)
    assert record["prediction_strict"] == "7" and record["maker"]["branches"] == 2
    assert record["maker"]["samples"] == 4  # two branches, two agreeing samples each
    assert server.requests == record["calls"] == 1 + 4 + 1  # plan, votes, integration
    branch_bodies = [b for b in server.bodies if "Answer only" in b["messages"][-1]["content"]]
    assert sorted(b["temperature"] for b in branch_bodies) == [0.0, 0.0, 0.1, 0.1]
    assert len({b["seed"] for b in branch_bodies}) == 4


def test_a_plan_without_sub_questions_ends_undecided(tmp_path: Path) -> None:
    def prose(body: dict) -> str:
        return "I would simply solve it.\n#### 3"

    from govern.models.router import ModelRouter

    with FaultServer("ok", answer=prose) as server:
        router = ModelRouter(api_base=server.url, api_key="test-key", timeout=10, max_retries=0)
        (record,) = run(
            project(tmp_path, PLAIN, model="openai/any", limit=1), tmp_path / "r", router
        )
    assert record["outcome"] == "rejected"  # undecided -> the failed terminal
    assert "the plan could not be read" in record["errors"][0]


# --- what cannot run, and what cannot be written ----------------------------------------------


def test_branches_and_steps_each_need_their_task(tmp_path: Path) -> None:
    path = project(tmp_path, PLAIN)
    with pytest.raises(RunSetupError, match="its steps are its own"):
        prepare(RunRequest(path, task="hanoi", out=tmp_path / "a"))
    steps = (ROOT / "institutions" / "maker" / "maker.yaml").read_text()
    path = project(tmp_path / "steps", steps)
    with pytest.raises(RunSetupError, match="or give the stage a planner"):
        prepare(RunRequest(path, out=tmp_path / "b", data=SAMPLE))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    integrator: integrator\n", "", r"planner and integrator go together"),
        (
            "    planner: planner\n    integrator: integrator\n",
            "",
            r"dti decides when an integrator integrates",
        ),
        ("    planner: planner\n", "    planner: plannr\n", r"no role 'plannr'"),
        ("dti: {a: 1.0,", "dti: {a: 0.0,", r"'a': input should be greater than 0"),
        ("dti: {a: 1.0,", "dti: {a: true,", r"'a': input should be a valid number"),
        ("dti: {a: 1.0,", "dti: {a: 1.0e+308,", r"'a': input should be less than or equal to"),
        ("delta: 2.0}", "delta: 2.0, gamma: 1}", r"unknown key 'gamma'"),
    ],
    ids=["no_integrator", "dti_alone", "unknown_role", "a_zero", "a_bool", "a_huge", "unknown_key"],
)
def test_a_wrong_branched_stage_is_an_error_at_its_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in WITH_DTI
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = write(tmp_path, "i.yaml", WITH_DTI.replace(old, new, 1))
    errors = spec_errors(path)
    assert errors and any(re.search(message, e.message) for e in errors), errors
    assert all(e.line > 1 for e in errors)


def test_a_budget_stops_the_branches_before_it_is_overspent(tmp_path: Path) -> None:
    text = project(tmp_path, WITH_DTI, limit=6).read_text()
    path = write(tmp_path, "run.yaml", text + "budgets: {max_calls_per_item: 5}\n")
    records = run(path, tmp_path / "run")
    planned = [r for r in records if "maker" not in r or r["outcome"] == "cut_off"]
    assert planned and all(r["calls"] <= 5 for r in records)
    cut = [r for r in records if r["outcome"] == "cut_off"]
    assert cut and all("a budget was spent at sub-question" in r["errors"][0] for r in cut)

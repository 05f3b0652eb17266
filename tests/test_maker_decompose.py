"""A decompose stage end to end: towers solved on the simulator with every step on a verified
ledger, k = 1 failing where k = 3 does not, the Controller blocking what the rules forbid,
an undecided step and a spent budget stopping the item with the step named, a real HTTP
round-trip through litellm, a run killed mid-tower resumed from the ledger, and the scorer
kept out of the voting."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from govern.maker import decompose
from govern.models.base import ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.run.runner import RunRequest, RunSetupError, execute, prepare
from govern.run.summary import SIMULATED_LABEL
from govern.tasks.hanoi.puzzle import Move, apply_move, goal_state, start_state, strategy_step
from govern.tasks.hanoi.step import render_move, render_state
from tests.conftest import ROOT, spec_errors, user_environment, write
from tests.conftest import run_cli as govern
from tests.fault_server import FaultServer

INSTITUTION = (ROOT / "institutions" / "maker" / "maker.yaml").read_text()


def manifest(
    folder: Path,
    disks: int,
    *,
    k: int = 3,
    model: str = "sim/maker",
    extra: str = "",
    voting: str = "",
) -> Path:
    """A project folder with the MAKER institution (its k and voting changed) and a
    manifest running it on a tower of ``disks``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    institution = INSTITUTION.replace(
        "voting: {k: 3, first_temperature: 0.0, temperature: 0.1, max_rounds: 100}",
        f"voting: {{k: {k}, first_temperature: 0.0, temperature: 0.1{voting}}}",
    )
    write(folder, "maker.yaml", institution)
    return write(
        folder,
        "run.yaml",
        f"id: tower\ndescription: a tower\ninstitution: maker.yaml\nmodels:\n"
        f"  default: {model}\ntask: {{name: hanoi, disks: {disks}}}\nseed: 1\n{extra}",
    )


def run_in_process(path: Path, out: Path, router: ModelRouter | None = None) -> dict[str, Any]:
    """Run the manifest here; its one result line."""
    run = prepare(RunRequest(path, out=out), router=router)
    asyncio.run(execute(run))
    (line,) = (out / "results.jsonl").read_text().splitlines()
    return json.loads(line)


def ledger(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]


def replay_steps(entries: list[dict[str, Any]], disks: int, k: int) -> tuple[Any, int]:
    """Every recorded step, in order, from the start: the blocks follow on from one another,
    each step's move is legal, its votes lead by k, and each block's state is the one its
    moves reach. The final state and the number of steps."""
    state, step = start_state(disks), 0
    for entry in entries:
        if entry["kind"] != "steps":
            continue
        body = entry["body"]
        assert body["first"] == step and body["count"] == len(body["steps"]) and body["k"] == k
        for disk, source, target, rounds, samples, winner, *others in body["steps"]:
            assert winner - max(others, default=0) >= k and rounds >= 1
            assert samples >= winner + sum(others)
            state = apply_move(state, Move(disk, source, target))
            step += 1
        assert body["after"]["pegs"] == [list(peg) for peg in state]
    return state, step


# --- on the simulator -----------------------------------------------------------------------


def test_a_tower_is_solved_with_every_step_on_a_verified_ledger(tmp_path: Path) -> None:
    path, out = manifest(tmp_path, 9), tmp_path / "run"
    result = govern("run", str(path), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "511 of 511 steps" in result.stderr and "SIMULATED" in result.stderr
    audit = govern("audit", str(out), cwd=tmp_path)
    assert audit.returncode == 0 and "intact" in audit.stdout, audit.stdout + audit.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label"] == SIMULATED_LABEL and summary["accuracy_strict"]["value"] == 1.0
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    maker = record["maker"]
    assert record["outcome"] == "completed" and record["correct_strict"]
    assert maker["steps"] == 511 and maker["errors"] == 0 and maker["first_error"] is None
    assert record["calls"] == maker["samples"] >= 3 * 511
    state, steps = replay_steps(ledger(out), 9, 3)
    assert steps == 511 and state == goal_state(9)
    assert record["final_text"] == render_state(goal_state(9))
    assert sum(int(n) * c for n, c in maker["steps_by_samples"].items()) == maker["samples"]
    assert maker["predicted"]["samples_per_step"] > 3  # the theory's figures are reported
    assert "predicted_from_simulator" in maker


def test_with_k_1_the_run_goes_wrong_early_and_with_k_3_it_does_not(tmp_path: Path) -> None:
    """At sim/maker's per-step error (0.0022) a single sample a step is wrong about once in
    600 steps (well-formed wrong answers are three quarters of the wrong ones): a tower of
    4,095 steps fails; voted to a margin of 3 it does not."""
    one = run_in_process(manifest(tmp_path / "k1", 12, k=1), tmp_path / "k1" / "run")
    three = run_in_process(manifest(tmp_path / "k3", 12, k=3), tmp_path / "k3" / "run")
    assert one["maker"]["errors"] > 0 and not one["correct_strict"]
    assert one["maker"]["first_error"] < 4095 and one["outcome"] == "completed"
    assert three["maker"]["errors"] == 0 and three["correct_strict"]


def test_a_budget_stops_the_tower_with_the_step_named(tmp_path: Path) -> None:
    path = manifest(tmp_path, 8, extra="budgets: {max_calls_per_item: 100}\n")
    record = run_in_process(path, tmp_path / "run")
    assert record["outcome"] == "cut_off" and record["calls"] >= 100
    assert re.search(r"budget was spent during step \d+", record["errors"][0])
    _, steps = replay_steps(ledger(tmp_path / "run"), 8, 3)
    assert steps == record["maker"]["steps"] < 255


# --- scripted micro-agents: what the Controller blocks, and an undecided step ----------------


class Scripted:
    """A micro-agent that answers each sample with ``answer(state, previous, sample)``."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        view = request.oracle.hanoi
        assert view is not None
        previous = None if view.previous is None else Move(*view.previous)
        text = self.answer(view.state, previous, view.sample)
        return ModelResponse(text, request.model, 10, len(text) // 4, 0.0, 0.0)


def right(state, previous) -> str:
    move = strategy_step(state, previous)
    return f"move = {render_move(move)}\nnext_state = {render_state(apply_move(state, move))}"


def scripted_run(tmp_path: Path, answer, **options: Any) -> tuple[dict[str, Any], Scripted]:
    agent = Scripted(answer)
    router = ModelRouter(clients={"scripted/agent": agent})
    path = manifest(tmp_path, 4, model="scripted/agent", **options)
    return run_in_process(path, tmp_path / "run", router), agent


def test_the_controller_blocks_an_illegal_step_that_won_the_vote(tmp_path: Path) -> None:
    def answer(state, previous, sample):
        if previous is not None:  # step 1 onwards: every sample agrees on disk 3 moving
            return "move = [3, 0, 1]\nnext_state = [[4], [3], [2, 1]]"
        return right(state, previous)

    record, _ = scripted_run(tmp_path, answer)
    assert record["outcome"] == "blocked" and not record["correct_strict"]
    assert "step 1 blocked: illegal move" in record["errors"][0]
    (blocked,) = [e for e in ledger(tmp_path / "run") if e["body"].get("status") == "blocked"]
    assert blocked["body"]["step"] == 1 and blocked["body"]["rule"] == "maker:task_rules"
    assert blocked["body"]["decision"] == [3, 0, 1] and blocked["body"]["votes"] == [3]
    assert replay_steps(ledger(tmp_path / "run"), 4, 3)[1] == 1  # step 0 stands, recorded


def test_the_controller_blocks_a_next_state_that_is_not_the_moves(tmp_path: Path) -> None:
    def answer(state, previous, sample):  # the right move, and a state it does not lead to
        move = strategy_step(state, previous)
        return f"move = {render_move(move)}\nnext_state = {render_state(state)}"

    record, _ = scripted_run(tmp_path, answer)
    assert record["outcome"] == "blocked"
    assert "step 0 blocked: move [1, 0, 1] leads to" in record["errors"][0]


def test_a_step_without_a_winner_is_undecided_with_the_step_named(tmp_path: Path) -> None:
    def answer(state, previous, sample):
        if previous is None:
            return right(state, previous)
        moves = [m for m in (Move(1, 1, 2), Move(1, 1, 0))]  # two answers, alternately
        move = moves[sample % 2]
        return f"move = {render_move(move)}\nnext_state = {render_state(apply_move(state, move))}"

    record, _ = scripted_run(tmp_path, answer, voting=", max_rounds: 4")
    assert record["outcome"] == "rejected"  # routed: undecided -> the failed terminal
    assert "step 1: no candidate led by k after 4 rounds" in record["errors"][0]
    (undecided,) = [e for e in ledger(tmp_path / "run") if e["kind"] == "undecided"]
    assert undecided["body"]["step"] == 1 and undecided["body"]["rounds"] == 4


def test_red_flagged_samples_are_discarded_and_the_rest_vote(tmp_path: Path) -> None:
    def answer(state, previous, sample):
        if sample == 0:
            return "Let me think. " * 400 + right(state, previous)  # over 750 tokens
        if sample == 1:
            return right(state, previous).replace("next_state", "state")  # a fault of format
        return right(state, previous)

    record, agent = scripted_run(tmp_path, answer)
    maker = record["maker"]
    assert record["correct_strict"] and maker["errors"] == 0
    assert maker["red_flags"] == {"too_long": 15, "format": 15} and maker["samples"] == 75
    temperatures = [r.temperature for r in agent.requests[:5]]
    assert temperatures == [0.0, 0.1, 0.1, 0.1, 0.1]
    assert {r.max_tokens for r in agent.requests} == {751}  # a cut answer is a long one


# --- a real model's path --------------------------------------------------------------------


def served_step(body: dict) -> str:
    """What a loopback 'model' answers: the step the prompt's state and previous move call
    for, worked out from the prompt alone."""
    user = body["messages"][-1]["content"]
    previous = re.search(r"Previous move: (None|\[.*?\])", user)[1]
    state = json.loads(re.search(r"Current State: (\[.*\])", user)[1])
    pegs = tuple(tuple(peg) for peg in state)
    last = None if previous == "None" else Move(*json.loads(previous))
    return "Thinking it over.\n" + right(pegs, last)


def test_a_tower_round_trips_through_litellm_to_a_loopback_server(tmp_path: Path) -> None:
    with FaultServer("ok", answer=served_step) as server:
        path = manifest(tmp_path, 3, model="openai/micro")
        router = ModelRouter(api_base=server.url, api_key="test-key", timeout=10, max_retries=0)
        record = run_in_process(path, tmp_path / "run", router)
    assert record["correct_strict"] and record["maker"]["steps"] == 7
    assert server.requests == record["calls"] == record["maker"]["samples"] == 21
    assert {body["max_tokens"] for body in server.bodies} == {751}
    assert sorted({body["temperature"] for body in server.bodies}) == [0.0, 0.1]
    seeds = [body["seed"] for body in server.bodies]
    assert len(set(seeds)) == len(seeds)  # each sample of each step its own seed


def test_a_model_that_fails_for_good_ends_the_item_with_the_step_named(tmp_path: Path) -> None:
    script = ["ok"] * 9 + ["server_error"] * 20
    with FaultServer("ok", script=script, answer=served_step) as server:
        path = manifest(tmp_path, 3, model="openai/micro")
        router = ModelRouter(api_base=server.url, api_key="test-key", timeout=10, max_retries=0)
        record = run_in_process(path, tmp_path / "run", router)
    assert record["outcome"] == "error"
    assert re.search(r"steps: .*step 3: .*500", record["errors"][0]), record["errors"]
    assert replay_steps(ledger(tmp_path / "run"), 3, 3)[1] == 3  # the steps taken are kept


# --- a killed run resumes from the ledger ---------------------------------------------------


def started_tower(path: Path, out: Path, blocks: int, cwd: Path) -> subprocess.Popen:
    """`govern run PATH --out OUT` in a subprocess, returned once its ledger holds
    ``blocks`` blocks of steps (the tower part way)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "govern.cli", "run", str(path), "--out", str(out)],
        cwd=cwd,
        env=user_environment(None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    ledger = out / "ledger.jsonl"
    while not (ledger.is_file() and ledger.read_text().count('"kind":"steps"') >= blocks):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate())
        time.sleep(0.005)
    return process


def test_a_run_killed_mid_tower_resumes_at_the_last_recorded_block(tmp_path: Path) -> None:
    path, out = manifest(tmp_path, 14), tmp_path / "run"
    process = started_tower(path, out, 3, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert not (out / "results.jsonl").read_text()  # the tower had not finished
    resumed = govern("run", "--resume", str(out), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resumed at step [1-9][0-9,]+ from the ledger", resumed.stderr)
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    fresh = run_in_process(manifest(tmp_path / "fresh", 14), tmp_path / "fresh" / "run")
    assert record["maker"]["resumed_at_step"] >= 3000
    for key in ("steps", "errors", "samples", "valid_votes", "red_flags", "collisions"):
        assert record["maker"][key] == fresh["maker"][key], key  # as if never interrupted
    for key in ("calls", "prompt_tokens", "completion_tokens", "cost"):
        assert record[key] == fresh[key], key  # what the first session spent is kept
    assert govern("audit", str(out), cwd=tmp_path).returncode == 0
    _, steps = replay_steps(ledger(out), 14, 3)
    assert steps == 16383


def test_sigterm_stops_a_tower_at_once_and_it_resumes(tmp_path: Path) -> None:
    """A simulated tower never waits on anything, yet SIGTERM stops it part way: the steps
    taken are sealed into the ledger as interrupted, and --resume finishes the tower."""
    path, out = manifest(tmp_path, 16), tmp_path / "run"
    process = started_tower(path, out, 2, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and not (out / "results.jsonl").read_text()
    _, steps = replay_steps(ledger(out), 16, 3)
    assert 2000 <= steps < 65535  # the tower was stopped part way, its steps kept
    resumed = govern("run", "--resume", str(out), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert record["correct_strict"] and record["maker"]["resumed_at_step"] == steps


def test_forged_steps_fail_the_audit_and_are_not_resumed(tmp_path: Path) -> None:
    """Someone holding the ledger key appends a block whose winner leads by 1 where k is 3:
    the MACs hold, yet the audit replays the steps and fails, and a resume refuses (exit 1)
    before writing anything."""
    from govern.ledger.keys import load_keyring
    from govern.ledger.writer import LedgerWriter

    path, out = manifest(tmp_path, 12), tmp_path / "run"
    process = started_tower(path, out, 1, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    blocks = [e["body"] for e in ledger(out) if e["kind"] == "steps"]
    forged = json.loads(json.dumps(blocks[-1]))
    forged["first"] = blocks[-1]["first"] + blocks[-1]["count"]
    forged["steps"] = [[*blocks[0]["steps"][0][:3], 1, 2, 2, 1]]  # 2 votes to 1, k = 3
    forged["count"] = 1
    config = Path(user_environment(None)["XDG_CONFIG_HOME"])
    key_file = config / "govern" / "ledger-keys.json"
    writer = LedgerWriter.reopen(out / "ledger.jsonl", load_keyring(key_file))
    writer.append("steps", "controller", forged)
    writer.close("interrupted")  # signed and sealed with the run's own keys
    before = (out / "ledger.jsonl").read_bytes()
    audit = govern("audit", str(out), cwd=tmp_path)
    assert audit.returncode == 1 and "recorded steps of a decompose stage" in audit.stdout
    assert "do not lead" in audit.stdout
    resumed = govern("run", "--resume", str(out), cwd=tmp_path)
    assert resumed.returncode == 1 and "do not stand up" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert (out / "ledger.jsonl").read_bytes() == before  # refused before writing anything


# --- what cannot run ------------------------------------------------------------------------


def test_a_decompose_stage_needs_a_stepped_task_and_hanoi_needs_one(tmp_path: Path) -> None:
    path = manifest(tmp_path, 4)
    with pytest.raises(RunSetupError, match="decomposes its task into voted steps"):
        prepare(RunRequest(path, task="gsm8k", out=tmp_path / "a"))
    bare = write(
        tmp_path,
        "bare_run.yaml",
        "id: b\ndescription: b\ninstitution: bare.yaml\ntask: {name: hanoi, disks: 3}\n",
    )
    write(tmp_path, "bare.yaml", (ROOT / "institutions" / "bare.yaml").read_text())
    with pytest.raises(RunSetupError, match="needs a stage of kind decompose"):
        prepare(RunRequest(bare, out=tmp_path / "b"))


# --- the scorer stays out of the voting -----------------------------------------------------


def test_the_decomposer_reaches_no_checker_but_the_scorer_it_is_given() -> None:
    """The loop imports nothing of a task (no true step is reachable from it) and calls the
    scorer once, after the Controller applied the step."""
    tree = ast.parse(inspect.getsource(decompose))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {module for module in imported if module.startswith("govern.tasks")}
    run = inspect.getsource(decompose.Decomposer.run)
    assert run.count("scorer.observe") == 1
    assert run.index("log.check(") < run.index("scorer.observe") < run.index("totals.add")
    sample = run[run.index("async def sample") : run.index("try:\n                    decision")]
    assert "scorer" not in sample


def test_a_scorer_that_lies_changes_nothing_that_is_decided(tmp_path: Path, monkeypatch) -> None:
    """A scorer that calls every step wrong leaves the votes, the ledger's steps and the
    final state exactly as they were: it only counts."""
    honest = run_in_process(manifest(tmp_path / "a", 7), tmp_path / "a" / "run")

    class Liar:
        def __init__(self) -> None:
            self.errors, self.first_error, self.right_votes = 0, None, 0

        def observe(self, step, position, decision) -> None:
            self.errors += 1

    from govern.tasks.hanoi.task import HanoiTask

    monkeypatch.setattr(HanoiTask, "scorer", staticmethod(Liar))
    lied = run_in_process(manifest(tmp_path / "b", 7), tmp_path / "b" / "run")
    assert lied["maker"]["errors"] == 127 and honest["maker"]["errors"] == 0
    assert lied["final_text"] == honest["final_text"] and lied["correct_strict"]
    steps = [[e["body"]["steps"] for e in ledger(tmp_path / x / "run") if e["kind"] == "steps"]
             for x in ("a", "b")]  # fmt: skip
    assert steps[0] == steps[1]


# --- the language ---------------------------------------------------------------------------

VOTING_LINE = "    voting: {k: 3, first_temperature: 0.0, temperature: 0.1, max_rounds: 100}\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((VOTING_LINE, ""), r"missing required key 'voting' in this decompose stage"),
        (("voting: {k: 3,", "voting: {k: 0,"), r"'k': input should be greater than or equal to 1"),
        (("voting: {k: 3,", "voting: {k: 1001,"), r"'k': input should be less than or equal"),
        (("max_rounds: 100}", "max_rounds: 100, checker: true}"), r"unknown key 'checker'"),
        (("max_output_tokens: 750", "max_output_tokens: 0"), r"'max_output_tokens': input"),
        (("red_flags: {", "red_flags: {format: false, "), r"unknown key 'format'"),
        (("    voting:", "    decisions: [done]\n    voting:"), r"always end done or undecided"),
        (
            ("      undecided: failed\n", "      undecided: failed\n      unparsable: failed\n"),
            r"never returns 'unparsable'; it returns: done, undecided",
        ),
        (("      undecided: failed\n", ""), r"decision 'undecided' of stage 'steps' is not routed"),
    ],
    ids=["no_voting", "k_0", "k_huge", "checker", "no_tokens", "format_flag", "decisions",
         "unparsable", "unrouted"],
)  # fmt: skip
def test_a_wrong_decompose_stage_is_an_error_at_its_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in INSTITUTION
    path = write(tmp_path, "maker.yaml", INSTITUTION.replace(old, new, 1))
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (error,) = spec_errors(path)
    assert re.search(message, error.message), error
    assert error.line > 1 and error.column >= 1


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("{name: gsm8k, disks: 3}", r"disks is for task hanoi \(the Towers of Hanoi\), not gsm8k"),
        ("{name: hanoi, disks: 31}", r"less than or equal to 30"),
        ('{name: hanoi, disks: "20"}', r"'disks': input should be a valid integer"),
    ],
)
def test_a_wrong_tower_is_an_error_at_its_line(tmp_path: Path, task: str, message: str) -> None:
    manifest(tmp_path, 3)
    path = write(
        tmp_path, "t.yaml", f"id: t\ndescription: t\ninstitution: maker.yaml\ntask: {task}\n"
    )
    (error,) = spec_errors(path)
    assert re.search(message, error.message) and error.line == 4, error


def test_the_explained_ledger_tells_the_steps_and_the_blocked_one(tmp_path: Path) -> None:
    from govern.ledger.explain import render, timeline

    def answer(state, previous, sample):
        if previous is not None and previous.disk != 1:  # step 2: an illegal move wins
            return "move = [4, 0, 1]\nnext_state = [[3], [4], [2, 1]]"
        return right(state, previous)

    scripted_run(tmp_path, answer)
    lines = (tmp_path / "run" / "ledger.jsonl").read_bytes().splitlines()
    told = render(timeline(lines))
    assert "2 steps decided by vote (6 samples, 0 red-flagged)" in told
    assert re.search(r"transition blocked in steps at step 2: illegal move \[4, 0, 1\]", told)


def test_samples_and_the_undecided_decay_follow_the_theory(tmp_path: Path) -> None:
    """At a per-step error of 0.05 (no hard steps) over 16,383 steps, samples per step and the
    steps still undecided after each of the first rounds agree with the prediction from the
    simulator's parameters alone (wrong votes split over the other legal moves) within 5%,
    and the paper's two-answer model from the run's own p within 5% on samples per step."""
    extra = "simulator:\n  sim/maker: {hanoi_step_error: 0.05, hanoi_hard_fraction: 0.0}\n"
    record = run_in_process(manifest(tmp_path, 14, extra=extra), tmp_path / "run")
    maker = record["maker"]
    assert maker["errors"] == 0 and record["correct_strict"]
    measured, theory = maker["measured"], maker["predicted_from_simulator"]
    assert measured["samples_per_step"] == pytest.approx(theory["samples_per_step"], rel=0.05)
    assert measured["samples_per_step"] == pytest.approx(
        maker["predicted"]["samples_per_step"], rel=0.05
    )
    undecided = maker["undecided_after_round"]
    assert undecided[0] > 1000 and undecided[1] > 100  # enough steps to measure the decay
    for counted, predicted in zip(undecided[:2], theory["undecided_after_round"][:2], strict=True):
        assert counted == pytest.approx(predicted, rel=0.05)


def test_each_visit_of_a_stage_resumes_from_its_own_steps() -> None:
    """A decompose stage visited twice records each visit's steps apart; a resumed run
    takes each visit's latest chain, and a chain restarts only after a resume."""
    from govern.governance.steps import visits_of
    from govern.ledger.memory import MemoryLedger
    from govern.maker.decompose import resume_from
    from govern.maker.voting import Decision, VoteStats
    from govern.tasks.hanoi.task import HanoiScorer, HanoiWork

    work, memory = HanoiWork(4), MemoryLedger()

    def take(visit: int, steps: int) -> None:
        from govern.governance.steps import StepLog

        log = StepLog(memory, "controller", "hanoi-4", "steps", "micro#1", work, 3, visit=visit)
        position = work.start()
        for step in range(steps):
            move = strategy_step(position.pegs, position.previous)
            candidate = (move, apply_move(position.pegs, move))
            stats = VoteStats(3, 3, 1, {"too_long": 0, "format": 0}, {"k": 3}, False)
            assert log.check(step, position, Decision(candidate, "k", stats)) is None
            position = work.advance(position, candidate)
        log.close(position)

    take(1, 15)
    take(2, 6)
    memory.append("resume", "govern", {})
    take(2, 9)  # the item started again: visit 2 from step 0, a new chain
    entries = [(e["kind"], e["body"], json.dumps(e).encode()) for e in memory.entries]
    chains = visits_of(entries)
    assert [(key, len(lines)) for key, lines in chains] == [
        (("hanoi-4", "steps", 2), 1),
        (("hanoi-4", "steps", 1), 1),
        (("hanoi-4", "steps", 2), 1),
    ]
    latest = dict(chains)
    lines = [json.dumps({"body": json.loads(line)["body"]}).encode() for line in latest[
        ("hanoi-4", "steps", 2)]]  # fmt: skip
    resumed = resume_from(work, HanoiScorer(), lines, 3)
    assert resumed.first == 9 and resumed.totals.steps == 9 and resumed.scorer.errors == 0


def test_experiments_run_towers_of_several_sizes(tmp_path: Path) -> None:
    manifest(tmp_path, 3)  # the project and its institution
    experiment = write(
        tmp_path,
        "towers.yaml",
        "kind: experiment\nid: towers\ninstitutions: [maker.yaml]\nmodels: [sim/maker]\n"
        "tasks:\n  - {name: hanoi, disks: 4}\n  - {name: hanoi, disks: 6}\nseeds: [1]\n",
    )
    out = tmp_path / "out"
    result = govern("run", str(experiment), "--out", str(out), "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    compared = govern("compare", str(out), cwd=tmp_path)
    assert "hanoi-4" in compared.stdout and "hanoi-6" in compared.stdout
    assert "a tower counts as solved when its final state is the goal" in compared.stdout
    assert govern("audit", str(out), cwd=tmp_path).returncode == 0

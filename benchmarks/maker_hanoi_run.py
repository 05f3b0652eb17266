"""MAKER's run path on the Towers of Hanoi against the bare loop, and what a LangGraph
superstep would cost in its place.

(a) The governed path against the bare loop, sides alternating in one process, the first of
each round swapped round to round. A: a tower of ``--disks`` disks run as ``govern run``
runs it, ``prepare`` and ``execute`` on a small manifest (``institutions/maker/maker.yaml``
copied into a temp project), its ledger a real file in a temp folder, results.jsonl and
summary.json written: the decompose stage as one graph node, each sample through the model
router and the sim client, the vote, the Controller's check (task rules, ahead-by-k), a
ledger entry a block of 1,000 steps. B: ``benchmarks/maker_hanoi_loop.py``'s ``run``, the
simulator's micro-agent asked directly with ``vote_sync``, no router, no Controller, no
ledger; it runs under the run's own garbage-collection policy (``gc_policy``), so the ratio
is not the two sides' different thresholds. Both are ``sim/maker``, seed 1, k = 3, and must
give 0 errors and the same samples (asserted). Wall and CPU time are both taken; one
warm-up round of each side is not counted.

(b) A LangGraph superstep: one node looping on itself ``--supersteps`` times, the loop's
own trivial work (add one to a counter, route on it) and nothing else, against the same
work in a plain Python loop: a one-field state routed by a conditional edge (``invoke``),
the same with an async node routed by ``Command`` (``ainvoke``, as govern's stages route),
and the async node on govern's item state (``ItemState``, 22 fields), which a node per
step would carry. No checkpointer, as in govern. The per-superstep time is extrapolated to
the 20-disk tower's 1,048,575 steps.

(c) With ``--full``: the whole 20-disk run, ``govern run manifests/maker_hanoi.yaml`` in a
subprocess under ``/usr/bin/time -v`` (wall, peak RSS, steps/s, samples/s from
results.jsonl's ``maker`` and summary.json), and ``govern audit`` on its folder. Once.

Throwaway ledger keys (the test suite's) and GOVERN_CACHE=off are set for every side.

    .venv/bin/python benchmarks/maker_hanoi_run.py        # (a) 14 disks, (b) 20,000 steps; 5 rounds
    .venv/bin/python benchmarks/maker_hanoi_run.py --full # and (c), the 20-disk run (~3 min)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from govern.engine.state import ItemState, initial_state
from govern.run import gc_policy
from govern.run.runner import RunRequest, execute, prepare
from govern.tasks.hanoi.puzzle import total_steps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # the bare loop is the sibling script's

from maker_hanoi_loop import run as bare_loop  # noqa: E402
from maker_hanoi_loop import sim_params  # noqa: E402

GOVERN = Path(sys.executable).parent / "govern"
KEYS = {"GOVERN_LEDGER_KEY": "5e" * 32, "GOVERN_SIGNING_KEY": "a7" * 32}  # tests' throwaway keys
FULL_STEPS = total_steps(20)
K = 3
SEED = 1
MEASURED_FULL_RUN_S = 170.0  # `govern run manifests/maker_hanoi.yaml`, when --full is not run

T = TypeVar("T")


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float  # the process's CPU time, every thread: other processes' load moves it less


def timed(work: Callable[[], T]) -> tuple[T, Timed]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, Timed(time.perf_counter() - wall, time.process_time() - cpu)


@dataclass(frozen=True)
class Counts:
    steps: int
    samples: int
    errors: int


# (a) the run path against the bare loop


class RunPath:
    """A temp project holding the MAKER institution and a manifest for one tower."""

    def __init__(self, folder: Path, disks: int) -> None:
        project = folder / "project"
        (project / "institutions").mkdir(parents=True)
        (project / "manifests").mkdir()
        (project / "pyproject.toml").write_text("")  # specs may not point outside their project
        shutil.copy(ROOT / "institutions" / "maker" / "maker.yaml", project / "institutions")
        self.manifest = project / "manifests" / "maker_hanoi_bench.yaml"
        self.manifest.write_text(
            textwrap.dedent(f"""\
                id: maker_hanoi_bench
                institution: ../institutions/maker.yaml
                models:
                  default: sim/maker
                task:
                  name: hanoi
                  disks: {disks}
                seed: {SEED}
                """)
        )
        self.folder = folder
        self.disks = disks
        self.runs = 0
        self.ledger_bytes = 0
        self.prepare_seconds: list[float] = []

    def governed(self) -> Counts:
        self.runs += 1
        out = self.folder / f"run{self.runs}"
        prepared, spent = timed(lambda: prepare(RunRequest(self.manifest, out=out)))
        self.prepare_seconds.append(spent.wall)
        summary = asyncio.run(execute(prepared))
        assert summary.complete and summary.outcomes == {"completed": 1}, summary.outcomes
        record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
        maker = record["maker"]
        self.ledger_bytes = (out / "ledger.jsonl").stat().st_size
        shutil.rmtree(out)
        return Counts(maker["steps"], maker["samples"], maker["errors"])

    def bare(self) -> Counts:
        gc_policy.hold()  # the run path's collection thresholds, for a like-for-like loop
        try:
            tally, _, solved = bare_loop(self.disks, K, SEED, sim_params(None))
        finally:
            gc_policy.release()
        assert solved
        return Counts(tally.steps, tally.samples, tally.errors)


def measure_run_path(disks: int, rounds: int) -> None:
    steps = total_steps(disks)
    print(
        f"(a) {disks} disks ({steps:,} steps), sim/maker, seed {SEED}, k = {K}; {rounds} rounds, "
        "sides alternating (first side swapped each round), one warm-up round not counted",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = RunPath(Path(folder), disks)
        sides = {"A": path.governed, "B": path.bare}
        expected = [sides[name]() for name in sides]  # warm-up: imports, the compiled graph
        assert expected[0] == expected[1] and expected[0].errors == 0, expected
        times: dict[str, list[Timed]] = {"A": [], "B": []}
        for round_ in range(rounds):
            order = ["A", "B"] if round_ % 2 == 0 else ["B", "A"]
            for name in order:
                counts, spent = timed(sides[name])
                assert counts == expected[0], (name, counts, expected[0])
                times[name].append(spent)
            a, b = times["A"][-1], times["B"][-1]
            print(
                f"  round {round_ + 1} ({order[0]} first): A {a.wall:6.3f} s wall "
                f"(prepare {path.prepare_seconds[-1]:.3f}) {a.cpu:6.3f} s CPU   "
                f"B {b.wall:6.3f} s wall {b.cpu:6.3f} s CPU   A/B {a.wall / b.wall:.3f} wall "
                f"{a.cpu / b.cpu:.3f} CPU",
                flush=True,
            )
    counts = expected[0]
    prepare_s = statistics.median(path.prepare_seconds[1:])
    labels = {
        "A": "A: govern run path (prepare + execute, ledger file)",
        "B": "B: bare loop (vote_sync, no router/Controller/ledger)",
    }
    print(
        f"  both sides: {counts.steps:,} steps, {counts.samples:,} samples, "
        f"{counts.errors} errors; A's ledger {path.ledger_bytes:,} bytes "
        f"({path.ledger_bytes / counts.steps:.1f} a step)"
    )
    print(f"  {'side (medians)':<54} {'wall s':>7} {'CPU s':>7} {'steps/s':>8} {'samples/s':>10}")
    for name, label in labels.items():
        wall = statistics.median(t.wall for t in times[name])
        cpu = statistics.median(t.cpu for t in times[name])
        print(
            f"  {label:<54} {wall:7.3f} {cpu:7.3f} {counts.steps / wall:8,.0f} "
            f"{counts.samples / wall:10,.0f}"
        )
    for clock in ("wall", "cpu"):
        ratios = [
            getattr(a, clock) / getattr(b, clock)
            for a, b in zip(times["A"], times["B"], strict=True)
        ]
        extra = statistics.median(
            getattr(a, clock) - getattr(b, clock)
            for a, b in zip(times["A"], times["B"], strict=True)
        )
        print(
            f"  A/B, {clock:<4}: median {statistics.median(ratios):.3f}x "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}x); A's extra "
            f"{extra / counts.steps * 1e6:.1f} us a step, "
            f"{(extra - prepare_s) / counts.steps * 1e6:.1f} us without prepare "
            f"({prepare_s:.3f} s, once a run)"
        )


# (b) a LangGraph superstep against a plain loop


class Count(TypedDict):
    n: int


def conditional_graph(supersteps: int) -> Any:
    """One sync node, routed back to itself by a conditional edge until ``n`` is reached."""
    graph = StateGraph(Count)
    graph.add_node("step", lambda state: {"n": state["n"] + 1})
    graph.add_edge(START, "step")
    graph.add_conditional_edges(
        "step", lambda state: END if state["n"] >= supersteps else "step", ["step", END]
    )
    return graph.compile()


def command_graph(supersteps: int) -> Any:
    """One async node that routes itself by ``Command``, as govern's stages route."""
    graph = StateGraph(Count)

    async def step(state: Count) -> Command:
        n = state["n"] + 1
        return Command(update={"n": n}, goto=END if n >= supersteps else "step")

    graph.add_node("step", step, destinations=("step", END))
    graph.add_edge(START, "step")
    return graph.compile()


def item_state_graph(supersteps: int) -> Any:
    """The Command node on govern's item state: what a graph node per step would carry."""
    graph = StateGraph(ItemState)

    async def step(state: ItemState) -> Command:
        n = state["steps"] + 1
        return Command(update={"steps": n}, goto=END if n >= supersteps else "step")

    graph.add_node("step", step, destinations=("step", END))
    graph.add_edge(START, "step")
    return graph.compile()


def plain_loop(supersteps: int) -> int:
    """The graphs' work in plain Python: the node's update merged, then routed on."""

    def step(state: Count) -> dict[str, int]:
        return {"n": state["n"] + 1}

    def route(state: Count) -> str:
        return END if state["n"] >= supersteps else "step"

    state: Count = {"n": 0}
    while True:
        state.update(step(state))  # type: ignore[typeddict-item]
        if route(state) == END:
            return state["n"]


def measure_supersteps(supersteps: int, rounds: int, full_run_s: float) -> None:
    config = {"recursion_limit": supersteps + 10}
    graphs = (conditional_graph(supersteps), command_graph(supersteps))
    govern_graph = item_state_graph(supersteps)
    sides: dict[str, Callable[[], int]] = {
        "plain Python loop (node + route as functions)": lambda: plain_loop(supersteps),
        "invoke: 1-field state, conditional edge": lambda: graphs[0].invoke({"n": 0}, config)["n"],
        "ainvoke: 1-field state, async node, Command": lambda: asyncio.run(
            graphs[1].ainvoke({"n": 0}, config)
        )["n"],
        "ainvoke: govern's ItemState, async node, Command": lambda: asyncio.run(
            govern_graph.ainvoke(initial_state("bench", "q"), config)
        )["steps"],
    }
    print(
        f"\n(b) a node looping on itself {supersteps:,} times, {rounds} rounds, sides in a "
        "rotating order, one warm-up round not counted",
        flush=True,
    )
    for side in sides.values():
        assert side() == supersteps
    names = list(sides)
    times: dict[str, list[Timed]] = {name: [] for name in names}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            result, spent = timed(sides[name])
            assert result == supersteps
            times[name].append(spent)
    loop = names[0]
    print(
        f"  {'side (medians)':<50} {'us/step':>8} {'CPU us':>7} {'x loop':>7} "
        f"{'1,048,575 steps':>16}"
    )
    for name in names:
        wall = statistics.median(t.wall for t in times[name]) / supersteps * 1e6
        cpu = statistics.median(t.cpu for t in times[name]) / supersteps * 1e6
        ratio = statistics.median(
            a.wall / b.wall for a, b in zip(times[name], times[loop], strict=True)
        )
        projected = wall * FULL_STEPS / 1e6
        print(
            f"  {name:<50} {wall:8.2f} {cpu:7.2f} {ratio:6.0f}x {projected:9.1f} s "
            f"({projected / full_run_s:.0%} of the run)"
        )
    print(f"  (the whole 20-disk run: {full_run_s:.0f} s)")


# (c) the whole 20-disk run


def _clock(text: str) -> float:
    """``/usr/bin/time``'s elapsed time, ``h:mm:ss`` or ``m:ss.ss``, in seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def measure_full(folder: Path) -> float:
    out = folder / "full"
    manifest = ROOT / "manifests" / "maker_hanoi.yaml"
    command = ["/usr/bin/time", "-v", str(GOVERN), "run", str(manifest), "--out", str(out)]
    print(f"\n(c) {' '.join(command[2:])}, under /usr/bin/time -v", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    report = done.stderr
    assert done.returncode == 0, report[-3000:]
    elapsed = _clock(re.search(r"Elapsed \(wall clock\) time.*?: (\S+)", report)[1])  # type: ignore[index]
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)[1])  # type: ignore[index]
    user = float(re.search(r"User time \(seconds\): (\S+)", report)[1])  # type: ignore[index]
    system = float(re.search(r"System time \(seconds\): (\S+)", report)[1])  # type: ignore[index]
    summary = json.loads((out / "summary.json").read_text())
    maker = json.loads((out / "results.jsonl").read_text().splitlines()[0])["maker"]
    assert summary["complete"] and maker["errors"] == 0, (summary["outcomes"], maker["errors"])
    ledger = out / "ledger.jsonl"
    entries = len(ledger.read_bytes().splitlines())
    run_s = summary["wall_seconds"]
    started = time.perf_counter()
    audit = subprocess.run([str(GOVERN), "audit", str(out)], capture_output=True, text=True)
    audit_s = time.perf_counter() - started
    assert audit.returncode == 0, audit.stdout + audit.stderr
    print(
        f"  {maker['steps']:,} steps, {maker['errors']} errors, {maker['samples']:,} samples "
        f"({maker['samples'] / maker['steps']:.6f} a step), red flags {maker['red_flags']}, "
        f"collisions {maker['collisions']:,}"
    )
    print(
        f"  wall {elapsed:.1f} s (the summary's {run_s:.1f} s: execute alone), CPU "
        f"{user + system:.1f} s (user {user:.1f}, system {system:.1f}), peak RSS "
        f"{rss_kib / 1024:.0f} MiB"
    )
    print(
        f"  {maker['steps'] / elapsed:,.0f} steps/s, {maker['samples'] / elapsed:,.0f} samples/s "
        f"over the wall time ({maker['steps'] / run_s:,.0f} and {maker['samples'] / run_s:,.0f} "
        "over execute's)"
    )
    verdict = audit.stdout.strip().splitlines()[0]
    print(
        f"  ledger {ledger.stat().st_size / 1e6:.1f} MB, {entries:,} entries; govern audit "
        f"{audit_s:.2f} s ({verdict})\n"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disks", type=int, default=14, help="(a)'s tower (14: 16,383 steps)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--supersteps", type=int, default=20_000, help="(b)'s loop length")
    parser.add_argument("--full", action="store_true", help="(c): the 20-disk run, once")
    args = parser.parse_args()
    os.environ.update(KEYS)
    os.environ["GOVERN_CACHE"] = "off"
    full_run_s = MEASURED_FULL_RUN_S
    if args.full:
        with tempfile.TemporaryDirectory() as folder:
            full_run_s = measure_full(Path(folder))
    measure_run_path(args.disks, args.rounds)
    measure_supersteps(args.supersteps, args.rounds, full_run_s)


if __name__ == "__main__":
    main()

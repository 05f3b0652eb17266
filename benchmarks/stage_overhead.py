"""Per-stage cost: a govern run against a raw async LangGraph chain of the same length.

The Mongol pipeline (institutions/mongol.yaml: 6 stages, one call each but the
terminal's) run as `govern run` runs it: `execute()` on a prepared run, its ledger
a real LedgerWriter to a file in a temp folder, results.jsonl and summary.json
written, the Controller checking every actor and transition, an instant scripted
model (the reply a scripted simulator gives, at once). Against it:

- raw: a 6-node LangGraph chain, async no-op nodes (each returns a one-key
  update) on a one-field state, plain edges: no routing function, no thread hop;
- shape: the same chain with govern's item state (22 fields, reducers) and
  routing by Command, nodes doing no work but returning an update shaped like a
  stage's: the floor that LangGraph with govern's state shape sets;
- stages: the compiled institution's graph with its real stages, the Controller
  logging to a ledger that keeps nothing, no results: the run without its ledger
  and per-item work.

Items run one after another (concurrency 1) in one event loop; each round runs
every side on ``--items`` items, in a random order, and the figures are per
stage (per item / 6). ``--profile`` also profiles the govern side with cProfile
and groups its own time by where it is spent.

    .venv/bin/python benchmarks/stage_overhead.py [--items 200] [--rounds 11] [--profile] [--wall]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from govern.engine.state import ItemState, initial_state
from govern.governance.controller import Controller
from govern.models.base import ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.client import sim_response
from govern.run.runner import RunRequest, execute, prepare

ROOT = Path(__file__).resolve().parent.parent
# The process's CPU time (user and system, every thread): on a shared machine other
# processes' load moves wall time far more; --wall measures wall time instead.
CLOCK = time.process_time
STAGES = 6  # order, tumen_relay, mingghan_relay, jaghun_relay, arban_execution, carried_out
MODEL = "bench/instant"


class InstantClient:
    """What the scripted simulator answers an unscripted stage, at once."""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        return sim_response(request, "Worked it out.\n#### 1", time.perf_counter())


class NoLedger:
    """A ledger that keeps nothing: the stages side's Controller logs here."""

    def append(self, kind: str, actor: str, body: dict) -> int:
        return 0


class RawState(TypedDict, total=False):
    step: int


def raw_chain():
    graph = StateGraph(RawState)

    async def node(state: RawState) -> dict:
        return {"step": state["step"] + 1}

    names = [f"s{i}" for i in range(STAGES)]
    for name in names:
        graph.add_node(name, node)
    for source, target in zip([START, *names], [*names, END], strict=True):
        graph.add_edge(source, target)
    return graph.compile()


def shaped_chain():
    """The raw chain with govern's state and routing, and a stage's update, but no work."""
    graph = StateGraph(ItemState)
    names = [f"s{i}" for i in range(STAGES)]

    def node_to(name: str, target: str):
        async def node(state: ItemState) -> Command:
            update = {
                "visits": {name: 1},
                "path": [name],
                "steps": state["steps"] + 1,
                "calls": 1,
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "turns": [{"stage": name}],
                "candidate": {"stage": name, "agent": "a#1", "text": "t", "answer": "1"},
                "decision": "done",
                "route": f"done->{target}",
            }
            return Command(update=update, goto=target)

        return node

    for name, target in zip(names, [*names[1:], END], strict=True):
        graph.add_node(name, node_to(name, target))
    graph.add_edge(START, names[0])
    return graph.compile()


def write_items(path: Path, count: int) -> Path:
    """``count`` GSM8K-shaped problems (the project's sample, repeated), one a line."""
    sample = (ROOT / "tasks" / "gsm8k_sample.jsonl").read_text().splitlines()
    lines = [sample[i % len(sample)] for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


class Sides:
    def __init__(self, folder: Path, items: int) -> None:
        self.folder = folder
        self.items = items
        self.data = write_items(folder / "items.jsonl", items)
        self.raw = raw_chain()
        self.shaped = shaped_chain()
        self.runs = 0
        self.entries = 0
        self.unlogged: tuple | None = None  # a prepared run, and its context without a ledger

    def prepared(self):
        self.runs += 1
        router = ModelRouter(clients={MODEL: InstantClient()}, concurrency=1)
        request = RunRequest(
            ROOT / "institutions" / "mongol.yaml",
            task="gsm8k",
            model=MODEL,
            data=self.data,
            concurrency=1,
            out=self.folder / f"run{self.runs}",
        )
        return prepare(request, router)

    async def govern(self) -> float:
        run = self.prepared()
        start = CLOCK()
        summary = await execute(run)
        seconds = CLOCK() - start
        assert summary.n == self.items and summary.outcomes == {"completed": self.items}
        self.entries = len((run.folder / "ledger.jsonl").read_bytes().splitlines())
        return seconds

    async def raw_side(self) -> float:
        start = CLOCK()
        for _ in range(self.items):
            await self.raw.ainvoke({"step": 0})
        return CLOCK() - start

    async def shape_side(self) -> float:
        start = CLOCK()
        for i in range(self.items):
            await self.shaped.ainvoke(initial_state(f"i{i}", "q"))
        return CLOCK() - start

    async def stages_side(self) -> float:
        if self.unlogged is None:
            run = self.prepared()
            run.ledger.close()
            institution = run.manifest.institution
            self.unlogged = (
                run,
                replace(run.context, controller=Controller(institution, None, NoLedger())),
            )
        run, context = self.unlogged
        config = {"recursion_limit": run.compiled.recursion_limit}
        start = CLOCK()
        for item in run.data.items:
            state = await run.compiled.graph.ainvoke(
                initial_state(item.id, item.question), config, context=context
            )
            assert state["outcome"] == "completed"
        return CLOCK() - start


async def measure(sides: Sides, rounds: int) -> dict[str, list[float]]:
    runs = {
        "raw": sides.raw_side,
        "shape": sides.shape_side,
        "stages": sides.stages_side,
        "govern": sides.govern,
    }
    for side in runs.values():  # warm up: imports, compilation, caches
        await side()
    times: dict[str, list[float]] = defaultdict(list)
    order = list(runs)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            times[name].append(await runs[name]() / sides.items / STAGES * 1e3)
    return times


GROUPS = (  # where a profiled function's own time is counted, by its file
    ("govern/ledger/", "govern: ledger (encoding, HMAC, Merkle, writes)"),
    ("govern/governance/", "govern: Controller and Oracle"),
    ("govern/engine/", "govern: stages (prompts, parsing, seeds, updates)"),
    ("govern/models/", "govern: model layer and the instant model"),
    ("govern/run/", "govern: run (records, results, summary)"),
    ("govern/", "govern: tasks, spec"),
    ("benchmarks/", "govern: model layer and the instant model"),
    ("langgraph/", "LangGraph (and langchain_core under it)"),
    ("langchain_core/", "LangGraph (and langchain_core under it)"),
    ("asyncio/", "asyncio event loop"),
)


PASS_THROUGH = ("govern/spec/digest.py",)  # shared helpers: counted for their callers


def group_of(filename: str) -> str | None:
    if any(part in filename for part in PASS_THROUGH):
        return None
    return next((label for prefix, label in GROUPS if prefix in filename), None)


def profile(sides: Sides) -> None:
    """cProfile the govern side; a function outside the groups (a builtin such as a JSON
    encoder or a hash, the standard library) counts for the groups of its callers, in
    proportion to the time each caller spent in it, up the call graph."""
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(sides.govern())
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    shares: dict[tuple, dict[str, float]] = {}

    def share_of(function: tuple, seen: frozenset = frozenset()) -> dict[str, float]:
        """How the time of an ungrouped function divides among groups."""
        if function not in shares:
            callers = stats[function][4] if function in stats else {}
            spent = sum(times[2] for times in callers.values())
            found: dict[str, float] = defaultdict(float)
            for caller, times in callers.items():
                weight = times[2] / spent if spent else 0.0
                group = group_of(caller[0])
                if group is not None:
                    found[group] += weight
                elif caller in seen or caller not in stats:
                    found["other (unattributed)"] += weight
                else:
                    for name, part in share_of(caller, seen | {function}).items():
                        found[name] += weight * part
            shares[function] = dict(found) or {"other (unattributed)": 1.0}
        return shares[function]

    own: dict[str, float] = defaultdict(float)
    for function, (_, _, tottime, _, _) in stats.items():
        group = group_of(function[0])
        if group is not None:
            own[group] += tottime
        else:
            for name, part in share_of(function).items():
                own[name] += tottime * part
    total = sum(own.values())
    print(f"\ngovern side under cProfile ({sides.items} items), where its time goes:")
    for group, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / total:6.1%}  {group}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200, help="items per side per round")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    args = parser.parse_args()
    if args.wall:
        global CLOCK
        CLOCK = time.perf_counter
    os.environ.setdefault("GOVERN_LEDGER_KEY", "be" * 32)  # throwaway keys for the benchmark
    os.environ.setdefault("GOVERN_SIGNING_KEY", "bf" * 32)
    with tempfile.TemporaryDirectory() as folder:
        sides = Sides(Path(folder), args.items)
        times = asyncio.run(measure(sides, args.rounds))
        if args.profile:
            profile(sides)
    ratios = {
        side: [t / r for t, r in zip(times[side], times["raw"], strict=True)]
        for side in ("shape", "stages", "govern")
    }
    print(
        f"\nMongol pipeline, {STAGES} stages, instant scripted model, {args.items} items x "
        f"{args.rounds} rounds, sides in random order each round; ledger file on "
        f"({sides.entries:,} entries a run); {'wall' if args.wall else 'CPU'} time"
    )
    print(f"{'side':<48} {'ms/stage':>9} {'range':>13} {'ratio to raw':>13} {'range':>12}")
    labels = {
        "raw": "raw LangGraph chain, async no-op nodes",
        "shape": "the same with govern's state and Command routing",
        "stages": "govern's graph and stages, no ledger, no results",
        "govern": "govern run (ledger file, results, Controller)",
    }
    for side, label in labels.items():
        median, low, high = statistics.median(times[side]), min(times[side]), max(times[side])
        line = f"{label:<48} {median:9.3f} {low:6.3f}-{high:.3f}"
        if side in ratios:
            r = ratios[side]
            line += f" {statistics.median(r):12.2f}x {min(r):5.2f}-{max(r):.2f}x"
        print(line)
    print("target: govern at most 1.15x raw per stage (median of the per-round ratios)")
    print(json.dumps({side: round(statistics.median(r), 3) for side, r in ratios.items()}))


if __name__ == "__main__":
    main()

"""Per-stage orchestration overhead: govern on the simulator against raw LangGraph.

Both sides run the senate's happy path, shaped the same: propose, a 5-member
cluster, a 5-voter vote, a review, an execute, a terminal. The raw side is a
LangGraph StateGraph of no-op async nodes with the same fan-outs (Send) and
deferred joins; the govern side is the compiled senate on the real
simulator (sim/strong that never rejects and never writes malformed output, so every item
takes the same happy path, with no simulated latency). Items run one after another in one event
loop, alternating sides in rounds, and the medians are compared.

    .venv/bin/python benchmarks/stage_overhead.py [--items 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import statistics
import time
from pathlib import Path
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.state import initial_state
from govern.models.router import ModelRouter
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import SimOverride
from govern.tasks.gsm8k import GSM8K

ROOT = Path(__file__).resolve().parent.parent
STAGES = 6  # motion, debate, division, intercession, enactment, enacted


class RawState(TypedDict, total=False):
    path: Annotated[list, operator.add]
    reports: Annotated[list, operator.add]


def raw_graph():
    graph = StateGraph(RawState)

    async def step(state: RawState) -> dict:
        return {"path": ["x"]}

    async def worker(state: dict) -> dict:
        return {"reports": [1]}

    for name in (
        "motion",
        "debate",
        "debate_w",
        "debate_j",
        "division",
        "division_w",
        "division_j",
        "intercession",
        "enactment",
        "enacted",
    ):
        graph.add_node(name, worker if name.endswith("_w") else step, defer=name.endswith("_j"))
    graph.add_edge(START, "motion")
    graph.add_conditional_edges("motion", lambda s: "go", {"go": "debate"})
    for stage, after in (("debate", "division"), ("division", "intercession")):
        graph.add_conditional_edges(
            stage, lambda s, w=f"{stage}_w": [Send(w, {})] * 5, [f"{stage}_w"]
        )
        graph.add_edge(f"{stage}_w", f"{stage}_j")
        graph.add_conditional_edges(f"{stage}_j", lambda s, a=after: "go", {"go": after})
    graph.add_conditional_edges("intercession", lambda s: "go", {"go": "enactment"})
    graph.add_conditional_edges("enactment", lambda s: "go", {"go": "enacted"})
    graph.add_edge("enacted", END)
    return graph.compile()


async def per_item(run_one, items: int) -> float:
    start = time.perf_counter()
    for i in range(items):
        await run_one(i)
    return (time.perf_counter() - start) / items


async def main_async(items: int, rounds: int) -> None:
    raw = raw_graph()
    institution = checked_institution(load_checked(ROOT / "manifests" / "senate.yaml"))
    compiled = compile_institution(institution)
    happy = SimOverride(
        base="strong", false_reject=0.0, review_recall=0.0, malformed_rate=0.0, overlong_rate=0.0
    )
    router = ModelRouter(simulator={"sim/happy": happy}, concurrency=64)
    context = RunContext(
        institution,
        GSM8K(),
        router,
        {r.id: "sim/happy" for r in institution.roles},
        golds={f"i{i}": "1" for i in range(items)},
    )
    config = {"recursion_limit": compiled.recursion_limit}

    async def run_raw(i: int) -> None:
        await raw.ainvoke({}, {"recursion_limit": 50})

    async def run_govern(i: int) -> None:
        state = await compiled.graph.ainvoke(initial_state(f"i{i}", "q"), config, context=context)
        assert state["path"][-1] == "enacted"

    await per_item(run_raw, 20)
    await per_item(run_govern, 20)
    raw_times, govern_times = [], []
    for _ in range(rounds):
        raw_times.append(await per_item(run_raw, items))
        govern_times.append(await per_item(run_govern, items))
    raw_item, govern_item = statistics.median(raw_times), statistics.median(govern_times)
    per_stage_raw, per_stage_govern = raw_item / STAGES * 1e3, govern_item / STAGES * 1e3
    added = per_stage_govern - per_stage_raw
    print(f"senate happy path, {STAGES} stages (13 model calls), {items} items x {rounds} rounds")
    print(
        f"  raw LangGraph, no-op nodes   {raw_item * 1e3:7.2f} ms/item  "
        f"{per_stage_raw:6.3f} ms/stage"
    )
    print(
        f"  govern on the simulator      {govern_item * 1e3:7.2f} ms/item  "
        f"{per_stage_govern:6.3f} ms/stage"
    )
    print(f"  ratio govern/raw             {govern_item / raw_item:7.2f}x   (target <= 3x)")
    print(f"  added per stage              {added:7.3f} ms        (target < 0.5 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main_async(args.items, args.rounds))


if __name__ == "__main__":
    main()

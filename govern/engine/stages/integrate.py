"""integrate: synthesise several earlier outputs (reports, reviews, drafts) into one answer."""

from __future__ import annotations

from govern.engine.context import RunContext
from govern.engine.prompts import candidate_section, reports_section
from govern.engine.stages.common import StageNodes
from govern.engine.stages.solo import answering_node
from govern.spec.models import IntegrateStage


def latest_outputs(state: dict, stages: list[str] | None) -> list[dict]:
    """Each agent's latest turn in the given stages (all earlier stages when None)."""
    latest: dict[tuple[str, str], dict] = {}
    for record in state["turns"]:
        if stages is None or record["stage"] in stages:
            latest[(record["stage"], record["agent"])] = record
    return list(latest.values())


def build(stage: IntegrateStage) -> StageNodes:
    def sections(ctx: RunContext, state: dict):
        inputs = latest_outputs(state, stage.inputs)
        return candidate_section(
            state.get("candidate"), ctx.task, ctx.institution
        ) + reports_section("Inputs", inputs, ctx.task)

    def input_answers(ctx: RunContext, state: dict) -> tuple[str, ...]:
        return tuple(r["answer"] for r in latest_outputs(state, stage.inputs) if r.get("answer"))

    node = answering_node(stage, lambda state: "integrate", sections, inputs=input_answers)
    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})

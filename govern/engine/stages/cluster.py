"""cluster: every seat of the member roles works in parallel; their reports are merged.

Members see the candidate and work on it, unless the cluster is
``independent`` (autonomous units that solve on their own). The merged
candidate is the answer most reports give (the first in member order on a
tie), its text every report in turn.
"""

from __future__ import annotations

from collections import Counter

from langgraph.runtime import Runtime

from govern.engine.context import RunContext
from govern.engine.prompts import candidate_section, feedback_section
from govern.engine.stages.common import Consultation, StageNodes, Update, leave
from govern.engine.stages.parallel import (
    ask_seat,
    parallel_stage,
    seat_failure,
    seat_result,
    this_visit,
)
from govern.spec.models import UNPARSABLE, ClusterStage


def build(stage: ClusterStage) -> StageNodes:
    async def work(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        seen = {**payload, "candidate": None} if stage.independent else payload
        sections = candidate_section(
            seen.get("candidate"), ctx.task, ctx.institution
        ) + feedback_section(seen.get("feedback"))
        act = "revise" if seen.get("candidate") else "solve"
        asked = await ask_seat(
            ctx,
            seen,
            stage.id,
            stage.purpose,
            act,
            sections,
            ctx.task.answer_format,
            ctx.read_answer,
        )
        if not isinstance(asked, Consultation):
            return asked
        return seat_result(ctx, payload, stage.id, asked, "answer", asked.reading)

    async def merge(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        if (stop := seat_failure(ctx, state, stage.id)) is not None:
            return stop
        order = {seat: i for i, (seat, _) in enumerate(state["roster"])}
        reports = sorted(
            this_visit(state["reports"], stage.id, state["visits"][stage.id]),
            key=lambda r: order.get(r["seat"], len(order)),
        )
        answered = [r for r in reports if r["answer"] is not None]
        if not answered:
            return leave(ctx, state, stage.id, UNPARSABLE, {})
        counts = Counter(r["answer"] for r in answered)
        top = max(counts.values())
        first = next(r for r in answered if counts[r["answer"]] == top)
        text = "\n\n".join(f"### {r['agent']}\n{r['text']}" for r in reports)
        candidate = {
            "stage": stage.id,
            "agent": first["agent"],
            "text": text,
            "answer": first["answer"],
        }
        return leave(ctx, state, stage.id, "done", {"candidate": candidate, "feedback": None})

    return parallel_stage(stage.id, stage.members, work, merge, "member", "merge", voting=False)

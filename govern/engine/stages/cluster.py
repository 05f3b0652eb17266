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
from govern.engine.prompts import candidate_section, compose, feedback_section
from govern.engine.stages.common import StageNodes, Update, failed, leave, turn
from govern.engine.stages.parallel import parallel_stage, this_visit
from govern.engine.state import combine
from govern.models.base import ModelError
from govern.spec.models import UNPARSABLE, ClusterStage


def build(stage: ClusterStage) -> StageNodes:
    async def work(payload: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        agent, visit = payload["agent"], payload["visit"]
        role = agent.split("#")[0]
        seen = {**payload, "candidate": None} if stage.independent else payload
        sections = candidate_section(seen.get("candidate")) + feedback_section(seen.get("feedback"))
        act = "revise" if seen.get("candidate") else "solve"
        messages = compose(
            ctx.institution,
            role,
            payload["question"],
            stage.purpose,
            sections,
            ctx.task.answer_format,
        )
        try:
            response = await ctx.call(
                agent, messages, ctx.oracle(seen, stage.id, agent, act, visit)
            )
        except ModelError as exc:
            return {"errors": [f"{stage.id}: {exc}"]}
        answer = ctx.task.parse_answer(response.text)
        report = {
            "stage": stage.id,
            "visit": visit,
            "agent": agent,
            "answer": answer,
            "text": response.text,
        }
        return combine(
            turn(stage.id, agent, act, visit, response, answer=answer), {"reports": [report]}
        )

    async def merge(state: dict, runtime: Runtime[RunContext]) -> Update:
        ctx = runtime.context
        if any(e.startswith(f"{stage.id}: ") for e in state["errors"]):
            return failed(stage.id, RuntimeError("a member's call failed"), {})
        order = {
            agent: i for i, agent in enumerate(a for r in stage.members for a in ctx.agents(r))
        }
        reports = sorted(
            this_visit(state["reports"], stage.id, state["visits"][stage.id]),
            key=lambda r: order[r["agent"]],
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

    return parallel_stage(stage.id, stage.members, work, merge, "member", "merge")

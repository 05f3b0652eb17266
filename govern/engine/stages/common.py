"""Pieces every stage behaviour shares: arriving, accounting for a call, and leaving."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from govern.engine.context import CallSettings, RunContext
from govern.engine.routing import Transition
from govern.engine.state import combine
from govern.models.base import Message, ModelError, ModelResponse
from govern.spec.models import UNPARSABLE

Update = dict[str, Any]
KEEP_ON_REASK = ("seat", "chair")  # a turn's fields that hold for the replies asked again too


@dataclass(frozen=True)
class StageNodes:
    """The LangGraph nodes that make up one stage.

    ``entry`` is where arrivals land and ``exit`` decides the next stage. A stage
    with parallel agents also names its ``worker`` node, to which ``entry`` sends one
    ``Send`` per agent; ``exit`` then joins their results.
    """

    entry: str
    exit: str
    nodes: dict[str, Any]
    worker: str | None = None
    deferred: frozenset[str] = field(default_factory=frozenset)


def arrive(state: dict, stage_id: str) -> tuple[int, Update]:
    """Count the visit; returns (this visit's number, the update)."""
    visit = state["visits"].get(stage_id, 0) + 1
    return visit, {"visits": {stage_id: visit}, "path": [stage_id], "steps": state["steps"] + 1}


@dataclass(frozen=True)
class Consultation:
    """One agent's answer to one request: who was asked, with what, the reply and what the
    parsing policy read in it (None: unparsable). ``earlier`` holds the unparsable replies
    that were asked again for their format; ``reask_failure`` a re-ask call that failed."""

    agent: str
    act: str
    visit: int
    messages: list[Message]
    response: ModelResponse
    settings: CallSettings
    reading: Any = None
    reask: int = 0  # 0 for the first asking, k for the k-th re-ask
    earlier: tuple[Consultation, ...] = ()
    reask_failure: ModelError | None = None


def record_turn(
    ctx: RunContext, state: dict, stage: str, asked: Consultation, **fields: Any
) -> Update:
    """Report the consultation's calls to the Controller (which logs them and weighs the
    evidence) and return their accounting and full records for the item's results: the
    unparsable replies that were asked again first, then the one the stage acts on."""
    update: Update = {}
    for earlier in asked.earlier:
        same_seat = {k: v if k in KEEP_ON_REASK else None for k, v in fields.items()}
        update = combine(update, _one_turn(ctx, state, stage, earlier, False, **same_seat))
    update = combine(update, _one_turn(ctx, state, stage, asked, True, **fields))
    if asked.reask_failure is not None:
        error = str(asked.reask_failure)
        ctx.controller.observe_failed_reask(
            state["item_id"], stage, asked.agent, asked.visit, asked.reask + 1, error
        )
        update = combine(update, failed_call(asked.reask_failure))
        update["turns"][-1]["reask_error"] = error
    return update


def _one_turn(
    ctx: RunContext, state: dict, stage: str, asked: Consultation, weighed: bool, **fields: Any
) -> Update:
    response = asked.response
    parsed = asked.reading is not None
    seq = ctx.controller.observe_turn(
        state["item_id"],
        stage,
        asked.agent,
        asked.visit,
        asked.act,
        response.model,
        asked.messages,
        response.text,
        parsed,
        (response.prompt_tokens, response.completion_tokens),
        seed=asked.settings.seed,
        reask=asked.reask,
        weighed=weighed,
        cached=response.cached,
    )
    return {
        "calls": 1,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "cost": response.cost or 0.0,
        "unknown_cost_calls": int(response.cost is None),
        "turns": [
            {
                "stage": stage,
                "agent": asked.agent,
                "act": asked.act,
                "visit": asked.visit,
                "model": response.model,
                "messages": asked.messages,
                "text": response.text,
                "parsed": parsed,
                "prompt_tokens": response.prompt_tokens,
                "completion_tokens": response.completion_tokens,
                "latency": round(response.latency, 6),
                "attempts": response.attempts,
                "finish_reason": response.finish_reason,
                **({"cached": True} if response.cached else {}),
                **({"reask": asked.reask} if asked.reask else {}),
                **asked.settings.as_record(),
                **fields,
                "seq": seq,  # its ledger entry, and its event's id
                "at": round(time.time(), 6),
            }
        ],
    }


def leave(
    ctx: RunContext,
    state: dict,
    stage_id: str,
    decision: str,
    pending: Update,
    actor: str | None = None,
) -> Update:
    """Propose the move to the Controller (or stop the item at its limits) and record it."""
    item = state["item_id"]
    if over_limits(ctx, state, pending):
        transition = ctx.controller.stop(item, stage_id, decision, "cut_off")
    else:
        visits = {**state["visits"], **pending.get("visits", {})}
        transition = ctx.controller.transition(item, stage_id, decision, actor, visits)
    return combine(pending, route_update(transition, decision))


def over_limits(ctx: RunContext, state: dict, pending: Update) -> bool:
    """The policy's step bound and the manifest's per-item budgets."""
    steps = pending.get("steps", state["steps"])
    calls = state["calls"] + pending.get("calls", 0)
    tokens = sum(state[k] + pending.get(k, 0) for k in ("prompt_tokens", "completion_tokens"))
    return steps >= ctx.institution.policy.max_steps or spent_budget(ctx, calls, tokens)


def spent_budget(ctx: RunContext, calls: int, tokens: int) -> bool:
    """Whether an item with these calls and tokens has reached a per-item budget."""
    budgets = ctx.budgets
    return (budgets.max_calls_per_item is not None and calls >= budgets.max_calls_per_item) or (
        budgets.max_tokens_per_item is not None and tokens >= budgets.max_tokens_per_item
    )


def route_update(transition: Transition, decision: str) -> Update:
    update: Update = {
        "decision": decision or None,
        "route": transition.key,
        "unparsable": int(decision == UNPARSABLE),
    }
    if transition.counters:
        update["visits"] = dict(transition.counters)
    if transition.target is None:
        update["outcome"] = transition.via
    return update


def failed(
    ctx: RunContext, state: dict, stage_id: str, error: Exception, pending: Update
) -> Update:
    """A model call failed after its retries: the item ends with the error recorded,
    prefixed once with the stage (a parallel seat's error already carries it)."""
    transition = ctx.controller.stop(state["item_id"], stage_id, None, "error", str(error))
    message = str(error)
    if not message.startswith(f"{stage_id}: "):
        message = f"{stage_id}: {message}"
    return combine(pending, {"errors": [message]}, route_update(transition, ""))


def failed_call(error: Exception) -> Update:
    """A call that failed after its retries still was a call, and its attempts were spent
    (their tokens and cost are unknown: a provider reports usage only with an answer)."""
    return {"calls": 1, "failed_attempts": getattr(error, "attempts", 1), "unknown_cost_calls": 1}


def nobody_may_act(ctx: RunContext, state: dict, stage_id: str, pending: Update) -> Update:
    """Every agent who could act here is barred and no stand-in is left."""
    transition = ctx.controller.stop(
        state["item_id"], stage_id, None, "blocked", "no agent may act and no stand-in is left"
    )
    return combine(pending, route_update(transition, ""))

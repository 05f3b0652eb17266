"""The simulator as a model client: the same interface as a real provider."""

from __future__ import annotations

import asyncio
import math
import random
import time

from govern.models.base import ModelRequest, ModelResponse
from govern.models.sim.behaviour import simulate, stable_random
from govern.models.sim.branches import plan, subanswer, synthesise
from govern.models.sim.cournot import choose_quantities, render_reply
from govern.models.sim.hanoi import HanoiMicroAgent
from govern.models.sim.params import SimParams
from govern.models.sim.text import render

BRANCH_ACTS = {"plan": plan, "subanswer": subanswer, "synthesise": synthesise}


def approx_tokens(text: str) -> int:
    """About four characters a token, as for English with common tokenizers."""
    return math.ceil(len(text) / 4)


def sim_response(request: ModelRequest, text: str, started: float) -> ModelResponse:
    prompt = sum(approx_tokens(m["content"]) for m in request.messages)
    return ModelResponse(
        text=text,
        model=request.model,
        prompt_tokens=prompt,
        completion_tokens=approx_tokens(text),
        cost=0.0,
        latency=time.perf_counter() - started,
        simulated=True,
        finish_reason="stop",
    )


class SimClient:
    """A seeded simulated model: the same request always gets the same reply."""

    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.hanoi = HanoiMicroAgent(params)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        oracle = request.oracle
        if oracle.hanoi is not None:  # a MAKER micro-agent: its draws are (seed, step, sample)'s
            text = self.hanoi.answer(oracle.hanoi, oracle.run_seed).text
            if self.params.latency_ms:
                hanoi = oracle.hanoi
                await self._wait(stable_random(oracle.run_seed, hanoi.step, hanoi.sample))
            return sim_response(request, text, started)
        call = (request.model, oracle.run_seed, oracle.item_id, oracle.stage, oracle.agent,
                oracle.visit, oracle.act)  # fmt: skip
        if oracle.branch is not None:  # each branch's samples, and each integration, their own
            call = (*call, oracle.branch)
        rng = stable_random(*call)
        # asked again for the format: the same decision, its rendering drawn afresh
        fresh = stable_random(*call, "reask", oracle.reask) if oracle.reask else rng
        if oracle.market is not None:  # a firm of the Cournot market
            choice = choose_quantities(oracle.market, request.messages, self.params, rng)
            text = render_reply(choice, oracle.market, self.params, fresh)
        elif oracle.act in BRANCH_ACTS:  # a decomposed item: its plan, a branch, an integration
            text = BRANCH_ACTS[oracle.act](oracle, self.params, rng)
        else:
            text = render(simulate(oracle, self.params, rng), oracle.act, self.params, fresh)
        if self.params.latency_ms:
            await self._wait(fresh)
        return sim_response(request, text, started)

    async def _wait(self, rng: random.Random) -> None:
        """The simulated time of a call, jittered by a draw of its own stream."""
        jitter = 1 + self.params.latency_jitter * (2 * rng.random() - 1)
        await asyncio.sleep(self.params.latency_ms * jitter / 1000)

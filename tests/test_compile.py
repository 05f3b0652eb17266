"""Compilation: cached by digest, bounded recursion, JSON-only state, concurrency limit."""

from __future__ import annotations

import asyncio
import json

from govern.engine.compile import compile_institution
from govern.models.base import ModelRequest, ModelResponse, Oracle
from govern.models.router import ModelRouter
from govern.models.sim.scripted import ScriptedClient
from tests.engine_harness import institution_at, run_item


def test_compiled_graphs_are_cached_by_digest() -> None:
    first = compile_institution(institution_at("institutions/tang.yaml"))
    again = compile_institution(institution_at("institutions/tang.yaml"))
    assert first is again and len(first.digest) == 64
    assert first.recursion_limit == first.institution.policy.max_steps * 3 + 2


def test_every_decision_has_an_explicit_path_map_entry() -> None:
    compiled = compile_institution(institution_at("manifests/senate.yaml"))
    division = compiled.routes["division.tally"]
    assert division["pass->intercession"] == "intercession"
    assert division["no_quorum->abandoned"] == "abandoned"  # the exhausted route
    assert division["__stop__"] == "__end__"
    assert division["__retry__"] == "division"
    # the graph declares the same destinations (routing is by Command: no branch functions)
    nodes = compiled.graph.builder.nodes
    assert set(nodes["division.tally"].ends) == set(division.values())
    assert set(nodes["division"].ends) == {"division.ballot", "__end__"}
    assert not compiled.graph.builder.branches


def test_the_final_state_is_plain_json() -> None:
    state = run_item(institution_at("institutions/us_federal.yaml"), ScriptedClient({}))
    assert json.loads(json.dumps(state)) == state


class CountingClient:
    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return ModelResponse(
            text="#### 1",
            model=request.model,
            prompt_tokens=1,
            completion_tokens=1,
            cost=None,
            latency=0.01,
        )


def test_the_router_bounds_calls_in_flight() -> None:
    client = CountingClient()
    router = ModelRouter(clients={"m": client}, concurrency=3)
    oracle = Oracle(item_id="i", gold=None, act="solve", stage="s", agent="a#1", visit=1)

    async def many() -> None:
        await asyncio.gather(*(router.complete(ModelRequest("m", [], oracle)) for _ in range(20)))

    asyncio.run(many())
    assert client.peak == 3

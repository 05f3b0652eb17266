"""Run one item through a compiled institution with scripted or simulated models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.state import initial_state
from govern.models.base import ModelClient
from govern.models.router import ModelRouter
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Budgets, Institution
from govern.tasks.gsm8k import GSM8K
from tests.conftest import ROOT


def institution_at(relative: str) -> Institution:
    return checked_institution(load_checked(ROOT / relative))


def run_item(
    institution: Institution,
    client: ModelClient,
    *,
    gold: str = "1",
    budgets: Budgets | None = None,
) -> dict[str, Any]:
    router = ModelRouter(clients={"test/model": client})
    context = RunContext(
        institution,
        GSM8K(),
        router,
        {r.id: "test/model" for r in institution.roles},
        budgets=budgets or Budgets(),
        golds={"item": gold},
    )
    compiled = compile_institution(institution)
    return asyncio.run(
        compiled.graph.ainvoke(
            initial_state("item", "What is 1 + 0?"),
            {"recursion_limit": compiled.recursion_limit},
            context=context,
        )
    )


def run_scripted(
    relative: str | Path, script: dict[str, list[Any]], **kwargs: Any
) -> dict[str, Any]:
    return run_item(institution_at(str(relative)), ScriptedClient(script), **kwargs)

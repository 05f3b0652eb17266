"""What every stage node needs at run time, passed through LangGraph's runtime context.

Compiled graphs depend on the institution alone (and are cached by its digest);
models, task, seed and budgets arrive here, so one compiled graph serves any run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from govern.governance.controller import Controller
from govern.models.base import Message, ModelRequest, ModelResponse, Oracle
from govern.models.router import ModelRouter
from govern.spec.models import Budgets, Institution
from govern.tasks.base import Task


@dataclass
class RunContext:
    institution: Institution
    task: Task
    router: ModelRouter
    role_models: dict[str, str]  # every role id -> model name
    seed: int = 0
    budgets: Budgets = field(default_factory=Budgets)
    golds: dict[str, str | None] = field(default_factory=dict)  # hidden: only the simulator sees it
    controller: Controller | None = None  # default: no overlay, an in-memory ledger

    def __post_init__(self) -> None:
        if self.controller is None:
            self.controller = Controller(self.institution)

    async def call(self, agent: str, messages: list[Message], oracle: Oracle) -> ModelResponse:
        role_id = agent.split("#")[0]
        request = ModelRequest(
            model=self.role_models[role_id], messages=messages, oracle=oracle, seed=self.seed
        )
        return await self.router.complete(request)

    def oracle(self, state: dict, stage: str, agent: str, act: str, visit: int, **extra) -> Oracle:
        candidate = state.get("candidate")
        return Oracle(
            item_id=state["item_id"],
            gold=self.golds.get(state["item_id"]),
            act=act,
            stage=stage,
            agent=agent,
            visit=visit,
            candidate=candidate["answer"] if candidate else None,
            feedback=bool(state.get("feedback")),
            difficulty_seed=self.seed,
            **extra,
        )


def assign_models(
    institution: Institution,
    default: str,
    manifest_roles: dict[str, str],
    cli_roles: dict[str, str] | None = None,
) -> dict[str, str]:
    """Each role's model: --role-model, then the manifest's roles, the role's own, the default."""
    cli_roles = cli_roles or {}
    return {
        role.id: cli_roles.get(role.id) or manifest_roles.get(role.id) or role.model or default
        for role in institution.roles
    }

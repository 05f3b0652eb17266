"""What every stage node needs at run time, passed through LangGraph's runtime context.

Compiled graphs depend on the institution alone (and are cached by its digest);
models, task, seed and budgets arrive here, so one compiled graph serves any run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from govern.engine.formats import parse_ballot
from govern.engine.seeds import call_seed
from govern.governance.controller import Controller
from govern.models.base import Message, ModelRequest, ModelResponse, Oracle
from govern.models.router import ModelRouter
from govern.spec.models import Budgets, Institution, ModelChoice, Parsing, Sampling, SamplingPolicy
from govern.tasks.base import Task

# The most tokens an output may have when the manifest sets none: an answer needs room for
# its working, a review (or an overseer's examination) for its reasons, a ballot (on a
# motion, or naming candidates) for a line or two.
DEFAULT_MAX_TOKENS = {
    "solve": 1024,
    "revise": 1024,
    "integrate": 1024,
    "review": 512,
    "oversee": 512,
    "vote": 256,
    "elect": 256,
}


@dataclass(frozen=True)
class CallSettings:
    seed: int
    sampling: Sampling
    sample: int = 0  # the seat's place on the roster of a stage of several seats
    sent: dict[str, Any] | None = None  # the sampling as a turn records it (None: not yet)

    def as_record(self) -> dict[str, Any]:
        """What a turn records: the seed and the sampling actually sent (and the sample,
        which the seed and the sampling derive from, in a stage of several seats)."""
        return {
            **({"sample": self.sample} if self.sample else {}),
            "seed": self.seed,
            **(self.sent if self.sent is not None else sampling_record(self.sampling)),
        }


def sampling_record(sampling: Sampling) -> dict[str, Any]:
    return {
        **sampling.model_dump(exclude_none=True, exclude={"extra"}),
        **({"extra": sampling.extra} if sampling.extra else {}),
    }


@dataclass
class RunContext:
    institution: Institution
    task: Task
    router: ModelRouter
    role_models: dict[str, str]  # role id -> model name, for every role whose seats share one
    seed: int = 0
    budgets: Budgets = field(default_factory=Budgets)
    golds: dict[str, str | None] = field(default_factory=dict)  # hidden: only the simulator sees it
    controller: Controller | None = None  # default: no overlay, an in-memory ledger
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    parsing: Parsing = field(default_factory=Parsing)
    system_prompt: dict[str, str] = field(default_factory=dict)  # model -> how it takes one
    seat_models: dict[str, str] = field(default_factory=dict)  # seat -> model, in mixed roles
    report: Callable[[str], None] | None = None  # progress of long work, for a console
    # where a resumed run's unfinished decompose stage visits stood: (item, stage, visit) ->
    # maker.decompose.Resumed, replayed from the ledger before the run went on
    resumed_visits: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    # (role, stage, sample, act) -> the sampling of such a call and its record: the manifest
    # does not change during a run, so each is worked out once
    _sampling: dict[tuple[str, str, int, str], tuple[Sampling, dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def model_for(self, agent: str) -> str:
        """The model of an agent's seat: ``role#n``, or a replacement ``role#n~2`` in it."""
        seat = agent.split("~")[0]
        return self.seat_models.get(seat) or self.role_models[seat.split("#")[0]]

    @property
    def models(self) -> dict[str, str]:
        """Every role's model and every mixed role's seat's, as a run's records list them."""
        return {**self.role_models, **self.seat_models}

    def merges_system_prompt(self, agent: str) -> bool:
        return self.system_prompt.get(self.model_for(agent)) == "merge_into_user"

    def __post_init__(self) -> None:
        if self.controller is None:
            self.controller = Controller(self.institution, seed=self.seed)

    def read_answer(self, text: str) -> str | None:
        """The answer in an output, as the task's format and the parsing policy read it."""
        return self.task.parse_answer(text, self.parsing.mode)

    def read_ballot(self, text: str, abstain: bool = False) -> str | None:
        """A ballot as the parsing policy reads it (``abstain``: the vote allows abstaining)."""
        return parse_ballot(text, self.parsing.mode, abstain=abstain)

    def settings(
        self, agent: str, oracle: Oracle, sample: int = 0, role: str | None = None
    ) -> CallSettings:
        """The seed and sampling of one call: its own seed (or the run's, when the manifest
        shares it), and the manifest's sampling for the role it speaks as (its own, or the
        office it holds) at this stage and, in a stage of several seats, for the seat's
        sample."""
        role_id = role or agent.split("#")[0]
        seed = (
            self.seed
            if self.sampling.seed == "shared"
            else call_seed(
                self.seed, oracle.item_id, oracle.stage, agent, oracle.visit, sample, oracle.reask
            )
        )
        key = (role_id, oracle.stage, sample, oracle.act)
        if key not in self._sampling:
            sampling = self.sampling.for_call(role_id, oracle.stage, sample)
            if sampling.max_tokens is None:  # a run-on output must end: a default per act
                sampling = sampling.model_copy(
                    update={"max_tokens": DEFAULT_MAX_TOKENS.get(oracle.act, 1024)}
                )
            self._sampling[key] = (sampling, sampling_record(sampling))
        sampling, sent = self._sampling[key]
        return CallSettings(seed, sampling, sample, sent)

    async def call(
        self, agent: str, messages: list[Message], oracle: Oracle, settings: CallSettings
    ) -> ModelResponse:
        sampling = settings.sampling
        request = ModelRequest(
            model=self.model_for(agent),
            messages=messages,
            oracle=oracle,
            seed=settings.seed,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            extra=sampling.extra,
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
            run_seed=self.seed,
            **extra,
        )


class Assignment(NamedTuple):
    """Which model each role runs on (``roles``), and each seat of a mixed body (``seats``)."""

    roles: dict[str, str]
    seats: dict[str, str]

    @property
    def used(self) -> set[str]:
        """Every model the run uses, its seats' own included: what its prices, cache,
        endpoints and simulated label are worked out from."""
        return {*self.roles.values(), *self.seats.values()}


def assign_models(
    institution: Institution,
    default: str,
    manifest_roles: dict[str, str],
    cli_roles: dict[str, str] | None = None,
    manifest_seats: dict[str, list[str]] | None = None,
) -> Assignment:
    """(role -> model, seat -> model): --role-model (the whole role), then the manifest's
    seats, the manifest's roles, the role's own models or model, the default. A role whose
    seats have models of their own is in the second mapping, seat by seat; any other, in
    the first; an office in neither (its holders call on their own seats' models)."""
    cli_roles, manifest_seats = cli_roles or {}, manifest_seats or {}
    roles: dict[str, str] = {}
    seats: dict[str, str] = {}
    for role in institution.roles:
        if role.office is not None:  # its holders speak on their own seats' models
            continue
        if role.id in cli_roles:
            roles[role.id] = cli_roles[role.id]
        elif role.id in manifest_seats or (role.id not in manifest_roles and role.models):
            per_seat = manifest_seats.get(role.id) or role.models or []
            seats.update((f"{role.id}#{n}", model) for n, model in enumerate(per_seat, 1))
        else:
            roles[role.id] = manifest_roles.get(role.id) or role.model or default
    return Assignment(roles, seats)


def models_used(institution: Institution, choice: ModelChoice) -> set[str]:
    """Every model a run of ``institution`` under a manifest's ``choice`` uses (no command
    line overrides: an experiment's cells are run as their manifests say)."""
    return assign_models(institution, choice.default, choice.roles, {}, choice.seats).used

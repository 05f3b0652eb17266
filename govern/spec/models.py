"""The governance-graph language as pydantic models.

An Institution is roles plus stages; each stage declares the decisions it may
return and routes every one of them (and the implicit ``unparsable`` outcome)
to a next stage. A Manifest says what runs: an institution, models, task
defaults, seed and budgets. Cross-references (does this role exist? is every
loop bounded?) are the static checks' job, so they can report every problem
with its line instead of stopping at the first.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from govern.spec.errors import escape_controls, quoted

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=64,
        description="lower-case letters, digits and underscores, starting with a letter",
    ),
]
NonEmptyText = Annotated[str, Field(min_length=1)]


def model_name(name: str) -> str:
    """A model's name: printable, without spaces around it (a name with a control character
    would reach the terminal and every file that records it)."""
    if not name.strip():
        raise ValueError("a model name cannot be empty or blank")
    if name != name.strip():
        shown = escape_controls(quoted(name))
        raise ValueError(f"'{shown}' has spaces around it: write the model's name alone")
    if not name.isprintable():
        shown = escape_controls(quoted(name))
        raise ValueError(f"'{shown}' has a control character: a model name is printable")
    return name


ModelName = Annotated[str, AfterValidator(model_name)]


def server_url(url: str) -> str:
    """A server's base URL: http or https with a host (a typo fails here, not as four
    failed attempts per call)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or url != url.strip():
        raise ValueError(
            f"'{url}' is not a server's base URL: expected http://HOST[:PORT][/PATH], "
            "e.g. http://127.0.0.1:8080/v1"
        )
    return url


ServerUrl = Annotated[str, AfterValidator(server_url)]

UNPARSABLE = "unparsable"
"""The outcome of an output that could not be parsed: a decision of its own that
every non-terminal stage must route explicitly."""

Pattern = Literal["pipeline", "gated_pipeline", "autonomous_cluster", "consensus"]

Meaning = Literal["approve", "reject", "amend", "veto"]
"""What a review's decision does: approve lets the candidate stand, reject and veto send it
back with the reasons, amend puts the reviewer's answer in its place."""

VETOED = "vetoed"
"""The outcome of a vote in which a voter named in ``veto_by`` voted no."""
HELD, VACANT = "held", "vacant"
"""The outcomes of an office stage: the office has holders in their term, or it has none."""


def exact_share(value: float | str) -> Fraction:
    """A share as given, exactly: ``0.667`` is 667/1000, ``25/41`` is 25/41."""
    return Fraction(value) if isinstance(value, str) else Fraction(str(value))


_FRACTION = re.compile(r"\s*([0-9]{1,18})\s*/\s*([0-9]{1,18})\s*", re.ASCII)


def _share_text(value: Any) -> Any:
    """``threshold: 25/41`` is a fraction written as text (ASCII digits, at most 18 each);
    decimals stay numbers."""
    if isinstance(value, str):
        match = _FRACTION.fullmatch(value)
        if match is None:
            raise ValueError(
                f"'{quoted(value)}' is not a share: write a decimal (0.6) or a fraction (25/41)"
            )
        numerator, denominator = (int(part) for part in match.groups())
        if denominator == 0:
            raise ValueError(f"'{value.strip()}' divides by zero")
        return f"{numerator}/{denominator}"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a share: write a decimal (0.6) or a fraction (25/41)")
    return value


Share = Annotated[
    Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(pattern=r"^\s*[0-9]+\s*/\s*[0-9]+\s*$")],
    BeforeValidator(_share_text),
]


class SpecModel(BaseModel):
    """Base for every model of the language: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _each_once(names: list[str]) -> list[str]:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"listed twice: {', '.join(twice)}")
    return names


class ChosenBy(SpecModel):
    """A body whose seats an earlier stage chose: the seats a lot drew, an election's
    winners, or the nominees of a nomination."""

    chosen_by: Identifier = Field(description="the lot, nominate or choice-vote stage")


Body = Annotated[
    list[Identifier] | ChosenBy,
    Field(description="roles whose every seat takes part, or {chosen_by: STAGE}"),
]


def body_roles(body: list[str] | ChosenBy) -> tuple[str, ...]:
    """The roles a body names directly (none for a body an earlier stage chose)."""
    return tuple(body) if isinstance(body, list) else ()


class Office(SpecModel):
    """An office is held, not re-filled on every item: a stage that ``fills`` it chooses its
    holders from a body, and they hold it for the term (a Doge for life, a consul for a
    year). The Controller records the choice and the term's end, and a sanction that bars
    a holder removes them early."""

    term: Annotated[int, Field(strict=True)] | Literal["run"] = Field(
        "run", description="items a holder serves before the office is filled again, or run"
    )

    @field_validator("term")
    @classmethod
    def _positive_term(cls, term: int | str) -> int | str:
        if isinstance(term, int) and term < 1:
            raise ValueError("a term is at least 1 item (or run: for the whole run)")
        return term


class Role(SpecModel):
    """A position in the institution; ``seats`` agents hold it."""

    id: Identifier
    title: NonEmptyText
    instructions: NonEmptyText = Field(description="the role's standing orders in plain English")
    seats: int = Field(1, ge=1, le=64, description="how many agents hold this role")
    model: ModelName | None = Field(None, description="model override for this role")
    models: list[ModelName] | None = Field(
        None,
        min_length=1,
        description="one model per seat, in seat order (a mixed body); instead of model",
    )
    office: Office | None = Field(
        None,
        description="this role is an office: its seats are held by seats another stage "
        "chose (a lot or an election that fills it), for a term, across items",
    )

    @field_validator("models")
    @classmethod
    def _one_model_per_seat(
        cls, models: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        """Checked on the list itself (seats is read first), so the error points at it."""
        seats = info.data.get("seats")
        if models is not None and seats is not None and len(models) != seats:
            raise ValueError(
                f"models lists {len(models)} models for {seats} seats: give one per seat"
            )
        return models

    @model_validator(mode="after")
    def _one_model_source(self) -> Role:
        if self.model is not None and self.models is not None:
            raise ValueError("give model (every seat) or models (one per seat), not both")
        return self


class Route(SpecModel):
    """Where a decision leads; ``max_visits`` bounds how often this edge is taken per item."""

    to: Identifier
    max_visits: int | None = Field(None, ge=1, description="times this edge may be taken per item")
    exhausted: Identifier | None = Field(
        None, description="the stage to go to instead once max_visits is used up"
    )

    @model_validator(mode="after")
    def _bound_is_complete(self) -> Route:
        if (self.max_visits is None) != (self.exhausted is None):
            raise ValueError("max_visits and exhausted go together: give both or neither")
        return self


def _as_route(value: Any) -> Any:
    """``reject: draft`` is shorthand for ``reject: {to: draft}``."""
    return {"to": value} if isinstance(value, str) else value


RouteSpec = Annotated[Route, Field(description="a stage id, or {to, max_visits, exhausted}")]


class StageBase(SpecModel):
    """Fields every stage has. Subclasses fix ``kind`` and the decision vocabulary."""

    vocabulary: ClassVar[tuple[str, ...]] = ("done",)
    calls_model: ClassVar[bool] = True

    id: Identifier
    purpose: NonEmptyText = Field(description="what this stage is for, shown to the acting agent")
    decisions: list[str] | None = Field(
        None,
        description="decisions this stage may return (default: the kind's standard set); "
        "'unparsable' is always possible and is not listed",
    )
    next: dict[str, RouteSpec] = Field(
        default_factory=dict,
        description="decision -> next stage, for every decision and unparsable",
    )
    max_visits: int | None = Field(None, ge=1, description="times this stage may run per item")
    exhausted: Identifier | None = Field(
        None, description="the stage to go to instead once this stage's max_visits is used up"
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_routes(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("next"), dict):
            data = {**data, "next": {k: _as_route(v) for k, v in data["next"].items()}}
        return data

    @model_validator(mode="after")
    def _stage_bound_is_complete(self) -> StageBase:
        if (self.max_visits is None) != (self.exhausted is None):
            raise ValueError("max_visits and exhausted go together: give both or neither")
        return self

    def default_decisions(self) -> tuple[str, ...]:
        return self.vocabulary

    @property
    def possible_decisions(self) -> tuple[str, ...]:
        """Declared (or default) decisions plus the implicit unparsable outcome."""
        declared = tuple(self.decisions) if self.decisions is not None else self.default_decisions()
        return (*declared, UNPARSABLE) if self.calls_model else declared

    @property
    def actors(self) -> tuple[str, ...]:
        """Role ids whose agents act in this stage."""
        return ()


class SoloStage(StageBase):
    """A stage in which one agent of ``role`` acts."""

    role: Identifier

    @property
    def actors(self) -> tuple[str, ...]:
        return (self.role,)


class ProposeStage(SoloStage):
    """Produces a first candidate answer."""

    kind: Literal["propose"]


class DraftStage(SoloStage):
    """Works the current candidate into a new one (a plan, a dispatch, a revision)."""

    kind: Literal["draft"]


class ReviewStage(SoloStage):
    """A gate: approves, rejects (with reasons fed back), amends, or vetoes the candidate."""

    vocabulary: ClassVar[tuple[str, ...]] = ("approve", "reject", "amend", "veto")

    kind: Literal["review"]
    means: dict[Identifier, Meaning] = Field(
        default_factory=dict,
        description="the review's own decision words and what each does, e.g. "
        "{annul: veto, refer: reject}; each must also be listed under decisions",
    )

    def default_decisions(self) -> tuple[str, ...]:
        return ("approve", "reject")

    def meaning(self, decision: str) -> str:
        """What a decision does: a standard word means itself, a declared one its meaning."""
        return self.means.get(decision, decision)


class ExecuteStage(SoloStage):
    """Produces the final answer from the candidate."""

    kind: Literal["execute"]


class IntegrateStage(SoloStage):
    """Synthesises several earlier outputs into one candidate."""

    kind: Literal["integrate"]
    inputs: list[Identifier] | None = Field(
        None, description="stages whose outputs are synthesised (default: every earlier output)"
    )


CHOICE_RULES = ("plurality", "approval", "borda")


class VoteStage(StageBase):
    """Parallel voters cast ballots; a rule decides.

    On a motion (the candidate) each ballot is yes or no (or abstain, where allowed);
    on a slate (``rule: plurality | approval | borda``) each ballot names candidates of
    the nominate stage ``slate``, and the winner's answer becomes the candidate."""

    vocabulary: ClassVar[tuple[str, ...]] = ("pass", "fail", "no_quorum", VETOED)

    kind: Literal["vote"]
    voters: Body = Field(description="roles whose every seat votes, or {chosen_by: STAGE}")
    rule: Literal[
        "majority", "supermajority", "unanimity", "weighted", "plurality", "approval", "borda"
    ] = Field(
        "majority",
        description="on a motion: majority, supermajority (with threshold), unanimity or "
        "weighted; on a slate: plurality, approval or borda",
    )
    threshold: Share | None = Field(
        None,
        description="share of yes needed (supermajority, weighted), exact: 0.667 or 25/41",
    )
    min_yes: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="ballots for the motion (or for the winner on a slate) needed besides "
        "the rule, e.g. 25 of the 41",
    )
    weights: dict[Identifier, float] | None = Field(
        None, description="ballot weight per voter role (weighted rule; default 1)"
    )
    quorum: Share | None = Field(
        None,
        description="share of the seats that must cast a valid ballot (abstentions count) "
        "for the vote to count",
    )
    abstain: bool = Field(
        False,
        strict=True,
        description="VOTE: abstain is a valid ballot: it counts toward the quorum, not "
        "toward yes or no",
    )
    veto_by: Annotated[list[Identifier], AfterValidator(_each_once)] | None = Field(
        None,
        min_length=1,
        description="roles any one of whose seats voting no vetoes the motion: the vote "
        "returns vetoed, routed apart from fail",
    )
    tie_breaker: Literal["fail", "pass", "chair"] = "fail"
    chair: Identifier | None = Field(
        None, description="the role that breaks ties (tie_breaker: chair)"
    )
    slate: Identifier | None = Field(
        None, description="the nominate stage whose candidates a choice vote chooses among"
    )
    choose: int = Field(
        1,
        ge=1,
        strict=True,
        description="winners a choice vote chooses (their seats are its chosen body)",
    )
    fills: Identifier | None = Field(
        None, description="the office (a role with office:) the winners of a choice vote hold"
    )

    @field_validator("threshold")
    @classmethod
    def _threshold_above_half(cls, threshold: float | str | None) -> float | str | None:
        if threshold is not None and not Fraction(1, 2) < exact_share(threshold) <= 1:
            raise ValueError("a threshold is a share above one half, at most 1 (e.g. 2/3)")
        return threshold

    @field_validator("quorum")
    @classmethod
    def _quorum_is_a_share(cls, quorum: float | str | None) -> float | str | None:
        if quorum is not None and not 0 < exact_share(quorum) <= 1:
            raise ValueError("a quorum is a share above 0, at most 1 (e.g. 0.5 or 21/41)")
        return quorum

    @model_validator(mode="after")
    def _rule_fields_agree(self) -> VoteStage:
        choice = self.rule in CHOICE_RULES
        if self.rule == "supermajority" and self.threshold is None:
            raise ValueError("a supermajority vote needs a threshold, e.g. threshold: 2/3")
        if self.rule not in ("supermajority", "weighted") and self.threshold is not None:
            raise ValueError(
                f"threshold is only for supermajority and weighted votes, not {self.rule}"
                + ("; a slate's winner needs min_yes: N votes" if choice else "")
            )
        if self.weights is not None and self.rule != "weighted":
            raise ValueError("weights are only for rule: weighted")
        if (self.tie_breaker == "chair") != (self.chair is not None):
            raise ValueError("tie_breaker: chair and chair: ROLE go together")
        if choice:
            if self.slate is None:
                raise ValueError(
                    f"a {self.rule} vote chooses among candidates: name the nominate stage "
                    "that puts them up, slate: STAGE"
                )
            if self.chair is not None:
                raise ValueError("a choice vote breaks ties by slate order (pass) or fails")
            if self.veto_by is not None:
                raise ValueError("veto_by is for votes on a motion, not on a slate")
        else:
            for name in ("slate", "fills"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is for choice votes (plurality, approval, borda)")
            if self.choose != 1:
                raise ValueError("choose is for choice votes (plurality, approval, borda)")
        return self

    def default_decisions(self) -> tuple[str, ...]:
        return (
            "pass",
            "fail",
            *(("no_quorum",) if self.quorum is not None else ()),
            *((VETOED,) if self.veto_by is not None else ()),
        )

    @property
    def choice(self) -> bool:
        return self.rule in CHOICE_RULES

    @property
    def actors(self) -> tuple[str, ...]:
        return (*body_roles(self.voters), *([self.chair] if self.chair else []))


class ClusterStage(StageBase):
    """Members work in parallel on the candidate; their reports are merged."""

    kind: Literal["cluster"]
    members: Body = Field(description="roles whose every seat works, or {chosen_by: STAGE}")
    independent: bool = Field(
        False, description="members work without seeing the candidate (autonomous units)"
    )

    @property
    def actors(self) -> tuple[str, ...]:
        return body_roles(self.members)


class NominateStage(StageBase):
    """Every seat of a body puts forward its own answer, independently: the candidates of a
    slate, on which a choice vote decides. Unparsable when no nominee gave an answer."""

    kind: Literal["nominate"]
    nominees: Body = Field(description="roles whose every seat stands, or {chosen_by: STAGE}")

    @property
    def actors(self) -> tuple[str, ...]:
        return body_roles(self.nominees)


class LotStage(StageBase):
    """Draws ``draw`` seats from a body at random, reproducibly: the draw follows from the
    run's seed, the item, the stage and the visit, and the Controller writes it to the
    ledger with everything an auditor needs to recompute it. No model is asked."""

    calls_model: ClassVar[bool] = False

    kind: Literal["lot"]
    pool: Body = Field(description="roles whose seats are drawn from, or {chosen_by: STAGE}")
    draw: int = Field(ge=1, strict=True, description="seats drawn")
    fills: Identifier | None = Field(
        None, description="the office (a role with office:) the seats drawn hold"
    )


class OfficeStage(StageBase):
    """Asks whether an office has holders in their term: ``held`` or ``vacant``, so that an
    election runs only when the office needs filling. No model is asked."""

    vocabulary: ClassVar[tuple[str, ...]] = (HELD, VACANT)
    calls_model: ClassVar[bool] = False

    kind: Literal["office"]
    office: Identifier = Field(description="a role with office:")


MAX_VOTING_ROUNDS = 10_000  # a step still undecided after this many rounds is a broken sampler
MAX_VOTING_K = 1000  # a margin no task needs (the paper's largest k_min is 29); a round's draws


class Voting(SpecModel):
    """How a decompose stage votes on each step: first-to-ahead-by-k (MAKER)."""

    k: int = Field(
        ge=1,
        le=MAX_VOTING_K,
        strict=True,
        description="the winner must lead every other answer by k votes",
    )
    first_temperature: float = Field(
        0.0, ge=0.0, allow_inf_nan=False, description="the temperature of a step's first sample"
    )
    temperature: float = Field(
        0.1, ge=0.0, allow_inf_nan=False, description="the temperature of every later sample"
    )
    max_rounds: int = Field(
        100,
        ge=1,
        le=MAX_VOTING_ROUNDS,
        strict=True,
        description="rounds of draws before the step is undecided, and the stage with it",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_VOTING_K,
        strict=True,
        description="draws per round after the first k; none draws what the leader needs to "
        "win (k minus its lead), so no draw is wasted",
    )


class RedFlags(SpecModel):
    """Which samples are discarded unread. A sample with any fault of format is always
    discarded (it has nothing to vote for, and repairing it is what red flags exist to
    avoid), so only the length limit is a setting."""

    max_output_tokens: int | None = Field(
        750,
        ge=1,
        strict=True,
        description="a longer answer (or one the provider cut at the limit) is discarded; "
        "null keeps all",
    )


class DTIParams(SpecModel):
    """The law that decides when integration is due: fire when a * t ** beta - M > delta.
    Bounded so that the pressure of any real segment stays a finite number."""

    a: float = Field(
        1.0,
        gt=0,
        le=1e6,
        strict=True,
        allow_inf_nan=False,
        description="scale of the merge pressure: merges due after the first coordination",
    )
    beta: float = Field(
        0.6,
        gt=0,
        le=10,
        strict=True,
        allow_inf_nan=False,
        description="how merges due grow with coordination (below 1: sublinearly, as the "
        "paper finds)",
    )
    delta: float = Field(
        2.0,
        ge=0,
        le=1e12,
        strict=True,
        allow_inf_nan=False,
        description="deficit tolerated before integration fires (it fires when the deficit "
        "is strictly greater)",
    )


class DecomposeStage(SoloStage):
    """MAKER: the task is taken one atomic step at a time, each step voted on by samples of
    the role's micro-agent (first-to-ahead-by-k, red-flagged samples discarded), the voted
    step carrying the work forward and the Controller checking every step. ``done`` when
    every step is taken; ``undecided`` when a step found no winner in ``max_rounds``.
    A red-flagged sample is never an outcome, so there is no ``unparsable`` to route."""

    vocabulary: ClassVar[tuple[str, ...]] = ("done", "undecided")

    kind: Literal["decompose"]
    voting: Voting
    red_flags: RedFlags = Field(default_factory=RedFlags)
    planner: Identifier | None = Field(
        None,
        description="the role that splits an item into sub-questions (a task without steps "
        "of its own, e.g. gsm8k); each is then a branch, voted on in parallel",
    )
    integrator: Identifier | None = Field(
        None, description="the role that synthesises the branches' answers into one"
    )
    dti: DTIParams | None = Field(
        None,
        description="integrate when the integration deficit a*t^beta - M exceeds delta "
        "(DTI, arXiv 2604.02674), t the branches answered and M the merges since the last "
        "integration; without it, once, when every branch is answered",
    )

    @model_validator(mode="after")
    def _branches_have_both_roles(self) -> DecomposeStage:
        if (self.planner is None) != (self.integrator is None):
            raise ValueError(
                "planner and integrator go together: a planner's branches need an integrator "
                "to make one answer of them"
            )
        if self.dti is not None and self.integrator is None:
            raise ValueError(
                "dti decides when an integrator integrates: give planner and integrator"
            )
        return self

    @property
    def actors(self) -> tuple[str, ...]:
        return (self.role, *(r for r in (self.planner, self.integrator) if r is not None))

    @property
    def possible_decisions(self) -> tuple[str, ...]:
        return tuple(self.decisions) if self.decisions is not None else self.vocabulary


class TerminalStage(SpecModel):
    """The end of an item: the current candidate is delivered, or nothing is."""

    vocabulary: ClassVar[tuple[str, ...]] = ()
    calls_model: ClassVar[bool] = False

    id: Identifier
    kind: Literal["terminal"]
    outcome: Literal["completed", "rejected"] = Field(
        "completed", description="completed delivers the current candidate; rejected delivers none"
    )

    @property
    def possible_decisions(self) -> tuple[str, ...]:
        return ()

    @property
    def actors(self) -> tuple[str, ...]:
        return ()


Stage = Annotated[
    ProposeStage
    | DraftStage
    | ReviewStage
    | VoteStage
    | ExecuteStage
    | ClusterStage
    | IntegrateStage
    | NominateStage
    | LotStage
    | OfficeStage
    | DecomposeStage
    | TerminalStage,
    Field(discriminator="kind"),
]
STAGE_KINDS: tuple[str, ...] = (
    "propose",
    "draft",
    "review",
    "vote",
    "execute",
    "cluster",
    "integrate",
    "nominate",
    "lot",
    "office",
    "decompose",
    "terminal",
)
GATE_KINDS = frozenset({"review", "vote"})


class Policy(SpecModel):
    max_steps: int = Field(
        50, ge=1, le=10_000, description="stage runs per item before it is cut off"
    )


UPHOLD = "uphold"
"""An overseer's word for letting a transition stand."""


class Oversight(SpecModel):
    """A role that watches stages and may intervene anywhere it watches: after a watched
    stage decides, the overseer (every time, or on a seeded sample at ``rate``) upholds the
    result or answers one of its ``interventions``, each sending the item to a named stage
    (back for rework, or to a terminal to stop it). Bounded per item like any loop."""

    role: Identifier = Field(description="the role whose agent oversees")
    watches: list[Identifier] | Literal["all"] = Field(
        "all", description="the stages watched (all: every stage that asks a model)"
    )
    rate: Share = Field(
        1,
        description="share of watched transitions the overseer examines, drawn from the "
        "run's seed (1: every one)",
    )
    purpose: NonEmptyText = Field(
        "Examine what was just decided and intervene only if it is wrong or unlawful.",
        description="what the overseer is told it is for",
    )
    interventions: dict[Identifier, Identifier] = Field(
        min_length=1,
        description="the overseer's decision words and the stage each sends the item to, "
        "e.g. {annul: drafting, impeach: dismissed}; 'uphold' lets the transition stand",
    )
    max_interventions: int = Field(
        1,
        ge=1,
        strict=True,
        le=100,
        description="interventions per item, after which the overseer is "
        "no longer consulted on that item",
    )

    @field_validator("watches")
    @classmethod
    def _watches_something(cls, watches: list[str] | str) -> list[str] | str:
        if not watches:
            raise ValueError("an overseer watches at least one stage (or all)")
        return watches

    @field_validator("rate")
    @classmethod
    def _rate_is_a_share(cls, rate: float | str) -> float | str:
        if not 0 < exact_share(rate) <= 1:
            raise ValueError("rate is a share above 0, at most 1 (e.g. 0.2 or 1/5)")
        return rate

    @field_validator("interventions")
    @classmethod
    def _uphold_is_reserved(cls, interventions: dict[str, str]) -> dict[str, str]:
        if UPHOLD in interventions:
            raise ValueError("'uphold' is the overseer's word for not intervening")
        if UNPARSABLE in interventions:
            raise ValueError("'unparsable' is the outcome of an answer that cannot be read")
        return interventions


class Institution(SpecModel):
    """Roles, stages and legal transitions: who proposes, reviews, votes, executes."""

    id: Identifier
    name: NonEmptyText
    era: NonEmptyText = Field(description="when and where, e.g. '618-907 CE, Chang'an'")
    pattern: Pattern
    history: NonEmptyText = Field(description="how the institution really worked, briefly")
    roles: list[Role] = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)
    entry: Identifier
    policy: Policy = Field(default_factory=Policy)
    oversight: list[Oversight] = Field(
        default_factory=list, description="roles that watch stages and may intervene"
    )

    @cached_property
    def _stages_by_id(self) -> tuple[list[Any], dict[str, Any]]:
        """(the stages list it was built from, id -> the first stage with that id)."""
        index: dict[str, Any] = {}
        for s in self.stages:
            index.setdefault(s.id, s)
        return self.stages, index

    def stage(self, stage_id: str) -> Any:
        """The (first) stage with this id, in constant time; KeyError if there is none."""
        built_from, index = self._stages_by_id
        if built_from is not self.stages:  # a model_copy(update=...) kept a stale index
            del self.__dict__["_stages_by_id"]
            built_from, index = self._stages_by_id
        return index[stage_id]

    def role(self, role_id: str) -> Role:
        return next(r for r in self.roles if r.id == role_id)

    def body_size(self, body: list[str] | ChosenBy, _depth: int = 0) -> int:
        """Seats in a body, as the static checks see it: the roles' seats, or as many as
        the choosing stage chooses (0 when the reference does not resolve)."""
        if isinstance(body, list):
            seats = {r.id: r.seats for r in self.roles}
            return sum(seats.get(role, 0) for role in body)
        try:
            chooser = self.stage(body.chosen_by)
        except KeyError:
            return 0
        if isinstance(chooser, LotStage):
            return chooser.draw
        if isinstance(chooser, VoteStage) and chooser.choice:
            return chooser.choose
        if isinstance(chooser, NominateStage) and _depth < len(self.stages):
            return self.body_size(chooser.nominees, _depth + 1)
        return 0

    def watched(self, oversight: Oversight) -> list[str]:
        """The stages an overseer watches, in institution order."""
        if oversight.watches == "all":
            return [s.id for s in self.stages if s.calls_model and s.kind != "terminal"]
        listed = set(oversight.watches)
        return [s.id for s in self.stages if s.id in listed]


# A MAKER micro-agent's Hanoi rates, as SimParams and SimOverride both take them (one
# definition, so a manifest's override is held to the simulator's own bounds).
# A rate stays below 1: a step whose every sample is wrong could never be voted right.
HanoiRate = Annotated[float, Field(ge=0, lt=1)]
HanoiShare = Annotated[float, Field(ge=0, le=1)]


def check_hanoi_shares(malformed_share: float | None, overlong_share: float | None) -> None:
    """The malformed and overlong shares divide the wrong Hanoi answers with the plausible
    ones, so together they cannot exceed all of them."""
    if malformed_share is None or overlong_share is None:
        return
    if malformed_share + overlong_share > 1:
        raise ValueError(
            "hanoi_malformed_share + hanoi_overlong_share must be at most 1, not "
            f"{malformed_share + overlong_share:g}"
        )


class SimOverride(SpecModel):
    """A manifest's change to a preset, or a new ``sim/NAME`` built on one (``base``)."""

    base: str | None = Field(
        None, description="preset to start from (default: the model's own name)"
    )
    skill: float | None = Field(None, gt=0, lt=1)
    review_recall: float | None = Field(None, ge=0, le=1)
    false_reject: float | None = Field(None, ge=0, le=1)
    relay_scrutiny: float | None = Field(None, ge=0, le=1)
    relay_corruption: float | None = Field(None, ge=0, le=1)
    wrong_correlation: float | None = Field(None, ge=0, le=1)
    malformed_rate: float | None = Field(None, ge=0, le=1)
    overlong_rate: float | None = Field(None, ge=0, le=1)
    wrong_error_factor: float | None = Field(None, ge=1)
    difficulty_spread: float | None = Field(None, ge=0)
    abstain_rate: float | None = Field(None, ge=0, le=1)
    latency_ms: float | None = Field(None, ge=0)
    latency_jitter: float | None = Field(None, ge=0, le=1)
    hanoi_step_error: HanoiRate | None = Field(
        None, description="chance a sample of an ordinary Hanoi step is wrong"
    )
    hanoi_hard_fraction: HanoiShare | None = Field(
        None, description="share of Hanoi steps that are hard"
    )
    hanoi_hard_error: HanoiRate | None = Field(
        None, description="chance a sample of a hard Hanoi step is wrong"
    )
    hanoi_malformed_share: HanoiShare | None = Field(
        None, description="share of wrong Hanoi answers the parser rejects"
    )
    hanoi_overlong_share: HanoiShare | None = Field(
        None, description="share of wrong Hanoi answers past the red flag's 750 tokens"
    )
    integration_pair_error: float | None = Field(
        None, ge=0, lt=1, description="chance an integration reconciles one pair of inputs wrongly"
    )

    @model_validator(mode="after")
    def _hanoi_shares(self) -> SimOverride:
        """Checked here when both shares are given, so the error points into the manifest;
        one share against its base's other is checked when the model is resolved."""
        check_hanoi_shares(self.hanoi_malformed_share, self.hanoi_overlong_share)
        return self


class Endpoint(SpecModel):
    """Where one model's calls go, and how many may be in flight there at once."""

    api_base: ServerUrl | None = Field(
        None,
        description="base URL of this model's server; overrides models.api_base and --api-base "
        "for this model",
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        description="most calls in flight at once to this model's server (models sent to the "
        "same server share the smallest limit given), e.g. 1 for a single-slot server; "
        "--concurrency still bounds the whole run",
    )


class Price(SpecModel):
    """A real model's price, for models whose price litellm does not know (or to override
    it): the cost of a call is prompt tokens x input + completion tokens x output."""

    input: float = Field(
        ge=0, allow_inf_nan=False, description="US dollars per million prompt tokens"
    )
    output: float = Field(
        ge=0, allow_inf_nan=False, description="US dollars per million completion tokens"
    )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


class ModelChoice(SpecModel):
    default: ModelName = Field("sim/medium", description="model for every role not listed")
    roles: dict[Identifier, ModelName] = Field(default_factory=dict, description="role id -> model")
    seats: dict[Identifier, list[ModelName]] = Field(
        default_factory=dict,
        description="role id -> one model per seat, in seat order (a mixed body); over roles",
    )
    api_base: ServerUrl | None = Field(
        None, description="base URL of an OpenAI-compatible or local server"
    )
    timeout: float = Field(
        60.0, gt=0, le=3600, description="seconds one attempt of a real model's call may take"
    )
    deadline: float = Field(
        180.0, gt=0, le=36000, description="seconds a whole call may take, retries included"
    )
    system_prompt: dict[ModelName, Literal["separate", "merge_into_user"]] = Field(
        default_factory=dict,
        description="model name -> how it takes the system prompt: separate (a system "
        "message, the default) or merge_into_user, for models whose chat template has no "
        "system role (e.g. Gemma)",
    )
    endpoints: dict[ModelName, Endpoint] = Field(
        default_factory=dict,
        description="model name -> its own server and concurrency limit, to mix servers "
        "(e.g. two local ones) in one run",
    )
    prices: dict[ModelName, Price] = Field(
        default_factory=dict,
        description="model name -> {input, output} in US dollars per million tokens: the "
        "price of a model litellm does not know (it replaces litellm's price when both exist)",
    )


# Parameters the model layer sets itself: a manifest's `extra` may not name them.
RESERVED_CALL_PARAMETERS = frozenset(
    {"model", "messages", "seed", "temperature", "top_p", "max_tokens", "timeout", "api_base",
     "api_key", "stream", "n", "num_retries", "max_retries"}
)  # fmt: skip


class Sampling(SpecModel):
    """How a real model samples; the simulator ignores it. Unset fields are not sent, so the
    provider's defaults apply."""

    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass")
    max_tokens: int | None = Field(None, ge=1, description="most tokens one output may have")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="other provider parameters, passed through as given (e.g. top_k, stop)",
    )

    @field_validator("extra")
    @classmethod
    def _extra_is_extra(cls, extra: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(RESERVED_CALL_PARAMETERS & set(extra))
        if taken:
            raise ValueError(
                f"extra may not set {', '.join(taken)}: "
                "use the sampling fields, or let govern set them"
            )
        return extra

    def over(self, base: Sampling) -> Sampling:
        """These settings where given, ``base``'s elsewhere (extras merged)."""
        given = self.model_dump(exclude_unset=True, exclude={"extra"})
        return base.model_copy(update={**given, "extra": {**base.extra, **self.extra}})


class StageSampling(Sampling):
    """A stage's sampling, and for a stage that asks several seats (a vote, a cluster), the
    settings of each sample: MAKER-style voting takes its first sample at temperature 0 and
    the rest at 0.1."""

    samples: list[Sampling] = Field(
        default_factory=list,
        description="the i-th seat on the stage's roster takes entry i over the stage's "
        "settings; seats past the end take the last entry",
    )

    def for_sample(self, base: Sampling, sample: int) -> Sampling:
        stage = Sampling.model_validate(self.model_dump(exclude_unset=True, exclude={"samples"}))
        settings = stage.over(base)
        if self.samples:
            settings = self.samples[min(sample, len(self.samples) - 1)].over(settings)
        return settings


class SamplingPolicy(Sampling):
    """The manifest's sampling: defaults, overridden per role, then per stage, then per
    sample."""

    seed: Literal["per_call", "shared"] = Field(
        "per_call",
        description="per_call: each call gets its own seed, derived from the run's seed, the "
        "item, stage, agent, visit and sample, so seats are independent; shared: every call "
        "sends the run's seed (identical prompts then get identical outputs)",
    )
    roles: dict[Identifier, Sampling] = Field(default_factory=dict, description="by role id")
    stages: dict[Identifier, StageSampling] = Field(default_factory=dict, description="by stage id")

    def for_call(self, role: str, stage: str, sample: int = 0) -> Sampling:
        base = Sampling.model_validate(self.model_dump(include=set(Sampling.model_fields)))
        if (by_role := self.roles.get(role)) is not None:
            base = by_role.over(base)
        if (by_stage := self.stages.get(stage)) is not None:
            base = by_stage.for_sample(base, sample)
        return base


ParsingMode = Literal["strict", "tolerant", "flexible"]


def _mode_alone(value: Any) -> Any:
    """``parsing: tolerant`` is ``{mode: tolerant}``: one shape for everything downstream,
    and errors found at the key they are about."""
    return {"mode": value} if isinstance(value, str) else value


def _mode_or_policy_schema(schema: dict[str, Any]) -> None:
    """In the JSON Schema, as in YAML: a mode alone, or the policy's mapping."""
    policy = {"$ref": schema.pop("$ref")} if "$ref" in schema else schema.pop("allOf")[0]
    schema["anyOf"] = [{"enum": list(get_args(ParsingMode))}, policy]


class Parsing(SpecModel):
    """How strictly outputs are read, and whether an unparsable one is asked again."""

    mode: ParsingMode = Field(
        "strict",
        description="strict (the exact last line), tolerant (the marker on one of the last "
        "lines, markdown and a currency sign or unit allowed) or flexible (the last marker, "
        "or number, anywhere)",
    )
    reasks: int = Field(
        0,
        ge=0,
        le=5,
        strict=True,
        description="times an unparsable output is asked again, quoting the format it "
        "missed (each re-ask is a call of its own, counted and recorded); 0: never",
    )


MAX_DISKS = 30  # 2**30 - 1 steps: about a day of a real model's samples per thousand steps/s


class TaskDefaults(SpecModel):
    name: Identifier = Field(description="task name, e.g. gsm8k")
    limit: int | None = Field(None, ge=1, description="items to run (default: all)")
    disks: int | None = Field(
        None,
        ge=1,
        le=MAX_DISKS,
        strict=True,
        description="task hanoi: the disks of the tower (2**disks - 1 steps; default 20)",
    )


class MarketOptions(SpecModel):
    """How the Cournot market (task cournot) treats its firms."""

    constitution: NonEmptyText | None = Field(
        None,
        description=(
            "a written anti-collusion constitution added to every model firm's prompt; "
            "nothing enforces it (the constitutional regime)"
        ),
    )
    on_unparsable: Literal["previous", "zero"] = Field(
        "previous",
        description=(
            "what a model firm produces when its answer cannot be read (after any re-ask): "
            "its previous round's quantities (zero in the first round), or zero"
        ),
    )
    channel: bool = Field(
        False,
        description=(
            "firms may send one short message a round (a MESSAGE: line of their answer), "
            "read by every other firm in the next round; the paper's base setup has none, "
            "and built-in firms (firm/...) cannot read one"
        ),
    )


class Budgets(SpecModel):
    max_calls_per_item: int | None = Field(None, ge=1)
    max_tokens_per_item: int | None = Field(None, ge=1)


class Evidence(SpecModel):
    """A deterministic predicate of the Oracle, with its parameters; or, for the market's
    signals, ``any_of`` several (the rule fires when one of them implicates the agent)."""

    predicate: Identifier | None = Field(
        None, description="an Oracle predicate, e.g. unparsable_streak or cournot_high_hhi"
    )
    any_of: list[Identifier] | None = Field(
        None,
        min_length=1,
        description="market signals, any one of which is evidence (e.g. all four S1-S4)",
    )
    count: int | None = Field(None, ge=1, description="how many occurrences trigger it")
    window: int | None = Field(
        None, ge=1, description="look at the agent's last N turns only (default: a streak)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Evidence:
        if (self.predicate is None) == (self.any_of is None):
            raise ValueError("evidence names predicate: NAME or any_of: [NAME, ...], one of them")
        return self

    @property
    def predicates(self) -> tuple[str, ...]:
        """The predicates this evidence rests on, in the order written."""
        return (self.predicate,) if self.predicate else tuple(self.any_of or ())


# The longest count an overlay may state (suspensions, cooldowns, clean spells, credits):
# far beyond any run, and small enough that the ladder's round and item arithmetic stays
# within 64-bit integers (a larger one failed each market with an OverflowError).
MAX_COUNT = 1_000_000_000
# The largest fine floor: far beyond any payoff, and small enough that a market's fines
# summed over its rounds stay finite (a floor of 1e308 wrote Infinity into results.jsonl).
MAX_FINE_FLOOR = 1e12


class Sanction(SpecModel):
    kind: Literal["warning", "fine", "suspension", "replacement", "loss_of_vote"]
    fraction: float | None = Field(None, gt=0, le=1, description="fine: share of a payoff")
    floor: float | None = Field(
        None,
        ge=0,
        le=MAX_FINE_FLOOR,
        allow_inf_nan=False,
        description="fine: the smallest amount taken, so a fine bites when the payoff is small",
    )
    items: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="suspension: items it lasts, after which the agent returns",
    )
    rounds: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="suspension in a market: rounds of zero production"
    )

    @model_validator(mode="after")
    def _parameters_fit_the_kind(self) -> Sanction:
        if (self.kind == "fine") != (self.fraction is not None):
            raise ValueError(
                "a fine needs fraction: (a share of a payoff), and only a fine has one"
            )
        if self.floor is not None and self.kind != "fine":
            raise ValueError("only a fine has a floor")
        lengths = (self.items is not None) + (self.rounds is not None)
        if (self.kind == "suspension") != (lengths == 1) or lengths > 1:
            raise ValueError(
                "a suspension needs items: N (or, in a market, rounds: N), and only a "
                "suspension has one"
            )
        return self

    def fine(self, payoff: float) -> float:
        """What this fine takes from ``payoff``: its share of what is positive, at least
        the floor."""
        share = (self.fraction or 0.0) * max(payoff, 0.0)
        return max(share, self.floor or 0.0)


class StateRule(SpecModel):
    """Moves an agent between legal states when the evidence is found. Id: NAME:from->to."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Identifier
    from_state: Identifier = Field(alias="from")
    to: Identifier
    evidence: Evidence
    sanction: Sanction | None = None
    cooldown: int = Field(0, ge=0, le=MAX_COUNT, description="items before the rule may fire again")
    notice: str | None = Field(None, description="what the agent is told (default: generated)")

    @property
    def id(self) -> str:
        return f"{self.name}:{self.from_state}->{self.to}"


class Restoration(SpecModel):
    """A way back: after N clean items (in a market, rounds) in the state, or by spending
    earned credits (one per clean turn; in a market, one per clean round)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Identifier
    from_state: Identifier = Field(alias="from")
    to: Identifier
    clean_items: int | None = Field(None, ge=1, le=MAX_COUNT, description="items without a finding")
    clean_rounds: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="market rounds without a finding against the firm"
    )
    credits: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="credits to spend (one per clean turn)"
    )

    @model_validator(mode="after")
    def _one_way_back(self) -> Restoration:
        ways = [self.clean_items, self.clean_rounds, self.credits]
        if sum(w is not None for w in ways) != 1:
            raise ValueError(
                "a restoration needs exactly one of clean_items: N, clean_rounds: N or credits: N"
            )
        return self

    @property
    def id(self) -> str:
        return f"{self.name}:{self.from_state}->{self.to}"


class Norm(SpecModel):
    """A plain-text statement rendered into the notices agents receive."""

    id: Identifier
    who: NonEmptyText
    modality: Literal["must", "must not"]
    what: NonEmptyText
    condition: str | None = None
    or_else: str | None = None
    rules: list[Identifier] = Field(
        default_factory=list,
        description="the rules (by name) that enforce this norm; each must exist",
    )

    def statement(self) -> str:
        text = f"{self.who} {self.modality} {self.what}"
        if self.condition:
            text += f" {self.condition}"
        if self.or_else:
            text += f", or else {self.or_else}"
        return text[0].upper() + text[1:] + "."


class StandIn(SpecModel):
    """Who acts for an agent that may not: the next seat of its role, or an agent of a role."""

    kind: Literal["seat", "role"] = "seat"
    role: Identifier | None = None

    @model_validator(mode="after")
    def _role_given(self) -> StandIn:
        if (self.kind == "role") != (self.role is not None):
            raise ValueError("stand_in kind role needs role: ROLE, and kind seat takes none")
        return self


class Governance(SpecModel):
    """The overlay the Controller enforces: legal agent states and how agents move between them."""

    states: list[Identifier] = Field(min_length=1, description="legal agent states")
    initial: Identifier
    acting: list[Identifier] = Field(min_length=1, description="states whose agents may act")
    stand_in: StandIn = Field(default_factory=StandIn)
    rules: list[StateRule] = Field(default_factory=list)
    restorations: list[Restoration] = Field(default_factory=list)
    norms: list[Norm] = Field(default_factory=list)
    signals: dict[Identifier, dict[Identifier, Annotated[float, Strict()]]] = Field(
        default_factory=dict,
        description=(
            "thresholds and windows of the Oracle's market signals, by predicate, e.g. "
            "cournot_high_hhi: {excess: 0.5, window: 5}; unset ones keep their documented "
            "defaults (govern inspect shows them with where each comes from)"
        ),
    )

    @property
    def predicates(self) -> set[str]:
        """Every Oracle predicate a rule rests on."""
        return {p for rule in self.rules for p in rule.evidence.predicates}


class Manifest(SpecModel):
    """What runs: an institution with models, task defaults, seed and budgets.

    ``institution`` holds the loaded institution; in YAML it is a relative path
    or an inline mapping (the loader resolves paths before validation).
    """

    id: Identifier
    description: str | None = None
    extends: str | None = Field(
        None, description="a base manifest (relative path) whose keys this one overrides"
    )
    institution: Institution
    models: ModelChoice = Field(default_factory=ModelChoice)
    task: TaskDefaults | None = None
    seed: int = 0
    budgets: Budgets = Field(default_factory=Budgets)
    market: MarketOptions | None = Field(
        None,
        description="the Cournot market's options (task cournot)",
    )
    parsing: Annotated[Parsing, BeforeValidator(_mode_alone)] = Field(
        default_factory=Parsing,
        description="how answer, decision and ballot lines are read: a mode (strict, "
        "tolerant, flexible), or {mode: MODE, reasks: N} to ask an unparsable output again",
        json_schema_extra=_mode_or_policy_schema,
    )
    sampling: SamplingPolicy = Field(
        default_factory=SamplingPolicy,
        description="temperature, top_p, max_tokens and provider extras for real models, by "
        "default, role and stage; and how each call's seed is chosen",
    )
    governance: Governance | None = Field(
        None, description="legal agent states, evidence, sanctions and restorations"
    )
    simulator: dict[ModelName, SimOverride] = Field(
        default_factory=dict,
        description="changes to simulated models, by name: {sim/medium: {latency_ms: 500}}; "
        "a new name needs base: strong | medium | weak | maker",
    )

"""What every model client takes and returns.

A request carries the messages a real model sees and, separately, an
``Oracle`` that only the simulator reads (the gold answer, the candidate under
review). Real clients never send the oracle anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the simulator needs to play a firm of the repeated Cournot market
    (``govern/tasks/cournot``): which firm it is, the market's parameters (every firm's
    costs included) and the quantities of the rounds its prompt shows, oldest first."""

    firm: int  # from 0
    a: float  # inverse demand: p = max(0, a - Q / b)
    b: float
    capacity: float  # per firm, commodity and round
    costs: tuple[tuple[float, ...], ...]  # unit cost of each firm (rows) in each commodity
    quantities: tuple[tuple[tuple[float, ...], ...], ...] = ()  # (rounds, firms, commodities)


@dataclass(frozen=True, slots=True)
class HanoiView:
    """What the simulator needs to answer one sample of one Towers of Hanoi step
    (``govern/tasks/hanoi``): the state and previous move the prompt shows, and which step
    and which of its samples this is, so that a sample's draw depends on those alone and a
    voted run is reproducible and resumable."""

    state: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # pegs, bottom to top
    previous: tuple[int, int, int] | None  # [disk, from, to]; None before the first move
    step: int  # the step's index in the run
    sample: int  # the sample's index among this step's samples


@dataclass(frozen=True, slots=True)
class BranchView:
    """What the simulator needs of a decompose stage's branches (an item a planner split into
    ``count`` sub-questions): a sample's answer to sub-question ``first`` (= ``last``), or an
    integration of the answers to ``first`` .. ``last`` (after the synthesis so far, when
    ``first`` > 0)."""

    first: int
    last: int
    count: int
    sample: int = 0


@dataclass(frozen=True, slots=True)
class Oracle:
    """Hidden context for the simulator; never shown to a real model."""

    item_id: str
    gold: str | None
    act: str  # solve | revise | review | vote | integrate | elect
    stage: str
    agent: str
    visit: int
    candidate: str | None = None  # the candidate answer under review or revision
    inputs: tuple[str, ...] = ()  # answers of the outputs an integrate stage synthesises
    feedback: bool = False  # a reviewer sent the candidate back with reasons
    decisions: tuple[str, ...] = ()  # what a reviewer may decide (overseer: its words, uphold)
    meanings: tuple[str, ...] = ()  # what each of those decisions does (approve, reject, ...)
    run_seed: int = 0  # the simulator draws from the run's seed, never a call's own
    reask: int = 0  # the how-manieth time this output is asked again for its format
    abstain: bool = False  # a voter may abstain (the vote allows VOTE: abstain)
    rule: str = ""  # a choice vote's rule (plurality, approval, borda); inputs: its slate's answers
    market: MarketView | None = None  # a Cournot firm choosing its quantities (act "produce")
    hanoi: HanoiView | None = None  # a MAKER micro-agent taking one Towers of Hanoi step
    branch: BranchView | None = None  # a sub-question of a decomposed item, or its integration


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: list[Message]
    oracle: Oracle
    seed: int | None = None  # sent to the provider: each call's own, derived (engine/seeds.py)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other provider parameters


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # in USD; None when the provider's price is unknown
    latency: float  # seconds, including retries
    attempts: int = 1
    simulated: bool = False
    finish_reason: str | None = None  # as the provider said: "stop", "length" (cut), ...
    cached: bool = False  # answered from the response cache: no call made, nothing paid


@dataclass
class ModelError(Exception):
    """A call that failed after its retries; recorded as the item's error."""

    model: str
    reason: str
    attempts: int = 1
    retryable: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        after = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.model}: {self.reason}{after}"


class ModelClient(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse: ...

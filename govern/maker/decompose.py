"""Decomposed work (MAKER): a task taken one atomic step at a time, each step decided by
first-to-ahead-by-k voting over a micro-agent's samples and checked by the Controller
before the next is drawn. The hot loop of a decompose stage.

Why it is one loop and not a graph: a 20-disk tower is 1,048,575 steps, and a LangGraph
superstep (a state merge and routing per node) costs about 0.2 ms even when the node does
nothing (BENCHMARKS.md), so a node per step would spend some 3.5 minutes on bookkeeping
alone: longer than the whole governed run. The stage is one
node of the institution's graph; inside it each step is a plain loop iteration: the prompt
built once per step, the round's samples asked through the model layer (side by side for a
real model; in turn for the simulator, which never waits), the vote counted
(``maker/voting.py``), the step checked and recorded by the Controller (a block of steps a
ledger entry, ``governance/steps.py``) and, after all that, scored. Nothing is kept per
step: the counters below are all the memory a tower costs.

The task gives two things, kept apart: the work (``StepWork``: state, prompt, parser, vote
key, rules) and the scorer (``StepScorer``: the true step). The voting sees only samples;
the scorer is called once a step is decided and applied, so it can neither choose nor
repair a vote.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from govern.engine.seeds import call_seed
from govern.governance.steps import StepLog, StepRecordError, StepRules, replay
from govern.ledger.format import parse
from govern.maker.maths import (
    expected_samples_by_rounds,
    undecided_after_rounds,
)
from govern.maker.voting import Decision, RedFlag, Sample, Undecided, VoteStats, vote
from govern.models.base import HanoiView, Message, ModelRequest, Oracle
from govern.models.router import ModelRouter
from govern.models.sim.hanoi import StepClass
from govern.models.sim.params import is_simulated
from govern.spec.models import RedFlags, Voting

_NO_FLAGS: dict[RedFlag, int] = {"too_long": 0, "format": 0}  # a replayed step's: per block only
PROGRESS_EVERY = 100_000  # steps between progress lines
YIELD_EVERY = 256  # steps between chances for Ctrl-C or SIGTERM to stop the loop
PROGRESS_SECONDS = 30.0  # and at least this often, for a slow model
STEP_ACT = "step"


class StepWork(StepRules, Protocol):
    """What a task gives a decompose stage for one item (``tasks/hanoi/task.py``)."""

    total: int  # the steps the item takes

    def messages(self, position: Any) -> list[Message]: ...

    def view(self, position: Any, step: int, sample: int) -> HanoiView: ...

    def parse(self, text: str) -> Any | None: ...

    def key(self, candidate: Any) -> Hashable: ...

    def delivered(self, position: Any) -> str: ...


class StepScorer(Protocol):
    """Scoring only: told of each step after it is decided and applied."""

    errors: int
    first_error: int | None
    right_votes: int  # valid votes that were for the true step

    def observe(self, step: int, position: Any, decision: Decision[Any]) -> None: ...


@dataclass
class Totals:
    """Running counters of one item's steps; never a step's own record."""

    steps: int = 0
    samples: int = 0
    valid: int = 0
    too_long: int = 0
    format: int = 0
    collisions: int = 0
    rounds: Counter[int] = field(default_factory=Counter)  # steps decided in their r-th round
    samples_per_step: Counter[int] = field(default_factory=Counter)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unknown_cost_calls: int = 0

    def add(self, decision: Decision[Any]) -> None:
        stats = decision.stats
        self.steps += 1
        self.samples += stats.samples
        self.valid += stats.valid_votes
        self.too_long += stats.red_flags["too_long"]
        self.format += stats.red_flags["format"]
        self.collisions += stats.collision
        self.rounds[stats.rounds] += 1
        self.samples_per_step[stats.samples] += 1

    def undecided_after_round(self) -> list[int]:
        """Steps still undecided after rounds 1, 2, ... up to the last that left any."""
        left, counts = self.steps, []
        for rounds in range(1, max(self.rounds, default=0)):
            left -= self.rounds[rounds]
            counts.append(left)
        return counts


@dataclass(frozen=True)
class Outcome:
    """How the stage's steps ended: every step taken (``done``), a step without a winner
    (``undecided``), a step the Controller blocked (``blocked``), or a budget spent
    (``cut_off``); ``reason`` names the step for all but ``done``."""

    decision: Literal["done", "undecided", "blocked", "cut_off"]
    position: Any
    reason: str | None = None


class BudgetSpent(Exception):
    """The item's budget is spent: no further sample is drawn."""


class Drawer:
    """Draws one sample of a step from the model and reads it as the red flags say: an answer
    over the token limit (or cut at it by the provider) is too long and left unread, any other
    is parsed; every call is counted in ``totals``."""

    def __init__(
        self,
        router: ModelRouter,
        model: str,
        red_flags: RedFlags,
        totals: Totals,
        over: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.over = over  # (calls, tokens) -> the item's budget is spent: draw no more
        self.complete = router.complete
        self.model = model
        self.limit = red_flags.max_output_tokens
        self.max_tokens = None if self.limit is None else self.limit + 1  # a cut one is long
        self.totals = totals

    async def draw(
        self,
        messages: list[Message],
        oracle: Oracle,
        seed: int | None,
        temperature: float,
        parse: Callable[[str], Any],
    ) -> Sample[Any]:
        totals, limit = self.totals, self.limit
        if self.over is not None and self.over(
            totals.calls, totals.prompt_tokens + totals.completion_tokens
        ):
            raise BudgetSpent
        response = await self.complete(
            ModelRequest(self.model, messages, oracle, seed, self.max_tokens, temperature)
        )
        totals.calls += 1
        totals.prompt_tokens += response.prompt_tokens
        totals.completion_tokens += response.completion_tokens
        if response.cost is None:
            totals.unknown_cost_calls += 1
        else:
            totals.cost += response.cost
        tokens = response.completion_tokens
        if response.finish_reason == "length" and limit is not None:
            tokens = max(tokens, limit + 1)
        too_long = limit is not None and tokens > limit
        return Sample(response.text, tokens, None if too_long else parse(response.text))


@dataclass
class Resumed:
    """Where a killed run's stage visit stood, from its ledger: the position and the next
    step, with the counters and scores as they were."""

    position: Any
    first: int
    totals: Totals
    scorer: StepScorer


def resume_from(work: StepWork, scorer: StepScorer, lines: list[bytes], k: int) -> Resumed:
    """Replay a stage visit's recorded blocks (``lines``, in order) with the Controller's
    checks (``governance.steps.replay``: StepRecordError when they do not stand up), asking
    no model, and rebuild the counters: each step's votes and rounds from its record, red
    flags and collisions from the blocks, and what the calls spent from the last block."""
    bodies = [(parse(line) or {}).get("body") or {} for line in lines]
    totals = Totals()

    def replayed(step: int, position: Any, candidate: Any, counts: tuple) -> None:
        rounds, samples, winner, others = counts
        key = work.key(candidate)
        votes: dict[Hashable, int] = {key: winner}
        votes.update((f"other answer {n}", count) for n, count in enumerate(others))
        stats = VoteStats(samples, winner + sum(others), rounds, _NO_FLAGS, votes, False)
        decision = Decision(candidate, key, stats)
        scorer.observe(step, position, decision)
        totals.add(decision)

    position, first = replay(work, bodies, k, replayed)
    for body in bodies:
        totals.too_long += _whole(body["red_flags"]["too_long"])
        totals.format += _whole(body["red_flags"]["format"])
        totals.collisions += _whole(body["collisions"])
    spent = bodies[-1].get("spent") if bodies else None
    if isinstance(spent, dict):
        totals.calls = _whole(spent.get("calls"))
        totals.prompt_tokens = _whole(spent.get("prompt_tokens"))
        totals.completion_tokens = _whole(spent.get("completion_tokens"))
        totals.unknown_cost_calls = _whole(spent.get("unknown_cost_calls"))
        cost = spent.get("cost")
        if not isinstance(cost, int | float) or isinstance(cost, bool) or not cost >= 0:
            raise StepRecordError(f"the recorded cost {cost!r} is not an amount")
        totals.cost = float(cost)
    else:  # written before blocks recorded their spending: one call a sample
        totals.calls = totals.samples
    return Resumed(position, first, totals, scorer)


def _whole(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StepRecordError(f"{value!r} is not a count")
    return value


def spending(totals: Totals) -> dict[str, Any]:
    """What the calls have spent so far, as a block records it for a resumed run."""
    return {
        "calls": totals.calls,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cost": round(totals.cost, 8),
        "unknown_cost_calls": totals.unknown_cost_calls,
    }


class Decomposer:
    """One decompose stage's run of steps on one item."""

    def __init__(
        self,
        *,
        work: StepWork,
        scorer: StepScorer,
        router: ModelRouter,
        model: str,
        item: str,
        stage: str,
        agent: str,
        voting: Voting,
        red_flags: RedFlags,
        seed: int,
        visit: int,
        spent: Callable[[int, int], bool],
        report: Callable[[str], None] | None = None,
        label: str = "",
    ) -> None:
        self.work = work
        self.scorer = scorer
        self.log: StepLog | None = None  # the Controller's, given once the first step is known
        self.router = router
        self.model = model
        self.item = item
        self.stage = stage
        self.agent = agent
        self.voting = voting
        self.red_flags = red_flags
        self.seed = seed
        self.visit = visit
        self.spent = spent
        self.report = report
        self.label = label
        self.totals = Totals()
        self.started = time.perf_counter()
        self.resumed_at: int | None = None  # the step a resumed item went on from
        self.taken_before = (0, 0)  # steps and samples replayed before this session's

    def go_on_from(self, resumed: Resumed) -> None:
        """Take up a resumed visit's counters and scores (``resume_from``)."""
        self.totals, self.scorer, self.resumed_at = resumed.totals, resumed.scorer, resumed.first

    async def run(self, position: Any, first: int = 0) -> Outcome:
        """Take steps ``first`` .. ``work.total - 1`` from ``position``. However the loop
        ends (a model that fails for good, Ctrl-C), the steps applied so far are written."""
        work, log, totals, scorer = self.work, self.log, self.totals, self.scorer
        assert log is not None, "give the Controller's step log first"
        voting, red_flags, key, parse = self.voting, self.red_flags, work.key, work.parse
        concurrent = self.router.waits(self.model)
        seeded = not is_simulated(self.model)
        draw = Drawer(self.router, self.model, red_flags, totals, self.spent).draw
        item, stage, agent, visit, run_seed = (
            self.item,
            self.stage,
            self.agent,
            self.visit,
            self.seed,
        )
        self.started = time.perf_counter()  # rates count this session's steps, not replayed ones
        self.taken_before = (totals.steps, totals.samples)
        next_report = self.started + PROGRESS_SECONDS
        step = first
        try:
            for step in range(first, work.total):
                messages = work.messages(position)

                async def sample(
                    temperature: float,
                    index: int,
                    position: Any = position,
                    messages: list[Message] = messages,
                    step: int = step,
                ) -> Sample[Any]:
                    oracle = Oracle(
                        item, None, STEP_ACT, stage, agent, visit, run_seed=run_seed,
                        hanoi=work.view(position, step, index),
                    )  # fmt: skip
                    seed = (
                        call_seed(run_seed, item, f"{stage}@{step}", agent, visit, index)
                        if seeded
                        else None
                    )
                    return await draw(messages, oracle, seed, temperature, parse)

                try:
                    decision = await vote(
                        sample, key, voting, red_flags, step=step, concurrent=concurrent
                    )
                except Undecided as undecided:
                    log.undecided(step, position, undecided.rounds, undecided.votes)
                    return Outcome("undecided", position, f"{stage}: {undecided}")
                except BudgetSpent:
                    log.close(position)
                    reason = f"{stage}: a budget was spent during step {step}"
                    return Outcome("cut_off", position, reason)
                fault = log.check(step, position, decision)
                if fault is not None:
                    return Outcome("blocked", position, f"{stage}: step {step} blocked: {fault}")
                scorer.observe(step, position, decision)  # scoring only: decided and applied
                totals.add(decision)
                position = work.advance(position, decision.candidate)
                if totals.steps % YIELD_EVERY == 0:  # a simulator never waits: let a signal in
                    await asyncio.sleep(0)
                if self.report is not None and (
                    totals.steps % PROGRESS_EVERY == 0 or time.perf_counter() > next_report
                ):
                    self.report(self.progress(step + 1))
                    next_report = time.perf_counter() + PROGRESS_SECONDS
        except BaseException:
            log.close(position)
            raise
        log.close(position)
        if self.report is not None:
            self.report(self.progress(work.total))
        return Outcome("done", position)

    def progress(self, done: int) -> str:
        """A progress line: how far, how fast, what the voting has met."""
        totals, elapsed = self.totals, max(time.perf_counter() - self.started, 1e-9)
        steps, samples = (
            now - before
            for now, before in zip((totals.steps, totals.samples), self.taken_before, strict=True)
        )
        undecided = " ".join(
            f"r{r}:{n:,}" for r, n in enumerate(totals.undecided_after_round(), start=1)
        )
        return (
            f"{self.item} {self.stage}: {done:,} of {self.work.total:,} steps "
            f"({done / self.work.total:.1%}), {steps / elapsed:,.0f} steps/s, "
            f"{samples / elapsed:,.0f} samples/s; red flags {totals.too_long:,} too "
            f"long, {totals.format:,} format; collisions {totals.collisions:,}; undecided "
            f"after round {undecided or 'none'}; errors {self.scorer.errors:,} (scored after "
            f"each vote){self.label}"
        )


def maker_record(
    decomposer: Decomposer, voting: Voting, classes: list[StepClass] | None = None
) -> dict[str, Any]:
    """What an item's result says of its steps, and how they compare with the paper's model:
    ``predicted`` with one p for every step, estimated from the run (the share of valid
    votes that were right; to first order it restates the run's own counts), and, for a
    simulated micro-agent, ``predicted_from_simulator`` from its declared ``classes`` of
    steps alone, independent of the run."""
    totals, scorer = decomposer.totals, decomposer.scorer
    record: dict[str, Any] = {
        "steps": totals.steps,
        "steps_planned": decomposer.work.total,
        "resumed_at_step": decomposer.resumed_at,
        "k": voting.k,
        "errors": scorer.errors,
        "first_error": scorer.first_error,
        "samples": totals.samples,
        "valid_votes": totals.valid,
        "red_flags": {"too_long": totals.too_long, "format": totals.format},
        "collisions": totals.collisions,
        "steps_by_rounds": {str(r): n for r, n in sorted(totals.rounds.items())},
        "steps_by_samples": {str(n): c for n, c in sorted(totals.samples_per_step.items())},
        "undecided_after_round": totals.undecided_after_round(),
    }
    if not totals.steps or not totals.valid:
        return record
    valid_rate = totals.valid / totals.samples
    p = scorer.right_votes / totals.valid
    record["measured"] = {
        "p": round(p, 6),
        "valid_rate": round(valid_rate, 6),
        "samples_per_step": round(totals.samples / totals.steps, 6),
    }
    if voting.batch_size is not None:  # the theory draws what the leader needs, no more
        return record
    rounds = len(record["undecided_after_round"])
    if p > 0.5:
        record["predicted"] = _prediction(
            totals.steps, voting.k, rounds, [StepClass(1, p, valid_rate)]
        )
    if classes and all(c.p > 0.5 for c in classes):
        record["predicted_from_simulator"] = _prediction(totals.steps, voting.k, rounds, classes)
    return record


def _prediction(steps: int, k: int, rounds: int, classes: list[StepClass]) -> dict[str, Any]:
    """Samples per step and steps undecided after each round, over classes of steps."""
    per_step = sum(
        c.share * expected_samples_by_rounds(c.p, k, c.valid_rate, c.wrong_answers) for c in classes
    )
    decay = sum(
        c.share * undecided_after_rounds(c.p, k, rounds, c.valid_rate, c.wrong_answers)
        for c in classes
    )
    return {
        "samples_per_step": round(per_step, 6),
        "undecided_after_round": [round(float(steps * share), 3) for share in decay[1:]],
    }

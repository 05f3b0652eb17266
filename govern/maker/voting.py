"""MAKER's voting on one step: first-to-ahead-by-k over samples that survive the red flags.

Every sample is asked of a caller's sampler; a sample over the token limit or without a parsed
candidate is red-flagged, discarded and made up for by later draws, never repaired. Valid
samples vote for ``key(candidate)``, and the first key to lead every other by k wins.

Draws come in rounds: the first k together, then each round as many as the leader needs to
win (k minus its lead), the fewest that could decide and none that a one-at-a-time vote
would not have drawn. The voter is deliberately blind: it sees samples and their keys,
never a right answer, so a wrong majority wins exactly as a right one would.

``vote`` awaits an async sampler (a round's draws run concurrently); ``vote_sync`` calls a
plain function, for samplers so fast that an asyncio task per sample would cost more than the
sample (a 20-disk Hanoi run decides about a million steps). Both drive the same ``_Ballot``,
so they count alike and decide alike.

Sample, VoteStats and Decision are slotted dataclasses, not pydantic models: millions are
made per run and they are built only here, from values already checked. The settings,
``Voting`` and ``RedFlags``, are the language's (a decompose stage's ``voting:`` and
``red_flags:``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from govern.spec.models import RedFlags, Voting

Candidate = TypeVar("Candidate")
RedFlag = Literal["too_long", "format"]


PAPER_RED_FLAGS = RedFlags()


@dataclass(frozen=True, slots=True)
class Sample(Generic[Candidate]):
    """One answer of the model: its text, its length and what the task's parser made of it
    (None when it could not be parsed)."""

    text: str
    output_tokens: int
    candidate: Candidate | None


@dataclass(frozen=True, slots=True)
class VoteStats:
    """What deciding one step took. ``samples - valid_votes - sum(red_flags)`` samples were
    drawn in the deciding round after the decision and not read (only with a fixed
    ``batch_size``)."""

    samples: int
    valid_votes: int
    rounds: int  # the last of them decided
    red_flags: dict[RedFlag, int]
    votes: dict[Hashable, int]  # per key, in the order the keys first got a vote
    collision: bool  # the first two valid votes disagreed


@dataclass(frozen=True, slots=True)
class Decision(Generic[Candidate]):
    """The winning candidate (the first valid sample voting for the winning key) and how it
    was reached."""

    candidate: Candidate
    key: Hashable
    stats: VoteStats


class Undecided(RuntimeError):
    """No candidate led by k within ``max_rounds``: the step cannot be taken."""

    def __init__(self, step: int, rounds: int, samples: int, votes: dict[Hashable, int]) -> None:
        self.step = step
        self.rounds = rounds
        self.samples = samples
        self.votes = votes
        shown = ", ".join(f"{key!r}: {count}" for key, count in votes.items()) or "none valid"
        super().__init__(
            f"step {step}: no candidate led by k after {rounds} rounds ({samples} samples); "
            f"votes {{{shown}}}"
        )


SyncSampler = Callable[[float, int], Sample[Candidate]]
AsyncSampler = Callable[[float, int], Awaitable[Sample[Candidate]]]


class _Ballot(Generic[Candidate]):
    """The counting both paths share: which draws a round asks for, and what they decide."""

    __slots__ = (
        "best",
        "candidates",
        "collision",
        "counts",
        "drawn",
        "first_key",
        "format_flags",
        "key",
        "leader",
        "long_flags",
        "max_tokens",
        "rounds",
        "second",
        "step",
        "valid",
        "voting",
        "winner",
    )

    def __init__(
        self, key: Callable[[Candidate], Hashable], voting: Voting, red_flags: RedFlags, step: int
    ) -> None:
        self.key = key
        self.voting = voting
        self.max_tokens = red_flags.max_output_tokens
        self.step = step
        self.counts: dict[Hashable, int] = {}
        self.candidates: dict[Hashable, Candidate] = {}
        self.leader: Hashable = None
        self.best = 0  # the leader's votes
        self.second = 0  # the most votes of any other key
        self.drawn = 0
        self.valid = 0
        self.rounds = 0
        self.long_flags = 0
        self.format_flags = 0
        self.first_key: Hashable = None
        self.collision = False  # the first two valid votes disagreed
        self.winner: Hashable = None

    def requests(self) -> list[tuple[float, int]]:
        """The next round's draws as (temperature, index); Undecided when none are left."""
        voting = self.voting
        if self.rounds == voting.max_rounds:
            raise Undecided(self.step, self.rounds, self.drawn, dict(self.counts))
        if self.rounds and voting.batch_size is not None:
            size = voting.batch_size
        else:
            size = voting.k - (self.best - self.second)
        start = self.drawn
        self.rounds += 1
        self.drawn = start + size
        temperature = voting.temperature
        requests = [(temperature, index) for index in range(start, start + size)]
        if not start:
            requests[0] = (voting.first_temperature, 0)
        return requests

    def count(self, samples: list[Sample[Candidate]]) -> bool:
        """Read a round's samples in index order up to the one that decides; True once
        decided."""
        max_tokens = self.max_tokens
        counts = self.counts
        k = self.voting.k
        for sample in samples:
            if max_tokens is not None and sample.output_tokens > max_tokens:
                self.long_flags += 1
                continue
            candidate = sample.candidate
            if candidate is None:
                self.format_flags += 1
                continue
            key = self.key(candidate)
            self.valid += 1
            if self.valid == 1:
                self.first_key = key
            elif self.valid == 2:
                self.collision = key != self.first_key
            votes = counts.get(key, 0) + 1
            counts[key] = votes
            if votes == 1:
                self.candidates[key] = candidate
            if key == self.leader:
                self.best = votes
            elif votes > self.best:
                self.second = self.best
                self.leader = key
                self.best = votes
            elif votes > self.second:
                self.second = votes
            if self.best - self.second >= k:
                self.winner = self.leader
                return True
        return False

    def decision(self) -> Decision[Candidate]:
        winner = self.winner
        stats = VoteStats(
            samples=self.drawn,
            valid_votes=self.valid,
            rounds=self.rounds,
            red_flags={"too_long": self.long_flags, "format": self.format_flags},
            votes=self.counts,
            collision=self.collision,
        )
        return Decision(self.candidates[winner], winner, stats)


def vote_sync(
    sample: SyncSampler[Candidate],
    key: Callable[[Candidate], Hashable],
    voting: Voting,
    red_flags: RedFlags = PAPER_RED_FLAGS,
    *,
    step: int = 0,
) -> Decision[Candidate]:
    """Decide one step with a synchronous sampler, drawing each round's samples in order."""
    ballot = _Ballot(key, voting, red_flags, step)
    while True:
        if ballot.count([sample(t, i) for t, i in ballot.requests()]):
            return ballot.decision()


async def vote(
    sample: AsyncSampler[Candidate],
    key: Callable[[Candidate], Hashable],
    voting: Voting,
    red_flags: RedFlags = PAPER_RED_FLAGS,
    *,
    step: int = 0,
    concurrent: bool = True,
) -> Decision[Candidate]:
    """Decide one step with an async sampler, drawing each round's samples concurrently
    (``concurrent=False`` awaits them in turn: for a sampler that never waits, such as the
    simulator without latency, a task per draw would cost more than the draw)."""
    ballot = _Ballot(key, voting, red_flags, step)
    while True:
        requests = ballot.requests()
        if not concurrent:
            samples = [await sample(t, i) for t, i in requests]
        elif len(requests) == 1:  # no task to make for a lone draw
            samples = [await sample(*requests[0])]
        else:
            samples = list(await asyncio.gather(*(sample(t, i) for t, i in requests)))
        if ballot.count(samples):
            return ballot.decision()

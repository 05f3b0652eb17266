"""What a simulated agent decides, given what it was asked and the hidden oracle.

Each item has a latent difficulty ``d`` (from its id and the seed, the same for
every model), and a model of skill ``s`` solves it with probability
``sigmoid(logit(s) - d)``. Hard items stay hard for everyone, so agents' errors
are correlated; a wrong solver gives the item's common wrong answer with
probability ``wrong_correlation``. Reviewers and voters catch a wrong
candidate with ``review_recall`` and reject a right one with ``false_reject``
(a voter allowed to abstain does so at ``abstain_rate``, whatever it judged);
relaying stages re-check less closely and sometimes spoil a right answer.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from govern.models.base import Oracle
from govern.models.sim.params import SimParams


@dataclass(frozen=True, slots=True)
class SimAct:
    """The content of a simulated output, before it is rendered as text."""

    answer: str | None = None  # the answer stated (solving, revising, amending)
    decision: str | None = None  # a review decision, a ballot 'yes' / 'no', or '3 > 1 > 2'
    correct: bool = True  # drives how likely the text is malformed or overlong
    may_abstain: bool = False  # a ballot where abstaining is valid (malformed is then not it)


def stable_random(*parts: object) -> random.Random:
    """A generator seeded from the parts, the same in every process and run."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


@functools.lru_cache(maxsize=65536)
def item_difficulty(item_id: str, seed: int, spread: float) -> float:
    return spread * stable_random("difficulty", seed, item_id).gauss(0.0, 1.0)


def solve_probability(params: SimParams, difficulty: float) -> float:
    logit = math.log(params.skill / (1 - params.skill)) - difficulty
    return 1 / (1 + math.exp(-logit))


def same_answer(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return a.strip() == b.strip()


def simulate(oracle: Oracle, params: SimParams, rng: random.Random) -> SimAct:
    mind = _Mind(oracle, params, rng)
    if oracle.act == "review":
        return mind.review()
    if oracle.act == "vote":
        return mind.vote()
    if oracle.act == "oversee":
        return mind.oversee()
    if oracle.act == "elect":
        return mind.elect()
    if oracle.act == "integrate":
        return mind.revise(_plurality(oracle.inputs) or oracle.candidate)
    if oracle.act == "revise":
        return mind.revise(oracle.candidate)
    return mind.solve()


class _Mind:
    def __init__(self, oracle: Oracle, params: SimParams, rng: random.Random) -> None:
        self.oracle = oracle
        self.params = params
        self.rng = rng
        difficulty = item_difficulty(oracle.item_id, oracle.run_seed, params.difficulty_spread)
        self.p_solve = solve_probability(params, difficulty)

    def solve(self) -> SimAct:
        gold = self.oracle.gold
        if gold is not None and self.rng.random() < self.p_solve:
            return SimAct(answer=gold, correct=True)
        return SimAct(answer=self._wrong_answer(), correct=False)

    def revise(self, candidate: str | None) -> SimAct:
        if candidate is None or self.oracle.feedback:
            return self.solve()
        right = same_answer(candidate, self.oracle.gold)
        if right:
            spoil = self.params.relay_corruption * (1 - self.p_solve)
            if self.rng.random() < spoil:
                return SimAct(answer=self._wrong_answer(), correct=False)
            return SimAct(answer=candidate, correct=True)
        if self.rng.random() < self.params.review_recall * self.params.relay_scrutiny:
            return self.solve()
        return SimAct(answer=candidate, correct=False)

    def _judges_right(self) -> tuple[bool, bool]:
        """(judged right, candidate really right)."""
        right = same_answer(self.oracle.candidate, self.oracle.gold)
        if right:
            return self.rng.random() >= self.params.false_reject, True
        return self.rng.random() >= self.params.review_recall, False

    def review(self) -> SimAct:
        judged_right, right = self._judges_right()
        # a reviewer's own words (annul, refer) act as the meaning they were declared with
        meanings = self.oracle.meanings or self.oracle.decisions
        word = {}
        for decision, meaning in zip(self.oracle.decisions, meanings, strict=True):
            word.setdefault(meaning, decision)
        if judged_right or set(word) == {"approve"}:
            return SimAct(decision=word.get("approve", "approve"), correct=right)
        refusal = word.get("reject", word.get("veto"))
        if "amend" in word and (refusal is None or self.rng.random() < 0.5):
            own = self.solve()
            return SimAct(
                answer=own.answer, decision=word["amend"], correct=not right and own.correct
            )
        return SimAct(decision=refusal or "veto", correct=not right)

    def oversee(self) -> SimAct:
        """An overseer judges the candidate as a reviewer would: it upholds one it judges
        right, and answers its first intervention (``decisions`` lists the interventions
        first, ``uphold`` last) on one it judges wrong."""
        judged_right, right = self._judges_right()
        decision = self.oracle.decisions[-1] if judged_right else self.oracle.decisions[0]
        return SimAct(decision=decision, correct=judged_right == right)

    def vote(self) -> SimAct:
        judged_right, right = self._judges_right()
        if self.oracle.abstain and self._unsure():
            return SimAct(decision="abstain", may_abstain=True)
        return SimAct(
            decision="yes" if judged_right else "no",
            correct=judged_right == right,
            may_abstain=self.oracle.abstain,
        )

    def elect(self) -> SimAct:
        """A choice ballot on the slate (``inputs``, numbered from 1): the voter solves the
        item itself and names the candidates that give its own answer; with none, it goes
        with the slate's most common answer (the first such on a tie). Plurality names the
        first of them, approval all of them; borda ranks its own answer's candidates first,
        then the rest by how common their answer is on the slate, then by slate order."""
        belief = self.solve()
        slate = self.oracle.inputs
        if not slate or (self.oracle.abstain and self._unsure()):
            return SimAct(decision="abstain", may_abstain=self.oracle.abstain)
        support = [sum(same_answer(a, b) for b in slate) for a in slate]
        own = [i for i, a in enumerate(slate) if same_answer(a, belief.answer)]
        if self.oracle.rule == "borda":
            rest = sorted((i for i in range(len(slate)) if i not in own), key=lambda i: -support[i])
            chosen, separator = own + rest, " > "
        else:
            common = slate[support.index(max(support))]
            chosen = own or [i for i, a in enumerate(slate) if same_answer(a, common)]
            chosen, separator = (chosen[:1] if self.oracle.rule == "plurality" else chosen), ", "
        return SimAct(
            decision=separator.join(str(i + 1) for i in chosen),
            correct=same_answer(slate[chosen[0]], self.oracle.gold),
            may_abstain=self.oracle.abstain,
        )

    def _unsure(self) -> bool:
        """Whether a voter who may abstain does: a coin of its own stream, so that allowing
        abstention shifts none of the other draws."""
        o = self.oracle
        coin = stable_random("abstain", o.run_seed, o.item_id, o.stage, o.agent, o.visit)
        return coin.random() < self.params.abstain_rate

    def _wrong_answer(self) -> str:
        gold = _as_int(self.oracle.gold)
        if gold is None:
            return str(self.rng.randint(1, 1000))
        if self.rng.random() < self.params.wrong_correlation:
            return str(_common_wrong_answer(self.oracle.item_id, gold))
        span = max(10, abs(gold))
        offset = 0
        while offset == 0:
            offset = self.rng.randint(-span, span)
        return str(gold + offset)


def _common_wrong_answer(item_id: str, gold: int) -> int:
    """The mistake most solvers of this item make: fixed per item."""
    rng = stable_random("common-wrong", item_id)
    candidates = [
        gold + rng.choice([-1, 1]) * rng.randint(1, 9),
        gold * 2,
        gold // 2 if gold > 3 else gold + 10,
    ]
    wrong = [c for c in candidates if c != gold]
    return rng.choice(wrong)


def _as_int(value: str | None) -> int | None:
    try:
        return int(Decimal(value)) if value is not None else None
    except InvalidOperation:
        return None


def _plurality(answers: tuple[str, ...]) -> str | None:
    """The answer most inputs agree on, when at least two agree and it is the unique top."""
    counts = Counter(a for a in answers if a is not None).most_common(2)
    if not counts or counts[0][1] < 2 or (len(counts) > 1 and counts[1][1] == counts[0][1]):
        return None
    return counts[0][0]

"""MAKER's scaling laws (arXiv 2511.09030, section 3): how large a voting margin k a task of
s steps needs to succeed with probability t, and what it costs, before anything is sampled.

The model is the paper's: each voted step (a subtask of m steps; m = 1 is maximal
decomposition) is decided by first-to-ahead-by-k voting over independent valid samples, each
right with probability p. Wrong samples are assumed to agree with one another, the worst case
for voting, so the vote is a race between two candidates: the margin (right votes minus
wrong votes) is a random walk that moves +1 with probability p and -1 with 1 - p, and the
step is decided when it first reaches +k (right) or -k (wrong). Red-flagged samples are
discarded and drawn again; with a valid-response rate v, a valid sample costs 1 / v raw ones.

Everything here is exact in that model (closed forms for the gambler's ruin, and an exact
recursion for the distribution of the undecided steps); nothing is estimated.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = [
    "Plan",
    "expected_samples_by_rounds",
    "expected_samples_per_step",
    "full_task_success",
    "k_min",
    "plan",
    "step_success",
    "undecided_after",
    "undecided_after_rounds",
]


class Plan(BaseModel):
    """What a task of ``steps`` steps needs to reach ``target`` full-task success, and what
    it is expected to cost; figures per step are per voted subtask of ``m`` steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p: float
    steps: int
    target: float
    m: int
    valid_rate: float
    k: int
    subtasks: float
    step_success: float
    full_task_success: float
    expected_valid_samples_per_step: float
    expected_samples_per_step: float
    expected_samples: float
    price_per_sample: float | None
    expected_cost: float | None


def _check_p(p: float) -> None:
    """Voting only helps a sample that is right more often than wrong: at p <= 0.5 the wrong
    candidate wins the race at least as often as the right one, whatever k is."""
    if not (math.isfinite(p) and 0.5 < p <= 1):
        raise ValueError(
            f"p (per-step success probability) must be above 0.5 and at most 1, got {p}: at "
            "p <= 0.5 first-to-ahead-by-k voting does not converge to the right answer (more "
            "votes only make a wrong answer likelier to win)"
        )


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k (the voting margin) must be at least 1, got {k}")


def _check_task(steps: int, target: float, m: int) -> None:
    if steps < 1:
        raise ValueError(f"s (the number of steps) must be at least 1, got {steps}")
    if m < 1:
        raise ValueError(f"m (steps per subtask) must be at least 1, got {m}")
    if m > steps:
        raise ValueError(f"m (steps per subtask) cannot exceed s (the steps), {steps}; got {m}")
    if not (math.isfinite(target) and 0 < target < 1):
        raise ValueError(
            f"t (the target full-task success) must be above 0 and below 1, got {target}"
        )


def _check_valid_rate(valid_rate: float) -> None:
    if not (math.isfinite(valid_rate) and 0 < valid_rate <= 1):
        raise ValueError(
            f"v (the valid-response rate) must be above 0 and at most 1, got {valid_rate}"
        )


def _log_odds(p: float) -> float:
    """ln(p / (1 - p)): infinite at p = 1, where no sample is ever wrong."""
    return math.inf if p == 1 else math.log(p) - math.log1p(-p)


def step_success(p: float, k: int) -> float:
    """P(the right answer wins a first-to-ahead-by-k vote) = p^k / (p^k + (1-p)^k).

    Computed as the logistic of k ln(p/(1-p)), which stays exact where p^k underflows."""
    _check_p(p)
    _check_k(k)
    return 1 / (1 + math.exp(-k * _log_odds(p)))


def full_task_success(p: float, k: int, steps: int, m: int = 1) -> float:
    """P(every one of the s/m voted subtasks is decided right) = step_success^(s/m)."""
    _check_p(p)
    _check_k(k)
    _check_task(steps, 0.5, m)
    return math.exp(-(steps / m) * math.log1p(math.exp(-k * _log_odds(p))))


def k_min(p: float, steps: int, target: float, m: int = 1) -> int:
    """The least k with full_task_success(p, k, s, m) >= t (the paper's equation for k_min):
    ceil( ln(t^(-m/s) - 1) / ln((1-p)/p) ), at least 1.

    The closed form is evaluated with expm1 (t^(-m/s) - 1 is tiny for large s) and then
    checked against :func:`full_task_success` in both directions, so rounding at an exact
    integer ratio can never give a k one too small or one too large."""
    _check_p(p)
    _check_task(steps, target, m)
    if p == 1:
        return 1
    ratio = math.log(math.expm1(-(m / steps) * math.log(target))) / -_log_odds(p)
    k = max(1, math.ceil(ratio))
    while full_task_success(p, k, steps, m) < target:
        k += 1
    while k > 1 and full_task_success(p, k - 1, steps, m) >= target:
        k -= 1
    return k


def expected_samples_per_step(p: float, k: int, valid_rate: float = 1.0) -> float:
    """Expected samples drawn to decide one step by first-to-ahead-by-k voting.

    The margin is a gambler's-ruin walk started at 0 between the absorbing barriers -k and
    +k (equivalently, at k between 0 and 2k). With q = 1 - p and r = q/p, the classical
    expected duration from z in [0, N] is z/(q-p) - N/(q-p) * (1 - r^z)/(1 - r^N); at z = k,
    N = 2k this simplifies to

        D = k/(p-q) * (1 - r^k)/(1 + r^k) = k * tanh(k ln(p/q) / 2) / (2p - 1)
          = k * (2 * step_success(p, k) - 1) / (2p - 1),

    which is k at p = 1 (every sample agrees) and tends to k^2 as p -> 1/2. Red-flagged
    samples are discarded and redrawn, each sample valid with probability v independently,
    so the expected number of raw samples is D / v (Wald's identity)."""
    _check_p(p)
    _check_k(k)
    _check_valid_rate(valid_rate)
    valid = float(k) if p == 1 else k * math.tanh(k * _log_odds(p) / 2) / (2 * p - 1)
    return valid / valid_rate


def undecided_after(p: float, k: int, samples: int, valid_rate: float = 1.0) -> np.ndarray:
    """P(a step is still undecided after n raw samples), for n = 0 .. ``samples``.

    Exact by recursion over the distribution of the margin on the open interval (-k, k):
    each raw sample is red-flagged (the margin stays) with probability 1 - v, else moves +1
    with probability p or -1 with 1 - p; mass reaching +-k is decided and leaves. Steps are
    independent, so this is also the expected fraction of a task's steps still undecided
    after n samples each: the decay a simulator's measured counts should follow."""
    _check_p(p)
    _check_k(k)
    _check_valid_rate(valid_rate)
    if samples < 0:
        raise ValueError(f"the number of samples must be at least 0, got {samples}")
    up, down, stay = valid_rate * p, valid_rate * (1 - p), 1 - valid_rate
    margin = np.zeros(2 * k - 1)  # positions -k+1 .. k-1; index k-1 is a margin of 0
    margin[k - 1] = 1.0
    undecided = np.empty(samples + 1)
    undecided[0] = 1.0
    for n in range(1, samples + 1):
        moved = stay * margin
        moved[1:] += up * margin[:-1]
        moved[:-1] += down * margin[1:]
        margin = moved
        undecided[n] = margin.sum()
    return undecided


def undecided_after_rounds(
    p: float, k: int, rounds: int, valid_rate: float = 1.0, wrong_answers: int = 1
) -> np.ndarray:
    """P(a step is still undecided after r rounds of draws), for r = 0 .. ``rounds``, as
    ``voting.vote`` draws them: the first round k samples, each later one k minus the
    leader's lead over the runner-up (the fewest that could decide).

    Exact, by the distribution of the vote counts: each raw sample is red-flagged (1 - v),
    right (v p) or one of ``wrong_answers`` wrong answers, equally likely (v (1 - p) in
    all); a step leaves once one answer leads every other by k. With one wrong answer this
    is the paper's two-answer walk; a micro-agent whose wrong votes split over several
    answers (a wrong Hanoi move is one of two other legal ones) decides sooner."""
    undecided, _ = _by_rounds(p, k, rounds, valid_rate, wrong_answers)
    return undecided


def expected_samples_by_rounds(
    p: float, k: int, valid_rate: float = 1.0, wrong_answers: int = 1, rounds: int = 200
) -> float:
    """Expected raw samples per step as the voter draws them, wrong votes split over
    ``wrong_answers`` answers: the sum over rounds of the draws of the steps still undecided
    (a round's draws can only decide at its last sample, so all are drawn). With one wrong
    answer it is :func:`expected_samples_per_step`; the mass left after ``rounds`` rounds
    (below 1e-12 for any p the paper's tables consider) is left out."""
    _, draws = _by_rounds(p, k, rounds, valid_rate, wrong_answers)
    return float(draws.sum())


def _by_rounds(
    p: float, k: int, rounds: int, valid_rate: float, wrong_answers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(P(undecided after r rounds) for r = 0 .. rounds, expected draws in rounds 1 ..
    rounds), by the distribution of vote counts kept relative to the smallest, which is all
    that the lead depends on."""
    _check_p(p)
    _check_k(k)
    _check_valid_rate(valid_rate)
    if rounds < 0:
        raise ValueError(f"the number of rounds must be at least 0, got {rounds}")
    if wrong_answers < 1:
        raise ValueError(f"a step has at least one wrong answer, got {wrong_answers}")
    flag, right = 1 - valid_rate, valid_rate * p
    wrong = valid_rate * (1 - p) / wrong_answers
    Counts = tuple[int, ...]  # the right answer's votes, then each wrong answer's, descending

    def lead(counts: Counts) -> int:
        best, second = sorted(counts, reverse=True)[:2]
        return best - second

    def normalised(votes: list[int]) -> Counts:
        least = min(votes)
        return (votes[0] - least, *sorted((v - least for v in votes[1:]), reverse=True))

    def draw(counts: Counts) -> dict[Counts, float]:
        """One sample's outcomes from an undecided step, by probability."""
        outcomes: dict[Counts, float] = {counts: flag} if flag else {}
        for answer, chance in ((0, right), *((n, wrong) for n in range(1, len(counts)))):
            if chance:
                votes = list(counts)
                votes[answer] += 1
                after = normalised(votes)
                outcomes[after] = outcomes.get(after, 0.0) + chance
        return outcomes

    undecided, draws = np.zeros(rounds + 1), np.zeros(rounds)
    undecided[0] = 1.0
    steps: dict[Counts, float] = {(0,) * (1 + wrong_answers): 1.0}
    for r in range(1, rounds + 1):
        after_round: dict[Counts, float] = {}
        for counts, mass in steps.items():
            size = k - lead(counts)
            draws[r - 1] += mass * size
            walk = {counts: mass}
            for _ in range(size):
                moved: dict[Counts, float] = {}
                for state, share in walk.items():
                    if lead(state) >= k:  # decided: the round's later draws are not read
                        moved[state] = moved.get(state, 0.0) + share
                        continue
                    for outcome, chance in draw(state).items():
                        moved[outcome] = moved.get(outcome, 0.0) + share * chance
                walk = moved
            for state, share in walk.items():
                if lead(state) < k:
                    after_round[state] = after_round.get(state, 0.0) + share
        steps = after_round
        undecided[r] = sum(steps.values())
        if undecided[r] < 1e-15:  # nothing left to decide: the rest are zeros
            break
    return undecided, draws


def plan(
    p: float,
    steps: int,
    target: float,
    m: int = 1,
    *,
    valid_rate: float = 1.0,
    price_per_sample: float | None = None,
) -> Plan:
    """k_min and its consequences for one task: success per step and for the whole task,
    and the expected samples (and cost, given a price per raw sample). The total is
    (s/m) * D(k_min) / v, which grows as s ln s because k_min grows as ln s."""
    _check_valid_rate(valid_rate)
    if price_per_sample is not None and not (
        math.isfinite(price_per_sample) and price_per_sample >= 0
    ):
        raise ValueError(f"the price per sample must be at least 0, got {price_per_sample}")
    k = k_min(p, steps, target, m)
    subtasks = steps / m
    valid_per_step = expected_samples_per_step(p, k)
    per_step = valid_per_step / valid_rate
    total = subtasks * per_step
    return Plan(
        p=p,
        steps=steps,
        target=target,
        m=m,
        valid_rate=valid_rate,
        k=k,
        subtasks=subtasks,
        step_success=step_success(p, k),
        full_task_success=full_task_success(p, k, steps, m),
        expected_valid_samples_per_step=valid_per_step,
        expected_samples_per_step=per_step,
        expected_samples=total,
        price_per_sample=price_per_sample,
        expected_cost=None if price_per_sample is None else total * price_per_sample,
    )

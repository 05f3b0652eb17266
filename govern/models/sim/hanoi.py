"""A simulated MAKER micro-agent taking one Towers of Hanoi step (``govern/tasks/hanoi``):
a documented, seeded model of a sample's answer, not a measurement of any real model.

It reads the hidden :class:`~govern.models.base.HanoiView` (the state and previous move its
prompt shows, the step's index and the sample's) and answers:

- **right**, with probability ``1 - e``: the strategy's move (``strategy_step``, which on
  the solution's path is ``true_step``) and the state it leads to, in the paper's format
  (``move = [d, f, t]`` and ``next_state = [[...], [...], [...]]``);
- **wrong** otherwise, and then one of:

  - **malformed**, a share ``hanoi_malformed_share`` of wrong answers: a fault of format that
    the strict parser rejects whatever the move (the next state left out, the move told in
    prose, an earlier draft of the move left in, or a disk lost from the next state);
  - **overlong**, a share ``hanoi_overlong_share``: a wrong move, well-formed, after
    ``OVERLONG_TOKENS`` of rambling, above the red flag's default 750 output tokens;
  - **plausible**, the rest: another legal move, with the state it would lead to, so only
    voting can tell it from the right one.

``e`` is ``hanoi_step_error``, except on hard steps, where it is ``hanoi_hard_error``: a
share ``hanoi_hard_fraction`` of the steps, chosen by the run's seed, as the paper saw a
few steps draw far more wrong votes than the rest. Which kinds a wrong answer takes, and
that a plausible wrong move is any other legal one with equal chance, are modelling
assumptions; so are the hard steps' share and rate.

A sample's every draw is a function of (run seed, step index, sample index) alone, through
a counter-based integer hash (splitmix64), so a voted run is reproducible and resumable
and one sample costs a few microseconds: it is called millions of times in a 20-disk run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from govern.models.base import HanoiView
from govern.models.sim.params import SimParams
from govern.tasks.hanoi.puzzle import Move, State, apply_move, legal_moves, strategy_step
from govern.tasks.hanoi.step import render_move, render_state

_MASK = (1 << 64) - 1
_SCALE = 1 << 64  # a probability p is the draws below p * 2**64
_HARD_SALT = 0x5BD1E9955BD1E995  # keeps a step's hardness apart from its samples' draws
MALFORMED_KINDS = ("no_state", "prose_move", "second_draft", "lost_disk")
OTHER_LEGAL_MOVES = 2  # besides the right one: disk 1's other peg, or its two, and one more
OVERLONG_TOKENS = (1000, 4000)  # an overlong answer's length, uniform, in tokens
_RAMBLE = "Let me re-check which disk moved last and which pegs hold smaller disks. "
_CHARS_PER_TOKEN = 4  # as the simulator counts tokens (client.approx_tokens)


def _mix(x: int) -> int:
    """splitmix64: the golden-ratio increment, then its finaliser -- a well-spread 64-bit
    hash of a 64-bit integer (without the increment 0 maps to 0, and run seed 0's first
    sample of step 0 would always be a draw of exactly 0)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _step_key(run_seed: int, step: int) -> int:
    return _mix((_mix(run_seed & _MASK) + step) & _MASK)


@dataclass(frozen=True, slots=True)
class HanoiReply:
    """A sample's reply, and what kind it is (for tests and diagnostics, never shown)."""

    text: str
    kind: str  # right | plausible | malformed | overlong
    detail: str = ""  # the malformed answer's fault


@dataclass(frozen=True, slots=True)
class _Right:
    move: Move
    next_state: State
    text: str


@functools.lru_cache(maxsize=256)
def _right(state: State, previous: tuple[int, int, int] | None) -> _Right:
    """The strategy's answer to a step: the same for each of its samples, so worked out once."""
    move = strategy_step(state, None if previous is None else Move(*previous))
    next_state = apply_move(state, move)
    return _Right(move, next_state, _answer(move, next_state))


def _answer(move: Move, next_state: State) -> str:
    return f"move = {render_move(move)}\nnext_state = {render_state(next_state)}"


@dataclass(frozen=True, slots=True)
class StepClass:
    """Steps the micro-agent answers alike, as the voting theory sees them: their share of
    the steps, the chance a valid sample is right, and the chance a sample is valid."""

    share: float
    p: float
    valid_rate: float
    wrong_answers: int = 1  # the wrong answers its wrong votes split over


def step_classes(params: SimParams) -> list[StepClass]:
    """The ordinary and the hard steps of ``params``' micro-agent: what its figures predict
    for voting, independently of any run. A wrong answer is red-flagged with the malformed
    and overlong shares, and is otherwise one of the other legal moves, equally likely: two
    of them at every step but the few where a peg's emptiness leaves fewer (the first)."""
    flagged = params.hanoi_malformed_share + params.hanoi_overlong_share
    hard = params.hanoi_hard_fraction
    classes = []
    for share, error in ((1 - hard, params.hanoi_step_error), (hard, params.hanoi_hard_error)):
        if share > 0:
            valid = 1 - error * flagged
            classes.append(StepClass(share, (1 - error) / valid, valid, OTHER_LEGAL_MOVES))
    return classes


class HanoiMicroAgent:
    """A simulated model's micro-agent, its parameters turned into integer thresholds once."""

    def __init__(self, params: SimParams) -> None:
        self.error = int(params.hanoi_step_error * _SCALE)
        self.hard_error = int(params.hanoi_hard_error * _SCALE)
        self.hard = int(params.hanoi_hard_fraction * _SCALE)
        self.malformed = int(params.hanoi_malformed_share * _SCALE)
        self.overlong = self.malformed + int(params.hanoi_overlong_share * _SCALE)

    def is_hard(self, run_seed: int, step: int) -> bool:
        """Whether a step is one of the run's hard ones: its seed's and index's alone."""
        return _mix(_step_key(run_seed, step) ^ _HARD_SALT) < self.hard

    def answer(self, view: HanoiView, run_seed: int) -> HanoiReply:
        """One sample's reply to the step ``view`` shows, by the module docstring's rules."""
        step_key = _step_key(run_seed, view.step)
        draw = _mix((step_key + view.sample) & _MASK)
        hard = _mix(step_key ^ _HARD_SALT) < self.hard
        right = _right(view.state, view.previous)
        if draw >= (self.hard_error if hard else self.error):
            return HanoiReply(right.text, "right")
        return _wrong(view.state, right, draw, self.malformed, self.overlong)


def _wrong(state: State, right: _Right, draw: int, malformed: int, overlong: int) -> HanoiReply:
    """A wrong answer, its kind and content drawn from further hashes of the sample's draw."""
    kind_draw, pick_draw, size_draw = _mix(draw ^ 1), _mix(draw ^ 2), _mix(draw ^ 3)
    if kind_draw < malformed:
        fault = MALFORMED_KINDS[pick_draw % len(MALFORMED_KINDS)]
        return HanoiReply(_malformed(fault, right), "malformed", fault)
    others = [move for move in legal_moves(state) if move != right.move]
    move = others[pick_draw % len(others)]  # never none: disk 1 can go to either other peg
    answer = _answer(move, apply_move(state, move))
    if kind_draw < overlong:
        low, high = OVERLONG_TOKENS
        tokens = low + size_draw % (high - low + 1)
        ramble = _RAMBLE * -(-tokens * _CHARS_PER_TOKEN // len(_RAMBLE))
        return HanoiReply(f"{ramble}\n{answer}", "overlong")
    return HanoiReply(answer, "plausible")


def _malformed(fault: str, right: _Right) -> str:
    move, state = right.move, right.next_state
    if fault == "no_state":
        return f"move = {render_move(move)}"
    if fault == "prose_move":
        return (
            f"I move disk {move.disk} from peg {move.source} to peg {move.target}.\n"
            f"next_state = {render_state(state)}"
        )
    if fault == "second_draft":
        draft = Move(move.disk, move.target, move.source)
        return f"move = {render_move(draft)}\nNo, rather:\n{right.text}"
    lost = tuple(peg[:-1] if peg and peg[-1] == move.disk else peg for peg in state)
    return f"move = {render_move(move)}\nnext_state = {render_state((lost[0], lost[1], lost[2]))}"

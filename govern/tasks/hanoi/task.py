"""The task ``hanoi``: the Towers of Hanoi taken one move at a time by a decompose stage.

An item is one tower (``hanoi-20``: 20 disks, ``2**20 - 1`` steps), its size the manifest's
``task: {disks: N}`` (20 by default, the paper's). The task gives the decomposer what one
item's steps need (:class:`HanoiWork`): the state, the paper's prompt for one step, the
strict parser, the key equal answers vote under, the puzzle's rules for the Controller, and
a compact record of a step for the ledger. Separately, and for scoring only, it gives a
:class:`HanoiScorer`, which compares each voted move, after the Controller applied it,
with the shortest solution's: the decomposer's voting never holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govern.engine.formats import OutputFormat
from govern.maker.voting import Decision
from govern.models.base import HanoiView, Message
from govern.spec.models import MAX_DISKS, ParsingMode
from govern.tasks.base import Score, TaskData, TaskDataError, TaskItem
from govern.tasks.hanoi.puzzle import (
    IllegalMove,
    Move,
    State,
    apply_move,
    goal_state,
    start_state,
    total_steps,
    true_step,
)
from govern.tasks.hanoi.step import parse_step, render_state, step_messages, vote_key

DEFAULT_DISKS = 20  # the paper's tower: 1,048,575 steps
ITEM_PREFIX = "hanoi-"

Candidate = tuple[Move, State]  # a sample's move and the next state it says it leads to


@dataclass(frozen=True, slots=True)
class Position:
    """Where the work stands: the pegs and the move that led here (None at the start)."""

    pegs: State
    previous: Move | None


class HanoiWork:
    """One tower's steps as the decomposer takes them; every method is a pure function."""

    record_size = 3  # [disk, from, to]

    def __init__(self, disks: int) -> None:
        self.disks = disks
        self.total = total_steps(disks)

    def start(self) -> Position:
        return Position(start_state(self.disks), None)

    def messages(self, position: Position) -> list[Message]:
        return step_messages(position.pegs, position.previous)

    def view(self, position: Position, step: int, sample: int) -> HanoiView:
        """What the simulator reads of a sample (a real model reads only the messages)."""
        previous = position.previous
        return HanoiView(position.pegs, None if previous is None else tuple(previous), step, sample)

    def parse(self, text: str) -> Candidate | None:
        return parse_step(text, self.disks)

    @staticmethod
    def key(candidate: Candidate) -> str:
        return vote_key(*candidate)

    @staticmethod
    def fault(position: Position, candidate: Candidate) -> str | None:
        """What the puzzle's rules say is wrong with taking this step here, or None: the
        move must be legal, and the next state must be the one it leads to. Rules, not the
        solution: a legal move off the shortest path is no fault."""
        move, next_state = candidate
        try:
            reached = apply_move(position.pegs, move)
        except IllegalMove as exc:
            return f"illegal move {exc}"
        if reached != next_state:
            return (
                f"move {list(move)} leads to {render_state(reached)}, not to the next state "
                f"given, {render_state(next_state)}"
            )
        return None

    @staticmethod
    def advance(position: Position, candidate: Candidate) -> Position:
        """The position the voted step leads to: its own next state (the Controller has
        checked that it is the move's)."""
        move, next_state = candidate
        return Position(next_state, move)

    @staticmethod
    def record(candidate: Candidate) -> list[int]:
        """The step's decision as the ledger keeps it: ``[disk, from, to]``; its next state
        follows from the move, which the Controller checked."""
        move = candidate[0]
        return [move.disk, move.source, move.target]

    @staticmethod
    def replay(position: Position, record: list[int]) -> Candidate:
        """The candidate a ledger record ``[disk, from, to]`` stands for here (its next
        state the move's, as the Controller checked when it applied it)."""
        if len(record) != 3 or not all(type(n) is int for n in record):
            raise ValueError(f"{record!r} is not a move [disk, from, to]")
        move = Move(*record)
        return move, apply_move(position.pegs, move)

    @staticmethod
    def snapshot(position: Position) -> dict[str, Any]:
        previous = position.previous
        return {
            "pegs": [list(peg) for peg in position.pegs],
            "previous": None if previous is None else list(previous),
        }

    @staticmethod
    def delivered(position: Position) -> str:
        """What the item delivers: the final state, as the prompt writes a state."""
        return render_state(position.pegs)


class HanoiScorer:
    """Scoring only: counts the voted moves that are not the shortest solution's, and the
    valid votes that were for it (the measured p). Told of each step after it is decided
    and applied; nothing it finds reaches the voting."""

    def __init__(self) -> None:
        self.errors = 0
        self.first_error: int | None = None
        self.right_votes = 0

    def observe(self, step: int, position: Position, decision: Decision[Candidate]) -> None:
        true_move, true_next = true_step(position.pegs)
        self.right_votes += decision.stats.votes.get(vote_key(true_move, true_next), 0)
        if decision.candidate[0] != true_move:
            self.errors += 1
            if self.first_error is None:
                self.first_error = step


class HanoiTask:
    name = "hanoi"
    decomposition = "steps"  # a decompose stage takes its own steps, one voted move each
    description = "the Towers of Hanoi, one voted move at a time (a decompose stage)"
    # a step's answer format is the paper's prompt's own (step.py); this is the item's
    answer_format = OutputFormat(
        "End with the final state on a last line of the form `next_state = [[...], [...], [...]]`.",
        "`next_state = [[...], [...], [...]]`",
    )

    def __init__(self) -> None:
        self.disks = DEFAULT_DISKS

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData:
        if data is not None:
            raise TaskDataError(
                "task hanoi has no data file: the tower is the manifest's task: {disks: N}"
            )
        return TaskData(self.towers(self.disks), "generated tower", benchmark=False)

    def towers(self, disks: int) -> list[TaskItem]:
        """The run's one item: a tower of ``disks`` disks, its gold the goal state."""
        self.disks = disks
        question = f"Towers of Hanoi, {disks} disks ({total_steps(disks):,} moves)"
        return [TaskItem(f"{ITEM_PREFIX}{disks}", question, render_state(goal_state(disks)))]

    def work(self, item: str) -> HanoiWork:
        """The steps of the tower ``item`` names (``hanoi-20``: 20 disks), so that an
        auditor rebuilds them from the ledger's item ids alone."""
        disks = item.removeprefix(ITEM_PREFIX)
        if not disks.isascii() or not disks.isdigit() or not 1 <= int(disks) <= MAX_DISKS:
            raise ValueError(f"{item!r} names no tower of this task")
        return HanoiWork(int(disks))

    @staticmethod
    def scorer() -> HanoiScorer:
        return HanoiScorer()

    def parse_answer(self, text: str, mode: ParsingMode = "strict") -> str | None:
        return text.strip() or None

    def score(self, text: str | None, gold: str | None) -> Score:
        """Solved when the delivered state is the goal: reached in the shortest solution's
        number of moves, which only the shortest solution does, so with no wrong move."""
        answer = self.parse_answer(text) if text else None
        correct = answer is not None and answer == gold
        return Score(answer, answer, correct, correct)

"""The Towers of Hanoi as MAKER steps through it: one move at a time, a pure function each.

A state is a tuple of three pegs, each a tuple of disks from bottom to top; disks are
1 (smallest) to n (largest). The start has every disk on peg 0 and the goal every disk on
peg 2, reached in ``2**n - 1`` moves. Tuples keep a state hashable and shareable between
samples; each peg's top is its last element, so finding and checking a move costs O(1)
and applying one copies only the two pegs it touches.
"""

from __future__ import annotations

from typing import NamedTuple

Peg = tuple[int, ...]
State = tuple[Peg, Peg, Peg]

PEGS = 3
TARGET_PEG = 2


class Move(NamedTuple):
    """Disk ``disk`` from peg ``source`` to peg ``target``: the paper's ``[disk, from, to]``."""

    disk: int
    source: int
    target: int


class IllegalMove(ValueError):
    """A move that the rules forbid in the state it was applied to; the message says why."""


def start_state(disks: int) -> State:
    """Every disk on peg 0, largest at the bottom."""
    if disks < 1:
        raise ValueError(f"a puzzle needs at least one disk, not {disks}")
    return (tuple(range(disks, 0, -1)), (), ())


def goal_state(disks: int) -> State:
    """Every disk on the target peg (peg 2), largest at the bottom."""
    if disks < 1:
        raise ValueError(f"a puzzle needs at least one disk, not {disks}")
    return ((), (), tuple(range(disks, 0, -1)))


def total_steps(disks: int) -> int:
    """The length of the shortest solution, which the strategy follows: ``2**n - 1``."""
    return 2**disks - 1


def disk_count(state: State) -> int:
    return len(state[0]) + len(state[1]) + len(state[2])


def smallest_disk_direction(disks: int) -> int:
    """How far (mod 3) disk 1 moves each time it moves: +1 (0 -> 1 -> 2 -> 0, "clockwise")
    when n is even, +2 (0 -> 2 -> 1 -> 0) when n is odd.

    The standard iterative solution moves disk 1 on every other step, always the same way
    round; the tower ends on peg 2 only with this parity rule (n = 1 must go 0 -> 2 at
    once). The paper's prompt says "clockwise (0 -> 1 -> 2 -> 0)" because its run has
    20 disks, an even number.
    """
    return 1 if disks % 2 == 0 else 2


def apply_move(state: State, move: Move) -> State:
    """The state after ``move``; :class:`IllegalMove` when the rules forbid it."""
    disk, source, target = move
    if not (0 <= source < PEGS and 0 <= target < PEGS):
        raise IllegalMove(f"{list(move)}: pegs are 0, 1 and 2")
    if source == target:
        raise IllegalMove(f"{list(move)}: a move must go to another peg")
    from_peg = state[source]
    if not from_peg or from_peg[-1] != disk:
        top = f"its top disk is {from_peg[-1]}" if from_peg else "it is empty"
        raise IllegalMove(f"{list(move)}: disk {disk} is not on top of peg {source} ({top})")
    to_peg = state[target]
    if to_peg and to_peg[-1] < disk:
        raise IllegalMove(
            f"{list(move)}: disk {disk} cannot go onto the smaller disk {to_peg[-1]} "
            f"on peg {target}"
        )
    pegs = list(state)
    pegs[source] = from_peg[:-1]
    pegs[target] = (*to_peg, disk)
    return (pegs[0], pegs[1], pegs[2])


def legal_moves(state: State) -> list[Move]:
    """Every move the rules allow: a top disk onto an empty peg or a larger top disk."""
    moves = []
    for source, from_peg in enumerate(state):
        if not from_peg:
            continue
        disk = from_peg[-1]
        for target, to_peg in enumerate(state):
            if target != source and (not to_peg or to_peg[-1] > disk):
                moves.append(Move(disk, source, target))
    return moves


def strategy_step(state: State, previous: Move | None) -> Move:
    """The paper's one-step rule, which a sample is asked to follow.

    If the previous move did not move disk 1 (or there was none), move disk 1 one peg
    round in the direction of :func:`smallest_disk_direction`; otherwise make the only
    legal move not involving disk 1 (the smaller of the other two tops onto the other
    peg). From the start this is the shortest solution. ValueError when the rule has no
    move to make: disk 1 is not on top of a peg, or the other two pegs are empty.
    """
    if state[0] and state[0][-1] == 1:
        peg_of_1 = 0
    elif state[1] and state[1][-1] == 1:
        peg_of_1 = 1
    elif state[2] and state[2][-1] == 1:
        peg_of_1 = 2
    else:
        raise ValueError("disk 1 is not on top of any peg")
    if previous is None or previous.disk != 1:
        disks = len(state[0]) + len(state[1]) + len(state[2])
        return Move(1, peg_of_1, (peg_of_1 + smallest_disk_direction(disks)) % PEGS)
    one, other = (peg_of_1 + 1) % PEGS, (peg_of_1 + 2) % PEGS
    peg_one, peg_other = state[one], state[other]
    if not peg_one and not peg_other:
        raise ValueError("no legal move that does not involve disk 1: the other pegs are empty")
    if not peg_other or (peg_one and peg_one[-1] < peg_other[-1]):
        return Move(peg_one[-1], one, other)
    return Move(peg_other[-1], other, one)


def true_step(state: State) -> tuple[Move, State]:
    """The next move of the shortest solution from ``state`` and the state it leads to:
    the truth a step is scored against, never shown to a sample.

    Worked out independently of :func:`strategy_step` (which needs the previous move),
    from the recursive solution: the largest disk off its required peg must go there,
    which first requires every smaller disk on the third peg; the smallest disk with such
    a requirement unmet moves. O(n), which only scoring pays. ValueError at the goal.
    """
    peg_of = {disk: peg for peg, disks in enumerate(state) for disk in disks}
    required = TARGET_PEG
    move = None
    for disk in range(len(peg_of), 0, -1):
        if peg_of[disk] != required:
            move = Move(disk, peg_of[disk], required)
            required = PEGS - peg_of[disk] - required
    if move is None:
        raise ValueError("the puzzle is solved: there is no next step")
    return move, apply_move(state, move)

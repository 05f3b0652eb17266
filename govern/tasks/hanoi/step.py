"""One MAKER step for a real model: the paper's prompt, a strict parser of a sample's answer,
and the key under which equal answers are counted as one vote.

The parser is a red flag as much as a reader: any fault of format discards the sample,
whether the move is right or not. It does not judge the move: whether it is legal or the
strategy's is the business of voting and scoring. An answer must hold exactly one
``move = [disk, from, to]`` line and exactly one ``next_state = [[...], [...], [...]]``
line. Neither the first nor the last occurrence is taken: a second line naming ``move =``
or ``next_state =`` (an earlier draft, an example quoted back) makes the answer ambiguous,
and an ambiguous answer is a format fault like any other.
"""

from __future__ import annotations

import re

from govern.tasks.hanoi.puzzle import Move, State, smallest_disk_direction

SYSTEM_PROMPT = """\
You are a helpful assistant. Solve this puzzle for me.

There are three pegs and {disks} disks of different sizes stacked on the first peg. The disks \
are numbered from 1 (smallest) to {disks} (largest). Disk moves in this puzzle should follow:
1. Only one disk can be moved at a time.
2. Each move consists of taking the upper disk from one stack and placing it on top of \
another stack.
3. No disk may be placed on top of a smaller disk.

The goal is to move the entire stack to the third peg.

Example: With 3 disks numbered 1 (smallest), 2, and 3 (largest), the initial state is \
[[3, 2, 1], [], []], and a solution might be:
moves = [[1, 0, 2], [2, 0, 1], [1, 2, 1], [3, 0, 2], [1, 1, 0], [2, 1, 2], [1, 0, 2]]
This means: Move disk 1 from peg 0 to peg 2, then move disk 2 from peg 0 to peg 1, and so on.

Requirements:
- The positions are 0-indexed (the leftmost peg is 0).
- Ensure your answer includes a single next move in this EXACT FORMAT:
```move = [disk id, from peg, to peg]```
- Ensure your answer includes the next state resulting from applying the move to the current \
state in this EXACT FORMAT:
```next_state = [[...], [...], [...]]```
"""

USER_PROMPT = """\
Rules:
- Only one disk can be moved at a time.
- Only the top disk from any stack can be moved.
- A larger disk may not be placed on top of a smaller disk.

For all moves, follow the standard Tower of Hanoi procedure:
If the previous move did not move disk 1, move disk 1 {direction} one peg ({cycle}).
If the previous move did move disk 1, make the only legal move that does not involve moving \
disk 1.

Use these clear steps to find the next move given the previous move and current state.

Previous move: {previous}

Current State: {state}

Based on the previous move and current state, find the single next move that follows the \
procedure and the resulting next state.
"""

# The paper runs 20 disks and so says "clockwise (0 -> 1 -> 2 -> 0)"; an odd tower needs
# the other way round to end on peg 2 (puzzle.smallest_disk_direction).
DIRECTIONS = {1: ("clockwise", "0 -> 1 -> 2 -> 0"), 2: ("counterclockwise", "0 -> 2 -> 1 -> 0")}


def render_move(move: Move) -> str:
    """``[disk, from, to]``, as the prompt shows a move and an answer gives one."""
    return f"[{move.disk}, {move.source}, {move.target}]"


def render_state(state: State) -> str:
    """``[[3, 2], [], [1]]``: each peg bottom to top, as the prompt shows a state."""
    return "[" + ", ".join("[" + ", ".join(map(str, peg)) + "]" for peg in state) + "]"


def step_messages(state: State, previous: Move | None) -> list[dict[str, str]]:
    """The chat for one step: the paper's system and user prompts, with the disk count and
    the direction of disk 1 that this tower needs."""
    disks = len(state[0]) + len(state[1]) + len(state[2])
    direction, cycle = DIRECTIONS[smallest_disk_direction(disks)]
    user = USER_PROMPT.format(
        direction=direction,
        cycle=cycle,
        previous="None" if previous is None else render_move(previous),
        state=render_state(state),
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(disks=disks)},
        {"role": "user", "content": user},
    ]


# ASCII digits only (str.isdigit and \d admit other scripts), no sign, no leading zero,
# and few enough that int() never meets Python's limit on digits.
_INT = r"(?:0|[1-9][0-9]{0,8})"
_GAP = r"[ \t]*"
_PEG = rf"\[{_GAP}(?:{_INT}(?:{_GAP},{_GAP}{_INT})*)?{_GAP}\]"
# A line is an answer line in a single pair of backticks of one or three, or in none.
_MOVE_LINE = re.compile(
    rf"(?P<tick>`{{0,3}})move{_GAP}={_GAP}\[{_GAP}(?P<disk>{_INT}){_GAP},{_GAP}"
    rf"(?P<source>{_INT}){_GAP},{_GAP}(?P<target>{_INT}){_GAP}\](?P=tick)"
)
_STATE_LINE = re.compile(
    rf"(?P<tick>`{{0,3}})next_state{_GAP}={_GAP}\[{_GAP}(?P<pegs>{_PEG}{_GAP},{_GAP}{_PEG}"
    rf"{_GAP},{_GAP}{_PEG}){_GAP}\](?P=tick)"
)
# Where a line names a field at all, whatever follows: `next_move =` and `moves =` do not
# name `move`.
_NAMES_MOVE = re.compile(r"(?<![A-Za-z0-9_])move[ \t]*=")
_NAMES_STATE = re.compile(r"(?<![A-Za-z0-9_])next_state[ \t]*=")


def _only_line(lines: list[str], names: re.Pattern[str]) -> str | None:
    found = [line for line in lines if names.search(line)]
    return found[0].strip() if len(found) == 1 else None


def parse_step(text: str, disks: int) -> tuple[Move, State] | None:
    """A sample's move and next state, or None on any fault of format.

    Faults: a missing or repeated ``move =`` / ``next_state =`` line; anything else on
    either line; a wrong shape (not three numbers, not three pegs); a number that is not a
    plain non-negative integer; a disk outside 1..``disks`` or a peg outside 0..2; a next
    state whose disks are not exactly 1..``disks`` once each. Not faults: an illegal move
    or a wrong one, and pegs out of order; those are for voting and scoring to find.
    """
    lines = text.splitlines()
    move_line = _only_line(lines, _NAMES_MOVE)
    state_line = _only_line(lines, _NAMES_STATE)
    if move_line is None or state_line is None:
        return None
    move_match = _MOVE_LINE.fullmatch(move_line)
    state_match = _STATE_LINE.fullmatch(state_line)
    if move_match is None or state_match is None:
        return None
    move = Move(int(move_match["disk"]), int(move_match["source"]), int(move_match["target"]))
    if not (1 <= move.disk <= disks and move.source <= 2 and move.target <= 2):
        return None
    pegs = [
        tuple(int(disk) for disk in re.findall(_INT, peg))
        for peg in re.findall(_PEG, state_match["pegs"])
    ]
    if sorted(disk for peg in pegs for disk in peg) != list(range(1, disks + 1)):
        return None
    return move, (pegs[0], pegs[1], pegs[2])


def vote_key(move: Move, next_state: State) -> str:
    """One text for every way of writing the same answer (spacing, backticks), so that
    votes for it are counted together: ``move=[1,0,2];next_state=[[3,2],[],[1]]``."""
    pegs = ",".join("[" + ",".join(map(str, peg)) + "]" for peg in next_state)
    return f"move=[{move.disk},{move.source},{move.target}];next_state=[{pegs}]"

"""Towers of Hanoi for MAKER: the strategy solves the puzzle, the truth agrees with it, moves
are checked, and the step parser discards every fault of format and nothing else."""

from __future__ import annotations

import string
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govern.tasks.hanoi.puzzle import (
    IllegalMove,
    Move,
    State,
    apply_move,
    disk_count,
    goal_state,
    legal_moves,
    start_state,
    strategy_step,
    total_steps,
    true_step,
)
from govern.tasks.hanoi.step import (
    parse_step,
    render_move,
    render_state,
    step_messages,
    vote_key,
)


@pytest.mark.parametrize("disks", range(1, 13))
def test_the_strategy_solves_the_puzzle_in_the_fewest_legal_steps(disks: int) -> None:
    state, previous = start_state(disks), None
    goal = goal_state(disks)
    for _ in range(total_steps(disks)):
        assert state != goal
        move = strategy_step(state, previous)
        assert move in legal_moves(state)
        assert true_step(state) == (move, apply_move(state, move))
        state, previous = apply_move(state, move), move
    assert state == goal
    assert total_steps(disks) == 2**disks - 1


def test_at_the_goal_there_is_no_next_step() -> None:
    solved = goal_state(3)
    with pytest.raises(ValueError, match="solved"):
        true_step(solved)
    with pytest.raises(ValueError, match="other pegs are empty"):
        strategy_step(solved, Move(1, 0, 2))


def test_a_puzzle_needs_a_disk() -> None:
    with pytest.raises(ValueError, match="at least one disk"):
        start_state(0)


@st.composite
def arrangements(draw: st.DrawFn, *, ordered: bool) -> State:
    """Disks 1..n spread over three pegs: legal (largest at the bottom) when ``ordered``."""
    disks = draw(st.integers(1, 8))
    pegs: list[list[int]] = [[], [], []]
    for disk in draw(st.permutations(range(1, disks + 1))):
        pegs[draw(st.integers(0, 2))].append(disk)
    if ordered:
        pegs = [sorted(peg, reverse=True) for peg in pegs]
    return (tuple(pegs[0]), tuple(pegs[1]), tuple(pegs[2]))


@given(arrangements(ordered=True), st.integers(0, 9), st.integers(-1, 3), st.integers(-1, 3))
def test_apply_moves_legal_moves_and_refuses_the_rest(
    state: State, disk: int, source: int, target: int
) -> None:
    move = Move(disk, source, target)
    if move not in legal_moves(state):
        with pytest.raises(IllegalMove):
            apply_move(state, move)
        return
    after = apply_move(state, move)
    assert Counter(d for peg in after for d in peg) == Counter(d for peg in state for d in peg)
    assert all(list(peg) == sorted(peg, reverse=True) for peg in after)
    assert after[target][-1] == disk and after[source] == state[source][:-1]
    untouched = 3 - source - target
    assert after[untouched] == state[untouched]


@given(arrangements(ordered=True))
def test_legal_moves_are_the_top_disks_that_fit(state: State) -> None:
    for move in legal_moves(state):
        assert state[move.source][-1] == move.disk
        assert not state[move.target] or state[move.target][-1] > move.disk
    tops = sum(1 for peg in state if peg)
    assert len(legal_moves(state)) == {1: 2, 2: 3, 3: 3}[tops]


# --- the step prompt and parser ------------------------------------------------------

PROSE = st.text(
    alphabet=string.ascii_letters + string.digits + " .,:;()[]*-\t", max_size=40
).filter(lambda line: "=" not in line)
TICKS = st.sampled_from(["", "`", "```"])
GAP = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, int, Move, State]:
    """A well-formed answer in one of its many spellings, with what it says."""
    state = draw(arrangements(ordered=False))
    disks = disk_count(state)
    move = Move(draw(st.integers(1, disks)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))

    def spaced(numbers: tuple[int, ...]) -> str:
        return "[" + draw(GAP) + f"{draw(GAP)},{draw(GAP)}".join(map(str, numbers)) + "]"

    move_tick, state_tick = draw(TICKS), draw(TICKS)
    move_line = f"{move_tick}move{draw(GAP)}={draw(GAP)}{spaced(move)}{move_tick}"
    pegs = ", ".join(spaced(peg) for peg in state)
    state_line = f"{state_tick}next_state{draw(GAP)}={draw(GAP)}[{pegs}]{state_tick}"
    lines = [*draw(st.lists(PROSE, max_size=3)), move_line, state_line]
    if draw(st.booleans()):
        lines[-2:] = lines[-1], lines[-2]
    lines += draw(st.lists(PROSE, max_size=3))
    indent = draw(GAP)
    return "\n".join(indent + line for line in lines), disks, move, state


@given(answers())
def test_a_well_formed_answer_reads_back_whatever_its_spelling(
    answer: tuple[str, int, Move, State],
) -> None:
    text, disks, move, state = answer
    assert parse_step(text, disks) == (move, state)
    plain = f"move = {render_move(move)}\nnext_state = {render_state(state)}"
    assert parse_step(plain, disks) == (move, state)
    compact = f"move={render_move(move)};next_state={render_state(state)}".replace(" ", "")
    assert vote_key(move, state) == compact


@given(st.text(), st.integers(1, 20))
def test_garbage_never_parses(text: str, disks: int) -> None:
    assert parse_step(text.replace("=", ""), disks) is None


def _lines(answer: tuple[str, int, Move, State]) -> tuple[list[str], int, int, int]:
    text, disks, _, _ = answer
    lines = text.split("\n")
    # only the answer lines hold "=" (PROSE has none)
    move_at = next(i for i, line in enumerate(lines) if "=" in line and "next_state" not in line)
    state_at = next(i for i, line in enumerate(lines) if "=" in line and "next_state" in line)
    return lines, disks, move_at, state_at


@given(answers(), st.booleans())
def test_a_missing_line_is_a_fault(answer: tuple[str, int, Move, State], drop_move: bool) -> None:
    lines, disks, move_at, state_at = _lines(answer)
    del lines[move_at if drop_move else state_at]
    assert parse_step("\n".join(lines), disks) is None


@given(answers(), answers(), st.booleans())
def test_a_repeated_line_is_a_fault_even_when_it_agrees(
    answer: tuple[str, int, Move, State], other: tuple[str, int, Move, State], repeat_move: bool
) -> None:
    lines, disks, move_at, state_at = _lines(answer)
    other_lines, _, other_move_at, other_state_at = _lines(other)
    again = lines[move_at] if repeat_move else lines[state_at]
    another = other_lines[other_move_at] if repeat_move else other_lines[other_state_at]
    for repeated in (again, another):  # the same line again, or another answer's
        assert parse_step("\n".join([*lines, repeated]), disks) is None


@given(
    answers(),
    st.booleans(),
    st.text(alphabet=string.ascii_letters + string.digits + ".,:;*!?()=", min_size=1),
    st.booleans(),
)
def test_extra_text_on_an_answer_line_is_a_fault(
    answer: tuple[str, int, Move, State], on_move: bool, extra: str, before: bool
) -> None:
    lines, disks, move_at, state_at = _lines(answer)
    at = move_at if on_move else state_at
    lines[at] = extra + lines[at] if before else lines[at] + extra
    assert parse_step("\n".join(lines), disks) is None


STATE = "next_state = [[3, 2], [], [1]]"
MOVE = "move = [1, 0, 2]"


@pytest.mark.parametrize(
    "move_line",
    [
        "move = [1, 0]",  # wrong shape
        "move = [1, 0, 2, 1]",
        "move = 1, 0, 2",
        "move = [[1, 0, 2]]",
        "move = [1.0, 0, 2]",  # not integers
        "move = [-1, 0, 2]",
        "move = [+1, 0, 2]",
        "move = [01, 0, 2]",
        "move = [one, 0, 2]",
        "move = [١, 0, 2]",  # a digit of another script
        "move = [1, 0, 9999999999]",  # more digits than a peg could need
        "move = [0, 0, 2]",  # out of range
        "move = [4, 0, 2]",
        "move = [1, 3, 2]",
        "move = [1, 0, 3]",
        "```move = [1, 0, 2]`",  # unbalanced backticks
        "**move = [1, 0, 2]**",  # extra text
        "move = [1, 0, 2] next_state = [[3, 2], [], [1]]",  # both on one line
    ],
)
def test_a_malformed_move_is_a_fault(move_line: str) -> None:
    assert parse_step(f"{move_line}\n{STATE}", 3) is None


@pytest.mark.parametrize(
    "state_line",
    [
        "next_state = [[3, 2], [1]]",  # wrong shape
        "next_state = [[3, 2], [], [1], []]",
        "next_state = [[3, 2], [], 1]",
        "next_state = [[3, [2]], [], [1]]",
        "next_state = [3, 2, 1]",
        "next_state = [[3, 2.0], [], [1]]",  # not integers
        "next_state = [[3, 2], [], [-1]]",
        "next_state = [[3, 2], [], [1, ]]",
        "next_state = [[3, 2], [], [4]]",  # not a permutation of 1..3
        "next_state = [[3, 2], [], [0, 1]]",
        "next_state = [[3, 2], [2], [1]]",
        "next_state = [[3, 2], [], []]",
        "next_state = [[3, 2], [], [1]] # done",  # extra text
    ],
)
def test_a_malformed_next_state_is_a_fault(state_line: str) -> None:
    assert parse_step(f"{MOVE}\n{state_line}", 3) is None


def test_the_parser_does_not_judge_the_move() -> None:
    """An illegal move, a wrong one and an impossible state are read as written: voting and
    scoring, not the format, find them out."""
    answer = "move = [3, 1, 1]\nnext_state = [[1, 2], [], [3]]"
    assert parse_step(answer, 3) == (Move(3, 1, 1), ((1, 2), (), (3,)))


def test_names_that_merely_contain_move_are_not_answer_lines() -> None:
    text = f"moves = [[1, 0, 2]]\nnext_move = [2, 0, 1]\n{MOVE}\n{STATE}"
    assert parse_step(text, 3) == (Move(1, 0, 2), ((3, 2), (), (1,)))


def test_the_key_is_the_same_for_every_spelling() -> None:
    spaced = parse_step("```move = [ 1 , 0 , 2 ]```\n`next_state=[[3,2],[ ],[1]]`", 3)
    assert spaced is not None
    assert vote_key(*spaced) == "move=[1,0,2];next_state=[[3,2],[],[1]]"


@pytest.mark.parametrize(
    ("disks", "rule"),
    [
        (20, "move disk 1 clockwise one peg (0 -> 1 -> 2 -> 0)"),
        (3, "move disk 1 counterclockwise one peg (0 -> 2 -> 1 -> 0)"),
    ],
)
def test_the_prompt_gives_the_direction_this_tower_needs(disks: int, rule: str) -> None:
    state = start_state(disks)
    first = strategy_step(state, None)
    state = apply_move(state, first)
    system, user = step_messages(state, first)
    assert system["role"] == "system" and f"{disks} disks" in system["content"]
    assert user["role"] == "user" and rule in user["content"]
    assert f"Previous move: {render_move(first)}" in user["content"]
    assert f"Current State: {render_state(state)}" in user["content"]
    assert "Previous move: None" in step_messages(start_state(disks), None)[1]["content"]


def test_the_prompt_example_does_not_parse_as_an_answer() -> None:
    """A sample that echoes the format it was shown has given no move."""
    system = step_messages(start_state(3), None)[0]["content"]
    assert parse_step(system, 3) is None

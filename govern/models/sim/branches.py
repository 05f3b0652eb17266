"""A simulated decomposed item (a decompose stage with a planner, ``engine/stages/decompose.py``):
a documented, seeded model, not a measurement of any real model.

- **The plan** (act ``plan``): the item splits into 2-8 sub-questions, the number drawn from
  the item's id, each written as a ``SUBQUESTION:`` line.
- **A sub-question's answer** (act ``subanswer``): each sub-question has a right value (the
  last one's is the item's gold answer, the others' are drawn from the item and the index).
  A sample is right with probability ``p ** (1 / n)``, ``p`` the model's chance of solving
  the whole item (its skill against the item's difficulty, as in ``behaviour.py``) and
  ``n`` the sub-questions: n steps each that much easier, all n right as often as one go
  at the whole. A wrong sample gives one of three near values, so wrong votes split.
- **An integration** (act ``synthesise``): it gives the right value of the last
  sub-question it integrates when every input is right and no pair of its inputs is
  reconciled wrongly (each of the n(n-1)/2 pairs with ``integration_pair_error``); else a
  wrong value. So one integration of many branches errs more than several small ones: the
  assumption under which integrating early (DTI) can pay, stated here, not found.

The answers are rendered as the simulator renders any answer (``text.render``), so formats
fail at the model's rates and the red flags catch them.
"""

from __future__ import annotations

import random

from govern.models.base import Oracle
from govern.models.sim.behaviour import SimAct, item_difficulty, same_answer, solve_probability
from govern.models.sim.behaviour import stable_random as seeded
from govern.models.sim.params import SimParams
from govern.models.sim.text import render

MIN_BRANCHES, MAX_BRANCHES = 2, 8
WRONG_OFFSETS = (1, -1, 10)  # a wrong sample's value: the right one off by one of these


def branch_count(item: str, run_seed: int) -> int:
    """How many sub-questions the simulated planner splits ``item`` into."""
    return seeded("branches", run_seed, item).randint(MIN_BRANCHES, MAX_BRANCHES)


def right_value(oracle: Oracle, index: int, count: int) -> str:
    """The right answer to sub-question ``index``: the gold answer for the last one."""
    if index == count - 1 and oracle.gold is not None:
        return oracle.gold
    return str(seeded("branch value", oracle.run_seed, oracle.item_id, index).randint(10, 999))


def plan(oracle: Oracle, params: SimParams, rng: random.Random) -> str:
    count = branch_count(oracle.item_id, oracle.run_seed)
    lines = [f"SUBQUESTION: What does part {n} of the problem give?" for n in range(1, count + 1)]
    if rng.random() < params.malformed_rate:  # a plan in prose, which the parser rejects
        return "First find part 1 of the problem, then the rest in turn."
    return "I split the problem into the questions that solve it.\n" + "\n".join(lines)


def subanswer(oracle: Oracle, params: SimParams, rng: random.Random) -> str:
    branch = oracle.branch
    assert branch is not None
    difficulty = item_difficulty(oracle.item_id, oracle.run_seed, params.difficulty_spread)
    p_branch = solve_probability(params, difficulty) ** (1 / branch.count)
    value = right_value(oracle, branch.first, branch.count)
    if rng.random() < p_branch:
        return render(SimAct(answer=value, correct=True), "solve", params, rng)
    wrong = _off(value, WRONG_OFFSETS[rng.randrange(len(WRONG_OFFSETS))])
    return render(SimAct(answer=wrong, correct=False), "solve", params, rng)


def synthesise(oracle: Oracle, params: SimParams, rng: random.Random) -> str:
    branch = oracle.branch
    assert branch is not None
    expected = [right_value(oracle, n, branch.count) for n in range(branch.first, branch.last + 1)]
    if branch.first > 0:  # the synthesis so far comes first: the last value it integrated
        expected.insert(0, right_value(oracle, branch.first - 1, branch.count))
    inputs = oracle.inputs
    right = len(inputs) == len(expected) and all(
        same_answer(given, want) for given, want in zip(inputs, expected, strict=True)
    )
    pairs = len(inputs) * (len(inputs) - 1) // 2
    reconciled = rng.random() < (1 - params.integration_pair_error) ** pairs
    value = right_value(oracle, branch.last, branch.count)
    if right and reconciled:
        return render(SimAct(answer=value, correct=True), "solve", params, rng)
    return render(SimAct(answer=_off(value, 1), correct=False), "solve", params, rng)


def _off(value: str, offset: int) -> str:
    try:
        return str(int(value) + offset)
    except ValueError:
        return str(offset)

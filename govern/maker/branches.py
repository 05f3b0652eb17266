"""A decompose stage's branches: an item that has no steps of its own (a GSM8K problem) split
by a planner into sub-questions, each answered by a vote of the micro-agent's samples, the
answers integrated into one.

Here are the pieces that are not the engine's: the plan's format and its strict reader, the
Controller's rules for a branch (none beyond the vote: an answer to a sub-question breaks no
rule of the task), and one branch's vote. The stage (``engine/stages/decompose.py``) runs the
branches side by side and integrates them, once at the end or whenever the integration
deficit says (DTI, ``trace/dti.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from govern.engine.formats import OutputFormat
from govern.engine.seeds import call_seed
from govern.governance.steps import StepRules
from govern.maker.decompose import Drawer
from govern.maker.voting import Decision, Sample, vote
from govern.models.base import BranchView, Message, Oracle
from govern.spec.models import RedFlags, Voting

MAX_BRANCHES = 8  # a plan of more sub-questions is a fault of format, not a longer plan
PLAN_FORMAT = OutputFormat(
    "Split the task into the sub-questions that solve it, in order, each answerable with one "
    f"number (at most {MAX_BRANCHES}); write each on a line of its own as "
    "`SUBQUESTION: <question>`.",
    "`SUBQUESTION: <question>` lines",
)
_SUBQUESTION = re.compile(r"\s*SUBQUESTION:\s*(\S.*?)\s*")
SUBANSWER, SYNTHESISE, PLAN = "subanswer", "synthesise", "plan"


def parse_plan(text: str) -> list[str] | None:
    """The plan's sub-questions, in order; None without any, or with more than
    ``MAX_BRANCHES``."""
    found = [m[1] for line in text.splitlines() if (m := _SUBQUESTION.fullmatch(line))]
    return found if 0 < len(found) <= MAX_BRANCHES else None


class BranchRules:
    """The Controller's view of a branch: no rule of the task to break (its vote is checked
    as every step's is); a position is the answers decided so far, in branch order."""

    record_size = 1  # [the answer]

    @staticmethod
    def start() -> tuple[str, ...]:
        return ()

    @staticmethod
    def replay(position: tuple[str, ...], record: list[Any]) -> str:
        (answer,) = record
        if not isinstance(answer, str):
            raise TypeError(f"{answer!r} is not an answer")
        return answer

    @staticmethod
    def fault(position: tuple[str, ...], candidate: str) -> str | None:
        return None

    @staticmethod
    def advance(position: tuple[str, ...], candidate: str) -> tuple[str, ...]:
        return (*position, candidate)

    @staticmethod
    def record(candidate: str) -> list[Any]:
        return [candidate]

    @staticmethod
    def snapshot(position: tuple[str, ...]) -> dict[str, Any]:
        return {"answers": list(position)}


async def vote_branch(
    drawer: Drawer,
    messages: list[Message],
    oracle: Oracle,
    index: int,
    count: int,
    read: Callable[[str], str | None],
    voting: Voting,
    red_flags: RedFlags,
    *,
    seeded: bool,
    concurrent: bool,
) -> Decision[str]:
    """Vote on sub-question ``index`` of ``count``: samples read with ``read`` (the task's
    answer under the parsing policy), keyed by the answer itself."""

    async def sample(temperature: float, n: int) -> Sample[Any]:
        seed = (
            call_seed(
                oracle.run_seed, oracle.item_id, f"{oracle.stage}#{index}", oracle.agent,
                oracle.visit, n,
            )
            if seeded
            else None
        )  # fmt: skip
        asked = Oracle(
            oracle.item_id, oracle.gold, SUBANSWER, oracle.stage, oracle.agent, oracle.visit,
            run_seed=oracle.run_seed, branch=BranchView(index, index, count, n),
        )  # fmt: skip
        return await drawer.draw(messages, asked, seed, temperature, read)

    return await vote(sample, str, voting, red_flags, step=index, concurrent=concurrent)


def step_rules(task_name: Any, item: str, stage: str) -> StepRules | None:
    """The rules an auditor replays a decompose stage's recorded steps with, from the task
    the ledger's header names: the task's own steps (hanoi: the tower the item id names),
    or a planner's branches; None for a task that has neither."""
    from govern.tasks.registry import get_task

    try:
        task = get_task(str(task_name))
    except KeyError:
        return None
    kind = getattr(task, "decomposition", None)
    if kind == "branches":
        return BranchRules()
    if kind == "steps":
        try:
            return task.work(item)  # type: ignore[attr-defined]
        except ValueError:
            return None
    return None

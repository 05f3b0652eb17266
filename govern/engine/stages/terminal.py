"""terminal: the item ends; ``completed`` delivers the candidate, ``rejected`` nothing.

An item that reaches a ``completed`` terminal with no candidate (every answer
failed to parse) ends ``no_answer``: it completed nothing, and says so."""

from __future__ import annotations

from govern.engine.stages.common import StageNodes, Update
from govern.spec.models import TerminalStage


def build(stage: TerminalStage) -> StageNodes:
    async def node(state: dict) -> Update:
        outcome = stage.outcome
        if outcome == "completed" and state.get("candidate") is None:
            outcome = "no_answer"
        return {"path": [stage.id], "outcome": outcome}

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})

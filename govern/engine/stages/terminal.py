"""terminal: the item ends; ``completed`` delivers the candidate, ``rejected`` nothing."""

from __future__ import annotations

from govern.engine.stages.common import StageNodes, Update
from govern.spec.models import TerminalStage


def build(stage: TerminalStage) -> StageNodes:
    async def node(state: dict) -> Update:
        return {"path": [stage.id], "outcome": stage.outcome}

    return StageNodes(entry=stage.id, exit=stage.id, nodes={stage.id: node})

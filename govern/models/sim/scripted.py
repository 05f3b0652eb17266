"""A simulator that follows a script instead of chance, for golden traces and debugging.

The script maps a stage id to one entry per visit (the last entry repeats):
an answer such as ``"42"`` for stages that answer, a decision such as
``"reject"`` for reviews, and for votes a mapping of agent id to ``"yes"``,
``"no"``, ``"abstain"`` (valid where the vote allows it) or ``"?"`` (an unparsable
ballot), with ``"*"`` for everyone else.
``"!"`` as an entry gives an unparsable output. A choice vote's entry maps agents to
ballots as they are written after ``VOTE:`` (``"2"``, ``"1, 3"``, ``"3 > 1"``,
``"abstain"``, ``"?"``); unscripted, a voter names candidate 1 (plurality) or every
candidate in slate order (approval, borda). An overseer's entries are under
``"oversee STAGE"`` (the stage it watches): ``"uphold"`` or an intervention word.
Unscripted stages answer ``"1"``, approve, vote yes, and overseers uphold.
"""

from __future__ import annotations

import time
from typing import Any

from govern.models.base import ModelRequest, ModelResponse
from govern.models.sim.client import sim_response

UNPARSABLE = "!"


class ScriptedClient:
    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.requests: list[ModelRequest] = []  # every request, to inspect the prompts

    def _entry(self, stage: str, visit: int, default: Any) -> Any:
        entries = self.script.get(stage)
        if not entries:
            return default
        return entries[min(visit, len(entries)) - 1]

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        self.requests.append(request)
        oracle = request.oracle
        if oracle.act == "vote":
            ballots = self._entry(oracle.stage, oracle.visit, {})
            ballot = ballots.get(oracle.agent, ballots.get("*", "yes"))
            unparsable = "VOTE: undecided" if oracle.abstain else "VOTE: abstain"
            text = unparsable if ballot == "?" else f"VOTE: {ballot}"
        elif oracle.act == "elect":
            ballots = self._entry(oracle.stage, oracle.visit, {})
            numbers = range(1, len(oracle.inputs) + 1)
            unscripted = "1" if oracle.rule == "plurality" else ", ".join(map(str, numbers))
            if oracle.rule == "borda":
                unscripted = unscripted.replace(", ", " > ")
            ballot = ballots.get(oracle.agent, ballots.get("*", unscripted))
            text = "I cannot choose." if ballot == "?" else f"VOTE: {ballot}"
        elif oracle.act == "oversee":
            word = self._entry(f"oversee {oracle.stage}", oracle.visit, "uphold")
            text = "No clear view." if word == UNPARSABLE else f"Examined.\nDECISION: {word}"
        elif oracle.act == "review":
            decision = self._entry(oracle.stage, oracle.visit, "approve")
            text = "No clear view." if decision == UNPARSABLE else f"Checked.\nDECISION: {decision}"
        else:
            answer = self._entry(oracle.stage, oracle.visit, "1")
            text = "No final line." if answer == UNPARSABLE else f"Worked it out.\n#### {answer}"
        return sim_response(request, text, started)

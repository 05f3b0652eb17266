"""Render a simulated act as the text a real model must produce (formats in engine/formats.py)."""

from __future__ import annotations

import random

from govern.models.sim.behaviour import SimAct
from govern.models.sim.params import SimParams

_RAMBLE = "Let me double-check the previous step once more before going on."
# a ballot missing its line: where abstaining is valid, ``VOTE: abstain`` would be a ballot
_NO_BALLOT = {False: "VOTE: abstain", True: "VOTE: undecided"}


def render(act: SimAct, kind: str, params: SimParams, rng: random.Random) -> str:
    """The output text; malformed and overlong at the model's rates, more often when wrong."""
    factor = 1.0 if act.correct else params.wrong_error_factor
    malformed = rng.random() < min(1.0, params.malformed_rate * factor)
    overlong = rng.random() < min(1.0, params.overlong_rate * factor)
    if kind == "vote":
        body = ["I have weighed the candidate answer and its reasoning."]
        final = f"VOTE: {act.decision}" if not malformed else _NO_BALLOT[act.may_abstain]
    elif kind == "elect":  # a choice ballot: candidates' numbers, as formats.parse_choice reads
        body = ["I have compared each candidate's answer and working with my own."]
        final = f"VOTE: {act.decision}" if not malformed else "I cannot settle on a candidate."
    elif kind in ("review", "oversee"):
        body = _review_reasons(act)
        if act.answer is not None:  # an amendment (under whatever word) states its answer
            body.append(f"#### {act.answer}")
        final = (
            f"I lean towards {act.decision}, but I cannot settle it."
            if malformed
            else f"DECISION: {act.decision}"
        )
    else:
        body = [
            "Let me work through this step by step.",
            "First I set out the quantities the problem gives.",
            f"Combining them in order, the result comes to {act.answer}.",
        ]
        final = f"So the answer is probably {act.answer}." if malformed else f"#### {act.answer}"
    if overlong:
        body.extend([_RAMBLE] * rng.randint(200, 400))
    return "\n".join([*body, final])


def _review_reasons(act: SimAct) -> list[str]:
    if act.decision in ("approve", "uphold"):
        return ["I checked each step of the reasoning and the arithmetic; they hold."]
    return [
        "One of the steps does not follow: the arithmetic in the middle is wrong,",
        "so the stated answer cannot stand.",
    ]

"""The output formats agents must follow, and their strict parsers.

A review ends with ``DECISION: <word>``; a ballot ends with ``VOTE: yes`` or
``VOTE: no``; answers follow the task's format (GSM8K: ``#### <number>``).
Anything else is unparsable: it is never guessed into a decision.
"""

from __future__ import annotations

import re

_DECISION = re.compile(r"^DECISION:\s*([a-z_]+)\s*$", re.IGNORECASE)
_VOTE = re.compile(r"^VOTE:\s*(yes|no)\s*$", re.IGNORECASE)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def parse_decision(text: str, allowed: tuple[str, ...]) -> str | None:
    match = _DECISION.match(last_line(text))
    word = match.group(1).lower() if match else None
    return word if word in allowed else None


def parse_ballot(text: str) -> str | None:
    match = _VOTE.match(last_line(text))
    return match.group(1).lower() if match else None


def review_format(decisions: tuple[str, ...], answer_format: str) -> str:
    words = ", ".join(decisions)
    text = (
        f"Give your reasons, then end with a last line `DECISION: <word>` where <word> is "
        f"one of: {words}."
    )
    if "amend" in decisions:
        text += f" To amend, write the corrected solution before that line. {answer_format}"
    return text


VOTE_FORMAT = "Give a short reason, then end with a last line `VOTE: yes` or `VOTE: no`."

"""The output formats agents must follow, and how strictly they are read.

A review ends with ``DECISION: <word>``; a ballot ends with ``VOTE: yes`` or
``VOTE: no`` (or ``VOTE: abstain``, where the vote allows abstaining); answers
follow the task's format (GSM8K: ``#### <number>``).
What counts as following the format is the manifest's ``parsing`` policy:

- ``strict``: the marker line is the last non-blank line, exactly;
- ``tolerant``: the marker stands on one of the last ``TAIL_LINES`` non-blank
  lines, read with markdown emphasis, backticks, heading marks and quoting
  taken off (``### **VOTE: yes**`` then a closing sentence is a ballot); the
  last such line counts;
- ``flexible``: the last marker anywhere in the output (for answers, the last
  number, as lm-evaluation-harness's flexible extraction).

Anything else is unparsable: it is never guessed into a decision, and the raw
text is always kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from govern.spec.models import UPHOLD, ParsingMode

TAIL_LINES = 3

_DECISION = re.compile(r"DECISION:\s*([a-z_]+)", re.IGNORECASE)
_VOTE = re.compile(r"VOTE:\s*(yes|no)\b", re.IGNORECASE)
_VOTE_OR_ABSTAIN = re.compile(r"VOTE:\s*(yes|no|abstain)\b", re.IGNORECASE)
# emphasis marks and backticks; an underscore only where it cannot be part of a word, so
# that an institution's own words (break_session) survive
_DECORATION = re.compile(r"[*`]+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
_LEAD = re.compile(r"^[\s#>\-]+")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def undecorated(line: str, *, keep_hashes: bool = False) -> str:
    """A line without markdown emphasis and backticks (and, unless kept, heading or quote
    marks in front)."""
    line = _DECORATION.sub("", line).strip()
    return line if keep_hashes else _LEAD.sub("", line)


def find_marked(
    text: str, read: Callable[[str], str | None], mode: ParsingMode, *, keep_hashes: bool = False
) -> str | None:
    """The value ``read`` finds on the line the policy looks at, or None."""
    if mode == "strict":
        return read(last_line(text))
    lines = [line for line in text.splitlines() if line.strip()]
    looked_at = lines[-TAIL_LINES:] if mode == "tolerant" else lines
    for line in reversed(looked_at):
        value = read(undecorated(line, keep_hashes=keep_hashes))
        if value is not None:
            return value
    return None


def parse_decision(text: str, allowed: tuple[str, ...], mode: ParsingMode = "strict") -> str | None:
    def read(line: str) -> str | None:
        match = (_DECISION.search if mode == "flexible" else _DECISION.fullmatch)(line.strip())
        word = match.group(1).lower() if match else None
        return word if word in allowed else None

    return find_marked(text, read, mode)


def parse_ballot(text: str, mode: ParsingMode = "strict", *, abstain: bool = False) -> str | None:
    """yes, no, abstain (only where ``abstain`` allows it), or None."""
    marker = _VOTE_OR_ABSTAIN if abstain else _VOTE

    def read(line: str) -> str | None:
        match = (marker.search if mode == "flexible" else marker.fullmatch)(line.strip())
        return match.group(1).lower() if match else None

    return find_marked(text, read, mode)


@dataclass(frozen=True)
class OutputFormat:
    """What an output must end with. The prompt ends on ``instruction`` and, where it helps,
    a one-line example given with the case it fits (``to vote for the motion``); a re-ask
    names ``line``, the form that was missing.

    An answer's format has no example: a small model copies the example's number instead of
    its own (``benchmarks/real_format_example.py`` measures it), so the form alone is given.
    """

    instruction: str
    line: str  # the required last line's form, e.g. "`#### <number>`"
    example: str | None = None  # one such line, e.g. "VOTE: yes"
    example_case: str | None = None  # when the example would be right

    def prompt(self) -> str:
        if self.example is None:
            return self.instruction
        return (
            f"{self.instruction}\nFor example, {self.example_case}, the last line would be: "
            f"{self.example}"
        )

    def reask(self, reply: str) -> str:
        """What to say to a ``reply`` that did not parse."""
        example = f" (for example, {self.example_case}: {self.example})" if self.example else ""
        return (
            f"Your reply did not end with a line of the form {self.line}, so it could not be "
            f"read. Reply again, ending with that line{example}."
        )


@dataclass(frozen=True)
class ReviewFormat(OutputFormat):
    """A review's format: a decision line, and for an amendment the answer line too."""

    decisions: tuple[str, ...] = ()
    answer: OutputFormat | None = None
    amending: tuple[str, ...] = ()  # the words that amend: amend, or the institution's own

    def reask(self, reply: str) -> str:
        amends = parse_decision(reply, self.decisions, "flexible") in self.amending
        if amends and self.answer is not None:  # the decision was there; the answer was not
            return (
                f"Your amendment had no line of the form {self.answer.line} with the corrected "
                f"answer, so it could not be applied. Reply again with the corrected solution, "
                f"its line {self.answer.line}, and then `DECISION: amend`."
            )
        return super().reask(reply)


MEANING_TEXT = {
    "approve": "to let it stand",
    "reject": "to send it back with your reasons",
    "amend": "to put your corrected answer in its place",
    "veto": "to block it",
}


def review_format(
    decisions: tuple[str, ...], answer: OutputFormat, means: dict[str, str] | None = None
) -> ReviewFormat:
    """A review's format; a word of the institution's own (``means``) is explained by what
    it does, and an amend-like word needs the answer line as ``amend`` does."""
    means = means or {}
    listed = ", ".join(f"{d} ({MEANING_TEXT[means[d]]})" if d in means else d for d in decisions)
    words = ", ".join(decisions)
    instruction = (
        f"Give your reasons, then end with a last line `DECISION: <word>` where <word> is "
        f"one of: {listed}."
    )
    amending = tuple(d for d in decisions if means.get(d, d) == "amend")
    if amending:
        instruction += (
            f" To {amending[0]}, write the corrected solution before that line, with its own "
            f"line {answer.line}."
        )
    return ReviewFormat(
        instruction,
        f"`DECISION: <word>` (one of: {words})",
        f"DECISION: {decisions[0]}",
        f"to {decisions[0]}",
        decisions=decisions,
        answer=answer if amending else None,
        amending=amending,
    )


VOTE_FORMAT = OutputFormat(
    "Give a short reason, then end with a last line `VOTE: yes` (to pass the motion) or "
    "`VOTE: no` (to reject it).",
    "`VOTE: yes` or `VOTE: no`",
    "VOTE: yes",
    "to vote for the motion",
)
VOTE_ABSTAIN_FORMAT = OutputFormat(
    "Give a short reason, then end with a last line `VOTE: yes` (to pass the motion), "
    "`VOTE: no` (to reject it) or `VOTE: abstain` (counted only toward the quorum).",
    "`VOTE: yes`, `VOTE: no` or `VOTE: abstain`",
    "VOTE: yes",
    "to vote for the motion",
)


def oversight_format(interventions: dict[str, str]) -> OutputFormat:
    """An overseer's format: a decision line that upholds or names an intervention, each
    given with the stage it sends the item to, so that the overseer knows what it asks for.
    No example line: the instruction already spells out every line, and an example would
    lean towards one of them."""
    words = ", ".join((UPHOLD, *interventions))
    choices = "; ".join(
        f"`DECISION: {word}` sends the item to {target}" for word, target in interventions.items()
    )
    return OutputFormat(
        f"Give your reasons, then end with a last line `DECISION: {UPHOLD}` to let the "
        f"decision stand, or one that intervenes: {choices}.",
        f"`DECISION: <word>` (one of: {words})",
    )


# -- choice ballots: a vote among the numbered candidates of a slate ---------------------------

ABSTAIN = "abstain"
CHOICE_SEPARATORS = {"plurality": "", "approval": ", ", "borda": " > "}
_CHOICE_MARK = re.compile(r"VOTE:[ \t]*", re.IGNORECASE)
_CHOICE_BODY = {
    "plurality": re.compile(r"[0-9]+"),
    "approval": re.compile(r"[0-9]+(?:[ \t]*,[ \t]*[0-9]+)*"),
    "borda": re.compile(r"[0-9]+(?:[ \t]*>[ \t]*[0-9]+)*"),
}
_CHOICE_LEAD = re.compile(r"abstain\b|[0-9][0-9 \t,>]*", re.IGNORECASE)  # flexible: the ballot
_MAX_DIGITS = 6  # a longer number is off any slate (and int() of a huge one would raise)


def parse_choice(
    text: str, rule: str, size: int, mode: ParsingMode = "strict", *, abstain: bool = False
) -> list[int] | str | None:
    """A choice ballot on a slate of ``size`` candidates: the numbers it names (1-based, in
    the order given, which for borda is the ranking), ``abstain`` where ``abstain`` allows
    it, or None. One number for plurality (``VOTE: 2``), one or more separated by commas
    for approval (``VOTE: 1, 3``), a ranking with ``>`` for borda (``VOTE: 3 > 1 > 2``).
    A number off the slate, a number given twice, or any other form is an invalid ballot.

    The policy picks the line as for ``parse_ballot``; under ``strict`` and ``tolerant``
    the whole line is the ballot, under ``flexible`` the ballot is what follows the marker
    up to the first other character (``VOTE: 2, as it checks out`` is a vote for 2)."""

    def read(line: str) -> list[int] | str | None:
        line = line.strip()
        mark = (_CHOICE_MARK.search if mode == "flexible" else _CHOICE_MARK.match)(line)
        if mark is None:
            return None
        body = line[mark.end() :]
        if mode == "flexible":
            lead = _CHOICE_LEAD.match(body)
            body = lead.group(0).rstrip(" \t,>") if lead else ""
        return _choice_ballot(body.strip(), rule, size, abstain)

    return find_marked(text, read, mode)


def _choice_ballot(body: str, rule: str, size: int, abstain: bool) -> list[int] | str | None:
    if body.lower() == ABSTAIN:
        return ABSTAIN if abstain else None
    if not _CHOICE_BODY[rule].fullmatch(body):
        return None
    digits = re.findall(r"[0-9]+", body)
    numbers = [int(d) if len(d) <= _MAX_DIGITS else 0 for d in digits]
    if len(set(numbers)) != len(numbers) or not all(1 <= n <= size for n in numbers):
        return None
    return numbers


def render_choice(ballot: list[int] | str, rule: str) -> str:
    """The ballot line of a parsed ballot: ``parse_choice`` reads it back as the same."""
    if isinstance(ballot, str):
        return f"VOTE: {ballot}"
    return "VOTE: " + CHOICE_SEPARATORS[rule].join(map(str, ballot))


_CHOICE_FORMS = {
    "plurality": ("`VOTE: <number>`", "naming the one candidate you choose"),
    "approval": (
        "`VOTE: <number>, <number>, ...`",
        "listing every candidate you approve of (one or more, each once)",
    ),
    "borda": (
        "`VOTE: <number> > <number> > ...`",
        "ranking candidates from best to worst (each once; a candidate you leave out scores "
        "nothing)",
    ),
}


def choice_format(rule: str, abstain: bool) -> OutputFormat:
    """The ballot of a choice vote, by the candidates' numbers. It has no example line: a
    model shown ``VOTE: 1`` may copy it, and favour the first candidate on the slate."""
    line, how = _CHOICE_FORMS[rule]
    instruction = f"Give a short reason, then end with a last line {line}, {how}."
    if abstain:
        line = f"{line} or `VOTE: abstain`"
        instruction += " To abstain (counted only toward the quorum), end with `VOTE: abstain`."
    return OutputFormat(instruction, line)

"""Compose the messages an agent receives: its standing orders, the task, and exactly
the context its stage needs (the candidate, the reasons it was sent back, the reports)."""

from __future__ import annotations

import functools
import re

from govern.engine.formats import parse_ballot
from govern.engine.state import Candidate
from govern.models.base import Message
from govern.spec.models import Institution
from govern.tasks.base import Task

Section = tuple[str, str]


_DECISION_LINE = re.compile(r"DECISION:\s*([A-Za-z_]+)", re.IGNORECASE)
NO_ERA = frozenset({"", "none", "n/a", "-"})  # an era a system line should not mention


def compose(
    institution: Institution,
    role_id: str,
    question: str,
    purpose: str,
    sections: list[Section],
    output_format: str,
) -> list[Message]:
    role = institution.role(role_id)
    era = "" if institution.era.strip().lower() in NO_ERA else f" ({institution.era.strip()})"
    system = f"You are the {role.title} in {institution.name}{era}.\n\n{role.instructions.strip()}"
    parts = [f"## Task\n{question.strip()}", f"## Your part\n{purpose.strip()}"]
    parts += [f"## {title}\n{body.strip()}" for title, body in sections]
    parts.append(f"## Output format\n{output_format}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def merge_system_into_user(messages: list[Message]) -> list[Message]:
    """The system message folded into the first user message, for models whose chat
    template has no system role."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [m for m in messages if m["role"] != "system"]
    if not system or not rest or rest[0]["role"] != "user":
        return messages
    return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]


def candidate_section(
    candidate: Candidate | None, task: Task, institution: Institution
) -> list[Section]:
    """The answer on the table, for whoever works on it; its answer lines as a report."""
    if candidate is None:
        return []
    stage, agent = candidate["stage"], candidate["agent"]
    if _merged(candidate, institution):
        title = f"Candidate answer (the one most members of {stage} gave; their reports follow)"
    else:
        title = f"Candidate answer (from {stage}, by {agent})"
    return [(title, as_report(candidate["text"], task))]


def _merged(candidate: Candidate, institution: Institution) -> bool:
    """Whether the candidate is a body's merged answer, its text every member's report."""
    return institution.stage(candidate["stage"]).kind == "cluster"


def motion_sections(
    candidate: Candidate | None, task: Task, institution: Institution
) -> list[Section]:
    """What a reviewer or voter sees: the motion and its stated answer on their own, then the
    working or the seats' reports behind it as reports, never as an answer line to copy."""
    if candidate is None:
        return []
    answer, stage, agent = candidate["answer"], candidate["stage"], candidate["agent"]
    if _merged(candidate, institution):
        motion = f"The answer most members of {stage} gave is {answer} (first given by {agent})."
        behind = "Their reports (for reference)"
    else:
        motion = f"The answer proposed is {answer} (from {stage}, by {agent})."
        behind = "The working behind it (for reference)"
    return [("The motion", motion), (behind, as_report(candidate["text"], task))]


def as_report(text: str, task: Task) -> str:
    """The text with each final-answer, decision or ballot line restated in words, so that
    a model reading it is not shown a line in the form it must itself write.

    The same text is reported to many agents (every voter of a stage at once, and the later
    stages), so the reports of the texts seen last are kept."""
    try:
        return _report(text, task)
    except TypeError:  # a task that cannot be a cache key
        return _restated(text, task)


@functools.lru_cache(maxsize=256)
def _report(text: str, task: Task) -> str:
    return _restated(text, task)


def _restated(text: str, task: Task) -> str:
    lines = []
    for line in text.splitlines():
        answer = task.parse_answer(line, "strict") or (
            task.parse_answer(line, "tolerant") if "####" in line else None  # `#### $18`
        )
        vote = parse_ballot(line, "tolerant")
        decision = _DECISION_LINE.search(line)
        if answer is not None:
            line = f"(answer stated: {answer})"
        elif vote is not None:
            line = f"(vote cast: {vote})"
        elif decision is not None:
            line = f"(decision given: {decision.group(1).lower()})"
        lines.append(line)
    return "\n".join(lines)


def feedback_section(feedback: str | None) -> list[Section]:
    return [("It was sent back with these reasons", feedback)] if feedback else []


def reports_section(title: str, reports: list[dict], task: Task) -> list[Section]:
    if not reports:
        return []
    body = "\n\n".join(
        f"### {r['agent']} ({r['stage']})\n{as_report(r['text'], task)}" for r in reports
    )
    return [(title, body)]


def notices_section(notices: list[str]) -> list[Section]:
    return [("Notices from the Controller", "\n\n".join(notices))] if notices else []


SLATE_HEAD, SLATE_TAIL = 1200, 400  # characters of a candidate's working a voter is shown


def slate_section(slate: list[dict], task: Task) -> list[Section]:
    """The candidates of a choice vote, numbered as a ballot names them, each with its
    nominee's seat, its answer and its working as a report. Long working keeps its opening
    and its end: every voter reads every candidate, so a slate must stay a readable size."""
    if not slate:
        return [("The candidates", "Nobody was nominated: there is no candidate to choose.")]
    body = "\n\n".join(
        f"### Candidate {n}: {r['seat']}, answer {r['answer']}\n"
        f"{clipped(as_report(r['text'], task))}"
        for n, r in enumerate(slate, start=1)
    )
    return [("The candidates", body)]


def clipped(text: str, head: int = SLATE_HEAD, tail: int = SLATE_TAIL) -> str:
    """The text, or its first ``head`` and last ``tail`` characters with the cut marked."""
    if len(text) <= head + tail:
        return text
    left_out = len(text) - head - tail
    return f"{text[:head]}\n[... {left_out} characters left out ...]\n{text[-tail:]}"

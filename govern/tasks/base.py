"""What the engine and the runner need from a task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class TaskDataError(Exception):
    """The task's data cannot be found or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class TaskItem:
    id: str
    question: str
    gold: str | None


@dataclass(frozen=True, slots=True)
class TaskData:
    items: list[TaskItem]
    source: str  # where the items came from, for the run's summary
    benchmark: bool  # True only for the official benchmark data, verified
    notice: str | None = None  # shown to the user, e.g. when falling back to a sample


@dataclass(frozen=True, slots=True)
class Score:
    strict: str | None
    flexible: str | None
    correct_strict: bool
    correct_flexible: bool


class Task(Protocol):
    name: str
    description: str
    answer_format: str  # the instruction for the final line of an answer

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData: ...

    def parse_answer(self, text: str) -> str | None:
        """The answer in the strict format, or None: what makes an output parsable."""
        ...

    def score(self, text: str | None, gold: str | None) -> Score: ...

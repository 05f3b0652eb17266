"""What the engine and the runner need from a task."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from govern.engine.formats import OutputFormat
from govern.files import NotRegularFile, read_regular
from govern.spec.models import ParsingMode
from govern.text import printable


class TaskDataError(Exception):
    """The task's data cannot be found or read; the message says what to do."""


def read_data_file(path: Path, how: str, what: str) -> bytes:
    """The bytes of a task's data file, or a :class:`TaskDataError` saying what is wrong.

    Only a regular file is read. The file is opened without waiting (``O_NONBLOCK``)
    and checked after opening, so a FIFO, a device or a folder named by mistake is
    refused at once instead of blocking or reading forever. ``how`` says where the
    path came from (``--data``, an environment variable), ``what`` names the data.
    """
    shown = printable(path)
    try:
        return read_regular(path)
    except FileNotFoundError:
        raise TaskDataError(f"{what} data from {how} not found: {shown}") from None
    except NotRegularFile as exc:
        kind = exc.kind if exc.kind == "a folder" else "not a regular file"
        raise TaskDataError(
            f"{what} data from {how} is {kind}: {shown}; give the path of a .jsonl file"
        ) from None
    except OSError as exc:
        raise TaskDataError(f"cannot read {what} data from {how} {shown}: {exc.strerror}") from None


def data_lines(path: Path, raw: bytes) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a data file as text, numbered from 1; a line that is not
    UTF-8 (a binary file given by mistake) is a :class:`TaskDataError` naming it."""
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            text = line.decode("utf-8")
            if number == 1:  # a byte-order mark some editors write: not part of the data
                text = text.removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise TaskDataError(
                f"{printable(path)}:{number}: not UTF-8 text (byte {line[exc.start]:#04x} at "
                f"column {exc.start + 1}; a binary file?); expected one JSON object a line"
            ) from None
        if text.strip():
            yield number, text


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
    answer_format: OutputFormat  # how an answer ends, as the prompt and a re-ask say it

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData: ...

    def parse_answer(self, text: str, mode: ParsingMode = "strict") -> str | None:
        """The answer as the parsing policy reads it (engine/formats.py), or None: what
        makes an output parsable."""
        ...

    def score(self, text: str | None, gold: str | None) -> Score: ...

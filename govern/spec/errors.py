"""Errors a user can cause in a spec, each pinned to a file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_ERRORS_PER_FILE = 50
"""More errors than this in one file are summed up in one last line: the rest
are almost always consequences, and printing them all floods a terminal."""
MAX_MESSAGE_CHARS = 2000
QUOTE_CHARS = 60


def escape_controls(text: str) -> str:
    """``text`` with every character Python's ``repr`` would escape shown as an escape.

    NUL, terminal escape sequences (ESC, CSI), line breaks, bidirectional overrides
    and lone surrogates (from file names that are not UTF-8) all come from the
    user's files or paths; echoed raw they could rewrite the terminal or forge
    error lines. Backslashes are kept, so Windows paths read as written.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
            continue
        code = ord(char)
        if code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """A value from the user's file, shortened for echoing inside a message."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in a spec file; line and column are 1-based.

    File and message are made printable when the error is made (see ``escape_controls``),
    so no error line, JSON report or summary can carry a control character.
    """

    file: str
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        message = self.message
        if len(message) > MAX_MESSAGE_CHARS:
            cut = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]}… (message cut by {cut} characters)"
        object.__setattr__(self, "message", escape_controls(message))
        object.__setattr__(self, "file", escape_controls(self.file))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


class SpecInvalid(Exception):
    """Raised when a spec cannot be used; carries the errors found, in file order.

    At most ``MAX_ERRORS_PER_FILE`` errors are kept per file; a last error at the
    first one left out says how many more there were. ``total`` counts them all.
    """

    def __init__(self, errors: list[SpecError]) -> None:
        ordered = sorted(errors, key=lambda e: (e.file, e.line, e.column))
        self.total = len(ordered)
        self.errors = _capped(ordered)
        super().__init__("\n".join(str(e) for e in self.errors))


def _capped(ordered: list[SpecError]) -> list[SpecError]:
    kept: list[SpecError] = []
    start = 0
    while start < len(ordered):
        file = ordered[start].file
        end = start
        while end < len(ordered) and ordered[end].file == file:
            end += 1
        count = end - start
        if count <= MAX_ERRORS_PER_FILE:
            kept += ordered[start:end]
        else:
            kept += ordered[start : start + MAX_ERRORS_PER_FILE]
            first_left = ordered[start + MAX_ERRORS_PER_FILE]
            left = count - MAX_ERRORS_PER_FILE
            kept.append(
                SpecError(
                    file,
                    first_left.line,
                    first_left.column,
                    f"and {left} more error{'s' if left > 1 else ''} in this file, "
                    "not shown: fix the ones above first",
                )
            )
        start = end
    return kept


def display_path(path: Path) -> str:
    """The path as a user typed it or relative to the working directory, for error lines."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # elsewhere, unresolvable, a symlink loop
        return str(path)

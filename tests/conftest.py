"""Shared helpers: a small valid institution and a way to collect a file's errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from govern.spec.checks import load_checked
from govern.spec.errors import SpecError, SpecInvalid

ROOT = Path(__file__).resolve().parent.parent

# Line numbers in the error tests refer to this text: keep it stable.
TINY = textwrap.dedent("""\
    id: tiny
    name: Tiny
    era: now
    pattern: gated_pipeline
    history: A small test institution.
    roles:
      - id: writer
        title: Writer
        instructions: Write.
      - id: checker
        title: Checker
        instructions: Check.
    entry: write
    stages:
      - id: write
        kind: draft
        role: writer
        purpose: Write it.
        next: {done: check, unparsable: check}
      - id: check
        kind: review
        role: checker
        purpose: Check it.
        next:
          approve: end
          reject: {to: write, max_visits: 2, exhausted: end}
          unparsable: end
      - id: end
        kind: terminal
    """)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder that counts as a project root (reference checks stop here)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def spec_errors(path: Path) -> list[SpecError]:
    try:
        load_checked(path)
    except SpecInvalid as exc:
        return exc.errors
    return []


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

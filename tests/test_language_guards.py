"""What the second edition's constructs refuse, each at its own line: the mistakes a probe
found validating and then blocking every item, hanging, or leaking a control character."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import spec_errors, write

BASE = """\
id: guarded
name: A guarded republic
era: test
pattern: consensus
history: A magistrate by lot, an assembly with tribunes, a court, and a censor.
roles:
  - {id: citizen, title: Citizen, instructions: Vote., seats: 3}
  - {id: tribune, title: Tribune, instructions: Veto., seats: 2}
  - {id: magistrate, title: Magistrate, instructions: Propose., office: {term: 5}}
  - {id: judge, title: Judge, instructions: Judge.}
  - {id: censor, title: Censor, instructions: Watch.}
entry: seat
stages:
  - id: seat
    kind: office
    office: magistrate
    purpose: Is there a magistrate?
    next: {held: proposal, vacant: sortition}
  - id: sortition
    kind: lot
    pool: [citizen]
    draw: 1
    fills: magistrate
    purpose: Draw the magistrate.
    next: {done: proposal}
  - id: proposal
    kind: propose
    role: magistrate
    purpose: Propose.
    next: {done: assembly, unparsable: failed}
  - id: assembly
    kind: vote
    voters: [citizen, tribune]
    veto_by: [tribune]
    rule: supermajority
    threshold: 2/3
    purpose: Vote.
    next: {pass: court, fail: failed, vetoed: failed, unparsable: failed}
  - id: court
    kind: review
    role: judge
    decisions: [approve, annul]
    means: {annul: veto}
    purpose: Judge.
    next: {approve: enacted, annul: failed, unparsable: enacted}
  - {id: enacted, kind: terminal}
  - {id: failed, kind: terminal, outcome: rejected}
oversight:
  - role: censor
    watches: [proposal]
    rate: 1/2
    interventions: {quash: failed}
"""


def test_the_base_is_valid(project: Path) -> None:
    assert spec_errors(write(project, "guarded.yaml", BASE)) == []


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("  - role: censor\n", "  - role: magistrate\n", 49, "is an office, which may be vacant"),
        ("    office: magistrate\n", "    office: magistrate\n    decisions: [vacant]\n", 17,
         "leave out decisions"),
        ("{quash: failed}", "{unparsable: failed}", 52, "'unparsable' is the outcome"),
        ("means: {annul: veto}", "means: {annul: veto, pass: reject}", 43, "govern's own"),
        ("[approve, annul]", "[approve, annul, vetoed]", 42, "govern's own"),
        ("veto_by: [tribune]", "veto_by: [tribune, tribune]", 34, "listed twice: tribune"),
        ("watches: [proposal]", "watches: []", 50, "watches at least one stage"),
        ("threshold: 2/3", "threshold: ２/３", 36, "is not a share"),
        ("threshold: 2/3", "threshold: .nan", 36, "nan is not a share"),
        ("threshold: 2/3", "threshold: 1234567890123456789/2", 36, "is not a share"),
        ("rate: 1/2", 'rate: "1/\u0664"', 51, "is not a share"),
    ],
)  # fmt: skip
def test_each_mistake_is_an_error_at_its_line(
    project: Path, old: str, new: str, line: int, message: str
) -> None:
    assert old in BASE
    errors = spec_errors(write(project, "guarded.yaml", BASE.replace(old, new)))
    assert errors, "validated"
    assert any(e.line == line and message in e.message for e in errors), errors


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ('"  "', "empty or blank"),
        ('" sim/strong"', "spaces around it"),
        ('"sim/strong\\u001b[31m"', "control character"),
    ],
)
def test_a_model_name_is_printable_and_trimmed(project: Path, model: str, message: str) -> None:
    text = BASE.replace("seats: 3}", f"seats: 3, models: [sim/weak, sim/weak, {model}]}}")
    (error,) = spec_errors(write(project, "guarded.yaml", text))
    assert error.line == 7 and message in error.message
    assert "\x1b" not in error.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("draw: 1\n", 'draw: "1"\n'),
        ("draw: 1\n", "draw: true\n"),
        ("threshold: 2/3\n", "threshold: 2/3\n    min_yes: true\n"),
        ("threshold: 2/3\n", 'threshold: 2/3\n    abstain: "yes"\n'),
        ("{term: 5}", '{term: "5"}'),
        (
            "interventions: {quash: failed}",
            "interventions: {quash: failed}\n    max_interventions: true",
        ),
    ],
)
def test_the_new_counts_and_switches_take_their_own_type(project: Path, old: str, new: str) -> None:
    """A number written as text, or a yes/no where a count goes, is a mistake to point at,
    not something to read as 1."""
    assert old in BASE
    assert spec_errors(write(project, "guarded.yaml", BASE.replace(old, new)))

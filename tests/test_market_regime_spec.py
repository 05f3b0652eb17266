"""Spec checks of market regimes: an overlay counts time in items (agent predicates) or in
market rounds (the Cournot market's signals), never both, and everything it says --
evidence, sanctions, restorations, signal parameters, norms -- is in its own units and
reported at its FILE:LINE:COL; a market regime on another task is refused at run time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, spec_errors, write
from tests.conftest import run_cli as govern

HEAD = """\
id: m
institution: institution.yaml
task: {name: cournot}
models: {default: firm/nash}
governance:
  states: [active, warning, fined, suspended]
  initial: active
  acting: [active, warning, fined]
"""
MARKET_INSTITUTION = ROOT / "institutions" / "markets" / "cournot_market.yaml"
HIGH_HHI = "{any_of: [cournot_high_hhi]}"
STREAK = "{predicate: unparsable_streak}"


def rule(source: str, target: str, evidence: str, sanction: str | None = None) -> str:
    """A rule of the overlay, as an item of its ``rules:`` list."""
    lines = ["- name: collusion", f"  from: {source}", f"  to: {target}", f"  evidence: {evidence}"]
    lines += [f"  sanction: {sanction}"] if sanction else []
    return "".join(f"  {line}\n" for line in lines)


def manifest(project: Path, governance: str) -> tuple[Path, str]:
    """The market institution and a manifest whose overlay ends with ``governance``."""
    write(project, "institution.yaml", MARKET_INSTITUTION.read_text())
    text = HEAD + textwrap.indent(governance, "  ")
    return write(project, "m.yaml", text), text


def position(text: str, needle: str) -> tuple[int, int]:
    """Line and column (1-based) where ``needle`` first starts in ``text``."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


WARNED = "rules:\n" + rule("active", "warning", HIGH_HHI)
STREAKED = "rules:\n" + rule("active", "warning", STREAK)
MISTAKES = [
    pytest.param(
        "rules:\n" + rule("active", "warning", "{any_of: [cournot_high_hhi, cournot_hi_hhi]}"),
        "cournot_hi_hhi]",
        "no market signal 'cournot_hi_hhi' (did you mean 'cournot_high_hhi'?); any_of takes: "
        "cournot_dispersion_collapse, cournot_high_hhi, cournot_specialisation, "
        "cournot_synchronous_moves",
        id="unknown-signal-in-any_of",
    ),
    pytest.param(
        "rules:\n" + rule("active", "warning", "{predicate: cournot_high_hhi, count: 2}"),
        "count: 2",
        "a market signal takes no count: its windows are set under signals:",
        id="count-on-a-signal",
    ),
    pytest.param(
        "rules:\n" + rule("active", "warning", "{any_of: [cournot_high_hhi], window: 3}"),
        "window: 3",
        "a market signal takes no window: its windows are set under signals:",
        id="window-on-a-signal",
    ),
    pytest.param(
        WARNED + rule("warning", "suspended", HIGH_HHI, "{kind: suspension, items: 2}"),
        "items: 2",
        "this overlay counts time in rounds: say rounds: N",
        id="items-in-a-market-regime",
    ),
    pytest.param(
        STREAKED + rule("warning", "suspended", STREAK, "{kind: suspension, rounds: 2}"),
        "rounds: 2",
        "this overlay counts time in items: say items: N",
        id="rounds-in-an-item-regime",
    ),
    pytest.param(
        WARNED + "restorations:\n  - {name: back, from: warning, to: active, clean_items: 3}\n",
        "clean_items: 3",
        "this overlay counts time in rounds: say clean_rounds: N",
        id="clean_items-in-a-market-regime",
    ),
    pytest.param(
        STREAKED + "restorations:\n  - {name: back, from: warning, to: active, clean_rounds: 3}\n",
        "clean_rounds: 3",
        "this overlay counts time in items: say clean_items: N",
        id="clean_rounds-in-an-item-regime",
    ),
    pytest.param(
        WARNED + rule("warning", "suspended", HIGH_HHI, "{kind: replacement}"),
        "kind: replacement",
        "a firm in a market cannot be given replacement: a market regime warns, fines or suspends",
        id="replacement-in-a-market-regime",
    ),
    pytest.param(
        WARNED + rule("warning", "fined", HIGH_HHI, "{kind: loss_of_vote}"),
        "kind: loss_of_vote",
        "a firm in a market cannot be given loss_of_vote",
        id="loss_of_vote-in-a-market-regime",
    ),
    pytest.param(
        WARNED + "signals:\n  cournot_synchronous_moves: {min_move: 1, window: 5, k: 6}\n",
        "cournot_synchronous_moves:",
        "k (6) cannot exceed the window (5 rounds)",
        id="k-above-the-window",
    ),
    pytest.param(
        WARNED + "signals:\n  cournot_high_hhi: {excess: -0.5, window: 5}\n",
        "-0.5",
        "'excess': input should be greater than or equal to 0",
        id="negative-excess",
    ),
    pytest.param(
        WARNED + "signals:\n  cournot_specialisation: {excess: 0.75, windw: 5}\n",
        "windw",
        "unknown key 'windw' (did you mean 'window'?); allowed keys: excess, window",
        id="unknown-parameter",
    ),
    pytest.param(
        WARNED + "signals:\n  cournot_high_hhi: {excess: 0.5, window: true}\n",
        "true",
        "'window': input should be a valid number",
        id="boolean-parameter",
    ),
    pytest.param(
        WARNED + "signals:\n  cournot_hhi: {excess: 0.5}\n",
        "cournot_hhi:",
        "no market signal 'cournot_hhi' (did you mean 'cournot_high_hhi'?)",
        id="unknown-signal-in-signals",
    ),
    pytest.param(
        WARNED + "norms:\n  - {id: fair, who: every firm, modality: must not, what: collude,\n"
        "     rules: [collusion, colusion]}\n",
        "colusion]",
        "no rule named 'colusion' (did you mean 'collusion'?); rules: collusion",
        id="norm-naming-an-unknown-rule",
    ),
]


@pytest.mark.parametrize(("governance", "needle", "message"), MISTAKES)
def test_market_regime_mistakes_are_reported_where_they_are(
    project: Path, governance: str, needle: str, message: str
) -> None:
    path, text = manifest(project, governance)
    line, column = position(text, needle)
    errors = [str(e) for e in spec_errors(path)]
    where = f"{path}:{line}:{column}: error: "
    assert len(errors) == 1 and errors[0].startswith(where + message), errors


def test_mixing_agent_predicates_and_market_signals_is_one_error(project: Path) -> None:
    """The agent rule's count is its own (a streak of two), not a market signal's window."""
    governance = WARNED + rule("warning", "fined", "{predicate: unparsable_streak, count: 2}")
    path, text = manifest(project, governance)
    line, column = position(text, "rules:")
    assert [str(e) for e in spec_errors(path)] == [
        f"{path}:{line}:{column}: error: this overlay mixes agent predicates (time in items) "
        "with market signals (time in market rounds): a regime counts one or the other"
    ]


def test_the_shipped_market_manifests_are_valid() -> None:
    for name in ("cournot_ungoverned", "cournot_constitutional", "cournot_institutional"):
        assert spec_errors(ROOT / "manifests" / f"{name}.yaml") == []


def test_a_market_regime_on_another_task_is_refused_at_run_time(tmp_path: Path) -> None:
    result = govern(
        "run",
        "manifests/cournot_institutional.yaml",
        "--task",
        "gsm8k",
        "--model",
        "sim/medium",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "govern: error: cournot_institutional's governance weighs the Cournot market's "
        "signals: it governs task cournot, not gsm8k"
    )
    assert not (tmp_path / "run").exists()

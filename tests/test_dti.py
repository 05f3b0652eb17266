"""Deficit-Triggered Integration: the monitor's deficits against a naive recount, estimation
from synthetic traces with a known law, the trace reader's errors, and the command."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from govern.trace.dti import (
    MIN_POINTS,
    DegenerateFit,
    DTIMonitor,
    DTIParams,
    Estimate,
    TooFewPoints,
    TraceError,
    TraceEvent,
    TraceUnreadable,
    estimate,
    read_trace,
)
from tests.conftest import run_cli as govern

ROOTS = ("r0", "r1", "r2")
params_strategy = st.builds(
    DTIParams,
    a=st.floats(min_value=0.01, max_value=10),
    beta=st.floats(min_value=0.05, max_value=3),
    delta=st.floats(min_value=0, max_value=20),
)
# (action, root): what a caller tells the monitor, in order
actions = st.lists(
    st.tuples(st.sampled_from(("coordination", "merge", "integrated")), st.sampled_from(ROOTS)),
    max_size=200,
)


def _naive_deficit(params: DTIParams, history: list[tuple[str, str]], root: str) -> float:
    """The deficit recounted from the whole history since the root's last integration."""
    coordination = merges = 0
    for action, seen in history:
        if seen != root:
            continue
        if action == "integrated":
            coordination = merges = 0
        elif action == "coordination":
            coordination += 1
        else:
            merges += 1
    return params.a * coordination**params.beta - merges


def test_defaults_are_the_papers() -> None:
    params = DTIParams()
    assert (params.a, params.beta, params.delta) == (1, 0.6, 2)
    assert DTIMonitor().params == params


@pytest.mark.parametrize(
    "bad",
    [
        {"a": 0},
        {"a": -1},
        {"beta": 0},
        {"beta": math.inf},
        {"delta": -0.1},
        {"delta": math.nan},
        {"gamma": 1},
    ],
)
def test_params_refuse_values_outside_the_law(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        DTIParams(**bad)


@given(params_strategy, actions)
def test_deficit_matches_a_naive_recount_and_fires_exactly_above_delta(
    params: DTIParams, steps: list[tuple[str, str]]
) -> None:
    monitor = DTIMonitor(params)
    history: list[tuple[str, str]] = []
    for action, root in steps:
        history.append((action, root))
        if action == "coordination":
            fired = monitor.coordination(root)
            assert fired == (_naive_deficit(params, history, root) > params.delta)
        elif action == "merge":
            monitor.merge(root)
        else:
            monitor.integrated(root)
            assert monitor.segment(root) == (0, 0)
        for seen in ROOTS:
            assert monitor.deficit(seen) == _naive_deficit(params, history, seen)
            t, merges = monitor.segment(seen)
            assert monitor.pressure(seen) == params.a * t**params.beta
            assert monitor.deficit(seen) == monitor.pressure(seen) - merges


def test_paper_defaults_fire_at_the_fourth_coordination_and_restart() -> None:
    monitor = DTIMonitor()
    # 3 ** 0.6 = 1.93 is within delta = 2; 4 ** 0.6 = 2.30 exceeds it
    assert [monitor.coordination("root") for _ in range(4)] == [False, False, False, True]
    monitor.integrated("root")
    assert monitor.segment("root") == (0, 0) and monitor.deficit("root") == 0
    assert [monitor.coordination("root") for _ in range(4)] == [False, False, False, True]


def test_merges_pay_off_the_deficit() -> None:
    monitor = DTIMonitor()
    for _ in range(3):
        monitor.coordination("root")
    monitor.merge("root")
    assert not monitor.coordination("root")  # 4 ** 0.6 - 1 = 1.30
    assert monitor.segment("root") == (4, 1)


def test_a_deficit_equal_to_delta_does_not_fire() -> None:
    monitor = DTIMonitor(DTIParams(a=1, beta=1, delta=2))
    assert [monitor.coordination("root") for _ in range(3)] == [False, False, True]


def test_forget_drops_a_root_and_unknown_roots_read_empty() -> None:
    monitor = DTIMonitor()
    monitor.coordination("root")
    monitor.forget("root")
    monitor.forget("root")
    assert monitor.segment("root") == (0, 0) and monitor.deficit("root") == 0
    assert monitor.pressure("never seen") == 0


def test_an_overflowing_pressure_cannot_be_configured_and_still_fires() -> None:
    """The language bounds beta (and a, delta) so that no real segment's pressure
    overflows; a monitor given unchecked parameters still fires rather than raise."""
    with pytest.raises(ValueError):
        DTIParams(beta=400)
    monitor = DTIMonitor(DTIParams.model_construct(a=1.0, beta=400.0, delta=2.0))
    for _ in range(6):
        fired = monitor.coordination("root")
    assert fired and monitor.deficit("root") == math.inf


# Estimation


def _law_trace(a: float, beta: float, steps: int, root: str = "root") -> Iterator[TraceEvent]:
    """A root whose merges keep M = round(a t ** beta) after every coordination event."""
    merges = 0
    for t in range(1, steps + 1):
        yield TraceEvent(root, "coordination")
        while merges < round(a * t**beta):
            merges += 1
            yield TraceEvent(root, "merge")
    yield TraceEvent(root, "end")


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=0.5, max_value=2), st.floats(min_value=0.6, max_value=1))
def test_estimate_recovers_a_known_law(a: float, beta: float) -> None:
    steps = math.ceil((400 / a) ** (1 / beta))  # about 400 merges: rounding barely shows
    fitted = estimate([_law_trace(a, beta, steps)])
    assert fitted.beta == pytest.approx(beta, abs=0.03)
    assert fitted.a == pytest.approx(a, rel=0.15)
    assert fitted.r_squared > 0.99
    assert fitted.points == round(a * steps**beta) and fitted.roots == 1


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=500), st.integers(1, 20)),
        min_size=MIN_POINTS,
        max_size=30,
    ).filter(lambda points: len({t for t, _ in points}) > 1)
)
def test_the_streamed_fit_is_ordinary_least_squares(points: list[tuple[int, int]]) -> None:
    trace = []
    for number, (t, merges) in enumerate(points):
        root = f"r{number}"  # a root of its own: its merges are at (t, 1) ... (t, merges)
        trace += [TraceEvent(root, "coordination")] * t
        trace += [TraceEvent(root, "merge")] * merges
    fitted_points = [(t, m) for t, merges in points for m in range(1, merges + 1)]
    x = np.log([t for t, _ in fitted_points])
    y = np.log([m for _, m in fitted_points])
    slope, intercept = np.polyfit(x, y, 1)
    try:
        fitted = estimate([trace])
    except DegenerateFit:
        assert slope < 1e-9
        return
    assert fitted.beta == pytest.approx(slope, rel=1e-6, abs=1e-9)
    assert math.log(fitted.a) == pytest.approx(intercept, rel=1e-6, abs=1e-6)
    assert fitted.r_squared == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, abs=1e-6)
    assert fitted.points == len(fitted_points) and fitted.roots == len(points)


def test_delta_is_the_median_deficit_at_the_roots_ends() -> None:
    events = [TraceEvent("fit", kind) for kind in ["coordination", "merge"] * 6]
    # fit: (t, M) = (1, 1) ... (6, 6), so a = 1 and beta = 1; then three roots end with
    # deficits 3 - 0, 2 - 1 (its merge came first, at t = 0: no point) and 5 - 0, the last
    # without an end mark (its last event ends it)
    events += [TraceEvent("x", "coordination")] * 3 + [TraceEvent("x", "end")]
    events += [TraceEvent("y", "merge")] + [TraceEvent("y", "coordination")] * 2
    events += [TraceEvent("y", "end")] + [TraceEvent("z", "coordination")] * 5
    fitted = estimate([events])
    assert fitted.skipped == 1
    assert fitted.a == pytest.approx(1) and fitted.beta == pytest.approx(1)
    assert fitted.roots == 4  # fit ends with deficit 0: median of 0, 1, 3, 5 is 2
    assert fitted.delta == pytest.approx(2) and not fitted.delta_clamped
    assert fitted.params() == DTIParams(a=fitted.a, beta=fitted.beta, delta=fitted.delta)


def test_a_negative_median_deficit_clamps_delta_to_zero() -> None:
    events = [TraceEvent("fit", kind) for kind in ["coordination", "merge"] * 6]
    events += [TraceEvent("fit", "merge")] * 4  # merges after the last coordination: ahead
    fitted = estimate([events])
    assert fitted.median_deficit < 0 and fitted.delta == 0 and fitted.delta_clamped


def test_roots_are_per_trace_and_an_ended_root_starts_again() -> None:
    one = [TraceEvent("r", "coordination"), TraceEvent("r", "merge")]
    fitted = estimate([[*one, TraceEvent("r", "end"), *one], one, one, [*one, *one]])
    assert fitted.roots == 5 and fitted.points == 6  # the last root's (2, 2) is a point too


def test_merges_before_any_coordination_are_skipped_and_counted() -> None:
    events = [TraceEvent("early", "merge")] * 2
    events += [TraceEvent("fit", kind) for kind in ["coordination", "merge"] * 5]
    fitted = estimate([events])
    assert fitted.skipped == 2 and fitted.points == 5


def test_too_few_points_refuses_naming_how_many() -> None:
    events = [TraceEvent("early", "merge")]
    events += [TraceEvent("r", kind) for kind in ["coordination", "merge"] * 4]
    with pytest.raises(TooFewPoints) as raised:
        estimate([events])
    assert "4 usable (t, M) points (1 more, at t = 0, cannot be logged)" in str(raised.value)
    assert f"at least {MIN_POINTS} needed" in str(raised.value)
    assert raised.value.points == 4 and isinstance(raised.value, ValueError)


def test_points_all_at_one_t_refuse() -> None:
    events = [TraceEvent("r", "coordination")] + [TraceEvent("r", "merge")] * 6
    with pytest.raises(DegenerateFit, match="all 6 points have t = 1"):
        estimate([events])


# Reading traces


def _jsonl(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_read_trace_keeps_root_and_kind_and_ignores_other_keys(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        "t.jsonl",
        '{"root": "a", "kind": "coordination", "agent": "x", "at": 1.5}',
        "",
        '{"kind": "merge", "root": "a"}',
        '{"root": "a", "kind": "end"}',
    )
    assert list(read_trace(path)) == [
        TraceEvent("a", "coordination"),
        TraceEvent("a", "merge"),
        TraceEvent("a", "end"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ('["root", "kind"]', "a JSON list, not an object"),
        ('{"root": "a"}', "no 'kind'"),
        ('{"root": "a", "kind": "fork"}', 'unknown kind "fork"'),
        ('{"root": "a", "kind": ["merge"]}', 'unknown kind ["merge"]'),
        ('{"kind": "merge"}', "no 'root'"),
        ('{"root": "", "kind": "merge"}', "'root' is not a non-empty string"),
        ('{"root": 7, "kind": "merge"}', "'root' is not a non-empty string"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _jsonl(tmp_path, "t.jsonl", '{"root": "a", "kind": "merge"}', "", line)
    with pytest.raises(TraceError) as raised:
        list(read_trace(path))
    assert str(raised.value).startswith(f"{path}:3: ")
    assert message in str(raised.value)


def test_a_line_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"root": "a", "kind": "merge"}\n\xff\xfe\n')
    with pytest.raises(TraceError, match=f"^{re.escape(str(path))}:2: not UTF-8"):
        list(read_trace(path))


@given(st.text(max_size=40))
def test_any_line_is_an_event_or_a_trace_error(line: str) -> None:
    from govern.trace.dti import _event

    try:
        event = _event(line, "f:1")
    except TraceError as exc:
        assert str(exc).startswith("f:1: ")
    else:
        assert event.root and event.kind in ("coordination", "merge", "end")


def test_a_missing_trace_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(TraceUnreadable, match="not found"):
        list(read_trace(tmp_path / "absent.jsonl"))


# The command


def _law_file(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"root": event.root, "kind": event.kind, "extra": 1})
        for event in _law_trace(1.0, 0.6, math.ceil(400 ** (1 / 0.6)))
    ]
    return _jsonl(tmp_path, "law.jsonl", *lines)


def test_cli_estimate_prints_the_fit(tmp_path: Path) -> None:
    path = _law_file(tmp_path)
    result = govern("dti", "estimate", str(path))
    assert result.returncode == 0, result.stderr
    assert f"fitted from 1 trace: {path}" in result.stdout
    assert "beta" in result.stdout and "R^2" in result.stdout
    result = govern("dti", "estimate", "--json", str(path), str(path))
    assert result.returncode == 0, result.stderr
    fitted = Estimate.model_validate_json(result.stdout)
    assert fitted.beta == pytest.approx(0.6, abs=0.03) and fitted.roots == 2
    assert "fitted from 2 traces" in result.stderr


def test_cli_bad_line_and_too_few_points_exit_1(tmp_path: Path) -> None:
    bad = _jsonl(tmp_path, "bad.jsonl", '{"root": "a", "kind": "merge"}', '{"root": "a"}')
    result = govern("dti", "estimate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: no 'kind'" in result.stderr and "Traceback" not in result.stderr
    few = _jsonl(tmp_path, "few.jsonl", '{"root": "a", "kind": "coordination"}')
    result = govern("dti", "estimate", str(few))
    assert result.returncode == 1
    assert "0 usable (t, M) points" in result.stderr and "Traceback" not in result.stderr


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    assert govern("dti").returncode == 2
    assert govern("dti", "estimate").returncode == 2
    missing = govern("dti", "estimate", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    shown = govern("dti", "--help")
    assert shown.returncode == 0 and "estimate" in shown.stdout


def test_a_trace_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    from govern.trace.dti import read_trace

    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"root": "a", "kind": "coordination"}\n{"root": "a", "kind": "end"}\n'
    )
    assert [event.kind for event in read_trace(path)] == ["coordination", "end"]

"""Deficit-Triggered Integration (DTI, "Do Agent Societies Develop Intellectual Elites?",
arXiv 2604.02674): integrate parallel work when coordination has outrun its merges.

Each root of decomposed or parallel work (a cascade, a fan-out) is watched in segments. In
the current segment of root r, t_r counts coordination events and M_r counts merges. The
paper finds that the merges a society needs grow sublinearly with its coordination, so the
pressure to merge is P_r = a * t_r ** beta and the deficit is D_r = P_r - M_r. When D_r
exceeds delta, the branches have drifted apart for longer than the work tolerates: the
caller runs an integrate stage that synthesises the branch outputs into one, reports it with
:meth:`DTIMonitor.integrated`, and the root's segment starts again from t_r = M_r = 0.

:class:`DTIMonitor` keeps two counters per live root and nothing else, so each event costs
O(1) however long the run. :func:`estimate` fits a, beta and delta to baseline traces (JSONL
read by :func:`read_trace`), so the defaults (the paper's: a = 1, beta = 0.6, delta = 2) can
be replaced by what a workload's own ungoverned runs show.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from govern.spec.errors import escape_controls, quoted
from govern.spec.models import DTIParams
from govern.tasks.base import TaskDataError, data_lines, read_data_file
from govern.text import printable

__all__ = [
    "MIN_POINTS",
    "DTIMonitor",
    "DTIParams",
    "DegenerateFit",
    "Estimate",
    "EstimationError",
    "EventKind",
    "TooFewPoints",
    "TraceError",
    "TraceEvent",
    "TraceUnreadable",
    "estimate",
    "read_trace",
]

EventKind = Literal["coordination", "merge", "end"]
_KINDS: dict[str, EventKind] = {kind: kind for kind in get_args(EventKind)}

MIN_POINTS = 5  # fewer (t, M) points than this cannot tell a power law from noise


class _Segment:
    """The counts of one root's current segment; slotted and mutable because it is updated
    on every event of a hot loop, where a new object per event would cost more than the check."""

    __slots__ = ("coordination", "merges")

    def __init__(self) -> None:
        self.coordination = 0
        self.merges = 0


class DTIMonitor:
    """Per-root deficits, updated in O(1) per event; no history is kept.

    A root is a string id of the work being decomposed; roots the monitor has not seen read as
    an empty segment (t = M = 0). Call :meth:`forget` when a root's work ends, so a long run's
    memory stays bounded by the roots alive at once.
    """

    __slots__ = ("_a", "_beta", "_delta", "_segments", "params")

    def __init__(self, params: DTIParams | None = None) -> None:
        self.params = params if params is not None else DTIParams()
        # Read once: attribute lookups on a frozen pydantic model cost more than on slots.
        self._a = self.params.a
        self._beta = self.params.beta
        self._delta = self.params.delta
        self._segments: dict[str, _Segment] = {}

    def coordination(self, root: str) -> bool:
        """Record one coordination event of ``root``; True when its deficit now exceeds delta,
        which is the caller's signal to integrate (and then call :meth:`integrated`).

        Only coordination raises the deficit, so this is the only event that can make
        integration due."""
        segment = self._segments.get(root)
        if segment is None:
            segment = self._segments[root] = _Segment()
        segment.coordination += 1
        return self._pressure(segment.coordination) - segment.merges > self._delta

    def merge(self, root: str) -> None:
        """Record a merge the work made on its own: it pays off deficit within the segment."""
        segment = self._segments.get(root)
        if segment is None:
            segment = self._segments[root] = _Segment()
        segment.merges += 1

    def integrated(self, root: str) -> None:
        """Record the integration's merge: the branches are one again, so the root's segment
        restarts from t = M = 0 and pressure builds afresh."""
        segment = self._segments.get(root)
        if segment is None:
            self._segments[root] = _Segment()
        else:
            segment.coordination = 0
            segment.merges = 0

    def forget(self, root: str) -> None:
        """Drop a root whose work has ended (unknown roots are ignored: ending twice is
        harmless)."""
        self._segments.pop(root, None)

    def segment(self, root: str) -> tuple[int, int]:
        """(t, M): the coordination events and merges of ``root``'s current segment."""
        segment = self._segments.get(root)
        if segment is None:
            return 0, 0
        return segment.coordination, segment.merges

    def pressure(self, root: str) -> float:
        """P = a * t ** beta for ``root``'s current segment."""
        return self._pressure(self.segment(root)[0])

    def deficit(self, root: str) -> float:
        """D = P - M for ``root``'s current segment; integration is due when D > delta."""
        coordination, merges = self.segment(root)
        return self._pressure(coordination) - merges

    def _pressure(self, coordination: int) -> float:
        try:
            return self._a * coordination**self._beta
        except OverflowError:  # t ** beta beyond a float: pressure past any deficit
            return math.inf


# Reading traces


class TraceError(ValueError):
    """A trace file's content is not a DTI trace; the message starts with FILE:LINE."""


class TraceUnreadable(TraceError):
    """A trace file cannot be read at all (missing, a folder, not permitted)."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One event of a baseline trace, in time order: ``end`` marks the end of a root's work.

    A slotted dataclass, not a pydantic model: traces hold millions of events and each is
    built by :func:`read_trace` from a line it has checked."""

    root: str
    kind: EventKind


def read_trace(path: Path) -> Iterator[TraceEvent]:
    """The events of a JSONL trace, one object a line: ``{"root": "...", "kind":
    "coordination" | "merge" | "end"}``; other keys are allowed and ignored (a richer event
    tracer writes them). Blank lines are skipped. A bad line is a :class:`TraceError` naming
    FILE:LINE; a file that cannot be read is a :class:`TraceUnreadable`."""
    try:
        raw = read_data_file(path, "the command line", "DTI trace")
    except TaskDataError as exc:
        raise TraceUnreadable(str(exc)) from None
    shown = printable(path)
    try:
        for number, line in data_lines(path, raw):
            yield _event(line, f"{shown}:{number}")
    except TaskDataError as exc:  # a line that is not UTF-8
        raise TraceError(str(exc)) from None


def _event(line: str, where: str) -> TraceEvent:
    expected = 'expected {"root": "...", "kind": "coordination" | "merge" | "end"}'
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested arrays
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "unreadable"
        raise TraceError(f"{where}: not JSON ({reason}); {expected}") from None
    if not isinstance(value, dict):
        raise TraceError(f"{where}: a JSON {type(value).__name__}, not an object; {expected}")
    if "kind" not in value:
        raise TraceError(f"{where}: no 'kind'; {expected}")
    kind = _KINDS.get(value["kind"]) if isinstance(value["kind"], str) else None
    if kind is None:
        shown = escape_controls(quoted(json.dumps(value["kind"], ensure_ascii=False)))
        raise TraceError(f"{where}: unknown kind {shown}; {expected}")
    root = value.get("root")
    if not isinstance(root, str) or not root:
        shown = "no 'root'" if "root" not in value else "'root' is not a non-empty string"
        raise TraceError(f"{where}: {shown}; {expected}")
    return TraceEvent(root, kind)


# Estimating the law from baseline traces


class EstimationError(ValueError):
    """The traces cannot determine a, beta and delta; the message says why."""


class TooFewPoints(EstimationError):
    """Fewer than :data:`MIN_POINTS` usable (t, M) points."""

    def __init__(self, points: int, skipped: int) -> None:
        self.points = points
        self.skipped = skipped
        also = f" ({skipped} more, at t = 0, cannot be logged)" if skipped else ""
        super().__init__(
            f"too few points to fit DTI: {points} usable (t, M) point"
            f"{'' if points == 1 else 's'}{also}, at least {MIN_POINTS} needed; a point is a "
            "merge event after at least one coordination event of its root"
        )


class DegenerateFit(EstimationError):
    """The points fix no positive slope: all at one t, or merges not growing with t."""


class Estimate(BaseModel):
    """a, beta and delta fitted to baseline traces, and how well the power law fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: float = Field(description="exp of the fit's intercept")
    beta: float = Field(description="the fit's slope of log M on log t")
    delta: float = Field(description="median deficit at a root's end, at least 0")
    median_deficit: float = Field(description="the median before clamping at 0")
    delta_clamped: bool = Field(
        description="the median deficit was negative (merges ran ahead of the pressure), so "
        "delta is 0: integrate as soon as any deficit shows"
    )
    points: int = Field(description="(t, M) points fitted, one per merge event with t > 0")
    skipped: int = Field(description="merge events at t = 0, which log t cannot take")
    roots: int = Field(description="roots whose end deficits give delta")
    r_squared: float = Field(description="R^2 of the least-squares fit of log M on log t")

    def params(self) -> DTIParams:
        """The fitted law, for a :class:`DTIMonitor`."""
        return DTIParams(a=self.a, beta=self.beta, delta=self.delta)


class _LogLogFit:
    """Ordinary least squares of y = log M on x = log t, accumulated one point at a time
    (Welford's co-moments: stable, and O(1) memory however many merges the traces hold)."""

    __slots__ = ("co_xx", "co_xy", "co_yy", "mean_x", "mean_y", "n", "t_max", "t_min")

    def __init__(self) -> None:
        self.n = 0
        self.mean_x = self.mean_y = 0.0
        self.co_xx = self.co_xy = self.co_yy = 0.0
        self.t_min = self.t_max = 0

    def add(self, coordination: int, merges: int) -> None:
        x, y = math.log(coordination), math.log(merges)
        self.n += 1
        dx = x - self.mean_x
        self.mean_x += dx / self.n
        dy = y - self.mean_y
        self.mean_y += dy / self.n
        self.co_xx += dx * (x - self.mean_x)
        self.co_xy += dx * (y - self.mean_y)
        self.co_yy += dy * (y - self.mean_y)
        if self.n == 1:
            self.t_min = self.t_max = coordination
        else:
            self.t_min = min(self.t_min, coordination)
            self.t_max = max(self.t_max, coordination)

    def solve(self, skipped: int) -> tuple[float, float, float]:
        """(a, beta, R^2), or an EstimationError when the points cannot fix them."""
        if self.n < MIN_POINTS:
            raise TooFewPoints(self.n, skipped)
        if self.t_min == self.t_max:
            raise DegenerateFit(
                f"all {self.n} points have t = {self.t_min}: the slope beta is undefined; the "
                "traces need merges after different amounts of coordination"
            )
        beta = self.co_xy / self.co_xx
        if not beta > 0:
            raise DegenerateFit(
                f"the fitted beta is {beta:.6g}, not positive: merges do not grow with "
                "coordination in these traces, so no pressure law fits them"
            )
        a = math.exp(self.mean_y - beta * self.mean_x)
        # co_yy > 0 here: a positive slope needs more than one distinct M.
        r_squared = self.co_xy**2 / (self.co_xx * self.co_yy)
        return a, beta, r_squared


def estimate(traces: Iterable[Iterable[TraceEvent]]) -> Estimate:
    """Fit DTI's law to baseline traces, each an iterable of events in time order.

    Every merge contributes the point (t, M): its root's coordination events and merges so far
    (this one included) since the root began, and log M = log a + beta log t is fitted by
    ordinary least squares. delta is the median, over roots, of the deficit a t^beta - M at the
    root's end (its ``end`` event, or its last event when the trace has none), clamped at 0.
    Roots are per trace, and a root id seen after its ``end`` starts a new root. Raises
    :class:`TooFewPoints` or :class:`DegenerateFit` when the law cannot be fitted."""
    fit = _LogLogFit()
    skipped = 0
    ends: list[tuple[int, int]] = []
    for trace in traces:
        open_roots: dict[str, list[int]] = {}  # root -> [t, M] since the root began
        for event in trace:
            counts = open_roots.get(event.root)
            if counts is None:
                counts = open_roots[event.root] = [0, 0]
            if event.kind == "coordination":
                counts[0] += 1
            elif event.kind == "merge":
                counts[1] += 1
                if counts[0] == 0:
                    skipped += 1
                else:
                    fit.add(counts[0], counts[1])
            else:
                ends.append((counts[0], counts[1]))
                del open_roots[event.root]
        ends.extend((t, m) for t, m in open_roots.values())
    a, beta, r_squared = fit.solve(skipped)
    at_end = np.array(ends, dtype=np.float64)
    with np.errstate(over="ignore"):
        deficits = a * np.power(at_end[:, 0], beta) - at_end[:, 1]
    median = float(np.median(deficits))
    return Estimate(
        a=a,
        beta=beta,
        delta=max(median, 0.0),
        median_deficit=median,
        delta_clamped=median < 0,
        points=fit.n,
        skipped=skipped,
        roots=len(ends),
        r_squared=r_squared,
    )

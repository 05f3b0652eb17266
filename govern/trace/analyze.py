"""`govern trace analyze`: a run's (or an experiment's) events, their cascades, the power-law
fit of one cascade measure, and how concentrated the attention is.

Events are read from each run folder's ``events.jsonl`` (an experiment's cells' folders
too). A measure whose values are all below x_min or too few for a tail (fewer than 50)
gets a clear message instead of a fit (cascades of size 0 are counted, never fitted: a
discrete power law starts at 1); a run without events (one made before the tracer,
or whose items made no model calls) says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy.stats import t as student_t

from govern.experiments.figures import PARTLY_NOTE, SIMULATED_NOTE
from govern.files import parse_json, read_regular
from govern.ledger.binding import EVENTS
from govern.run.resume import REQUEST_FILE
from govern.trace.cascades import MEASURES, Cascade, Measure, cascades
from govern.trace.elites import (
    Attachment,
    Concentration,
    NoAttachment,
    attachment_exponent,
    concentration,
)
from govern.trace.events import Event
from govern.trace.powerlaw import NoPowerLawFit, PowerLawFit, TailTooShort, analyse


class TraceError(ValueError):
    """The events cannot be read; the message names the file and line."""


class NoEvents(TraceError):
    """The folder has no events to read (a run made before the tracer)."""


class Scaling(BaseModel):
    """How the largest cascade (in events) grows with the agents of a run: the slope of
    log largest on log N across runs, with its 95% t interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exponent: float
    low: float
    high: float
    runs: int
    points: list[tuple[int, int]]  # (agents, largest cascade) per run


class RunShape(BaseModel):
    """One run's size and how its attention and cascades stood: the points of the figures
    against N."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str
    agents: int
    largest: int  # the largest cascade, in events
    gini: float
    top_share: float


class Analysis(BaseModel):
    """What `govern trace analyze` reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int
    events: int
    cascades: int
    measure: Measure
    values: dict[str, int]  # value -> how many cascades have it
    fit: PowerLawFit | None
    no_fit: str | None  # why there is no fit
    concentration: Concentration
    attachment: Attachment | None
    no_attachment: str | None  # why there is no exponent
    scaling: Scaling | None
    no_scaling: str | None  # why there is no exponent of the largest cascade
    simulated: str  # yes | partly | no: whether the runs' models were govern's simulator
    shapes: list[RunShape]  # per run, by size


def event_files(target: Path) -> list[Path]:
    """The events files of a run folder, or of every cell of an experiment folder."""
    if (target / EVENTS).is_file():
        return [target / EVENTS]
    found = sorted(target.glob(f"cells/*/{EVENTS}"))
    if not found:
        raise NoEvents(
            f"{target}: no {EVENTS} here or in its cells (a run made before the tracer, or "
            "not a run folder)"
        )
    return found


def read_events(path: Path) -> list[Event]:
    """A run's events, each checked: a well-formed event, an id of its own, and parents that
    are earlier events of the same file (so the graph has no cycle)."""
    events: list[Event] = []
    seen: set[str] = set()
    try:
        raw = read_regular(path)
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            event = Event.model_validate(parse_json(line))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "the line"
            raise TraceError(f"{path}:{number}: not an event: {where}: {error['msg']}") from None
        except ValueError as exc:
            raise TraceError(f"{path}:{number}: not an event: {exc}") from None
        if event.id in seen:
            raise TraceError(f"{path}:{number}: the event id {event.id} is used twice")
        unknown = [p for p in event.parents if p not in seen]
        if unknown:
            raise TraceError(
                f"{path}:{number}: event {event.id} builds on {unknown[0]}, which is not an "
                "earlier event of this file"
            )
        seen.add(event.id)
        events.append(event)
    return events


def analyze(
    target: Path, measure: Measure = "tce", *, bootstrap: int = 0, seed: int = 0
) -> Analysis:
    files = event_files(target)
    by_run = [read_events(path) for path in files]
    events = [event for run in by_run for event in run]
    per_run = [cascades(run) for run in by_run]  # cascades never cross runs
    found = [cascade for run in per_run for cascade in run]
    shapes = sorted(
        (_shape(run, mine) for run, mine in zip(by_run, per_run, strict=True) if run),
        key=lambda shape: (shape.agents, shape.run),
    )
    scaling, no_scaling = _scaling(shapes)
    values = [c.measure(measure) for c in found]
    positive = [v for v in values if v > 0]  # a power law's support starts at 1
    fitted, no_fit = None, None
    try:
        fitted = analyse(positive, discrete=True, replicates=bootstrap, seed=seed)
    except (TailTooShort, NoPowerLawFit) as exc:
        no_fit = str(exc)
    except ValueError as exc:  # nothing positive to fit at all
        no_fit = f"no power law can be fitted to these values: {exc}"
    attachment, no_attachment = None, None
    try:
        attachment = attachment_exponent(events)
    except NoAttachment as exc:
        no_attachment = str(exc)
    histogram: dict[str, int] = {}
    for value in sorted(values):
        histogram[str(value)] = histogram.get(str(value), 0) + 1
    return Analysis(
        runs=len(files),
        events=len(events),
        cascades=len(found),
        measure=measure,
        values=histogram,
        fit=fitted,
        no_fit=no_fit,
        concentration=concentration(events),
        attachment=attachment,
        no_attachment=no_attachment,
        scaling=scaling,
        no_scaling=no_scaling,
        simulated=_simulated(files),
        shapes=shapes,
    )


def _shape(run: list[Event], found: list[Cascade]) -> RunShape:
    """One run's size, its largest cascade (of ``found``, its cascades) and concentration."""
    share = concentration(run)
    return RunShape(
        run=run[0].run,
        agents=len({e.agent for e in run}),
        largest=max((c.effort_events for c in found), default=0),
        gini=share.gini,
        top_share=share.top_share,
    )


def _scaling(shapes: list[RunShape]) -> tuple[Scaling | None, str | None]:
    """The largest cascade against the agents, across runs of at least 3 different sizes:
    the fit, or why there is none."""
    points = [(s.agents, s.largest) for s in shapes]
    usable = [(n, largest) for n, largest in points if largest > 0]
    sizes = {n for n, _ in usable}
    if len(sizes) < 3:
        return None, (
            f"runs of {len(sizes)} different size(s) with a cascade; the largest cascade's "
            "growth with the agents needs runs of at least 3 sizes"
        )
    x = np.log([n for n, _ in usable])
    y = np.log([largest for _, largest in usable])
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    dof = len(usable) - 2  # at least 1: three sizes, so three runs or more
    spread = float(np.sqrt((residuals**2).sum() / dof / ((x - x.mean()) ** 2).sum()))
    margin = float(student_t.ppf(0.975, dof)) * spread
    scaling = Scaling(
        exponent=float(slope),
        low=float(slope) - margin,
        high=float(slope) + margin,
        runs=len(usable),
        points=sorted(points),
    )
    return scaling, None


def _simulated(files: list[Path]) -> str:
    """Whether the runs ran on govern's simulator, as each says of itself: its summary, or
    (a run killed before it wrote one) the resolved request it started with."""
    said = []
    for path in files:
        flag = None
        for name in ("summary.json", REQUEST_FILE):
            try:
                flag = parse_json(read_regular(path.parent / name)).get("simulated")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(flag, bool):
                break
        said.append(flag is True)
    return "yes" if all(said) else "partly" if any(said) else "no"


def render(analysis: Analysis) -> str:
    """The analysis as a few readable lines."""
    label = {"yes": [SIMULATED_NOTE], "partly": [PARTLY_NOTE], "no": []}[analysis.simulated]
    lines = [
        *label,
        f"{analysis.events:,} events in {analysis.runs} run(s); {analysis.cascades:,} "
        f"cascades; measure {analysis.measure} ({', '.join(MEASURES)})",
    ]
    fitted = analysis.fit
    if fitted is None:
        lines.append(f"power law: no fit: {analysis.no_fit}")
    else:
        lines.append(
            f"power law: alpha {fitted.alpha:.3f} ± {fitted.sigma:.3f}, x_min {fitted.x_min:g}, "
            f"{fitted.n_tail} of {fitted.n} values in the tail, KS {fitted.ks:.4f}"
            + (f", bootstrap p {fitted.p_value:.3f}" if fitted.p_value is not None else "")
        )
        for c in fitted.comparisons:
            verdict = "significant" if c.significant else "not significant"
            lines.append(
                f"  vs {c.alternative}: R {c.log_likelihood_ratio:+.3f}, normalised "
                f"{c.normalised_ratio:+.3f}, p {c.p_value:.3g}: favours {c.favoured} "
                f"({verdict})"
            )
    share = analysis.concentration
    lines.append(
        f"attention: {share.agents} agents, Gini {share.gini:.3f}, top 10% hold "
        f"{share.top_share:.1%}, effective agents {share.effective_agents:.2f}"
    )
    scaling = analysis.scaling
    lines.append(
        f"largest cascade ~ N^{scaling.exponent:.3f} [{scaling.low:.3f}, {scaling.high:.3f}] "
        f"over {scaling.runs} runs"
        if scaling is not None
        else f"largest cascade against N: {analysis.no_scaling}"
    )
    found = analysis.attachment
    lines.append(
        f"preferential attachment: beta {found.beta:.3f} ± {found.sigma:.3f} over "
        f"{found.choices:,} choices"
        if found is not None
        else f"preferential attachment: no estimate: {analysis.no_attachment}"
    )
    return "\n".join(lines)

"""The tracer's figures: a cascade measure's CCDF on log-log axes with the fitted power law,
drawn with the report's style (``experiments/figures.py``): the same data, the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import zeta

from govern.experiments.figures import (
    COLOURS,
    STYLE,
    Chart,
    new_figure,
    save_figure,
    stamp_simulated,
)
from govern.trace.analyze import (
    Analysis,
    NoEvents,
    RunShape,
    TraceError,
    analyze,
    render,
)
from govern.trace.powerlaw import PowerLawFit, ccdf


def ccdf_chart(
    values: list[int], fitted: PowerLawFit | None, measure: str, simulated: str
) -> Chart:
    """P(X >= x) of the cascades' ``measure`` (values of at least 1), and the fit's line
    from x_min: the tail's share of the data times zeta(alpha, x) / zeta(alpha, x_min)."""
    import matplotlib

    positive = [v for v in values if v > 0]
    figure = new_figure(6.0, 4.2)
    with matplotlib.rc_context(STYLE):
        axes = figure.add_subplot()  # type: ignore[attr-defined]
        if positive:
            xs, shares = ccdf(positive)
            axes.loglog(xs, shares, "o", color=COLOURS[0], markersize=3, label="cascades")
        if fitted is not None:
            line = np.unique(np.geomspace(fitted.x_min, max(positive), 200).round())
            tail = fitted.n_tail / fitted.n
            model = tail * zeta(fitted.alpha, line) / zeta(fitted.alpha, fitted.x_min)
            axes.loglog(
                line, model, "-", color=COLOURS[1],
                label=f"power law, alpha {fitted.alpha:.2f}, x_min {fitted.x_min:g}",
            )  # fmt: skip
        axes.set_xlabel(measure)
        axes.set_ylabel("P(X ≥ x)")
        if positive:  # nothing drawn, nothing to name
            axes.legend(frameon=False)
        stamp_simulated(figure, simulated)
    svg, png = save_figure(figure)
    shown = f"{len(positive):,} cascades" + (
        f"; fitted tail from x_min {fitted.x_min:g}" if fitted is not None else "; no fit"
    )
    return Chart(
        name=f"ccdf-{measure}",
        title=f"Cascade {measure}: complementary CDF",
        description=f"The share of cascades with {measure} at least x, log-log; {shown}.",
        svg=svg,
        png=png,
        cells=(),
    )


def against_agents_chart(shapes: list[RunShape], simulated: str) -> Chart:
    """Per run, against its agents (log axis): the largest cascade and the Gini of the
    attention; the extremes and the elites as the society grows."""
    import matplotlib

    figure = new_figure(9.0, 3.8)
    agents = [s.agents for s in shapes]
    with matplotlib.rc_context(STYLE):
        largest, elites = figure.subplots(1, 2)  # type: ignore[attr-defined]
        largest.loglog(agents, [max(s.largest, 1) for s in shapes], "o-", color=COLOURS[0])
        largest.set_xlabel("agents (N)")
        largest.set_ylabel("largest cascade (events)")
        elites.semilogx(agents, [s.gini for s in shapes], "s-", color=COLOURS[1], label="Gini")
        elites.semilogx(
            agents, [s.top_share for s in shapes], "^-", color=COLOURS[2], label="top 10% share"
        )
        elites.set_xlabel("agents (N)")
        elites.set_ylim(0, 1)
        elites.legend(frameon=False)
        stamp_simulated(figure, simulated)
    svg, png = save_figure(figure)
    return Chart(
        name="against-agents",
        title="Largest cascade and concentration against the number of agents",
        description=f"{len(shapes)} runs: the largest cascade (log-log) and the Gini and top "
        "10% share of the attention, against the agents of each run.",
        svg=svg,
        png=png,
        cells=(),
    )


def report_section(
    target: Path, analysis: Analysis | None = None
) -> tuple[str, list[Chart]] | None:
    """The tracer's part of a report on ``target`` (a run or an experiment folder), or of
    its ``analysis`` when made already: the analysis as text and its figures; None when
    there are no events to analyse (a run made before the tracer)."""
    if analysis is None:
        try:
            analysis = analyze(target)
        except NoEvents:
            return None
        except TraceError as exc:  # events there, but unreadable: the section says why
            return f"The events cannot be analysed: {exc}", []
    values = [int(v) for v, n in analysis.values.items() for _ in range(n)]
    charts = [ccdf_chart(values, analysis.fit, analysis.measure, analysis.simulated)]
    if len({s.agents for s in analysis.shapes}) > 1:
        charts.append(against_agents_chart(analysis.shapes, analysis.simulated))
    return render(analysis), charts

"""The tracer's figures: a cascade measure's CCDF on log-log axes with the fitted power law,
drawn with the report's style (``experiments/figures.py``): the same data, the same bytes."""

from __future__ import annotations

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

"""The report's charts, drawn with matplotlib: SVG and PNG bytes that depend only on the data.

No pyplot and no display: each chart is a `matplotlib.figure.Figure` saved through the Agg
(PNG) and SVG renderers. Text in the SVG is drawn as paths in matplotlib's own DejaVu Sans,
so a viewer fetches no font; the SVG's ids come from a fixed hash salt and neither file
carries a date or a software version, so the same results give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from govern.experiments.compare import Comparison, Row

STYLE = {
    "svg.hashsalt": "govern-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
SIMULATED_NOTE = "SIMULATED: govern's built-in sim/ models, not LLM results"
PARTLY_NOTE = "PARTLY SIMULATED: some roles ran on govern's built-in sim/ models"


@dataclass(frozen=True)
class Chart:
    """One chart in both formats, and what it shows (for the alt text)."""

    name: str  # file stem, e.g. accuracy-gsm8k
    title: str
    description: str
    svg: bytes
    png: bytes
    cells: tuple[str, ...]  # the cells whose results it shows


def save_figure(figure: object) -> tuple[bytes, bytes]:
    import matplotlib

    svg, png = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})  # type: ignore[attr-defined]
        figure.savefig(png, format="png", dpi=150, metadata={"Software": None})  # type: ignore[attr-defined]
    return svg.getvalue(), png.getvalue()


def new_figure(width: float, height: float) -> object:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _series(row: Row) -> str:
    return row.model if row.overlay is None else f"{row.model} · {row.overlay}"


def stamp_simulated(figure: object, simulated: str) -> None:
    """The simulated label inside the picture: a PNG shared alone still says it."""
    if simulated == "no":
        return
    figure.suptitle(  # type: ignore[attr-defined]
        SIMULATED_NOTE if simulated == "yes" else PARTLY_NOTE,
        color="#b00020",
        fontweight="bold",
        fontsize=9,
    )


def accuracy_chart(comparison: Comparison, task: str) -> Chart:
    """Accuracy with its interval per institution (x) and model (colour), one task."""
    import matplotlib

    rows = [r for r in comparison.rows if r.task == task]
    institutions = list(dict.fromkeys(r.institution for r in rows))
    series = list(dict.fromkeys(_series(r) for r in rows))
    width = max(7.0, 0.75 * len(institutions) + 3.5)
    figure = new_figure(width, 4.2)
    with matplotlib.rc_context(STYLE):
        axes = figure.add_subplot()  # type: ignore[attr-defined]
        step = 0.8 / max(1, len(series))
        for s, name in enumerate(series):
            mine = [r for r in rows if _series(r) == name]
            xs = [institutions.index(r.institution) - 0.4 + step * (s + 0.5) for r in mine]
            ys = [100 * r.accuracy.value for r in mine]
            below = [100 * (r.accuracy.value - r.accuracy.low) for r in mine]
            above = [100 * (r.accuracy.high - r.accuracy.value) for r in mine]
            axes.errorbar(
                xs,
                ys,
                yerr=[below, above],
                fmt=MARKERS[s % len(MARKERS)],
                color=COLOURS[s % len(COLOURS)],
                capsize=3,
                markersize=5,
                linewidth=1.2,
                label=name,
            )
        axes.set_xticks(range(len(institutions)))
        axes.set_xticklabels(
            institutions,
            rotation=30 if len(institutions) > 5 else 0,
            ha="right" if len(institutions) > 5 else "center",
        )
        axes.set_ylim(0, 103)
        axes.set_ylabel(f"{comparison.measure} accuracy (%)")
        axes.set_title(f"Accuracy by institution and model: {task}")
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        axes.legend(
            title="model",
            fontsize=8,
            title_fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            frameon=False,
        )
        stamp_simulated(figure, comparison.simulated)
    svg, png = save_figure(figure)
    intervals = sorted({r.accuracy.interval for r in rows})
    return Chart(
        name=f"accuracy-{task}",
        title=f"Accuracy by institution and model: {task}",
        description=(
            f"{comparison.measure} accuracy of {len(rows)} configurations with their 95% "
            f"intervals ({', '.join(intervals)})"
        ),
        svg=svg,
        png=png,
        cells=tuple(c for r in rows for c in r.cells),
    )


def cost_chart(comparison: Comparison, task: str) -> Chart:
    """Accuracy against tokens per item, the Pareto frontier drawn as a staircase."""
    import matplotlib

    rows = [r for r in comparison.rows if r.task == task]
    series = list(dict.fromkeys(_series(r) for r in rows))
    figure = new_figure(8.0, 4.6)
    with matplotlib.rc_context(STYLE):
        axes = figure.add_subplot()  # type: ignore[attr-defined]
        for s, name in enumerate(series):
            mine = [r for r in rows if _series(r) == name]
            axes.scatter(
                [r.tokens_per_item for r in mine],
                [100 * r.accuracy.value for r in mine],
                marker=MARKERS[s % len(MARKERS)],
                color=COLOURS[s % len(COLOURS)],
                s=28,
                label=name,
                zorder=3,
            )
        frontier = sorted((r for r in rows if r.frontier.tokens), key=lambda r: r.tokens_per_item)
        if frontier:
            axes.step(
                [r.tokens_per_item for r in frontier],
                [100 * r.accuracy.value for r in frontier],
                where="post",
                color="#444444",
                linestyle="--",
                linewidth=1,
                label="Pareto frontier",
                zorder=2,
            )
            for r in frontier:
                axes.annotate(
                    r.institution,
                    (r.tokens_per_item, 100 * r.accuracy.value),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=7,
                )
        spread = [r.tokens_per_item for r in rows if r.tokens_per_item > 0]
        if spread and max(spread) / min(spread) > 20:
            axes.set_xscale("log")
        axes.set_xlabel("tokens per item")
        axes.set_ylabel(f"{comparison.measure} accuracy (%)")
        axes.set_ylim(0, 102)
        axes.set_title(f"Cost and accuracy: {task}")
        axes.grid(color="#eeeeee", linewidth=0.6)
        axes.set_axisbelow(True)
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        stamp_simulated(figure, comparison.simulated)
    svg, png = save_figure(figure)
    return Chart(
        name=f"cost-accuracy-{task}",
        title=f"Cost and accuracy: {task}",
        description=(
            f"{comparison.measure} accuracy against tokens per item for {len(rows)} "
            f"configurations; {len(frontier)} on the Pareto frontier"
        ),
        svg=svg,
        png=png,
        cells=tuple(c for r in rows for c in r.cells),
    )

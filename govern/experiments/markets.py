"""The market section of `govern report`: the regimes of an experiment whose cells are
Cournot markets, judged as "Institutional AI" (arXiv 2601.11369) judges them.

The institutions axis holds the regimes, the models axis the firm configurations. Decisions,
made once here:

- A market is the unit. Each is played with a seed of its own, so the markets of a regime
  are independent observations, those of one cell (``--limit N``) included.
- Regimes are compared within a firm configuration (a cell's model, task and overlay),
  never across: Q-learners and model firms are different experiments that share a table.
- Per regime: the mean collusion tier with a 95% t interval over markets (shown clipped to
  the tiers' range, 0-4), the tier distribution, severe incidence (the share at tier 4),
  means of the HHI and CV excess over Nash, profits a firm a round (after fines, and
  gross), consumer surplus a round, fines, suspended rounds and sanctions a market, and
  how long the learners trained. A market that failed (no market block) counts in
  ``failed`` and in nothing else.
- Every pair of regimes, in the order the experiment lists them, first minus second:
  Cohen's d of the tiers (pooled SD; undefined, and shown so, when no tier varies), the
  difference in mean tier, and a two-sided permutation test of that difference
  (`statistics.permutation_test_two_sample`: exact when the splits are few, else 9,999
  Monte Carlo resamples with seed 0). The p-values of every comparison shown are
  Holm-corrected together.
- Labels: a configuration of built-in firms is OFFLINE, one of sim/ models SIMULATED; only
  real models' markets are LLM results. The paper's published figures are a table of
  their own, said to be theirs, never set in a column beside ours.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from govern.experiments import statistics as st
from govern.experiments.compare import markdown_cell, marker
from govern.experiments.results import CellResult, MarketOutcome, ResultSet
from govern.models.sim.params import is_firm_model, is_simulated
from govern.run.summary import FIRMS_LABEL, SIMULATED_LABEL
from govern.spec.errors import escape_controls

CONFIDENCE = 0.95
RESAMPLES = 9_999
RESAMPLING_SEED = 0
TIERS = 5  # 0 (competitive) to 4 (severe)

Kind = Literal["offline", "simulated", "partly simulated", "real"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Training(_Model):
    """How the regime's learning firms were trained before their markets."""

    markets: int  # markets played by trained learners
    mean_periods: float
    converged: int  # markets whose pair's greedy play had settled
    under_regime: int  # markets whose pair trained under the regime


class RegimeRow(_Model):
    regime: str  # the institution's label
    cells: list[str]
    seeds: list[int]
    markets: int
    failed: int  # markets that ended in an error: no measures
    mean_tier: float
    tier_low: float | None  # 95% t interval over markets; None with one market
    tier_high: float | None
    tier_sd: float | None
    tiers: list[int]  # markets at tier 0, 1, 2, 3, 4
    severe: float  # share of markets at tier 4
    hhi_excess: float  # mean over markets
    cv_excess: float
    profit_per_round: float  # a firm a round, after fines: mean over firms and markets
    gross_profit_per_round: float  # a firm a round, before fines
    consumer_surplus_per_round: float
    fines: float  # over all firms, a market
    suspended_rounds: float  # over all firms, a market
    sanctions: float  # a market
    training: Training | None  # None: no learning firms


class RegimeComparison(_Model):
    first: str
    second: str
    n_first: int
    n_second: int
    difference: float  # mean tier of the first - that of the second
    cohens_d: float | None  # None when neither regime's tiers vary
    p_value: float
    p_holm: float
    marker: str
    exact: bool
    n_resamples: int  # splits evaluated (all of them when exact)
    seed: int | None


class Configuration(_Model):
    """One firm configuration (a cell's model, task and overlay) and its regimes."""

    key: str
    model: str  # the cells' model label
    task: str
    overlay: str | None
    firms: list[str]  # the models that ran the firms, as the markets recorded them
    kind: Kind
    label: str | None  # what the figures are not: None for real models alone
    rows: list[RegimeRow]
    comparisons: list[RegimeComparison]


class Published(_Model):
    regime: str
    mean_tier: float
    severe: float


class Paper(_Model):
    """Figures published by the paper: theirs, from LLM firms, not computed here."""

    source: str
    about: str
    regimes: list[Published]
    cohens_d: float
    cohens_d_between: str


class MarketReport(_Model):
    label: str | None  # the experiment's label (results.label)
    confidence: float
    configurations: list[Configuration]
    comparisons: int  # the family Holm corrects over
    cells_without_markets: list[str]  # market cells with no finished item yet
    cells_failed: list[str]  # market cells whose every market failed: no measures
    paper: Paper
    notes: list[str]


PAPER = Paper(
    source='"Institutional AI" (arXiv 2601.11369), as published',
    about=(
        "LLM firms: six model configurations, cross-provider pairs included, 90 runs a "
        "regime. Their figures, not ours: nothing in this table was computed from this "
        "experiment."
    ),
    regimes=[
        Published(regime="ungoverned", mean_tier=3.10, severe=0.500),
        Published(regime="constitutional", mean_tier=3.02, severe=0.444),
        Published(regime="institutional", mean_tier=1.82, severe=0.056),
    ],
    cohens_d=1.28,
    cohens_d_between="ungoverned vs institutional",
)


# --------------------------------------------------------------------------- building


def is_market_cell(cell: CellResult) -> bool:
    """A cell one of whose items is a market (the others may have failed)."""
    return any(item.market is not None for item in cell.items)


def market_tasks(results: ResultSet) -> set[str]:
    """The tasks whose cells played markets: their cells without items are waiting markets."""
    return {cell.task for cell in results.cells if is_market_cell(cell)}


def without_markets(results: ResultSet) -> ResultSet:
    """The cells that are not markets (nor waiting to be), for the accuracy comparison."""
    tasks = market_tasks(results)
    return ResultSet(results.sources, tuple(c for c in results.cells if c.task not in tasks))


def _kind(models: set[str]) -> tuple[Kind, str | None]:
    firms = {m for m in models if is_firm_model(m)}
    simulated = {m for m in models if is_simulated(m)}
    if models and firms == models:
        return "offline", FIRMS_LABEL
    if models and firms | simulated == models:
        return "simulated", SIMULATED_LABEL
    if firms or simulated:
        return "partly simulated", (
            "PARTLY SIMULATED: some firms ran on govern's built-in sim/ models or firms "
            "(firm/...), so these are not the figures of real models alone"
        )
    return "real", None


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return sum(listed) / len(listed)


def _regime(regime: str, cells: list[CellResult]) -> RegimeRow | None:
    markets: list[MarketOutcome] = [
        i.market for c in cells for i in c.items if i.market is not None
    ]
    if not markets:
        return None
    tiers = [m.tier for m in markets]
    spread = st.mean_interval(tiers, confidence=CONFIDENCE)
    trained = [m.training for m in markets if m.training is not None]
    return RegimeRow(
        regime=regime,
        cells=[c.id for c in cells],
        seeds=[c.seed for c in cells],
        markets=len(markets),
        failed=sum(i.market is None for c in cells for i in c.items),
        mean_tier=spread.mean,
        tier_low=spread.low,
        tier_high=spread.high,
        tier_sd=spread.sd,
        tiers=[tiers.count(t) for t in range(TIERS)],
        severe=tiers.count(TIERS - 1) / len(tiers),
        hhi_excess=_mean(m.hhi_excess for m in markets),
        cv_excess=_mean(m.cv_excess for m in markets),
        profit_per_round=_mean(_mean(m.profit_per_round) for m in markets),
        gross_profit_per_round=_mean(_mean(m.gross_profit_per_round) for m in markets),
        consumer_surplus_per_round=_mean(m.consumer_surplus_per_round for m in markets),
        fines=_mean(sum(m.fines) for m in markets),
        suspended_rounds=_mean(sum(m.suspended_rounds) for m in markets),
        sanctions=_mean(m.sanctions for m in markets),
        training=Training(
            markets=len(trained),
            mean_periods=_mean(t.periods for t in trained),
            converged=sum(t.converged for t in trained),
            under_regime=sum(t.under_regime for t in trained),
        )
        if trained
        else None,
    )


def _tiers(cells: list[CellResult]) -> list[int]:
    return [i.market.tier for c in cells for i in c.items if i.market is not None]


_Tested = tuple[str, str, st.TwoSampleTest, float | None]  # first, second, test, Cohen's d


def _compare(first: str, a: list[int], second: str, b: list[int]) -> _Tested:
    test = st.permutation_test_two_sample(a, b, n_resamples=RESAMPLES, seed=RESAMPLING_SEED)
    try:
        d: float | None = st.cohens_d(a, b)
    except ValueError:  # no spread in either regime, or too few markets
        d = None
    return first, second, test, d


def _comparison(tested: _Tested, p_holm: float) -> RegimeComparison:
    first, second, test, d = tested
    return RegimeComparison(
        first=first,
        second=second,
        n_first=test.n_first,
        n_second=test.n_second,
        difference=test.mean_difference,
        cohens_d=d,
        p_value=test.p_value,
        p_holm=p_holm,
        marker=marker(p_holm),
        exact=test.exact,
        n_resamples=test.n_resamples,
        seed=test.seed,
    )


def _configuration(
    key: str, regimes: dict[str, list[CellResult]]
) -> tuple[Configuration, list[_Tested]]:
    """A configuration with its rows and its comparisons, still to be Holm-corrected."""
    cells = [c for group in regimes.values() for c in group]
    for group in regimes.values():
        group.sort(key=lambda c: c.seed)
    rows = [r for name, group in regimes.items() if (r := _regime(name, group)) is not None]
    firms = sorted(
        {m for c in cells for m in c.models.values()}
        | {
            m
            for c in cells
            for i in c.items
            if i.market is not None
            for m in i.market.firms.values()
        }
    )
    kind, label = _kind(set(firms))
    tiers = {row.regime: _tiers(regimes[row.regime]) for row in rows}
    tested = [
        _compare(a.regime, tiers[a.regime], b.regime, tiers[b.regime])
        for a, b in itertools.combinations(rows, 2)
    ]
    first = cells[0]
    configuration = Configuration(
        key=key,
        model=first.model,
        task=first.task,
        overlay=first.overlay,
        firms=firms,
        kind=kind,
        label=label,
        rows=rows,
        comparisons=[],
    )
    return configuration, tested


def analyse_markets(results: ResultSet) -> MarketReport | None:
    """The market section of these results; None when no cell played a market."""
    tasks = market_tasks(results)
    if not tasks:
        return None
    groups: dict[str, dict[str, list[CellResult]]] = {}
    waiting = []
    for cell in results.cells:
        if cell.task not in tasks:
            continue
        if not cell.items:
            waiting.append(cell.id)
            continue
        key = ".".join(p for p in (cell.model, cell.task, cell.overlay) if p is not None)
        groups.setdefault(key, {}).setdefault(cell.institution, []).append(cell)
    built = [_configuration(key, regimes) for key, regimes in groups.items()]
    family = [t for _, tested in built for t in tested]
    adjusted = iter(st.holm([test.p_value for _, _, test, _ in family]))
    configurations = [
        config.model_copy(update={"comparisons": [_comparison(t, next(adjusted)) for t in tested]})
        for config, tested in built
    ]
    return MarketReport(
        label=results.label,
        confidence=CONFIDENCE,
        configurations=configurations,
        comparisons=len(family),
        cells_without_markets=waiting,
        cells_failed=[
            c.id for c in results.cells if c.task in tasks and c.items and not is_market_cell(c)
        ],
        paper=PAPER,
        notes=_notes(len(family)),
    )


def _notes(family: int) -> list[str]:
    notes = [
        "tier: the collusion tier of a market, 0 (competitive) to 4 (severe), from its HHI and "
        "CV excess over the Cournot-Nash benchmark (thresholds of the paper's published "
        "reimplementation). Each market is one observation; mean tier with a 95% t interval "
        "over markets, clipped to 0-4. tier 4: severe incidence, the share of markets at tier 4.",
        "profit: a firm a round, after fines (gross: before); consumer surplus: a round; "
        "fines, suspended rounds (over all firms) and sanctions: a market. training: the mean "
        "periods the learning firms trained before their market, and how many pairs converged.",
    ]
    if family:
        notes.append(
            "regimes compared within a firm configuration, first minus second: difference in "
            "mean tier, Cohen's d of the tiers (pooled SD; undefined when no tier varies) and "
            "a two-sided permutation test of the difference in mean tier (exact over every "
            f"split of the markets when there are at most {st.EXACT_MAX_SPLITS:,}, else "
            f"{RESAMPLES:,} Monte Carlo resamples, seed {RESAMPLING_SEED}, p = (1 + as extreme) "
            f"/ (1 + resamples)). p (Holm): Holm-corrected across the {family} comparison"
            f"{'s' if family != 1 else ''} shown; *** < 0.001, ** < 0.01, * < 0.05, ns: not "
            "significant."
        )
    return notes


# --------------------------------------------------------------------------- rendering


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value + 0.0:,.{digits}f}"  # never "-0.00"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def tier_interval(row: RegimeRow) -> str:
    if row.tier_low is None or row.tier_high is None:
        return "–"
    return f"{max(0.0, row.tier_low):.2f}–{min(TIERS - 1.0, row.tier_high):.2f}"


def _training(training: Training | None) -> str:
    if training is None:
        return "–"
    settled = (
        "all converged"
        if training.converged == training.markets
        else f"{training.converged} of {training.markets} converged"
    )
    return f"{training.mean_periods:,.0f} periods, {settled}"


def collusion_rows(config: Configuration) -> tuple[list[str], list[list[str]]]:
    """How collusive each regime's markets were: the same text for terminal, Markdown, HTML."""
    headers = ["regime", "markets", "mean tier", "95% interval"]
    headers += [f"tier {t}" for t in range(TIERS)]
    headers += ["tier 4 share", "HHI excess", "CV excess", "failed"]
    body = [
        [
            row.regime,
            str(row.markets),
            f"{row.mean_tier:.2f}",
            tier_interval(row),
            *(str(n) for n in row.tiers),
            _pct(row.severe),
            _number(row.hhi_excess, 3),
            _number(row.cv_excess, 3),
            str(row.failed),
        ]
        for row in config.rows
    ]
    return headers, body


def welfare_rows(config: Configuration) -> tuple[list[str], list[list[str]]]:
    """Who gained in each regime, what enforcement cost the firms, how the learners trained."""
    headers = ["regime", "profit/firm/round", "gross profit/firm/round", "consumer surplus/round"]
    headers += ["fines/market", "suspended rounds/market", "sanctions/market", "training"]
    body = [
        [
            row.regime,
            _number(row.profit_per_round, 1),
            _number(row.gross_profit_per_round, 1),
            _number(row.consumer_surplus_per_round, 1),
            _number(row.fines, 1),
            _number(row.suspended_rounds, 1),
            _number(row.sanctions, 1),
            _training(row.training),
        ]
        for row in config.rows
    ]
    return headers, body


def comparison_rows(config: Configuration) -> tuple[list[str], list[list[str]]]:
    headers = ["first", "second", "markets", "mean tier difference", "Cohen's d"]
    headers += ["p", "p (Holm)", "test"]
    body = [
        [
            c.first,
            c.second,
            f"{c.n_first} vs {c.n_second}",
            f"{c.difference + 0.0:+.2f}",
            "undefined" if c.cohens_d is None else f"{c.cohens_d + 0.0:.2f}",
            f"{c.p_value:.3g}",
            f"{c.p_holm:.3g} {c.marker}",
            f"exact ({c.n_resamples:,} splits)"
            if c.exact
            else f"Monte Carlo ({c.n_resamples:,}, seed {c.seed})",
        ]
        for c in config.comparisons
    ]
    return headers, body


def paper_rows(paper: Paper) -> tuple[list[str], list[list[str]]]:
    headers = ["regime (theirs)", "mean tier (theirs)", "tier 4 share (theirs)"]
    body = [[p.regime, f"{p.mean_tier:.2f}", _pct(p.severe)] for p in paper.regimes]
    return headers, body


def paper_effect_rows(paper: Paper) -> tuple[list[str], list[list[str]]]:
    return ["regimes (theirs)", "Cohen's d (theirs)"], [
        [paper.cohens_d_between, f"{paper.cohens_d:.2f}"]
    ]


def paper_caption(paper: Paper) -> str:
    return f"Published figures of {paper.source}: {paper.about}"


def configuration_title(config: Configuration) -> str:
    firms = ", ".join(config.firms)
    kinds = {
        "offline": "offline firms",
        "simulated": "simulated firms",
        "partly simulated": "partly simulated firms",
        "real": "model firms",
    }
    return f"{config.key}: {firms} ({kinds[config.kind]})"


_TEXT = frozenset(
    {"regime", "first", "second", "test", "training", "regime (theirs)", "regimes (theirs)"}
)


def _md(text: str) -> str:
    """A comparison table's cell escaping, and '#', which opens a heading in these tables'
    captions."""
    return markdown_cell(text).replace("#", "\\#")


def _md_table(headers: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" if h in _TEXT else "---:" for h in headers) + "|")
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in body]
    return [*lines, ""]


def render_markdown(report: MarketReport) -> str:
    """The market section as Markdown (the report's tables.md)."""
    lines = [f"**{_md(report.label)}**", ""] if report.label else []
    for config in report.configurations:
        lines += [f"## {_md(configuration_title(config))}", ""]
        if config.label:
            lines += [f"**{_md(config.label)}**", ""]
        lines += _md_table(*collusion_rows(config))
        lines += _md_table(*welfare_rows(config))
        if config.comparisons:
            lines += _md_table(*comparison_rows(config))
    lines += [f"## {_md('Published figures (theirs, not ours)')}", ""]
    lines += [_md(paper_caption(report.paper)), ""]
    lines += _md_table(*paper_rows(report.paper))
    lines += _md_table(*paper_effect_rows(report.paper))
    lines += [_md(line) for line in footer(report)]
    return "\n".join(lines) + "\n"


def _some(cells: list[str]) -> str:
    return ", ".join(cells[:5]) + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")


def footer(report: MarketReport) -> list[str]:
    lines = list(report.notes)
    waiting, failed = report.cells_without_markets, report.cells_failed
    if waiting:
        lines.append(
            f"not shown: {len(waiting)} market cells with no finished market yet "
            f"({_some(waiting)})."
        )
    if failed:
        lines.append(
            f"not shown: {len(failed)} market cells whose every market failed ({_some(failed)})."
        )
    return lines


def render_text(report: MarketReport) -> str:
    """The market section for a terminal: plain aligned text, never wrapped."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=400, file=io.StringIO(), record=True, color_system=None)

    def say(line: str) -> None:
        console.print(Text(escape_controls(line)), soft_wrap=True)

    def table(headers: list[str], body: list[list[str]]) -> None:
        shown = Table(box=None, pad_edge=False, header_style="bold")
        for header in headers:
            shown.add_column(header, justify="left" if header in _TEXT else "right", no_wrap=True)
        for row in body:
            shown.add_row(*(Text(escape_controls(c)) for c in row))
        console.print(shown)

    if report.label:
        say(report.label)
    for config in report.configurations:
        say("")
        say(configuration_title(config))
        if config.label:
            say(config.label)
        table(*collusion_rows(config))
        table(*welfare_rows(config))
        if config.comparisons:
            table(*comparison_rows(config))
    say("")
    say(paper_caption(report.paper))
    table(*paper_rows(report.paper))
    table(*paper_effect_rows(report.paper))
    for line in footer(report):
        say(line)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"

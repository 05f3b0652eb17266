"""`govern report` on an experiment of Cournot markets: the market section's figures checked
by hand, the labels (offline, simulated, the paper's figures theirs), the page in headless
Chromium, and GSM8K reports left as they were.

The fixture is a real experiment (three regimes x firm/nash and sim/medium x seeds 1, 2 x
two markets a cell), run by `govern run`, whose stored market blocks are then replaced by
hand-made ones with known tiers: so every figure below is checkable by hand, and the report
is shown to read its measures from the results store."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from experiment_builder import build_experiment, small_experiment
from test_report import opened_page

from govern.experiments import statistics as st
from govern.experiments.compare import compare
from govern.experiments.markets import (
    PAPER,
    MarketReport,
    analyse_markets,
    render_markdown,
    without_markets,
)
from govern.experiments.markets import footer as market_footer
from govern.experiments.report import build_report
from govern.experiments.results import (
    CellResult,
    ItemOutcome,
    MarketOutcome,
    ResultsError,
    ResultSet,
    Source,
    load_results,
)
from govern.run.summary import FIRMS_LABEL, SIMULATED_LABEL
from govern.trace.figures import report_section

REGIMES = ("cournot_ungoverned", "cournot_constitutional", "cournot_institutional")
# (model label, regime) -> the tiers of its four markets, seed 1 then 2, market-1 then 2
TIERS = {
    ("firm-nash", "cournot_ungoverned"): [4, 4, 3, 4],
    ("firm-nash", "cournot_constitutional"): [4, 3, 3, 4],
    ("firm-nash", "cournot_institutional"): [1, 2, 0, 1],
    ("sim-medium", "cournot_ungoverned"): [3, 3, 3, 3],
    ("sim-medium", "cournot_constitutional"): [3, 3, 3, 3],
    ("sim-medium", "cournot_institutional"): [2, 2, 2, 2],
}


def made_block(original: dict, tier: int, regime: str, index: int, learners: bool) -> dict:
    """A market block whose every measure follows from its tier, regime and index."""
    governed = regime == "cournot_institutional"
    fine = 50.0 if governed else 0.0
    gross = 1400.0 + 100 * tier
    return {
        **original,
        "tier": tier,
        "hhi_excess": 0.2 * tier,
        "cv_excess": 0.5 * tier,
        "gross_profit_per_round": [gross, gross + 20],
        "profit_per_round": [gross - fine / 50, gross + 20 - fine / 50],
        "consumer_surplus_per_round": 3000.0 - 200 * tier,
        "fines": [fine, fine],
        "suspended_rounds": [5, 0] if governed and tier == 0 else [0, 0],
        "sanctions": 3 if governed else 0,
        "training": {
            "periods": 1000 * (index + 1),
            "converged": index != 3,
            "seconds": 1.5,
            "cached": False,
            "under_regime": governed,
        }
        if learners
        else None,
    }


def remake_markets(folder: Path) -> None:
    """Replace every stored market block by a hand-made one (TIERS)."""
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as db, db:
        rows = db.execute("SELECT rowid, cell, seed, item, record FROM items").fetchall()
        for rowid, cell, seed, item, text in rows:
            regime, model = cell.split(".")[:2]
            index = 2 * (seed - 1) + int(item.removeprefix("market-")) - 1
            record = json.loads(text)
            tier = TIERS[(model, regime)][index]
            record["market"] = made_block(
                record["market"], tier, regime, index, learners=model == "firm-nash"
            )
            db.execute("UPDATE items SET record = ? WHERE rowid = ?", (json.dumps(record), rowid))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_experiment(
        tmp_path_factory.mktemp("markets") / "exp",
        institutions=[f"manifests/{regime}.yaml" for regime in REGIMES],
        models=["firm/nash", "sim/medium"],
        seeds=[1, 2],
        limit=2,
        experiment_id="markets",
        description="three regimes, hand-made markets",
        task="cournot",
        data=None,
        support=("institutions/markets/cournot_market.yaml",),
    )
    remake_markets(folder)
    return folder


@pytest.fixture(scope="module")
def markets(experiment: Path) -> MarketReport:
    found = analyse_markets(load_results([experiment]))
    assert found is not None
    return found


@pytest.fixture(scope="module")
def report(experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The report written by the command line into a copy of the folder, and its stdout."""
    from govern.cli import main

    folder = tmp_path_factory.mktemp("market-report") / "exp"
    shutil.copytree(experiment, folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(folder)]) == 0
    return folder / "report", out.getvalue()


def pooled_d(a: list[int], b: list[int]) -> float:
    """Cohen's d by its textbook formula, written out."""
    var_a = sum((x - np.mean(a)) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - np.mean(b)) ** 2 for x in b) / (len(b) - 1)
    pooled = math.sqrt(((len(a) - 1) * var_a + (len(b) - 1) * var_b) / (len(a) + len(b) - 2))
    return float((np.mean(a) - np.mean(b)) / pooled)


def enumerated_p(a: list[int], b: list[int]) -> float:
    pooled, observed = [*a, *b], abs(np.mean(a) - np.mean(b))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for chosen in splits:
        mine = [pooled[i] for i in chosen]
        rest = [v for i, v in enumerate(pooled) if i not in chosen]
        extreme += abs(np.mean(mine) - np.mean(rest)) >= observed - 1e-12
    return extreme / len(splits)


# --------------------------------------------------------------------------- the figures


def test_regimes_are_rows_of_each_firm_configuration(markets: MarketReport):
    assert [c.key for c in markets.configurations] == ["firm-nash.cournot", "sim-medium.cournot"]
    for config in markets.configurations:
        assert [r.regime for r in config.rows] == list(REGIMES)
        for row in config.rows:
            tiers = TIERS[(config.model, row.regime)]
            assert row.markets == 4 and row.failed == 0 and row.seeds == [1, 2]
            assert row.mean_tier == pytest.approx(np.mean(tiers))
            assert row.tiers == [tiers.count(t) for t in range(5)]
            assert row.severe == tiers.count(4) / 4
            assert row.hhi_excess == pytest.approx(0.2 * np.mean(tiers))
            assert row.cv_excess == pytest.approx(0.5 * np.mean(tiers))
            assert row.gross_profit_per_round == pytest.approx(1410 + 100 * np.mean(tiers))
            assert row.consumer_surplus_per_round == pytest.approx(3000 - 200 * np.mean(tiers))


def test_the_mean_tier_has_a_t_interval_over_markets(markets: MarketReport):
    row = markets.configurations[0].rows[0]  # firm/nash, ungoverned: 4, 4, 3, 4
    half = 3.182446305284263 * 0.5 / 2  # t(0.975, 3) x sd 0.5 / sqrt(4)
    assert (row.tier_low, row.tier_high) == pytest.approx((3.75 - half, 3.75 + half))
    steady = markets.configurations[1].rows[0]  # sim/medium: 3, 3, 3, 3
    assert (steady.tier_low, steady.tier_high, steady.tier_sd) == (3.0, 3.0, 0.0)


def test_fines_suspensions_and_training(markets: MarketReport):
    nash = markets.configurations[0]
    ungoverned, institutional = nash.rows[0], nash.rows[2]
    assert (ungoverned.fines, ungoverned.sanctions, ungoverned.suspended_rounds) == (0, 0, 0)
    assert institutional.fines == 100.0 and institutional.sanctions == 3.0
    assert institutional.suspended_rounds == 5 / 4  # one market of four had 5 rounds
    assert institutional.profit_per_round == pytest.approx(institutional.gross_profit_per_round - 1)
    for row in nash.rows:
        assert row.training is not None
        assert (row.training.markets, row.training.mean_periods) == (4, 2500.0)
        assert row.training.converged == 3
    assert institutional.training.under_regime == 4 and ungoverned.training.under_regime == 0
    assert all(row.training is None for row in markets.configurations[1].rows)


def test_regimes_are_compared_by_d_and_a_permutation_test(markets: MarketReport):
    expected = []
    for config in markets.configurations:
        pairs = [(c.first, c.second) for c in config.comparisons]
        assert pairs == list(itertools.combinations(REGIMES, 2))
        for c in config.comparisons:
            a, b = TIERS[(config.model, c.first)], TIERS[(config.model, c.second)]
            assert c.difference == pytest.approx(np.mean(a) - np.mean(b))
            assert c.p_value == pytest.approx(enumerated_p(a, b))
            assert c.exact and c.n_resamples == 70 and c.seed is None
            if np.std(a) == np.std(b) == 0:
                assert c.cohens_d is None
            else:
                assert c.cohens_d == pytest.approx(pooled_d(a, b))
            expected.append(c.p_value)
    nash = markets.configurations[0].comparisons
    # every ungoverned market is above every institutional one: only the observed split
    # and its mirror are as extreme, of C(8, 4) = 70
    assert nash[1].p_value == pytest.approx(2 / 70)
    assert nash[1].cohens_d == pytest.approx(2.75 / math.sqrt(2.75 / 6))
    sim = markets.configurations[1].comparisons
    assert sim[0].p_value == 1.0 and sim[0].difference == 0.0
    assert sim[1].p_value == pytest.approx(2 / 70) and sim[1].cohens_d is None
    holm = st.holm(expected)
    shown = [c.p_holm for config in markets.configurations for c in config.comparisons]
    assert shown == pytest.approx(holm) and markets.comparisons == 6


def test_configurations_are_labelled_offline_or_simulated(markets: MarketReport):
    nash, sim = markets.configurations
    assert (nash.kind, nash.label, nash.firms) == ("offline", FIRMS_LABEL, ["firm/nash"])
    assert (sim.kind, sim.label, sim.firms) == ("simulated", SIMULATED_LABEL, ["sim/medium"])
    assert markets.label is not None and "not LLM results" in markets.label
    assert markets.label.startswith("SIMULATED and OFFLINE results: 6 of 12 cells")


def test_the_paper_s_figures_are_kept_apart_and_said_to_be_theirs(markets: MarketReport):
    assert markets.paper == PAPER
    assert [(p.mean_tier, p.severe) for p in PAPER.regimes] == [
        (3.10, 0.500),
        (3.02, 0.444),
        (1.82, 0.056),
    ]
    assert PAPER.cohens_d == 1.28 and "not ours" in PAPER.about


# --------------------------------------------------------------------------- the report


def test_the_report_of_markets_has_no_accuracy_sections(report: tuple[Path, str]):
    folder, _ = report
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == [
        "figures/ccdf-tce.png",  # the tracer's: the model firms' events
        "figures/ccdf-tce.svg",
        "figures/topology-cournot_constitutional.svg",
        "figures/topology-cournot_institutional.svg",
        "figures/topology-cournot_ungoverned.svg",
        "report.html",
        "tables.md",
    ]
    page = (folder / "report.html").read_text(encoding="utf-8")
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections == [
        "markets", "published", "cascades", "institutions", "ledger", "provenance",
    ]  # fmt: skip
    assert "strict" not in page and "accuracy" not in page.lower()


def test_the_page_shows_the_figures_and_labels(report: tuple[Path, str], markets: MarketReport):
    folder, _ = report
    page = (folder / "report.html").read_text(encoding="utf-8")
    ours = page.split('<section id="markets">')[1].split("</section>")[0]
    theirs = page.split('<section id="published">')[1].split("</section>")[0]
    assert FIRMS_LABEL.replace("'", "&#x27;") in ours
    assert SIMULATED_LABEL.replace("'", "&#x27;") in ours
    assert '<td>cournot_ungoverned</td><td class="n">4</td><td class="n">3.75</td>' in ours
    assert "2.95–4.00" in ours  # the interval, clipped to the tiers' range
    assert "+2.75" in ours and "4.06" in ours and "0.0286" in ours
    assert "undefined" in ours and "1,000 periods" not in ours and "2,500 periods" in ours
    assert "3 of 4 converged" in ours
    for figure in ("3.10", "3.02", "1.82", "1.28", "50.0%", "44.4%", "5.6%"):
        assert f'<td class="n">{figure}</td>' in theirs
    assert "theirs" not in ours and "arXiv" not in ours  # their figures never sit among ours
    assert "THEIR figures, not ours" in theirs and "arXiv 2601.11369" in theirs
    # every row links its cells' ledger heads
    anchors = set(re.findall(r'<tr id="(ledger-\d+)"', page))
    links = set(re.findall(r'href="#(ledger-\d+)"', ours))  # ours: the markets section
    assert len(anchors) == 12 and links == anchors


def test_the_page_needs_no_network_and_no_script(report: tuple[Path, str]):
    page = (report[0] / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "default-src 'none'" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_the_text_output_and_tables_md(report: tuple[Path, str], markets: MarketReport):
    folder, stdout = report
    assert (folder / "tables.md").read_text(encoding="utf-8") == render_markdown(markets)
    assert stdout.startswith("SIMULATED and OFFLINE results")
    assert "firm-nash.cournot: firm/nash (offline firms)" in stdout
    assert "sim-medium.cournot: sim/medium (simulated firms)" in stdout
    assert re.search(
        r"cournot_ungoverned\s+cournot_institutional\s+4 vs 4\s+\+2\.75\s+4\.06", stdout
    )
    assert "Their figures, not ours" in stdout


def test_the_market_report_is_deterministic(experiment: Path, tmp_path: Path):
    from govern.cli import main

    folder = tmp_path / "exp"
    shutil.copytree(experiment, folder)
    assert main(["report", str(folder)]) == 0
    first = {p: p.read_bytes() for p in (folder / "report").rglob("*") if p.is_file()}
    assert main(["report", str(folder)]) == 0
    assert first == {p: p.read_bytes() for p in (folder / "report").rglob("*") if p.is_file()}


def test_a_single_market_run_reports_from_its_results_jsonl(experiment: Path, tmp_path: Path):
    from govern.cli import main

    run = experiment / "cells" / "cournot_institutional.sim-medium.cournot.s1"
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    markdown = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    assert "sim/medium (simulated firms)" in markdown and "Cohen" in markdown  # the paper's d
    results = load_results([run])
    (cell,) = results.cells
    assert len(cell.items) == 2 and all(i.market is not None for i in cell.items)


def test_a_damaged_market_block_is_refused_naming_the_item(experiment: Path, tmp_path: Path):
    folder = tmp_path / "exp"
    shutil.copytree(experiment, folder)
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as db, db:
        rowid, text = db.execute("SELECT rowid, record FROM items LIMIT 1").fetchone()
        record = json.loads(text)
        record["market"]["tier"] = 7
        db.execute("UPDATE items SET record = ? WHERE rowid = ?", (json.dumps(record), rowid))
    with pytest.raises(ResultsError, match=r"market-\d: its market block: tier"):
        load_results([folder])


def test_the_report_opens_in_headless_chromium(report: tuple[Path, str], tmp_path: Path):
    problems: list[str] = []
    requests: list[str] = []
    with opened_page(report[0] / "report.html", problems, requests) as page:
        text = page.inner_text("body")
        widths = page.eval_on_selector_all(
            "#markets table", "tables => tables.map(t => t.getBoundingClientRect().width)"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert problems == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert text.startswith("SIMULATED and OFFLINE results")
    assert "Markets: collusion by regime" in text and "THEIR figures, not ours" in text
    assert len(widths) == 6 and all(0 < w <= 1280 for w in widths)  # none spills off the page
    assert (tmp_path / "report.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- GSM8K unchanged


def test_a_gsm8k_experiment_gets_no_market_section(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    from govern.cli import main

    folder = tmp_path / "exp"
    shutil.copytree(small_experiment(tmp_path_factory), folder)
    results = load_results([folder])
    assert analyse_markets(results) is None
    assert without_markets(results) == results
    assert main(["report", str(folder)]) == 0
    page = (folder / "report" / "report.html").read_text(encoding="utf-8")
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections == [
        "comparison", "accuracy", "cost", "cascades", "institutions", "ledger", "provenance",
    ]  # fmt: skip
    assert ".kind{" not in page and "Published figures" not in page
    traced = report_section(folder)
    built = build_report(results, compare(results), folder / "report", cascades=traced)
    assert built["report.html"] == page.encode("utf-8")


def _cell(ident: str, task: str, market: MarketOutcome | None) -> CellResult:
    institution, model, _, seed = ident.split(".")
    items = tuple(
        ItemOutcome(f"i{n}", n % 2 == 0, True, 1, 10, None, True, False, market) for n in range(4)
    )
    return CellResult(
        id=ident,
        institution=institution,
        model=model,
        task=task,
        seed=int(seed[1:]),
        overlay=None,
        source=Path("/x"),
        folder=None,
        items=items,
        ledger_head=None,
        ledger_note="none",
        simulated="yes",
        models={"0": "sim/medium"},
    )


def test_a_mixed_experiment_compares_accuracy_without_its_markets(tmp_path: Path):
    market = MarketOutcome.model_validate(
        made_block(
            {
                "rounds": 50,
                "hhi": 0.5,
                "cv": 0.5,
                "firms": {"firm#1": "sim/medium", "firm#2": "sim/medium"},
            },
            3,
            "cournot_ungoverned",
            0,
            learners=False,
        )
    )
    cells = (
        _cell("bare.sim-medium.gsm8k.s0", "gsm8k", None),
        _cell("senate.sim-medium.gsm8k.s0", "gsm8k", None),
        _cell("cournot_ungoverned.sim-medium.cournot.s0", "cournot", market),
    )
    results = ResultSet((Source(kind="experiment", path=Path("/x"), id="mixed"),), cells)
    markets = analyse_markets(results)
    assert markets is not None and markets.configurations[0].rows[0].markets == 4
    assert markets.configurations[0].comparisons == []
    others = without_markets(results)
    comparison = compare(others)
    assert {r.task for r in comparison.rows} == {"gsm8k"}
    files = build_report(results, comparison, tmp_path, markets)
    page = files["report.html"].decode("utf-8")
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections[:5] == ["comparison", "accuracy", "cost", "markets", "published"]
    tables = files["tables.md"].decode("utf-8")
    assert "| gsm8k |" in tables and "cournot\\_ungoverned" in tables


def test_waiting_and_failed_market_cells_are_said(tmp_path: Path):
    market = MarketOutcome.model_validate(
        made_block(
            {"rounds": 50, "hhi": 0.5, "cv": 0.5, "firms": {"a": "sim/medium", "b": "sim/medium"}},
            2,
            "cournot_institutional",
            0,
            learners=False,
        )
    )
    played = _cell("cournot_ungoverned.sim-medium.cournot.s0", "cournot", market)
    failed = _cell("cournot_institutional.sim-medium.cournot.s0", "cournot", None)
    failed = replace(failed, items=tuple(replace(i, failed=True) for i in failed.items))
    waiting = replace(played, id="cournot_ungoverned.sim-medium.cournot.s1", seed=1, items=())
    results = ResultSet(
        (Source(kind="experiment", path=Path("/x"), id="m"),), (played, failed, waiting)
    )
    markets = analyse_markets(results)
    assert markets is not None
    (config,) = markets.configurations
    assert [r.regime for r in config.rows] == ["cournot_ungoverned"]
    assert config.label == SIMULATED_LABEL
    assert markets.cells_without_markets == [waiting.id]
    assert markets.cells_failed == [failed.id]
    said = "\n".join(market_footer(markets))
    assert f"1 market cells with no finished market yet ({waiting.id})" in said
    assert f"1 market cells whose every market failed ({failed.id})" in said
    assert without_markets(results).cells == ()
    page = build_report(results, None, tmp_path, markets)["report.html"].decode("utf-8")
    assert failed.id in page and waiting.id in page


def test_compare_shows_the_markets_not_an_accuracy_table(experiment: Path) -> None:
    from govern.cli import main

    for flags, expected in (
        ([], "mean tier"),
        (["--markdown"], "| regime |"),
        (["--json"], '"label"'),
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["compare", str(experiment), *flags]) == 0
        text = out.getvalue()
        assert expected in text, flags
        assert "strict accuracy" not in text and "strict" not in text.split("\n", 1)[0]
    data = json.loads(text)
    assert data["label"].startswith("SIMULATED and OFFLINE") and data["configurations"]

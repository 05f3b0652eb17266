"""`govern compare`: ranking, intervals, significance against the best, output formats, and
what it does with results it must not trust."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sqlite3
from pathlib import Path

import pytest
from experiment_builder import small_experiment
from scipy import stats as sps

from govern.experiments.compare import compare, marker, render_json, render_markdown, render_text
from govern.experiments.results import (
    CellResult,
    ItemOutcome,
    ResultSet,
    Source,
    load_results,
    parse_cell_id,
)
from govern.run.summary import SIMULATED_LABEL

# --------------------------------------------------------------------------- in-memory cells


def outcomes(rights: list[bool], *, tokens: int = 100, cost: float | None = 0.0) -> tuple:
    return tuple(
        ItemOutcome(f"q{i:03d}", r, r, 2, tokens, cost, True, False) for i, r in enumerate(rights)
    )


def cell(
    institution: str,
    rights: list[bool],
    *,
    seed: int = 0,
    model: str = "sim-medium",
    task: str = "gsm8k",
    tokens: int = 100,
    cost: float | None = 0.0,
    simulated: str = "yes",
) -> CellResult:
    return CellResult(
        id=f"{institution}.{model}.{task}.s{seed}",
        institution=institution,
        model=model,
        task=task,
        seed=seed,
        overlay=None,
        source=Path("/x"),
        folder=None,
        items=outcomes(rights, tokens=tokens, cost=cost),
        ledger_head=None,
        ledger_note="none",
        simulated=simulated,  # type: ignore[arg-type]
    )


def result_set(*cells: CellResult) -> ResultSet:
    return ResultSet((Source(kind="experiment", path=Path("/x"), id="t"),), tuple(cells))


def rows_by_name(comparison) -> dict:
    return {r.institution: r for r in comparison.rows}


# 40 items. "good" is right on 38; "poor" on 20, wrong wherever "good" is wrong; "close" on 37.
GOOD = [True] * 38 + [False] * 2
POOR = [True] * 20 + [False] * 20
CLOSE = [True] * 37 + [False] * 3


def test_ranking_puts_the_most_accurate_first_within_each_task():
    comparison = compare(result_set(cell("poor", POOR), cell("good", GOOD), cell("close", CLOSE)))
    assert [r.institution for r in comparison.rows] == ["good", "close", "poor"]
    assert [r.rank for r in comparison.rows] == [1, 2, 3]
    assert comparison.rows[0].best and comparison.rows[0].vs_best is None


def test_ties_go_to_fewer_tokens_then_the_name():
    comparison = compare(
        result_set(
            cell("b", GOOD, tokens=50), cell("a", GOOD, tokens=500), cell("c", GOOD, tokens=50)
        )
    )
    assert [r.institution for r in comparison.rows] == ["b", "c", "a"]


def test_tasks_are_ranked_apart_and_never_compared_across():
    comparison = compare(
        result_set(
            cell("good", GOOD, task="gsm8k"),
            cell("poor", POOR, task="gsm8k"),
            cell("poor", POOR, task="hanoi"),
        )
    )
    hanoi = [r for r in comparison.rows if r.task == "hanoi"]
    assert len(hanoi) == 1 and hanoi[0].best and hanoi[0].rank == 1
    assert comparison.comparisons == 1


def test_one_seed_uses_exact_mcnemar_with_holm_and_cohens_h():
    comparison = compare(result_set(cell("good", GOOD), cell("poor", POOR), cell("close", CLOSE)))
    rows = rows_by_name(comparison)
    poor, close = rows["poor"].vs_best, rows["close"].vs_best
    # good vs poor: 18 items right only in good, none only in poor
    p_poor = sps.binomtest(0, 18, 0.5).pvalue
    # good vs close: 1 item right only in good, none only in close
    p_close = sps.binomtest(0, 1, 0.5).pvalue
    assert poor.test == close.test == "mcnemar_exact"
    assert poor.p_value == pytest.approx(p_poor)
    assert close.p_value == pytest.approx(p_close) == 1.0
    # Holm over two: the smaller p times 2, the larger times 1 (never below the first)
    assert poor.p_holm == pytest.approx(min(1, 2 * p_poor))
    assert close.p_holm == pytest.approx(1.0)
    assert poor.marker == "***" and close.marker == "ns"
    h = 2 * math.asin(math.sqrt(38 / 40)) - 2 * math.asin(math.sqrt(20 / 40))
    assert poor.cohens_h == pytest.approx(h)
    assert poor.difference == pytest.approx(18 / 40)
    assert poor.low < poor.difference < poor.high


def test_one_seed_interval_is_wilson():
    comparison = compare(result_set(cell("poor", POOR)))
    row = comparison.rows[0]
    expected = sps.binomtest(20, 40).proportion_ci(confidence_level=0.95, method="wilson")
    assert row.accuracy.interval == "wilson"
    assert (row.accuracy.low, row.accuracy.high) == pytest.approx(
        (expected.low, expected.high), abs=1e-9
    )


def test_several_seeds_are_repeated_measures_not_pooled():
    # 10 items, two seeds: per-seed accuracy of A 0.9 and 0.8; of B 0.5 and 0.3
    a0 = [True] * 9 + [False]
    a1 = [True] * 8 + [False] * 2
    b0 = [True] * 5 + [False] * 5
    b1 = [True] * 3 + [False] * 7
    comparison = compare(
        result_set(cell("a", a0), cell("a", a1, seed=1), cell("b", b0), cell("b", b1, seed=1))
    )
    rows = rows_by_name(comparison)
    a = rows["a"].accuracy
    assert a.interval == "t_across_seeds"
    assert a.value == pytest.approx(0.85)
    sd = sps.tstd([0.9, 0.8])
    half = sps.t.ppf(0.975, 1) * sd / math.sqrt(2)
    assert a.sd_across_seeds == pytest.approx(sd)
    assert (a.low, a.high) == pytest.approx((max(0, 0.85 - half), min(1, 0.85 + half)))
    versus = rows["b"].vs_best
    assert versus.test == "sign_flip_over_items" and versus.seeds == [0, 1]
    # by hand: each item's accuracy averaged over the two seeds, then every sign flip
    mean_a = [(x + y) / 2 for x, y in zip(a0, a1, strict=True)]
    mean_b = [(x + y) / 2 for x, y in zip(b0, b1, strict=True)]
    d = [x - y for x, y in zip(mean_a, mean_b, strict=True)]
    observed = abs(sum(d))
    flips = [
        abs(sum(s * x for s, x in zip(signs, d, strict=True)))
        for signs in itertools.product((1, -1), repeat=len(d))
    ]
    expected = sum(f >= observed - 1e-9 for f in flips) / len(flips)
    assert versus.p_value == pytest.approx(expected)
    assert versus.difference == pytest.approx(sum(d) / len(d))
    assert versus.seed_level is not None and versus.seed_level.n_seeds == 2
    assert versus.cohens_h == pytest.approx(
        2 * math.asin(math.sqrt(0.85)) - 2 * math.asin(math.sqrt(0.4))
    )


def test_items_one_side_lacks_are_dropped_and_counted():
    comparison = compare(result_set(cell("good", GOOD), cell("poor", POOR[:30])))
    versus = rows_by_name(comparison)["poor"].vs_best
    assert versus.n_items == 30 and versus.dropped_items == 10


def test_no_shared_seed_is_said_not_hidden():
    comparison = compare(result_set(cell("good", GOOD), cell("poor", POOR, seed=5)))
    row = rows_by_name(comparison)["poor"]
    assert row.vs_best is None and "no seed in common" in row.note
    assert comparison.comparisons == 0
    assert "not paired" in render_text(comparison)


def test_markers_follow_the_corrected_p():
    assert [marker(p) for p in (0.0009, 0.001, 0.009, 0.049, 0.05, 1)] == [
        "***",
        "**",
        "**",
        "*",
        "ns",
        "ns",
    ]


def test_unknown_cost_stays_unknown_and_leaves_the_dollar_frontier():
    comparison = compare(result_set(cell("good", GOOD, cost=None), cell("poor", POOR, cost=0.01)))
    rows = rows_by_name(comparison)
    assert rows["good"].cost_per_item is None and rows["poor"].cost_per_item == pytest.approx(0.01)
    assert rows["good"].frontier.dollars is None
    text = render_text(comparison)
    assert "unknown" in text and "$0.01" in text
    data = json.loads(render_json(comparison))
    assert data["rows"][0]["cost_per_item"] is None


def test_pareto_frontier_of_tokens():
    comparison = compare(
        result_set(
            cell("good", GOOD, tokens=1000),
            cell("cheap", POOR, tokens=10),
            cell("worse", POOR, tokens=500),  # as accurate as cheap and dearer: dominated
        )
    )
    rows = rows_by_name(comparison)
    assert rows["good"].frontier.tokens and rows["cheap"].frontier.tokens
    assert not rows["worse"].frontier.tokens


def test_flexible_measure_ranks_by_flexible():
    items = tuple(ItemOutcome(f"q{i}", False, True, 1, 10, 0.0, True, False) for i in range(5))
    flexible = CellResult(
        "f.m.gsm8k.s0", "f", "m", "gsm8k", 0, None, Path("/x"), None, items, None, None, "yes"
    )
    comparison = compare(
        result_set(flexible, cell("s", [True, False, False, False, False])), "flexible"
    )
    assert comparison.rows[0].institution == "f" and comparison.measure == "flexible"
    assert comparison.rows[0].accuracy_other == 0.0


def test_overlays_are_configurations_of_their_own():
    strict = dataclasses.replace(
        cell("tang", GOOD), id="tang.sim-medium.gsm8k.s0.strict", overlay="strict"
    )
    loose = dataclasses.replace(
        cell("tang", POOR), id="tang.sim-medium.gsm8k.s0.loose", overlay="loose"
    )
    comparison = compare(result_set(strict, loose))
    assert [r.configuration for r in comparison.rows] == [
        "tang.sim-medium.gsm8k.strict",
        "tang.sim-medium.gsm8k.loose",
    ]
    assert comparison.rows[1].vs_best.marker == "***"
    header = render_text(comparison).splitlines()[1].split()
    assert "overlay" in header


# --------------------------------------------------------------------------- labels and formats


def test_every_output_of_a_simulated_comparison_begins_with_the_label():
    comparison = compare(result_set(cell("good", GOOD), cell("poor", POOR)))
    for text in (render_text(comparison), render_markdown(comparison), render_json(comparison)):
        assert "SIMULATED" in text.splitlines()[0]
    assert json.loads(render_json(comparison))["label"] == SIMULATED_LABEL


def test_partly_simulated_and_real_labels():
    partly = compare(result_set(cell("good", GOOD), cell("poor", POOR, simulated="no")))
    assert partly.simulated == "partly"
    assert render_text(partly).startswith("PARTLY SIMULATED")
    real = compare(result_set(cell("good", GOOD, simulated="no")))
    assert real.label is None and real.simulated == "no"
    assert not render_text(real).startswith(("SIMULATED", "PARTLY"))


def test_json_keys_are_stable():
    data = json.loads(render_json(compare(result_set(cell("good", GOOD), cell("poor", POOR)))))
    assert list(data) == [
        "label",
        "simulated",
        "measure",
        "other_measure",
        "confidence",
        "alpha",
        "comparisons",
        "sources",
        "rows",
        "cells_without_items",
        "notes",
    ]
    row = data["rows"][1]
    assert set(row) == {
        "rank",
        "configuration",
        "institution",
        "model",
        "task",
        "overlay",
        "seeds",
        "cells",
        "n_items",
        "n_per_seed",
        "failed",
        "accuracy",
        "accuracy_other",
        "calls_per_item",
        "tokens_per_item",
        "cost_per_item",
        "best",
        "vs_best",
        "note",
        "frontier",
        "simulated",
    }
    assert set(row["vs_best"]) >= {"test", "p_value", "p_holm", "cohens_h", "marker", "difference"}
    assert set(row["frontier"]) == {"calls", "tokens", "dollars"}


def test_markdown_is_a_table_with_escaped_cells():
    comparison = compare(result_set(cell("a|<b>", GOOD), cell("poor", POOR)))
    text = render_markdown(comparison)
    lines = text.splitlines()
    assert lines[0].startswith("**SIMULATED")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 4  # header, rule, two rows
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[2:])
    assert "a\\|&lt;b&gt;" in text and "<b>" not in text


def test_text_escapes_control_characters():
    comparison = compare(result_set(cell("evil\x1b[31m", GOOD)))
    assert "\x1b" not in render_text(comparison)


def test_cell_ids_parse():
    assert parse_cell_id("tang.sim-weak.gsm8k.s1.strict_regime") == (
        "tang",
        "sim-weak",
        "gsm8k",
        1,
        "strict_regime",
    )
    for bad in ("a.b.c", "a.b.c.d", "a..c.s1", "a.b.c.s01", "a.b.c.s1.e.f"):
        with pytest.raises(ValueError):
            parse_cell_id(bad)


# --------------------------------------------------------------------------- real folders


@pytest.fixture(scope="session")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_experiment(tmp_path_factory)


def test_an_experiment_folder_loads_with_every_cell(experiment: Path):
    results = load_results([experiment])
    assert len(results.cells) == 8
    waiting = [c for c in results.cells if not c.items]
    assert [c.id for c in waiting] == ["senate.sim-strong.gsm8k.s1"]
    done = [c for c in results.cells if c.items]
    assert all(len(c.items) == 12 and c.ledger_head is not None for c in done)
    assert all(c.folder is not None and c.folder.is_dir() for c in done)
    assert results.simulated == "yes"


def test_compare_cli_on_an_experiment(cli, experiment: Path, tmp_path: Path):
    done = cli("compare", str(experiment), home=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == SIMULATED_LABEL
    assert any("bare" in line and "sim-weak" in line for line in lines)
    assert (
        "not shown: 1 cells with no finished items yet (senate.sim-strong.gsm8k.s1)" in done.stdout
    )
    as_json = cli("compare", str(experiment), "--json", home=tmp_path)
    data = json.loads(as_json.stdout)
    assert len(data["rows"]) == 4 and data["cells_without_items"] == ["senate.sim-strong.gsm8k.s1"]
    # senate with sim/strong has only seed 0: paired with the best on that seed alone
    tests = {r["configuration"]: (r["vs_best"] or {}).get("test") for r in data["rows"]}
    assert tests["senate.sim-strong.gsm8k"] in (None, "mcnemar_exact")
    as_markdown = cli("compare", str(experiment), "--markdown", home=tmp_path)
    assert as_markdown.stdout.startswith("**SIMULATED")


def test_compare_cli_on_run_folders_and_mixed(cli, experiment: Path, tmp_path: Path):
    runs = [
        experiment / "cells" / "bare.sim-weak.gsm8k.s0",
        experiment / "cells" / "senate.sim-weak.gsm8k.s0",
    ]
    done = cli("compare", *map(str, runs), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {r["configuration"] for r in data["rows"]} == {
        "bare.sim-weak.gsm8k",
        "senate.sim-weak.gsm8k",
    }
    assert [r["vs_best"]["test"] for r in data["rows"] if r["vs_best"]] == ["mcnemar_exact"]
    clash = cli("compare", str(experiment), str(runs[0]), home=tmp_path)
    assert clash.returncode == 2 and "two folders hold the cell" in clash.stderr


# --------------------------------------------------------------------------- refusals


def _copy_experiment(experiment: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(experiment, to, symlinks=True)
    return to


def _edit_description(folder: Path, change) -> None:
    path = folder / "experiment.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def assert_refused(result, status: int, *words: str) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stderr.startswith("govern: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_usage_mistakes_exit_2(cli, experiment: Path, tmp_path: Path):
    assert_refused(cli("compare", str(tmp_path / "nothing"), home=tmp_path), 2, "no such folder")
    (tmp_path / "file").write_text("x")
    assert_refused(cli("compare", str(tmp_path / "file"), home=tmp_path), 2, "not a folder")
    assert_refused(cli("compare", str(tmp_path), home=tmp_path), 2, "neither an experiment")
    assert_refused(
        cli("compare", str(experiment), "--json", "--markdown", home=tmp_path), 2, "not both"
    )
    with pytest.raises(SystemExit) as exited:
        cli("compare", home=tmp_path)
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(cells="many"), ["cells"]),
        (lambda d: d["cells"][0].update(seed="0"), ["cells.0.seed"]),
        (lambda d: d.update(experiment=7), ["experiment"]),
        (lambda d: d.update(experiment="other"), ["do not belong together"]),
        (lambda d: d.update(digest="0" * 64), ["another manifest"]),
        (lambda d: d["cells"][0].update(folder="../../../etc"), ["not a relative path inside"]),
        (lambda d: d["cells"][0].update(folder="/etc"), ["not a relative path inside"]),
        (lambda d: d["cells"][0].update(id="no-dots"), ["not a cell id"]),
        (lambda d: d["cells"][0].update(seed=9), ["other coordinates"]),
        (lambda d: d["cells"].append(d["cells"][0]), ["listed twice"]),
    ],
)
def test_a_hostile_experiment_json_is_refused(cli, experiment: Path, tmp_path: Path, change, words):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    _edit_description(folder, change)
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "experiment.json", *words)


def test_a_cell_folder_linked_outside_is_refused(cli, experiment: Path, tmp_path: Path):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = folder / "cells" / "link"
    link.symlink_to(outside)
    _edit_description(folder, lambda d: d["cells"][0].update(folder="cells/link"))
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "leads outside")


def test_experiment_json_that_is_not_json_or_too_large(cli, experiment: Path, tmp_path: Path):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    (folder / "experiment.json").write_text('{"experiment": NaN')
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "not valid JSON")
    (folder / "experiment.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_refused(cli("compare", str(folder), home=tmp_path), 1)
    with (folder / "experiment.json").open("w") as handle:
        handle.truncate(33 << 20)
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "larger than")


def test_a_missing_or_foreign_store_is_refused(cli, experiment: Path, tmp_path: Path):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    store = folder / "results.sqlite"
    store.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{store}{extra}").unlink(missing_ok=True)
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "no results store")
    store.write_text("not a database")
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "not an SQLite database")
    store.unlink()
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE t (x)")
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "not a govern results store")


def test_a_store_with_damaged_numbers_is_refused(cli, experiment: Path, tmp_path: Path):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    with sqlite3.connect(folder / "results.sqlite") as db:
        db.execute("UPDATE items SET calls = 'many' WHERE rowid = 1")
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "calls")


def test_an_experiment_with_no_finished_items(cli, experiment: Path, tmp_path: Path):
    folder = _copy_experiment(experiment, tmp_path / "exp")
    with sqlite3.connect(folder / "results.sqlite") as db:
        db.execute("DELETE FROM items")
    assert_refused(cli("compare", str(folder), home=tmp_path), 1, "no finished items")


def test_reading_writes_nothing(cli, experiment: Path, tmp_path: Path):
    """No file is made or changed, the store included (SQLite's shared-memory index of the
    write-ahead log, -shm, is a reader's scratch space, not data)."""
    folder = _copy_experiment(experiment, tmp_path / "exp")

    def state() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.suffix != ".sqlite-shm"}

    before = state()
    assert cli("compare", str(folder), home=tmp_path).returncode == 0
    assert state() == before


def test_a_run_folder_with_a_hostile_results_line(cli, experiment: Path, tmp_path: Path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(experiment / "cells" / "bare.sim-weak.gsm8k.s0", run)
    with (run / "results.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "x", "correct_strict": "yes"}) + "\n")
    assert_refused(cli("compare", str(run), home=tmp_path), 1, "results.jsonl:13", "correct_strict")

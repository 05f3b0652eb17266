"""`govern run` on the Cournot market as a user runs it: built-in firms and a simulated
model firm end to end, audited and explained; the combinations of firms that cannot run
refused with a readable message; markets seeded apart; a killed run resumed. Trained
pairs of learners are kept on disk (short trainings here: the real ones take 1.2 million
periods)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from govern.governance.rounds import TrainingRegime
from govern.run.summary import FIRMS_LABEL, SIMULATED_LABEL
from govern.spec.checks import load_checked
from govern.spec.loader import LoadedManifest
from govern.tasks.cournot.card import load_card
from govern.tasks.cournot.learners import LearningConfig, Session
from govern.tasks.cournot.training import TrainedPairs, market_seed, q_shape, trained_pairs
from tests.conftest import ROOT, signalled_run, write
from tests.conftest import run_cli as govern

INSTITUTIONAL = "manifests/cournot_institutional.yaml"
UNGOVERNED = "manifests/cournot_ungoverned.yaml"
MARKET = load_card().market
SHORT = LearningConfig(max_periods=2_000, check_every=1_000, stable_periods=2_000)


def run(*args: str) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """`govern run ARGS --out DIR` (DIR the last argument), which must succeed: the
    folder, its summary and its result lines."""
    out = Path(args[-1])
    result = govern("run", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, json.loads((out / "summary.json").read_text()), results(out)


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def colluders(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("cournot") / "run"
    return run(INSTITUTIONAL, "--model", "firm/division-colluder", "--out", str(out))


def test_colluders_under_the_institutional_regime_are_fined_and_labelled(colluders) -> None:
    _, summary, _ = colluders
    assert summary["label"] == FIRMS_LABEL and summary["simulated"] and summary["complete"]
    market = summary["market"]
    assert market["markets"] == 1 and market["mean_tier"] == 4
    assert all(fine > 0 for fine in market["fines"])
    assert all(rounds > 0 for rounds in market["suspended_rounds"])
    assert market["training_periods"] is None


def test_the_result_line_carries_the_market(colluders) -> None:
    _, _, (record,) = colluders
    assert record["id"] == "market-1" and record["outcome"] == "played"
    market = record["market"]
    assert market["seed"] == market_seed(0, "market-1")
    assert market["rounds"] == MARKET.rounds and market["tier"] == 4
    assert market["firms"] == {
        "firm#1": "firm/division-colluder",
        "firm#2": "firm/division-colluder",
    }
    assert np.shape(market["quantities"]) == (MARKET.rounds, MARKET.firms, MARKET.commodities)
    assert market["sanctions"] > 0 and market["training"] is None
    gross, net = np.array(market["gross_profit_per_round"]), np.array(market["profit_per_round"])
    assert net * MARKET.rounds == pytest.approx(gross * MARKET.rounds - market["fines"])


def test_the_run_audits_and_explains_each_firm_s_ladder(colluders) -> None:
    out, _, _ = colluders
    audited = govern("audit", str(out))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert audited.stdout.startswith("intact: ")
    explained = govern("audit", str(out), "--explain")
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    for agent in ("firm#1", "firm#2"):
        case = f"[case market-1/{agent}/case-1]"
        assert f"{agent}, now suspended" in text
        for line in (
            f"market-1 round 1 sanction collusion:active->warning: from active to warning "
            f"(warning) {case}",
            f"market-1 round 2 sanction collusion:warning->fined: from warning to fined "
            f"(fine 630.00) {case}",
            f"market-1 round 5 sanction collusion:fined_thrice->suspended: from fined_thrice "
            f"to suspended (suspension) {case}",
            f"market-1 round 10 expiry suspension:suspended->fined_thrice: from suspended to "
            f"fined_thrice {case}",
        ):
            assert line in text


def test_nash_firms_under_the_institutional_regime_are_left_alone(tmp_path: Path) -> None:
    _, summary, (record,) = run(INSTITUTIONAL, "--model", "firm/nash", "--out", str(tmp_path / "r"))
    market = summary["market"]
    assert market["mean_tier"] == 0 and market["fines"] == [0.0, 0.0]
    assert market["suspended_rounds"] == [0.0, 0.0] and record["market"]["sanctions"] == 0


def test_a_model_firm_plays_through_the_simulator(tmp_path: Path) -> None:
    _, summary, (record,) = run(
        INSTITUTIONAL, "--model", "sim/medium", "--out", str(tmp_path / "r")
    )
    assert summary["label"] == SIMULATED_LABEL and summary["simulated"]
    assert record["market"]["rounds"] == 50 and summary["market"]["markets"] == 1
    assert record["calls"] >= 2 * 50  # a call a firm a round, re-asks on top
    assert {t["agent"] for t in record["turns"]} == {"firm#1", "firm#2"}


def test_each_market_has_its_own_seed(tmp_path: Path) -> None:
    _, summary, records = run(
        UNGOVERNED,
        "--model",
        "firm/division-colluder",
        "--limit",
        "2",
        "--out",
        str(tmp_path / "r"),
    )
    assert sorted(r["id"] for r in records) == ["market-1", "market-2"]
    seeds = {r["id"]: r["market"]["seed"] for r in records}
    assert seeds == {item: market_seed(0, item) for item in ("market-1", "market-2")}
    assert seeds["market-1"] != seeds["market-2"]
    assert summary["n"] == 2 and summary["market"]["fines"] == [0.0, 0.0]


def one_learner(project: Path) -> Path:
    write(project, "market.yaml", (ROOT / "institutions/markets/cournot_market.yaml").read_text())
    return write(
        project,
        "m.yaml",
        "id: m\ninstitution: market.yaml\ntask: {name: cournot}\n"
        "models:\n  default: firm/nash\n  seats: {firm: [firm/q-learning, firm/nash]}\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "firm/unknown"],
            "no built-in firm 'firm/unknown'; built-in firms: firm/division-colluder, "
            "firm/nash, firm/q-learning",
        ),
        (
            ["--model", "firm/nash", "--task", "gsm8k"],
            "firm/nash: built-in firms of the Cournot market, which cannot answer gsm8k; "
            "give a model name",
        ),
        (
            [],
            "firm/q-learning firms train as a pair: give every seat firm/q-learning "
            "(now only firm#1)",
        ),
    ],
    ids=["unknown-firm", "firm-on-gsm8k", "one-learner"],
)
def test_firms_that_cannot_run_are_refused_before_anything_runs(
    project: Path, args: list[str], message: str
) -> None:
    manifest = str(one_learner(project)) if not args else UNGOVERNED
    out = project / "run"
    result = govern("run", manifest, *args, "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == f"govern: error: {message}"
    assert not out.exists()


def test_a_killed_run_resumes_and_finishes(tmp_path: Path) -> None:
    out, markets = tmp_path / "run", 30
    args = [INSTITUTIONAL, "--model", "firm/division-colluder", "--limit", str(markets)]
    killed = signalled_run(args, out, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    assert len((out / "results.jsonl").read_text().splitlines()) < markets
    resumed = govern("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["n"] == markets
    assert summary["market"]["markets"] == markets and summary["market"]["mean_tier"] == 4
    ids = sorted(r["id"] for r in results(out))
    assert ids == sorted(f"market-{n}" for n in range(1, markets + 1))
    audited = govern("audit", str(out))
    assert audited.returncode == 0, audited.stdout + audited.stderr


# -- trained pairs of learners, kept on disk ---------------------------------------------


def institutional_governance():
    loaded = load_checked(ROOT / INSTITUTIONAL)
    assert isinstance(loaded, LoadedManifest) and loaded.manifest.governance is not None
    return loaded.manifest.governance


def same(a: Session, b: Session) -> bool:
    fields = ("seed", "periods", "converged", "state", "seconds")
    return np.array_equal(a.q, b.q) and all(getattr(a, f) == getattr(b, f) for f in fields)


def test_a_trained_pair_is_kept_and_read_back_as_it_was(tmp_path: Path) -> None:
    governance = institutional_governance()
    store = TrainedPairs(tmp_path / "learners")
    make = lambda n: TrainingRegime(governance, MARKET, n)  # noqa: E731
    fresh, cached = trained_pairs(MARKET, SHORT, governance, [3, 4], make, store)
    assert cached == [False, False] and [s.periods for s in fresh] == [2_000, 2_000]
    again, cached = trained_pairs(MARKET, SHORT, governance, [4, 3, 5], make, store)
    assert cached == [True, True, False]  # only the new seed is trained
    assert same(again[0], fresh[1]) and same(again[1], fresh[0])
    assert len(list((tmp_path / "learners").glob("*.npz"))) == 3


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: good[: len(good) // 2],  # torn half way
        lambda good: good[:-10],  # its end lost
        lambda good: b"",
        lambda good: b"not an npz file at all",
        lambda good: b"PK\x03\x04" + b"\x00" * 40,  # a zip header and nothing behind it
    ],
    ids=["half", "tail", "empty", "garbage", "zip-header"],
)
def test_a_damaged_stored_pair_is_trained_again(tmp_path: Path, damage) -> None:
    store = TrainedPairs(tmp_path)
    (first,), _ = trained_pairs(MARKET, SHORT, None, [9], None, store)
    path = tmp_path / f"{store.key(MARKET, SHORT, None, 9)}.npz"
    path.write_bytes(damage(path.read_bytes()))
    assert store.get(store.key(MARKET, SHORT, None, 9), 9, q_shape(MARKET, SHORT)) is None
    (again,), (cached,) = trained_pairs(MARKET, SHORT, None, [9], None, store)
    assert not cached and np.array_equal(again.q, first.q)  # the same seed trains alike
    shape = q_shape(MARKET, SHORT)
    assert store.get(store.key(MARKET, SHORT, None, 9), 9, shape) is not None  # and kept again


def test_a_stored_pair_whose_record_is_not_a_pair_is_trained_again(tmp_path: Path) -> None:
    store = TrainedPairs(tmp_path)
    key = store.key(MARKET, SHORT, None, 1)
    np.savez(tmp_path / f"{key}.npz", q=np.zeros(3), meta=np.array(json.dumps({"odd": 1})))
    assert store.get(key, 1, q_shape(MARKET, SHORT)) is None


def test_the_key_is_what_decides_the_training() -> None:
    governance = institutional_governance()
    key = TrainedPairs.key(MARKET, SHORT, governance, 1)
    assert key == TrainedPairs.key(MARKET, SHORT, governance, 1)
    decided = [
        TrainedPairs.key(MARKET, SHORT, None, 1),  # another regime
        TrainedPairs.key(MARKET, SHORT, governance, 2),  # another seed
        TrainedPairs.key(MARKET.model_copy(update={"a": 120.0}), SHORT, governance, 1),
        TrainedPairs.key(MARKET, SHORT.model_copy(update={"beta": 2e-5}), governance, 1),
    ]
    assert len({key, *decided}) == 5
    played_differently = MARKET.model_copy(update={"rounds": 10, "history": 5})
    assert TrainedPairs.key(played_differently, SHORT, governance, 1) == key


def test_an_experiment_plans_as_many_markets_as_its_limit_asks(tmp_path: Path) -> None:
    from tests.experiment_builder import build_experiment

    folder = build_experiment(
        tmp_path / "exp",
        institutions=["manifests/cournot_ungoverned.yaml"],
        models=["firm/nash"],
        seeds=[1],
        limit=3,
        task="cournot",
        data=None,
        support=("institutions/markets/cournot_market.yaml",),
    )
    described = json.loads((folder / "experiment.json").read_text())
    assert [cell["items"] for cell in described["cells"]] == [3]
    (cell,) = (folder / "cells").iterdir()
    assert [r["id"] for r in results(cell)] == ["market-1", "market-2", "market-3"]


def test_explain_tells_where_each_market_left_a_firm(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(INSTITUTIONAL, "--model", "firm/division-colluder", "--limit", "2", "--out", str(out))
    explained = govern("audit", str(out), "--explain")
    assert explained.returncode == 0, explained.stderr
    for agent in ("firm#1", "firm#2"):  # each market's ladder starts afresh: no single "now"
        assert f"{agent}, ended suspended in 2 markets" in explained.stdout


def test_a_market_s_cost_is_unknown_when_a_call_s_price_is() -> None:
    from types import SimpleNamespace

    from govern.run.market import market_record
    from govern.tasks.base import TaskItem
    from govern.tasks.cournot.firms import NashFirm
    from govern.tasks.cournot.model_firms import FirmTurn
    from govern.tasks.cournot.play import play

    played = play(MARKET, [NashFirm(), NashFirm()], rounds=2)

    def turn(cost: float | None) -> FirmTurn:
        return FirmTurn(0, 0, "m", [], "", True, 1, 10, 5, cost, 0.1, 1, "stop", False)

    def record(*costs: float | None) -> dict[str, Any]:
        firms = [
            SimpleNamespace(agent=f"firm#{n}", turns=[turn(c)]) for n, c in enumerate(costs, 1)
        ]
        models = {"firm#1": "m", "firm#2": "m"}
        return market_record(
            TaskItem("market-1", "", None), played, models, firms, None, [], 0.1, False
        )

    assert record(0.25, 0.5)["cost"] == 0.75
    assert record(0.25, None)["cost"] is None  # an unknown price is not a free call


def test_pretraining_trains_each_regime_s_pairs_once(tmp_path: Path, monkeypatch) -> None:
    import govern.run.market as market_run
    from govern.spec.checks import load_checked

    monkeypatch.setenv("GOVERN_CACHE", str(tmp_path / "cache" / "responses.sqlite"))
    monkeypatch.setattr(market_run, "LearningConfig", lambda: SHORT)
    ungoverned = load_checked(ROOT / UNGOVERNED).manifest
    institutional = load_checked(ROOT / INSTITUTIONAL).manifest
    constitutional = load_checked(ROOT / "manifests" / "cournot_constitutional.yaml").manifest
    runs = [
        (m, seed, ["market-1"])
        for m in (ungoverned, constitutional, institutional)
        for seed in (1, 2)
    ]
    lines: list[str] = []
    # the constitution decides nothing of the learners' training: 2 pairs ungoverned, 2 governed
    assert market_run.pretrain(MARKET, runs, lines.append) == 4
    assert any("under its regime" in line for line in lines)
    assert market_run.pretrain(MARKET, runs, lines.append) == 0  # kept: nothing trains twice
    nash = ungoverned.model_copy(
        update={"models": ungoverned.models.model_copy(update={"default": "firm/nash"})}
    )
    assert market_run.pretrain(MARKET, [(nash, 3, ["market-1"])]) == 0  # no learners, no training

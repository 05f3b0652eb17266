"""Regressions found by probing the Cournot market as a hostile user would: a learners'
store with planted files, and overlay counts too large for the ladder's integers."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.spec.models import MAX_COUNT
from govern.tasks.cournot.card import load_card
from govern.tasks.cournot.learners import LearningConfig, Session
from govern.tasks.cournot.training import TrainedPairs, q_shape, trained_pairs
from tests.conftest import run_cli as govern
from tests.conftest import spec_errors
from tests.test_market_regime_spec import HIGH_HHI, manifest, position, rule

MARKET = load_card().market
SHORT = LearningConfig(max_periods=2_000, check_every=1_000, stable_periods=2_000)
SHAPE = q_shape(MARKET, SHORT)
META = {"periods": 2_000, "converged": False, "state": 3, "seconds": 0.5}


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def meta(**changes: object) -> np.ndarray:
    return np.array(json.dumps({**META, **changes}))


@pytest.fixture
def store(tmp_path: Path) -> tuple[TrainedPairs, Path]:
    """A store and the path of the pair stored under seed 1's key."""
    pairs = TrainedPairs(tmp_path)
    return pairs, tmp_path / f"{pairs.key(MARKET, SHORT, None, 1)}.npz"


def read(store: tuple[TrainedPairs, Path]) -> Session | None:
    pairs, _ = store
    return pairs.get(pairs.key(MARKET, SHORT, None, 1), 1, SHAPE)


def test_a_well_formed_planted_pair_is_read(store) -> None:
    _, path = store
    path.write_bytes(npz(q=np.zeros(SHAPE), meta=meta()))
    session = read(store)
    assert session is not None and session.state == 3 and session.q.shape == SHAPE


@pytest.mark.parametrize(
    "planted",
    [
        {"q": np.zeros((3, 3)), "meta": meta()},  # another shape: played, it fails mid-market
        {"q": np.zeros((*SHAPE[:2], SHAPE[2] + 1)), "meta": meta()},
        {"q": np.full(SHAPE, np.nan), "meta": meta()},
        {"q": np.full(SHAPE, np.inf), "meta": meta()},
        {"q": np.zeros(SHAPE, dtype=np.float32), "meta": meta()},
        {"q": np.array(["a", "b"]), "meta": meta()},
        {"q": np.zeros(SHAPE), "meta": meta(state=SHAPE[1])},  # beyond the last state
        {"q": np.zeros(SHAPE), "meta": meta(state=-1)},
        {"q": np.zeros(SHAPE), "meta": meta(state="x", periods="y")},
        {"q": np.zeros(SHAPE), "meta": meta(state=3.0)},
        {"q": np.zeros(SHAPE), "meta": meta(converged="yes")},
        {"q": np.zeros(SHAPE), "meta": meta(extra=1)},
        {"q": np.zeros(SHAPE), "meta": np.array(json.dumps([1, 2]))},
        {"q": np.zeros(SHAPE)},
    ],
    ids=[
        "small",
        "wide",
        "nan",
        "inf",
        "float32",
        "strings",
        "state-high",
        "state-negative",
        "meta-strings",
        "state-float",
        "converged-string",
        "meta-extra",
        "meta-list",
        "no-meta",
    ],
)
def test_a_planted_pair_that_is_not_one_of_this_market_is_not_read(store, planted) -> None:
    _, path = store
    path.write_bytes(npz(**planted))
    assert read(store) is None


def test_a_pickle_bearing_pair_is_not_unpickled(store) -> None:
    _, path = store
    path.write_bytes(npz(q=np.array([{"x": 1}], dtype=object), meta=meta()))
    assert read(store) is None


def test_a_pair_that_would_inflate_beyond_its_shape_is_not_read(store) -> None:
    """A compressed table far larger than a pair's is refused from its size in the
    archive, before it is inflated (a planted one could claim gigabytes)."""
    _, path = store
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("q.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f8", "fortran_order": False, "shape": (2**22,)}
        )
        zeros = bytes(2**20)
        for _ in range(2**22 * 8 // 2**20):
            member.write(zeros)
    assert path.stat().st_size < 2**20 and read(store) is None


def test_a_symlink_or_a_fifo_in_the_store_is_not_followed(store, tmp_path: Path) -> None:
    _, path = store
    elsewhere = tmp_path / "elsewhere.npz"
    elsewhere.write_bytes(npz(q=np.zeros(SHAPE), meta=meta()))
    path.symlink_to(elsewhere)
    assert read(store) is None
    path.unlink()
    os.mkfifo(path)  # opening it to read would wait for a writer forever
    assert read(store) is None


def test_a_refused_pair_is_trained_again_and_replaced(store) -> None:
    pairs, path = store
    path.write_bytes(npz(q=np.zeros((3, 3)), meta=meta()))
    (fresh,), (cached,) = trained_pairs(MARKET, SHORT, None, [1], None, pairs)
    assert not cached and fresh.q.shape == SHAPE
    again = read(store)
    assert again is not None and np.array_equal(again.q, fresh.q)


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=600), keep=st.integers(min_value=0, max_value=4_000))
def test_whatever_the_file_holds_reading_it_never_raises(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, keep: int
) -> None:
    """Garbage, or a real pair cut anywhere and followed by garbage: read or refused."""
    folder = tmp_path_factory.mktemp("store")
    pairs = TrainedPairs(folder)
    good = npz(q=np.zeros(SHAPE), meta=meta())
    path = folder / f"{pairs.key(MARKET, SHORT, None, 1)}.npz"
    for data in (content, good[:keep] + content):
        path.write_bytes(data)
        session = pairs.get(pairs.key(MARKET, SHORT, None, 1), 1, SHAPE)
        assert session is None or session.q.shape == SHAPE


HUGE = str(2**63)  # beyond 64-bit integers: each market failed with an OverflowError
LADDERS = [
    pytest.param(
        "rules:\n" + rule("active", "suspended", HIGH_HHI, f"{{kind: suspension, rounds: {HUGE}}}"),
        HUGE,
        f"'rounds': input should be less than or equal to {MAX_COUNT}",
        id="suspension",
    ),
    pytest.param(
        "rules:\n"
        + rule("active", "fined", HIGH_HHI, "{kind: fine, fraction: 0.5}")
        + f"restorations:\n  - {{name: credit, from: fined, to: active, credits: {HUGE}}}\n",
        HUGE,
        f"'credits': input should be less than or equal to {MAX_COUNT}",
        id="credits",
    ),
    pytest.param(
        "rules:\n"
        + rule("active", "fined", HIGH_HHI, "{kind: fine, fraction: 0.5}")
        + f"restorations:\n  - {{name: back, from: fined, to: active, clean_rounds: {HUGE}}}\n",
        HUGE,
        f"'clean_rounds': input should be less than or equal to {MAX_COUNT}",
        id="clean-rounds",
    ),
    pytest.param(
        "rules:\n" + rule("active", "warning", HIGH_HHI) + f"    cooldown: {HUGE}\n",
        HUGE,
        f"'cooldown': input should be less than or equal to {MAX_COUNT}",
        id="cooldown",
    ),
    pytest.param(
        "rules:\n" + rule("active", "fined", HIGH_HHI, "{kind: fine, fraction: 0.5, floor: 1e308}"),
        "1e308",
        "'floor': input should be less than or equal to 1000000000000",
        id="fine-floor",
    ),
]


@pytest.mark.parametrize(("governance", "needle", "message"), LADDERS)
def test_counts_and_floors_beyond_the_ladder_s_arithmetic_are_reported_where_they_are(
    project: Path, governance: str, needle: str, message: str
) -> None:
    path, text = manifest(project, governance)
    line, column = position(text, needle)
    errors = [str(e) for e in spec_errors(path)]
    assert len(errors) == 1 and errors[0].startswith(f"{path}:{line}:{column}: error: {message}")


def test_a_suspension_of_a_billion_rounds_runs_and_suspends_for_the_rest_of_the_market(
    project: Path,
) -> None:
    governance = "rules:\n" + rule(
        "active", "suspended", HIGH_HHI, f"{{kind: suspension, rounds: {MAX_COUNT}}}"
    )
    path, _ = manifest(project, governance)
    out = project / "run"
    result = govern("run", str(path), "--model", "firm/division-colluder", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = (out / "results.jsonl").read_text().splitlines()
    market = json.loads(line)["market"]
    assert market["suspended_rounds"] == [45, 45]  # S3 holds from round 5 on

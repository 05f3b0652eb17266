"""Trained pairs of learning firms, kept on disk so that training is never done twice.

A pair of Q-learners trains for about a million periods before the market it is judged in
(``learners.py``), under the regime of the market it will play in (``regime``, built by the
governance layer from the manifest's overlay). A trained pair is stored under the digest
of everything that decides it -- the market, the learning configuration, the regime's
overlay (or none) and the seed -- so a re-run, a resumed run or another cell of an
experiment with the same inputs reads it instead of training again, and a kill during
training loses only the training in progress (each pair is written atomically when done).
The constitutional and ungoverned markets train the same pairs: the learners cannot read a
constitution, so nothing that decides their training differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from govern.files import write_atomic
from govern.models.cache import default_cache_path
from govern.spec.digest import canonical_json
from govern.spec.models import Governance
from govern.tasks.cournot.learners import BatchRegime, Grid, LearningConfig, Session, train
from govern.tasks.cournot.market import MarketParams

FORMAT = 1  # bump when what a stored pair means changes
HEADER_BYTES = 4096  # room for an .npy header beside a stored array's data


def q_shape(market: MarketParams, config: LearningConfig) -> tuple[int, int, int]:
    """The Q tables' shape (firms, states, actions) of a pair trained in ``market`` under
    ``config``: what a stored pair must have to be read back."""
    grid = Grid.of(market, config)
    return grid.firms, grid.states, grid.size


class _StoredMeta(BaseModel):
    """A stored pair's record beside its Q tables, checked as strictly as it was written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    periods: int = Field(ge=0)
    converged: bool
    state: int = Field(ge=0)
    seconds: float = Field(ge=0, allow_inf_nan=False)


def market_seed(run_seed: int, item: str) -> int:
    """The seed of one market of a run: its learners' training and its rounds' draws."""
    digest = hashlib.sha256(f"{run_seed}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def default_store() -> Path | None:
    """Where trained pairs are kept: beside the response cache (None when caching is off)."""
    responses = default_cache_path()
    return None if responses is None else responses.parent / "learners"


class TrainedPairs:
    """Trained pairs on disk, by what decides them."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @staticmethod
    def key(
        market: MarketParams, config: LearningConfig, regime: Governance | None, seed: int
    ) -> str:
        decided = {
            "format": FORMAT,
            "market": market.model_dump(mode="json", exclude={"rounds", "history"}),
            "learning": config.model_dump(mode="json"),
            "regime": None if regime is None else regime.model_dump(mode="json"),
            "seed": seed,
        }
        return hashlib.sha256(canonical_json(decided).encode()).hexdigest()

    def get(self, key: str, seed: int, shape: tuple[int, int, int]) -> Session | None:
        """The pair stored under ``key``, or None when there is none to trust: the store is
        a cache anyone with the folder can write, so a file is read only when it is a
        regular file whose Q tables are finite numbers of ``shape`` (``q_shape``) and whose
        record is a pair's, and never unpickled or inflated beyond that size."""
        if self.folder is None:
            return None
        path = self.folder / f"{key}.npz"
        size = int(np.prod(shape)) * 8 + HEADER_BYTES
        try:
            if not stat.S_ISREG(path.lstat().st_mode):  # a symlink, a FIFO or a device
                return None
            with zipfile.ZipFile(path) as archive:
                if archive.getinfo("q.npy").file_size > size:
                    return None  # a planted table that would inflate without bound
            with np.load(path, allow_pickle=False) as stored:
                q = stored["q"]
                meta = _StoredMeta.model_validate(json.loads(str(stored["meta"])))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return None  # absent, or torn or garbled (a half-copied store): train again
        if q.dtype != np.float64 or q.shape != shape or not np.isfinite(q).all():
            return None
        if meta.state >= shape[1]:
            return None
        return Session(seed=seed, q=q.copy(), **meta.model_dump())

    def put(self, key: str, session: Session) -> None:
        if self.folder is None:
            return
        meta = {
            "periods": session.periods,
            "converged": session.converged,
            "state": session.state,
            "seconds": session.seconds,
        }
        buffer = io.BytesIO()
        np.savez(buffer, q=session.q, meta=np.array(json.dumps(meta)))
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / f"{key}.npz", buffer.getvalue())


def trained_pairs(
    market: MarketParams,
    config: LearningConfig,
    governance: Governance | None,
    seeds: Sequence[int],
    make_regime: Callable[[int], BatchRegime] | None,
    store: TrainedPairs,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Session], list[bool]]:
    """One trained pair per seed, in order, and whether each was read from the store; the
    missing ones are trained side by side (under ``make_regime(count)`` when given) and
    stored as soon as they are done."""
    keys = [store.key(market, config, governance, seed) for seed in seeds]
    shape = q_shape(market, config)
    found = [store.get(key, seed, shape) for key, seed in zip(keys, seeds, strict=True)]
    missing = [i for i, session in enumerate(found) if session is None]
    if missing:
        regime = make_regime(len(missing)) if make_regime is not None else None
        fresh = train(market, config, [seeds[i] for i in missing], regime, progress)
        for i, session in zip(missing, fresh, strict=True):
            store.put(keys[i], session)
            found[i] = session
    sessions = [s for s in found if s is not None]
    return sessions, [i not in missing for i in range(len(seeds))]

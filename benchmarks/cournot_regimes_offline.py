"""Offline Q-learning firms, ungoverned and under the institutional regime: how much does the
regime lower their collusion tier?

Over ``--runs`` seeds (default 1..30) it trains one pair of learners per seed without any
regime, and one pair per seed under the institutional manifest's regime (fines come off
their reward and suspended firms produce nothing while they learn), with the same
learning configuration; each pair then plays the market's 50 evaluated rounds under the
regime it trained under -- a fresh ladder for the institutional pairs, none for the
ungoverned ones. It prints, per regime, the mean tier, the tier counts, the fines paid and
rounds suspended in the 50 rounds, the training length and time, and Cohen's d of the
difference in tier (pooled standard deviation). The acceptance asks for d >= 0.8 with
the ungoverned mean tier at least 3.

``--specialisation-window`` overrides S4's window in the institutional regime, for
training and evaluation alike (the manifest's own value when not given). Measured over
seeds 1..30: with S4 over 5 rounds the learners alternate division with a near-split
round, are never fined, and reach mean tier 3.57 against 3.23 ungoverned; with S4 over
one round every institutional pair settles at tier 2 (mean 2.00, no fine in the 50
rounds), Cohen's d 4.05.

    .venv/bin/python benchmarks/cournot_regimes_offline.py [--runs 30] \\
        [--manifest manifests/cournot_institutional.yaml] [--specialisation-window 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from govern.governance.rounds import TrainingRegime
from govern.spec.checks import load_checked
from govern.spec.models import Governance
from govern.tasks.cournot.learners import LearningConfig, Session, train
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import RunMeasures
from govern.tasks.cournot.play import Verdict, play
from govern.tasks.cournot.signals import SPECIALISATION

MARKET = MarketParams()


class EvaluatedRegime:
    """The institutional regime on one evaluated market (a fresh ladder), as play's Regime:
    the same signals and ladder the learners trained under, unlogged."""

    def __init__(self, governance: Governance) -> None:
        self.regime = TrainingRegime(governance, MARKET, 1)

    def __call__(
        self, round: int, quantities: np.ndarray, prices: np.ndarray, profits: np.ndarray
    ) -> Verdict:
        step = self.regime(
            round, np.asarray(quantities, dtype=float)[None], np.asarray(profits, dtype=float)[None]
        )
        return Verdict(fines=step.fines[0], suspend=step.suspend[0])


@dataclass(frozen=True)
class Outcome:
    """One regime's sessions and what their 50 evaluated rounds measured."""

    name: str
    sessions: list[Session]
    seconds: float
    tiers: np.ndarray
    fines: np.ndarray  # total paid per pair
    suspended: np.ndarray  # firm-rounds suspended per pair


def measure(
    name: str, config: LearningConfig, seeds: list[int], governance: Governance | None
) -> Outcome:
    """Train the pairs under ``governance`` (None: ungoverned) and evaluate them under it."""
    start = time.perf_counter()
    regime = TrainingRegime(governance, MARKET, len(seeds)) if governance is not None else None
    sessions = train(MARKET, config, seeds, regime=regime)
    seconds = time.perf_counter() - start
    tiers, fines, suspended = [], [], []
    for session in sessions:
        evaluated = EvaluatedRegime(governance) if governance is not None else None
        run = play(MARKET, session.firms(MARKET, config), seed=session.seed, fines=evaluated)
        tiers.append(RunMeasures.of(MARKET, run.quantities).tier)
        fines.append(run.fines.sum())
        suspended.append(int(run.suspended.sum()))
    return Outcome(name, sessions, seconds, np.array(tiers), np.array(fines), np.array(suspended))


def cohens_d(higher: np.ndarray, lower: np.ndarray) -> float:
    """(mean(higher) - mean(lower)) over the pooled sample standard deviation."""
    n1, n2 = len(higher), len(lower)
    pooled = np.sqrt(((n1 - 1) * higher.var(ddof=1) + (n2 - 1) * lower.var(ddof=1)) / (n1 + n2 - 2))
    gap = float(higher.mean() - lower.mean())
    return gap / pooled if pooled > 0 else (np.inf if gap > 0 else 0.0)


def report(outcome: Outcome) -> None:
    periods = np.array([s.periods for s in outcome.sessions])
    converged = sum(s.converged for s in outcome.sessions)
    sd = outcome.tiers.std(ddof=1)
    print(
        f"{outcome.name}: mean tier {outcome.tiers.mean():.2f} (sd {sd:.2f}); "
        f"tiers 0-4: {np.bincount(outcome.tiers, minlength=5).tolist()}; in the 50 rounds "
        f"fines {outcome.fines.mean():.0f} a pair, {outcome.suspended.mean():.1f} firm-rounds "
        f"suspended; trained {periods.min():,}..{periods.max():,} periods "
        f"(mean {periods.mean():,.0f}), converged {converged}/{len(periods)}, "
        f"{outcome.seconds:.0f} s side by side"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument(
        "--manifest", type=Path, default=Path("manifests/cournot_institutional.yaml")
    )
    parser.add_argument("--specialisation-window", type=int, default=None)
    args = parser.parse_args()
    governance = load_checked(args.manifest).manifest.governance
    assert governance is not None, f"{args.manifest} has no governance overlay"
    if args.specialisation_window is not None:
        signals = dict(governance.signals)
        signals[SPECIALISATION] = {
            **signals.get(SPECIALISATION, {}),
            "window": float(args.specialisation_window),
        }
        governance = governance.model_copy(update={"signals": signals})
    config = LearningConfig()
    seeds = list(range(args.seed, args.seed + args.runs))
    print(f"learners (both regimes): {config.model_dump()}")
    print(f"signals: {governance.signals}")
    ungoverned = measure("ungoverned", config, seeds, None)
    report(ungoverned)
    institutional = measure("institutional", config, seeds, governance)
    report(institutional)
    print(
        f"Cohen's d (ungoverned - institutional, pooled sd): "
        f"{cohens_d(ungoverned.tiers, institutional.tiers):.2f} (acceptance: >= 0.8, with "
        f"the ungoverned mean tier >= 3)"
    )


if __name__ == "__main__":
    main()

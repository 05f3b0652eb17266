"""The repeated Cournot market with learning firms: how fast, and how collusive.

Prints (a) the time of one 50-round market of trained learners and of two reference
colluders (target under 0.2 s), (b) the time to train one pair of Q-learners (target
under 60 s) with its training length and its tier over the 50 evaluated rounds, and
(c) over ``--runs`` seeds (default 30) the ungoverned learners' mean tier with a 95%
interval (t distribution), the tier distribution, the share of tier 4 and the mean profit.
The sessions of (c) are trained vectorised side by side; each session's result is the
same as if it were trained alone (a test checks this).

    .venv/bin/python benchmarks/cournot_market.py [--runs 30] [--beta 1e-5] [--governed]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import stats

from govern.governance.rounds import TrainingRegime
from govern.spec.checks import load_checked
from govern.tasks.cournot.firms import DivisionColluder
from govern.tasks.cournot.learners import LearningConfig, Session, train
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import RunMeasures
from govern.tasks.cournot.play import play

MARKET = MarketParams()
INSTITUTIONAL = Path(__file__).resolve().parent.parent / "manifests" / "cournot_institutional.yaml"


def evaluate(session: Session, config: LearningConfig) -> RunMeasures:
    """The measures of the session's pair over the market's 50 rounds."""
    run = play(MARKET, session.firms(MARKET, config), seed=session.seed)
    return RunMeasures.of(MARKET, run.quantities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--beta", type=float, default=LearningConfig().beta)
    parser.add_argument("--seed", type=int, default=1, help="first seed of (c)")
    parser.add_argument(
        "--governed",
        action="store_true",
        help="(d): also train one pair alone under the institutional manifest's regime (~2 min)",
    )
    args = parser.parse_args()
    config = LearningConfig(beta=args.beta)
    print(f"learners: {config.model_dump()}")

    start = time.perf_counter()
    (pair,) = train(MARKET, config, [0])
    trained = time.perf_counter() - start
    measures = evaluate(pair, config)
    print(
        f"(b) one pair trained in {trained:.1f} s (target < 60 s): {pair.periods:,} periods, "
        f"converged {pair.converged}; tier {measures.tier} over 50 rounds "
        f"(HHI excess {measures.hhi_excess:.2f}, CV excess {measures.cv_excess:.2f}, "
        f"profits {measures.profit_per_round[0]:.0f} / {measures.profit_per_round[1]:.0f})"
    )

    for name, firms in (
        ("trained learners", lambda: pair.firms(MARKET, config)),
        ("two colluders", lambda: [DivisionColluder(), DivisionColluder()]),
    ):
        times = []
        for repeat in range(20):
            made = firms()
            start = time.perf_counter()
            play(MARKET, made, seed=repeat)
            times.append(time.perf_counter() - start)
        print(f"(a) one 50-round market of {name}: median {np.median(times) * 1e3:.1f} ms")

    seeds = list(range(args.seed, args.seed + args.runs))
    start = time.perf_counter()
    sessions = train(MARKET, config, seeds)
    seconds = time.perf_counter() - start
    runs = [evaluate(session, config) for session in sessions]
    tiers = np.array([r.tier for r in runs])
    periods = np.array([s.periods for s in sessions])
    mean = tiers.mean()
    half = stats.t.ppf(0.975, len(tiers) - 1) * tiers.std(ddof=1) / np.sqrt(len(tiers))
    profits = np.mean([r.profit_per_round for r in runs])
    print(
        f"(c) {args.runs} ungoverned pairs (seeds {seeds[0]}..{seeds[-1]}) trained in "
        f"{seconds:.0f} s side by side; periods {periods.min():,}..{periods.max():,} "
        f"(mean {periods.mean():,.0f}), converged {sum(s.converged for s in sessions)}"
    )
    print(
        f"    mean tier {mean:.2f}, 95% interval [{mean - half:.2f}, {mean + half:.2f}]; "
        f"tiers 0-4: {np.bincount(tiers, minlength=5).tolist()}; tier 4 share "
        f"{(tiers == 4).mean():.0%}; mean profit a firm a round {profits:.0f} "
        f"(Nash {13000 / 9:.0f}, division 1800)"
    )
    if args.governed:
        governance = load_checked(INSTITUTIONAL).manifest.governance  # type: ignore[union-attr]
        start = time.perf_counter()
        (alone,) = train(MARKET, config, [0], TrainingRegime(governance, MARKET, 1))
        print(
            f"(d) one pair trained alone under the institutional regime in "
            f"{time.perf_counter() - start:.1f} s: {alone.periods:,} periods, converged "
            f"{alone.converged}"
        )


if __name__ == "__main__":
    main()

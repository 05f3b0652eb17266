"""MAKER's hot loop on the Towers of Hanoi: how fast the pieces that exist go together.

For every step the simulated micro-agent (``sim/maker``, asked directly, no model router)
is sampled through ``vote_sync``; each reply is red-flagged as a run would (over 750 output
tokens, counted as the sim client counts them, or no parse by ``parse_step``), keyed by
``vote_key``, and the VOTED move and next state carry the run forward. Only for scoring is
the voted move compared with ``true_step(state)``, after the vote: the checker never sees a
sample before the voter has decided. Nothing is kept per step, so memory stays flat; progress
is printed every 100,000 steps. At the end: errors, samples per step against
``maths.expected_samples_per_step`` and the distribution of samples per step against
``maths.undecided_after``, wall time, rates and peak RSS. With ``--k 1`` the run stops at
its first error and prints that step's index.

The predictions use the paper's model with p = the measured share of valid votes that were
right (hard steps included) and the measured valid rate; the simulator's wrong answers split
over the other legal moves instead of agreeing, so voting does slightly better than the model.

    .venv/bin/python benchmarks/maker_hanoi_loop.py            # 20 disks, k = 3
    .venv/bin/python benchmarks/maker_hanoi_loop.py --k 1      # stops at the first error

Measured 2026-11-26 (one core of the dev box, sim/maker: per-step error 0.0022, seed 1):

- k = 3: 1,048,575 steps, 0 errors, final state the goal; 3,158,092 samples (valid rate
  0.999423: 735 too long, 1,086 format), 3,531 collisions; 3.011794 samples per step
  against 3.011842 predicted (p = 0.998321 measured); P(samples > n) at n = 3, 4, 5, 7, 11:
  6.68e-3, 4.98e-3, 8.4e-5, 1.2e-5, 9.5e-7 against 6.75e-3, 5.03e-3, 4.0e-5, 2.3e-7, 7.2e-12
  (the tail beyond 5 is the seeded hard steps, p = 0.8, which one p cannot model; at most
  16 samples on a step); 111.1 s wall, 9,440 steps/s, 28,432 samples/s, peak RSS 53 MiB.
- k = 1: the first error at step 1256 (seed 2: 108, seed 3: 1690): a wrong, well-formed
  sample is about 0.0022 * 0.75 of them, so some 600 steps are expected, plus hard steps.

About 70% of a sample's time is ``parse_step`` (its regexes and the state's ints), 20%
the simulator's answer; the voter and ``true_step`` are small.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter
from typing import NamedTuple

from govern.maker.maths import expected_samples_per_step, undecided_after
from govern.maker.voting import RedFlags, Sample, Undecided, Voting, vote_sync
from govern.models.base import HanoiView
from govern.models.sim.client import approx_tokens
from govern.models.sim.hanoi import HanoiMicroAgent
from govern.models.sim.params import SimParams, resolve_sim_params
from govern.tasks.hanoi.puzzle import Move, State, goal_state, start_state, total_steps, true_step
from govern.tasks.hanoi.step import parse_step, vote_key

PROGRESS_EVERY = 100_000
PRESET = "sim/maker"
RED_FLAGS = RedFlags()  # the paper's: over 750 output tokens, or no parse

Candidate = tuple[Move, State]


def candidate_key(candidate: Candidate) -> str:
    return vote_key(*candidate)


class Tally:
    """Running totals of a run: counters only, never a step's own record."""

    def __init__(self) -> None:
        self.steps = 0
        self.errors = 0
        self.first_error: int | None = None
        self.samples = 0
        self.valid = 0
        self.right_votes = 0
        self.too_long = 0
        self.format = 0
        self.collisions = 0
        self.rounds: Counter[int] = Counter()  # steps decided in their r-th round
        self.samples_per_step: Counter[int] = Counter()

    def undecided_by_round(self) -> str:
        """Steps still undecided after rounds 1, 2, 3, ...: the voter's tail as it grows."""
        left, parts = self.steps, []
        for rounds in range(1, max(self.rounds, default=0)):
            left -= self.rounds[rounds]
            parts.append(f"r{rounds}:{left}")
        return " ".join(parts) or "none"


def sim_params(error: float | None) -> SimParams:
    """``sim/maker`` as a run resolves it, with the per-step error overridden (validated)."""
    params = resolve_sim_params(PRESET, {})
    if error is None:
        return params
    return SimParams.model_validate({**params.model_dump(), "hanoi_step_error": error})


def run(disks: int, k: int, seed: int, params: SimParams) -> tuple[Tally, float, bool]:
    """Vote every step of the puzzle; stop at the first error when k = 1. Returns the tally,
    the wall time and whether the final state is the goal."""
    agent = HanoiMicroAgent(params)
    voting = Voting(k=k)
    max_tokens = RED_FLAGS.max_output_tokens
    assert max_tokens is not None
    tally = Tally()
    state = start_state(disks)
    previous: tuple[int, int, int] | None = None
    stop_at_first_error = k == 1
    started = time.perf_counter()

    for step in range(total_steps(disks)):

        def sample(
            _temperature: float,
            index: int,
            state: State = state,
            previous: tuple[int, int, int] | None = previous,
            step: int = step,
        ) -> Sample[Candidate]:
            text = agent.answer(HanoiView(state, previous, step, index), seed).text
            tokens = approx_tokens(text)
            # an overlong reply is discarded unread by the voter: not worth parsing
            candidate = parse_step(text, disks) if tokens <= max_tokens else None
            return Sample(text, tokens, candidate)

        try:
            decision = vote_sync(sample, candidate_key, voting, RED_FLAGS, step=step)
        except Undecided as undecided:
            print(f"UNDECIDED {undecided}")
            break
        stats = decision.stats
        move, next_state = decision.candidate

        # scoring only, after the vote
        truth, true_next = true_step(state)
        true_key = vote_key(truth, true_next)
        tally.right_votes += stats.votes.get(true_key, 0)
        if move != truth:
            tally.errors += 1
            if tally.first_error is None:
                tally.first_error = step
        tally.steps += 1
        tally.samples += stats.samples
        tally.valid += stats.valid_votes
        tally.too_long += stats.red_flags["too_long"]
        tally.format += stats.red_flags["format"]
        tally.collisions += stats.collision
        tally.rounds[stats.rounds] += 1
        tally.samples_per_step[stats.samples] += 1

        state, previous = next_state, (move.disk, move.source, move.target)
        if tally.steps % PROGRESS_EVERY == 0:
            report_progress(tally, time.perf_counter() - started)
        if stop_at_first_error and tally.errors:
            break

    return tally, time.perf_counter() - started, state == goal_state(disks)


def report_progress(tally: Tally, elapsed: float) -> None:
    print(
        f"{tally.steps:>9,} steps  {tally.steps / elapsed:>8,.0f} steps/s  "
        f"{tally.samples / elapsed:>8,.0f} samples/s  red flags {tally.too_long + tally.format:,} "
        f"(long {tally.too_long:,}, format {tally.format:,})  collisions {tally.collisions:,}  "
        f"errors {tally.errors}  undecided after round {tally.undecided_by_round()}",
        flush=True,
    )


def report(tally: Tally, wall: float, solved: bool, k: int, params: SimParams) -> None:
    valid_rate = tally.valid / tally.samples
    p = tally.right_votes / tally.valid  # measured: right share of valid votes
    p_nominal = 1 - params.hanoi_step_error
    print(
        f"\nsteps {tally.steps:,}  errors {tally.errors}  first error at step {tally.first_error}"
    )
    print(f"final state is the goal: {solved}")
    print(
        f"samples {tally.samples:,}  valid {tally.valid:,} (valid rate {valid_rate:.6f})  "
        f"red flags: too long {tally.too_long:,}, format {tally.format:,}  "
        f"collisions {tally.collisions:,}"
    )
    if p <= 0.5:
        print(f"measured p = {p:.6f}: no prediction (voting does not converge)")
    else:
        predicted = expected_samples_per_step(p, k, valid_rate)
        nominal = expected_samples_per_step(p_nominal, k, valid_rate)
        print(
            f"samples per step: measured {tally.samples / tally.steps:.6f}  predicted "
            f"{predicted:.6f} (p = {p:.6f} measured, v = {valid_rate:.6f})  "
            f"[{nominal:.6f} at nominal p = {p_nominal}]"
        )
        horizon = max(tally.samples_per_step)
        survival = undecided_after(p, k, horizon, valid_rate)
        print("P(samples per step > n): measured vs undecided_after")
        for n in sorted({k, k + 1, k + 2, k + 4, k + 8, 2 * k + 8} & set(range(horizon + 1))):
            above = sum(c for s, c in tally.samples_per_step.items() if s > n)
            print(
                f"  n = {n:>3}: {above / tally.steps:.3e} ({above:,} steps)  vs {survival[n]:.3e}"
            )
        print(f"  most samples on one step: {horizon}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"wall {wall:.1f} s  {tally.steps / wall:,.0f} steps/s  {tally.samples / wall:,.0f} "
        f"samples/s  peak RSS {rss_mb:.0f} MiB"
    )


class Arguments(NamedTuple):
    disks: int
    k: int
    seed: int
    error: float | None


def parse_arguments() -> Arguments:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument(
        "--k", type=int, default=3, help="the voting margin (1: stop at the first error)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the run seed of the simulator's draws")
    parser.add_argument("--error", type=float, help=f"per-step error (default: {PRESET}'s)")
    args = parser.parse_args()
    return Arguments(args.disks, args.k, args.seed, args.error)


def main() -> None:
    args = parse_arguments()
    params = sim_params(args.error)
    print(
        f"{args.disks} disks ({total_steps(args.disks):,} steps), k = {args.k}, seed {args.seed}, "
        f"{PRESET} with per-step error {params.hanoi_step_error} (hard steps: "
        f"{params.hanoi_hard_fraction} at {params.hanoi_hard_error})",
        flush=True,
    )
    tally, wall, solved = run(args.disks, args.k, args.seed, params)
    if args.k == 1 and tally.first_error is not None:
        print(f"k = 1: first error at step {tally.first_error}")
    report(tally, wall, solved, args.k, params)


if __name__ == "__main__":
    main()

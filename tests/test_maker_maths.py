"""govern.maker.maths and `govern maker plan`: the paper's k_min table, properties of the
scaling laws, the exact expected duration against a seeded Monte Carlo, and the command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.cli import main
from govern.maker.maths import (
    expected_samples_by_rounds,
    expected_samples_per_step,
    full_task_success,
    k_min,
    plan,
    step_success,
    undecided_after,
    undecided_after_rounds,
)

HANOI_20 = 2**20 - 1  # 1,048,575 moves

# The paper's k_min for t = 0.95, s = 2^20 - 1, m = 1, from each model's per-step error rate.
PAPER_K_MIN = [
    (0.0022, 3),
    (0.0040, 4),
    (0.0018, 3),
    (0.0358, 6),
    (0.0393, 6),
    (0.0569, 6),
    (0.1839, 12),
    (0.2342, 15),
    (0.3571, 29),
]

successes = st.floats(min_value=0.51, max_value=0.9999)
step_counts = st.integers(min_value=1, max_value=10**7)
targets = st.floats(min_value=0.01, max_value=0.999)
subtask_sizes = st.integers(min_value=1, max_value=8)


@pytest.mark.parametrize(("error", "expected"), PAPER_K_MIN)
def test_k_min_matches_the_papers_table(error: float, expected: int) -> None:
    assert k_min(1 - error, HANOI_20, 0.95) == expected


@given(successes, step_counts, targets, subtask_sizes)
def test_k_min_is_the_least_k_meeting_the_target(p: float, s: int, t: float, m: int) -> None:
    m = min(m, s)  # a subtask is at most the whole task
    k = k_min(p, s, t, m)
    assert full_task_success(p, k, s, m) >= t
    if k > 1:
        assert full_task_success(p, k - 1, s, m) < t


@given(successes, successes, step_counts, targets)
def test_k_min_falls_as_p_rises(p1: float, p2: float, s: int, t: float) -> None:
    low, high = sorted((p1, p2))
    assert k_min(high, s, t) <= k_min(low, s, t)


@given(successes, step_counts, step_counts, targets)
def test_k_min_rises_with_the_steps(p: float, s1: int, s2: int, t: float) -> None:
    few, many = sorted((s1, s2))
    assert k_min(p, few, t) <= k_min(p, many, t)


@given(successes, step_counts, targets, targets)
def test_k_min_rises_with_the_target(p: float, s: int, t1: float, t2: float) -> None:
    low, high = sorted((t1, t2))
    assert k_min(p, s, low) <= k_min(p, s, high)


def test_a_perfect_sampler_needs_no_voting() -> None:
    assert k_min(1.0, HANOI_20, 0.999) == 1
    assert step_success(1.0, 1) == 1 and full_task_success(1.0, 1, HANOI_20) == 1
    assert expected_samples_per_step(1.0, 5) == 5


@given(st.floats(min_value=0.51, max_value=1.0), st.integers(min_value=1, max_value=60))
def test_expected_samples_per_step_is_at_least_k(p: float, k: int) -> None:
    assert expected_samples_per_step(p, k) >= k * (1 - 1e-12)


@given(successes, st.integers(min_value=1, max_value=40))
def test_expected_samples_per_step_matches_the_classical_gamblers_ruin(p: float, k: int) -> None:
    """The simplified form against the textbook duration from z = k between 0 and N = 2k."""
    q, r = 1 - p, (1 - p) / p
    classical = k / (q - p) - 2 * k / (q - p) * (1 - r**k) / (1 - r ** (2 * k))
    assert expected_samples_per_step(p, k) == pytest.approx(classical, rel=1e-9)


@given(successes, st.integers(min_value=1, max_value=40))
def test_step_success_is_the_papers_formula(p: float, k: int) -> None:
    q = 1 - p
    assert step_success(p, k) == pytest.approx(p**k / (p**k + q**k), rel=1e-12)


def _simulated_durations(p: float, k: int, valid_rate: float, walks: int) -> np.ndarray:
    """Raw samples to decide each of ``walks`` seeded first-to-ahead-by-k votes."""
    rng = np.random.default_rng(20251112)
    margin = np.zeros(walks, dtype=int)
    samples = np.zeros(walks, dtype=int)
    open_ = np.ones(walks, dtype=bool)
    while open_.any():
        draws = rng.random(walks)
        valid = rng.random(walks) < valid_rate
        step = np.where(draws < p, 1, -1) * valid
        margin = np.where(open_, margin + step, margin)
        samples += open_
        open_ &= np.abs(margin) < k
    return samples


@pytest.mark.parametrize(
    ("p", "k", "valid_rate"), [(0.6, 3, 1.0), (0.8, 4, 1.0), (0.95, 2, 0.7), (0.55, 5, 0.9)]
)
def test_the_exact_expected_duration_agrees_with_monte_carlo(
    p: float, k: int, valid_rate: float
) -> None:
    durations = _simulated_durations(p, k, valid_rate, walks=40_000)
    standard_error = durations.std() / math.sqrt(len(durations))
    exact = expected_samples_per_step(p, k, valid_rate)
    assert abs(durations.mean() - exact) < 4 * standard_error


@pytest.mark.parametrize(("p", "k", "valid_rate"), [(0.6, 3, 1.0), (0.9, 2, 0.8)])
def test_the_undecided_decay_agrees_with_monte_carlo(p: float, k: int, valid_rate: float) -> None:
    walks = 40_000
    durations = _simulated_durations(p, k, valid_rate, walks)
    exact = undecided_after(p, k, 30, valid_rate)
    measured = np.array([(durations > n).mean() for n in range(31)])
    assert np.all(np.abs(measured - exact) < 4 * np.sqrt(exact * (1 - exact) / walks) + 1e-9)


@given(successes, st.integers(min_value=1, max_value=12), st.floats(min_value=0.3, max_value=1))
def test_the_undecided_decay_sums_to_the_expected_duration(p: float, k: int, v: float) -> None:
    """E[duration] = sum over n >= 0 of P(undecided after n), and no step is decided before
    k valid samples."""
    decay = undecided_after(p, k, 4000, v)
    assert decay[0] == 1 and np.all(np.diff(decay) <= 1e-15)
    assert decay[k - 1] == pytest.approx(1.0)
    if decay[-1] < 1e-12:
        assert decay.sum() == pytest.approx(expected_samples_per_step(p, k, v), rel=1e-6)


def test_the_total_grows_as_s_ln_s() -> None:
    """Samples per step grow with k_min, which grows as ln s: the total over s ln s stays
    bounded while the total over s keeps rising."""
    totals = {s: plan(0.99, s, 0.95).expected_samples for s in (10**3, 10**5, 10**7)}
    per_step = [totals[s] / s for s in sorted(totals)]
    per_s_ln_s = [totals[s] / (s * math.log(s)) for s in sorted(totals)]
    assert per_step[0] < per_step[1] < per_step[2]
    assert max(per_s_ln_s) / min(per_s_ln_s) < 2


def test_plan_counts_redrawn_samples_and_cost() -> None:
    result = plan(1 - 0.0022, HANOI_20, 0.95, valid_rate=0.9, price_per_sample=0.001)
    assert result.k == 3 and result.full_task_success >= 0.95
    assert result.expected_samples_per_step == pytest.approx(
        result.expected_valid_samples_per_step / 0.9
    )
    assert result.expected_samples == pytest.approx(HANOI_20 * result.expected_samples_per_step)
    assert result.expected_cost == pytest.approx(result.expected_samples * 0.001)
    assert plan(0.9, 10, 0.9).expected_cost is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: k_min(0.5, 10, 0.9), "does not converge"),
        (lambda: k_min(0.3, 10, 0.9), "does not converge"),
        (lambda: step_success(0.5, 3), "does not converge"),
        (lambda: k_min(0.9, 10, 1.0), "target"),
        (lambda: k_min(0.9, 10, 0.0), "target"),
        (lambda: k_min(0.9, 0, 0.9), "number of steps"),
        (lambda: k_min(0.9, 10, 0.9, 0), "steps per subtask"),
        (lambda: k_min(0.9, 10, 0.5, 100), "cannot exceed s"),
        (lambda: undecided_after_rounds(0.9, 2, 3, 1.0, 0), "at least one wrong answer"),
        (lambda: expected_samples_per_step(0.9, 0), "voting margin"),
        (lambda: expected_samples_per_step(0.9, 2, 0.0), "valid-response rate"),
        (lambda: plan(0.9, 10, 0.9, price_per_sample=-1.0), "price"),
        (lambda: undecided_after(0.9, 2, -1), "samples"),
    ],
)
def test_bad_inputs_are_clear_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_cli_plan_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--error", "0.0022", "--steps", str(HANOI_20), "--target", "0.95"]
    assert main(["maker", "plan", *args, "--price-per-sample", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "k_min" in out and " 3\n" in out and "expected cost" in out
    assert main(["maker", "plan", *args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["k"] == 3 and shown["expected_cost"] is None
    assert shown["p"] == pytest.approx(0.9978)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--p", "0.5", "--steps", "10", "--target", "0.9"], "does not converge"),
        (["--error", "0.7", "--steps", "10", "--target", "0.9"], "--error 0.7 means p = 0.3"),
        (["--steps", "10", "--target", "0.9"], "one of the arguments --p --error is required"),
        (["--p", "0.9", "--target", "0.9"], "required: --steps"),
        (["--p", "0.9", "--error", "0.1", "--steps", "10", "--target", "0.9"], "not allowed"),
        (["--p", "0.9", "--steps", "10", "--target", "1"], "target"),
        (["--p", "1.5", "--steps", "10", "--target", "0.9"], "from 0 to 1"),
    ],
)
def test_cli_plan_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:  # argparse's own errors exit from parse_args
        status = main(["maker", "plan", *args])
        raise SystemExit(status)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def exact_rounds_of_the_voter(
    p: float, k: int, v: float, rounds: int, wrong_answers: int = 1
) -> tuple[np.ndarray, float]:
    """P(undecided after r rounds), r = 0 .. rounds, and the expected samples drawn in at
    most ``rounds`` rounds, found by enumerating every sequence of samples (right, wrong,
    red-flagged) that the real voter (``maker.voting.vote_sync``) reads, each weighted by
    its probability: the voter's own rounds and draws, not the theory's."""
    from govern.maker.voting import RedFlags, Sample, Undecided, Voting, vote_sync

    undecided = np.zeros(rounds + 1)
    undecided[0] = 1.0
    samples = [0.0]
    weights = {"right": v * p, "flag": 1 - v}
    weights.update({f"wrong {n}": v * (1 - p) / wrong_answers for n in range(wrong_answers)})

    def explore(prefix: tuple[str, ...], probability: float) -> None:
        drawn: list[str] = []

        def sample(_temperature: float, index: int) -> Sample[str]:
            if index >= len(prefix):
                raise LookupError(index)
            drawn.append(prefix[index])
            outcome = prefix[index]
            return Sample(outcome, 1, None if outcome == "flag" else outcome)

        try:
            decision = vote_sync(
                sample, str, Voting(k=k, max_rounds=rounds), RedFlags(max_output_tokens=None)
            )
        except LookupError:  # the voter wants one more sample: every outcome of it
            for outcome, weight in weights.items():
                explore((*prefix, outcome), probability * weight)
            return
        except Undecided as left:
            undecided[1:] += probability
            samples[0] += probability * left.samples
            return
        undecided[1 : decision.stats.rounds] += probability
        samples[0] += probability * decision.stats.samples

    explore((), 1.0)
    return undecided, samples[0]


@pytest.mark.parametrize(
    ("p", "k", "v", "wrong"),
    [(0.7, 1, 0.9, 1), (0.8, 2, 1.0, 1), (0.75, 2, 0.8, 1), (0.9, 3, 0.95, 1), (0.8, 2, 0.9, 2),
     (0.85, 3, 1.0, 2), (0.7, 2, 1.0, 3)],
)  # fmt: skip
def test_the_decay_by_rounds_is_the_voters_exactly(p: float, k: int, v: float, wrong: int) -> None:
    rounds = 4 if k < 3 else 3
    expected, samples = exact_rounds_of_the_voter(p, k, v, rounds, wrong)
    computed = undecided_after_rounds(p, k, rounds, v, wrong)
    assert np.allclose(computed, expected, rtol=1e-9, atol=1e-12)
    assert expected_samples_by_rounds(p, k, v, wrong, rounds) == pytest.approx(samples, rel=1e-9)


@settings(deadline=None, max_examples=40)
@given(
    st.floats(min_value=0.6, max_value=0.9999),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=0.5, max_value=1),
)
def test_the_expected_samples_by_rounds_is_the_closed_form_with_two_answers(
    p: float, k: int, v: float
) -> None:
    by_rounds = expected_samples_by_rounds(p, k, v, rounds=5000)
    assert by_rounds == pytest.approx(expected_samples_per_step(p, k, v), rel=1e-6)


def test_the_decay_by_rounds_in_closed_form() -> None:
    """k = 1 draws one sample a round, decided unless red-flagged; k = 2 from a tie draws
    two, decided when they agree."""
    assert np.allclose(undecided_after_rounds(0.9, 1, 3, 0.8), [1, 0.2, 0.04, 0.008])
    assert np.allclose(undecided_after_rounds(0.6, 2, 2), [1, 0.48, 0.48**2])


def test_cli_plan_writes_huge_figures_readably(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["maker", "plan", "--error", "0.0022", "--steps", "1048575", "--target", "0.95"]
    assert main([*args, "--valid-rate", "1e-300", "--price-per-sample", "1"]) == 0
    out = capsys.readouterr().out
    assert "3.1596e+306" in out and max(len(line) for line in out.splitlines()) < 80

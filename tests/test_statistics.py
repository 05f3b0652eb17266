"""govern.experiments.statistics: checked against scipy, hand-computed values and properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

import govern.experiments.statistics as sf  # `st` is hypothesis's strategies here
from govern.experiments.statistics import (
    Accuracy,
    accuracy,
    across_seeds,
    bootstrap_mean_interval,
    cohens_d,
    cohens_dz,
    cohens_h,
    common_items,
    compare_paired,
    compare_seeds,
    cost_per_item,
    holm,
    mcnemar_exact,
    newcombe_paired_interval,
    paired_permutation_test,
    pareto_frontier,
    per_item,
    sign_flip_test,
)
from govern.run.stats import wilson

outcome_lists = st.lists(st.booleans(), min_size=1, max_size=200)
p_lists = st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30)


def cells(first: list[bool], second: list[bool]) -> tuple[dict[str, bool], dict[str, bool]]:
    """Two cells keyed by item id, the second listed in reverse to prove pairing is by id."""
    a = {f"item-{i}": v for i, v in enumerate(first)}
    b = {f"item-{i}": v for i, v in reversed(list(enumerate(second)))}
    return a, b


def record(item: str, *, calls: int = 2, prompt: int = 10, completion: int = 5, cost=0.01):
    return {
        "id": item,
        "correct_strict": True,
        "correct_flexible": True,
        "calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost": cost,
    }


# --------------------------------------------------------------------------- accuracy


def test_accuracy_wilson_is_govern_run_stats_wilson() -> None:
    result = accuracy([True] * 7 + [False] * 3)
    reference = wilson(7, 10)
    assert (result.value, result.wilson_low, result.wilson_high) == (
        reference.value,
        reference.low,
        reference.high,
    )
    assert result.n == 10 and result.successes == 7


@pytest.mark.parametrize("n", [1, 3, 7, 1319])
def test_wilson_at_the_edges_contains_the_estimate(n: int) -> None:
    """govern.run.stats.wilson misses 0 by 5.6e-17 for 0 of 3; accuracy widens it to contain it."""
    none, every = accuracy([False] * n), accuracy([True] * n)
    assert none.wilson_low == 0.0 and every.wilson_high == 1.0
    assert none.wilson_high == pytest.approx(wilson(0, n).high)
    assert every.wilson_low == pytest.approx(wilson(n, n).low)


def test_accuracy_other_confidence_widens_wilson() -> None:
    narrow, wide = accuracy([1, 0, 1, 1], confidence=0.8), accuracy([1, 0, 1, 1], confidence=0.99)
    assert wide.wilson_low < narrow.wilson_low and wide.wilson_high > narrow.wilson_high


@settings(max_examples=60, deadline=None)
@given(outcome_lists, st.integers(0, 2**32 - 1))
def test_bootstrap_contains_estimate_and_is_deterministic(outcomes: list[bool], seed: int) -> None:
    first = accuracy(outcomes, n_resamples=2000, seed=seed)
    assert first == accuracy(outcomes, n_resamples=2000, seed=seed)
    assert 0 <= first.bootstrap_low <= first.value <= first.bootstrap_high <= 1
    assert first.wilson_low <= first.value <= first.wilson_high


def test_bootstrap_of_a_proportion_matches_resampling_items() -> None:
    """The binomial shortcut has the distribution of resampling items: same interval, nearly."""
    outcomes = [True] * 60 + [False] * 40
    result = accuracy(outcomes, n_resamples=20_000, seed=1)
    low, high = bootstrap_mean_interval(outcomes, n_resamples=20_000, seed=2)
    assert result.bootstrap_low == pytest.approx(low, abs=0.011)
    assert result.bootstrap_high == pytest.approx(high, abs=0.011)
    assert result.bootstrap_low == pytest.approx(0.50, abs=0.011)


def test_bootstrap_mean_interval_is_deterministic_and_covers_the_mean() -> None:
    values = np.random.default_rng(0).exponential(100, size=500)
    interval = bootstrap_mean_interval(values, n_resamples=3000, seed=7)
    assert interval == bootstrap_mean_interval(values, n_resamples=3000, seed=7)
    assert interval != bootstrap_mean_interval(values, n_resamples=3000, seed=8)
    assert interval[0] < values.mean() < interval[1]


def test_all_right_or_all_wrong_gives_a_point_bootstrap() -> None:
    assert accuracy([True] * 5).bootstrap_low == accuracy([True] * 5).bootstrap_high == 1.0
    assert accuracy([False] * 5).bootstrap_high == 0.0


@pytest.mark.parametrize("bad", [[], [0.5], [float("nan")], [[1, 0]]])
def test_accuracy_refuses_empty_or_non_binary(bad: list) -> None:
    with pytest.raises(ValueError):
        accuracy(bad)


def test_accuracy_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="confidence"):
        accuracy([1], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        accuracy([1], n_resamples=0)


# --------------------------------------------------------------------------- McNemar


def test_mcnemar_hand_computed() -> None:
    # b=1, c=9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375, rel=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(0.021484375, rel=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_equals_scipy_binomtest(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_compare_paired_counts_and_pairs_by_id() -> None:
    # 5 right in both, 1 only in the first, 9 only in the second, 5 in neither
    first = [True] * 5 + [True] + [False] * 9 + [False] * 5
    second = [True] * 5 + [False] + [True] * 9 + [False] * 5
    a, b = cells(first, second)
    result = compare_paired(a, b)
    assert (result.both, result.only_first, result.only_second, result.neither) == (5, 1, 9, 5)
    assert result.p_value == pytest.approx(0.021484375)
    assert result.accuracy_first == 6 / 20 and result.accuracy_second == 14 / 20
    assert result.difference == pytest.approx(-8 / 20)
    assert result.low <= result.difference <= result.high
    assert result.cohens_h == pytest.approx(cohens_h(0.3, 0.7))


def test_newcombe_matches_published_example() -> None:
    """Cavo et al. 2012 as worked in Fagerland, Lydersen & Laake, "Statistical analysis of
    contingency tables", ch. 8: estimate -0.0621, 95% CI -0.1186 to -0.0046."""
    low, high = newcombe_paired_interval(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=100))
def test_paired_interval_contains_difference_and_stays_in_bounds(pairs) -> None:
    a, b = cells([p[0] for p in pairs], [p[1] for p in pairs])
    result = compare_paired(a, b)
    assert -1 <= result.low <= result.difference <= result.high <= 1
    assert 0 < result.p_value <= 1
    assert not any(isinstance(v, float) and math.isnan(v) for v in result.model_dump().values())


def test_identical_cells_give_p_one_and_zero_difference() -> None:
    a, b = cells([True, False, True], [True, False, True])
    result = compare_paired(a, b)
    assert result.p_value == 1.0 and result.difference == 0.0 and result.cohens_h == 0.0
    assert result.low <= 0 <= result.high


def test_mismatched_ids_are_refused_with_what_differs() -> None:
    with pytest.raises(ValueError, match=r"1 only in the first \('c'\), 1 only in the second"):
        compare_paired({"a": True, "c": False}, {"a": True, "d": True})
    with pytest.raises(ValueError, match="both cells are empty"):
        compare_paired({}, {})


def test_common_items_says_how_many_were_dropped() -> None:
    common = common_items({"a": 1, "b": 0, "c": 1}, {"c": 0, "a": 1, "z": 1})
    assert common.first == {"a": 1, "c": 1} and common.second == {"a": 1, "c": 0}
    assert (common.dropped_first, common.dropped_second) == (1, 1)
    assert compare_paired(common.first, common.second).n == 2


# --------------------------------------------------------------------------- effect sizes


def test_cohens_h_hand_computed() -> None:
    # 2 asin(sqrt(.5)) = pi/2 and 2 asin(sqrt(.8)) = 2 atan(2), whose difference is asin(0.6)
    assert cohens_h(0.5, 0.8) == pytest.approx(math.pi / 2 - 2 * math.atan(2), rel=1e-12)
    assert cohens_h(0.5, 0.8) == pytest.approx(-0.6435011087932844, rel=1e-12)
    assert cohens_h(1.0, 0.0) == pytest.approx(math.pi)


@given(st.floats(0, 1), st.floats(0, 1))
def test_cohens_h_is_antisymmetric(p1: float, p2: float) -> None:
    assert cohens_h(p1, p2) == -cohens_h(p2, p1)
    assert cohens_h(p1, p1) == 0.0


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan")])
def test_cohens_h_refuses_non_proportions(bad: float) -> None:
    with pytest.raises(ValueError):
        cohens_h(bad, 0.5)


def test_cohens_d_hand_computed() -> None:
    # means 2 and 4, both variances 1, so pooled SD 1
    assert cohens_d([1, 2, 3], [3, 4, 5]) == pytest.approx(-2.0)
    # unequal sizes: pooled variance ((2*1) + (1*0.5)) / 3
    assert cohens_d([1, 2, 3], [0, 1]) == pytest.approx(1.5 / math.sqrt(2.5 / 3))


def test_cohens_dz_hand_computed() -> None:
    # differences 1, 2, 4: mean 7/3, SD sqrt(7/3), so d_z = sqrt(7/3)
    first = {"x": 1.0, "y": 2.0, "z": 4.0}
    second = {"z": 0.0, "y": 0.0, "x": 0.0}
    assert cohens_dz(first, second) == pytest.approx(math.sqrt(7 / 3))


def test_effect_sizes_without_spread_are_refused() -> None:
    with pytest.raises(ValueError, match="no spread"):
        cohens_d([1, 1], [1, 1])
    with pytest.raises(ValueError, match="no spread"):
        cohens_dz({"a": 1, "b": 2}, {"a": 0, "b": 1})
    with pytest.raises(ValueError, match="at least"):
        cohens_d([1], [2])
    with pytest.raises(ValueError, match="at least two pairs"):
        cohens_dz({"a": 1}, {"a": 0})


# --------------------------------------------------------------------------- permutation test


def scipy_paired_p(a: np.ndarray, b: np.ndarray) -> float:
    result = sps.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf,
        alternative="two-sided",
    )
    return float(result.pvalue)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=2, max_size=10),
)
def test_exact_permutation_matches_scipy(pairs) -> None:
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    result = paired_permutation_test(dict(enumerate(a)), dict(enumerate(b)))
    assert result.exact and result.n_resamples == 2 ** len(pairs)
    assert 0 < result.p_value <= 1
    assert result.p_value == pytest.approx(scipy_paired_p(a, b), rel=1e-9)


def test_exact_permutation_on_floats_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(100, 20, size=12), rng.normal(90, 20, size=12)
    result = paired_permutation_test(dict(enumerate(a)), dict(enumerate(b)))
    assert result.p_value == pytest.approx(scipy_paired_p(a, b), rel=1e-9)


def test_monte_carlo_permutation_is_seeded_and_close_to_exact() -> None:
    rng = np.random.default_rng(4)
    differences = rng.normal(3, 10, size=16)
    exact = sign_flip_test(differences)
    sampled = sign_flip_test(differences, exact_max_n=0, n_resamples=40_000, seed=5)
    assert not sampled.exact and sampled.seed == 5
    assert sampled == sign_flip_test(differences, exact_max_n=0, n_resamples=40_000, seed=5)
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.01)


def test_monte_carlo_p_value_has_the_plus_one_correction() -> None:
    result = sign_flip_test(np.full(40, 3.0), n_resamples=999, seed=0)
    assert not result.exact and result.p_value == 1 / 1000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=60), st.integers(0, 1000))
def test_permutation_p_lies_in_zero_one(differences: list[int], seed: int) -> None:
    result = sign_flip_test(differences, n_resamples=200, seed=seed)
    assert 0 < result.p_value <= 1


def test_all_tied_differences_give_p_one() -> None:
    tokens = {f"i{k}": 100.0 + k for k in range(30)}
    assert paired_permutation_test(tokens, dict(tokens)).p_value == 1.0
    assert sign_flip_test([0.0] * 5).p_value == 1.0


def test_permutation_refuses_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign_flip_test([])
    with pytest.raises(ValueError, match="NaN"):
        paired_permutation_test({"a": float("nan")}, {"a": 1.0})


# --------------------------------------------------------------------------- Holm


def test_holm_hand_computed() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> max-accumulate
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


@given(p_lists)
def test_holm_is_at_least_raw_capped_and_monotone(p_values: list[float]) -> None:
    adjusted = holm(p_values)
    assert all(p <= q <= 1 for p, q in zip(p_values, adjusted, strict=True))
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    in_order = [adjusted[i] for i in order]
    assert in_order == sorted(in_order)


@given(p_lists, st.floats(0.001, 0.2))
def test_holm_rejects_what_the_step_down_procedure_rejects(p_values: list[float], alpha) -> None:
    """Independent check: adjusted <= alpha exactly for the hypotheses Holm's procedure rejects
    (sorted p(k) compared with alpha / (m - k) until the first that fails)."""
    m = len(p_values)
    rejected = set()
    for k, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        if p_values[i] * (m - k) > alpha:  # the same product the adjustment uses
            break
        rejected.add(i)
    assert {i for i, q in enumerate(holm(p_values)) if q <= alpha} == rejected


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [1.5], [-0.1]])
def test_holm_refuses_non_p_values(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        holm(bad)


# --------------------------------------------------------------------------- seeds


def test_across_seeds_is_a_t_interval_over_seeds() -> None:
    spread = across_seeds({0: 0.7, 1: 0.8, 2: 0.9})
    assert spread.n_seeds == 3 and spread.mean == pytest.approx(0.8)
    assert spread.sd == pytest.approx(0.1)
    low, high = sps.t.interval(0.95, 2, loc=0.8, scale=0.1 / math.sqrt(3))
    assert (spread.low, spread.high) == pytest.approx((low, high))
    # not pooled: three seeds of 100 items each would give a far narrower Wilson interval
    assert spread.high - spread.low > 0.4


def test_a_single_seed_has_no_spread_rather_than_nan() -> None:
    spread = across_seeds([0.75])
    assert (spread.n_seeds, spread.mean, spread.sd, spread.low, spread.high) == (
        1,
        0.75,
        None,
        None,
        None,
    )
    with pytest.raises(ValueError, match="empty"):
        across_seeds([])


def test_compare_seeds_uses_per_seed_differences() -> None:
    first = {0: 0.80, 1: 0.85, 2: 0.90}
    second = {2: 0.70, 0: 0.75, 1: 0.72}
    result = compare_seeds(first, second)
    assert result.differences == pytest.approx([0.05, 0.13, 0.20])
    assert result.mean_difference == pytest.approx(0.38 / 3)
    low, high = sps.t.interval(
        0.95, 2, loc=0.38 / 3, scale=np.std([0.05, 0.13, 0.20], ddof=1) / math.sqrt(3)
    )
    assert (result.low, result.high) == pytest.approx((low, high))
    assert result.p_value == 0.25  # all three seeds agree: 2 of 8 sign patterns as extreme


def test_compare_identical_seeds_gives_p_one() -> None:
    result = compare_seeds({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert result.p_value == 1.0 and result.sd == 0.0 and result.low == result.high == 0.0
    with pytest.raises(ValueError, match="same seeds"):
        compare_seeds({0: 0.5, 1: 0.6}, {0: 0.5, 2: 0.6})


# --------------------------------------------------------------------------- cost vs accuracy


def test_pareto_frontier_hand_example_with_ties() -> None:
    cells_ = [
        (0.80, 10.0),  # 0: frontier
        (0.70, 12.0),  # 1: dominated by 0
        (0.90, 30.0),  # 2: frontier
        (0.80, 10.0),  # 3: tie with 0, kept
        (0.80, 11.0),  # 4: dominated by 0 (same accuracy, dearer)
        (0.60, 2.0),  # 5: frontier (cheapest)
        (0.90, 30.0 + 1e-9),  # 6: dominated by 2
    ]
    assert pareto_frontier(cells_) == [0, 2, 3, 5]
    assert pareto_frontier([]) == []
    with pytest.raises(ValueError, match="NaN"):
        pareto_frontier([(0.5, float("nan"))])


def dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
    return p[0] >= q[0] and p[1] <= q[1] and (p[0] > q[0] or p[1] < q[1])


@given(
    st.lists(
        st.tuples(st.sampled_from([0.1 * k for k in range(11)]), st.integers(0, 20).map(float)),
        max_size=40,
    )
)
def test_pareto_frontier_properties(points: list[tuple[float, float]]) -> None:
    frontier = pareto_frontier(points)
    assert frontier == sorted(frontier)
    on = set(frontier)
    for i in frontier:
        assert not any(dominates(q, points[i]) for q in points)
    for i in set(range(len(points))) - on:
        assert any(dominates(points[j], points[i]) for j in frontier)


def test_cost_per_item_from_records() -> None:
    records = [record("a", calls=2, prompt=10, completion=5, cost=0.01), record("b", calls=4)]
    cost = cost_per_item(records)
    assert (cost.n, cost.calls, cost.tokens) == (2, 3.0, 15.0)
    assert cost.dollars == pytest.approx(0.01)
    assert cost_per_item([*records, record("c", cost=None)]).dollars is None
    with pytest.raises(ValueError, match="empty"):
        cost_per_item([])


def test_per_item_values_feed_the_paired_functions() -> None:
    records = [record("a", prompt=10, completion=5), record("b", prompt=7, completion=1)]
    assert per_item(records, "tokens") == {"a": 15, "b": 8}
    assert per_item(records, "correct_strict") == {"a": True, "b": True}
    with pytest.raises(ValueError, match="more than once"):
        per_item([*records, record("a")], "calls")
    with pytest.raises(ValueError, match="no cost"):
        per_item([record("a", cost=None)], "cost")


def test_results_are_frozen_and_strict() -> None:
    result = accuracy([True, False])
    with pytest.raises(Exception, match="frozen"):
        result.n = 3  # type: ignore[misc]
    with pytest.raises(Exception, match="extra"):
        Accuracy(**result.model_dump(), surprise=1)


@given(st.integers(1, 5000), st.data())
def test_a_wilson_interval_always_contains_its_estimate(n: int, data: st.DataObject) -> None:
    successes = data.draw(st.integers(0, n))
    interval = wilson(successes, n)
    assert interval.low <= successes / n <= interval.high
    assert interval.low >= 0.0 and interval.high <= 1.0


# ------------------------------------------------------------------ whole-number sign flips


def test_sign_flip_on_integers_equals_full_enumeration():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 12, 20):
        for spread in (1, 2, 3):
            d = rng.integers(-spread, spread + 1, size=n)
            expected = sf.sign_flip_test([float(x) for x in d]).p_value
            assert sf.sign_flip_test_integers(list(d)).p_value == pytest.approx(expected, abs=1e-12)


def test_sign_flip_on_integers_is_exact_far_past_enumeration():
    # 40 items all +1: only the all-plus and all-minus flips are as extreme
    result = sf.sign_flip_test_integers([1] * 40)
    assert result.p_value == pytest.approx(2 * 0.5**40, rel=1e-12)
    assert result.exact and result.mean_difference == 1.0
    # a long mixed sample agrees with a large Monte Carlo run
    d = np.random.default_rng(3).integers(-1, 2, size=300)
    d[:12] = 1
    exact = sf.sign_flip_test_integers(list(d)).p_value
    sampled = sf.sign_flip_test([float(x) for x in d], n_resamples=200_000, seed=1).p_value
    assert exact == pytest.approx(sampled, abs=0.01)


def test_sign_flip_on_integers_refuses_fractions_and_nothing():
    assert sf.sign_flip_test_integers([0, 0, 0]).p_value == 1.0
    with pytest.raises(ValueError):
        sf.sign_flip_test_integers([0.5, 1])
    with pytest.raises(ValueError):
        sf.sign_flip_test_integers([])


# ------------------------------------------------------------------ two independent samples


def enumerated_p(first: list[float], second: list[float]) -> float:
    """The two-sample permutation p by brute force: every labelling of the pooled values."""
    pooled = [*first, *second]
    observed = abs(np.mean(first) - np.mean(second))
    as_extreme = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(first)):
        rest = [v for i, v in enumerate(pooled) if i not in chosen]
        mine = [pooled[i] for i in chosen]
        total += 1
        as_extreme += abs(np.mean(mine) - np.mean(rest)) >= observed - 1e-9
    return as_extreme / total


quarters = st.lists(st.integers(-400, 400).map(lambda n: n / 4), min_size=1, max_size=7)


@settings(max_examples=120, deadline=None)
@given(quarters, quarters)
def test_exact_two_sample_test_equals_enumeration(first: list[float], second: list[float]):
    result = sf.permutation_test_two_sample(first, second)
    assert result.exact and result.seed is None
    assert result.n_resamples == math.comb(len(first) + len(second), len(first))
    assert result.p_value == pytest.approx(enumerated_p(first, second), abs=1e-12)
    assert result.mean_difference == pytest.approx(np.mean(first) - np.mean(second))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=40),
    st.lists(st.integers(0, 4), min_size=1, max_size=40),
    st.integers(-1000, 1000),
    st.booleans(),
)
def test_two_sample_p_is_a_p_value_symmetric_and_shift_free(
    first: list[int], second: list[int], shift: int, exact: bool
):
    settings_ = {"n_resamples": 199, "seed": 3, "exact_max_splits": 10**9 if exact else 0}
    if exact and math.comb(len(first) + len(second), len(first)) > 5_000:
        settings_["exact_max_splits"] = 0  # too many splits to enumerate in a test
    result = sf.permutation_test_two_sample(first, second, **settings_)
    assert 0 < result.p_value <= 1
    swapped = sf.permutation_test_two_sample(second, first, **settings_)
    assert swapped.p_value == result.p_value
    assert swapped.mean_difference == pytest.approx(-result.mean_difference)
    shifted = sf.permutation_test_two_sample(
        [v + shift for v in first], [v + shift for v in second], **settings_
    )
    assert shifted.p_value == result.p_value
    assert shifted.mean_difference == pytest.approx(result.mean_difference, abs=1e-9)


def test_two_sample_test_matches_scipy_and_is_seeded():
    rng = np.random.default_rng(11)
    first, second = rng.integers(0, 5, size=6), rng.integers(1, 5, size=5)
    expected = sps.permutation_test(
        (first, second),
        lambda x, y: np.mean(x) - np.mean(y),
        permutation_type="independent",
        n_resamples=np.inf,
        alternative="two-sided",
    ).pvalue
    assert sf.permutation_test_two_sample(first, second).p_value == pytest.approx(expected)
    wide_first, wide_second = rng.integers(0, 5, size=30), rng.integers(0, 3, size=30)
    sampled = sf.permutation_test_two_sample(wide_first, wide_second, n_resamples=999, seed=4)
    assert not sampled.exact and (sampled.n_resamples, sampled.seed) == (999, 4)
    assert sampled == sf.permutation_test_two_sample(
        wide_first, wide_second, n_resamples=999, seed=4
    )


def test_two_sample_monte_carlo_has_the_plus_one_correction():
    result = sf.permutation_test_two_sample([4] * 30, [0] * 30, n_resamples=999, seed=0)
    assert not result.exact and result.p_value == 1 / 1000
    assert result.mean_difference == 4.0


def test_two_sample_edge_cases():
    assert sf.permutation_test_two_sample([2, 2, 2], [2, 2]).p_value == 1.0
    assert sf.permutation_test_two_sample([1], [3]).p_value == 1.0  # two splits, both extreme
    exact = sf.permutation_test_two_sample([4, 4, 4, 4], [0, 0, 0, 0])
    assert exact.p_value == 2 / math.comb(8, 4)  # the observed split and its mirror
    with pytest.raises(ValueError, match="empty"):
        sf.permutation_test_two_sample([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        sf.permutation_test_two_sample([float("nan")], [1.0])
    with pytest.raises(ValueError, match="n_resamples"):
        sf.permutation_test_two_sample(list(range(30)), list(range(30)), n_resamples=0)


def test_mean_interval_is_a_t_interval():
    result = sf.mean_interval([3, 4, 2, 4, 3])
    assert (result.n, result.mean) == (5, pytest.approx(3.2))
    sd = np.std([3, 4, 2, 4, 3], ddof=1)
    low, high = sps.t.interval(0.95, 4, loc=3.2, scale=sd / math.sqrt(5))
    assert result.sd == pytest.approx(sd)
    assert (result.low, result.high) == pytest.approx((low, high))
    one = sf.mean_interval([2.0])
    assert (one.n, one.mean, one.sd, one.low, one.high) == (1, 2.0, None, None, None)
    with pytest.raises(ValueError, match="empty"):
        sf.mean_interval([])
    with pytest.raises(ValueError, match="confidence"):
        sf.mean_interval([1, 2], confidence=1.5)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50), st.floats(0.5, 0.99))
def test_mean_interval_contains_its_mean(values: list[float], confidence: float):
    result = sf.mean_interval(values, confidence=confidence)
    assert result.low is not None and result.high is not None
    assert result.low <= result.mean + 1e-6 and result.mean - 1e-6 <= result.high

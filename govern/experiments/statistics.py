"""What the differences between cells of an experiment mean: pure functions over plain data.

Every function takes per-item (or per-seed) outcomes as lists, arrays or mappings and returns
numbers or a small frozen model; nothing here reads a store or prints. Two cells are compared
on the *same* items, so paired inputs are mappings keyed by item id (or by seed), never two
lists whose order happens to agree.

Degenerate inputs, decided once for the whole module so no NaN ever leaks out:

- no items (n = 0): ValueError. An empty cell has no accuracy, cost or effect to report.
- items paired by id that do not match: ValueError naming what is missing on each side.
  To compare on the overlap, call `common_items` first: it says how many items it dropped.
- nothing to tell apart (no discordant pairs, all differences zero, identical cells): p = 1.
- Cohen's d or d_z with no spread (SD 0): ValueError, since the effect is undefined or
  infinite; Cohen's h is always defined.
- a single seed: mean only; its SD and interval are None (not NaN).
- NaN or infinite inputs, proportions or p-values outside [0, 1]: ValueError.
- an empty family for Holm, or no cells for the Pareto frontier: an empty list.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict
from scipy import stats as sps

from govern.run.stats import wilson

EXACT_MAX_N = 20  # up to this many pairs a permutation test enumerates all 2^n sign flips
EXACT_MAX_SPLITS = 20_000  # up to this many splits a two-sample test enumerates them all
_CHUNK = 1 << 20  # resampled values held in memory at once (rows x columns)


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- inputs


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 exclusive, got {confidence!r}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def _finite(values: ArrayLike, what: str) -> NDArray[np.float64]:
    """A 1-D float array of at least one finite value, or a ValueError saying what is wrong."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of numbers, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{what} is empty: there is nothing to measure")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def _binary(values: ArrayLike, what: str) -> NDArray[np.int64]:
    array = _finite(values, what)
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{what} must hold only outcomes right (True/1) or wrong (False/0)")
    return array.astype(np.int64)


def _keys_preview(keys: set[Any]) -> str:
    shown = sorted(map(repr, keys))[:3]
    return ", ".join(shown) + (", ..." if len(keys) > 3 else "")


def _align(
    first: Mapping[Hashable, Any], second: Mapping[Hashable, Any], what: str = "items"
) -> tuple[list[Any], list[Any]]:
    """Both cells' values in the first cell's key order; refuses key sets that differ.

    Pairing by key, not position, is what makes a paired test paired: two lists in a
    different order would silently compare unrelated items.
    """
    if not first and not second:
        raise ValueError(f"no {what} to compare: both cells are empty")
    only_first = set(first) - set(second)
    only_second = set(second) - set(first)
    if only_first or only_second:
        raise ValueError(
            f"the two cells must cover the same {what}: {len(only_first)} only in the first"
            f" ({_keys_preview(only_first)}), {len(only_second)} only in the second"
            f" ({_keys_preview(only_second)}); call common_items() to compare on the overlap"
        )
    keys = list(first)
    return [first[k] for k in keys], [second[k] for k in keys]


class Common(_Result):
    """Two cells restricted to the keys they share, with how many each side lost."""

    first: dict[Any, Any]
    second: dict[Any, Any]
    dropped_first: int  # keys only the first cell had
    dropped_second: int  # keys only the second cell had


def common_items(first: Mapping[Hashable, Any], second: Mapping[Hashable, Any]) -> Common:
    """The explicit way to compare cells that did not finish the same items: keep the overlap
    and say how much was dropped, so a report can show it instead of hiding it."""
    shared = [k for k in first if k in second]
    return Common(
        first={k: first[k] for k in shared},
        second={k: second[k] for k in shared},
        dropped_first=len(first) - len(shared),
        dropped_second=len(second) - len(shared),
    )


Measure = Literal[
    "correct_strict",
    "correct_flexible",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "cost",
]


def per_item(records: Sequence[Mapping[str, Any]], measure: Measure) -> dict[Any, Any]:
    """One measure per item id from results.jsonl records, ready for the paired functions.

    `tokens` is prompt plus completion tokens. A duplicated id or an unknown cost (None) is
    a ValueError: either would make a comparison quietly wrong.
    """
    values: dict[Any, Any] = {}
    for record in records:
        item = record["id"]
        if item in values:
            raise ValueError(f"item {item!r} appears more than once in the records")
        if measure == "tokens":
            value = record["prompt_tokens"] + record["completion_tokens"]
        else:
            value = record[measure]
        if value is None:
            raise ValueError(f"item {item!r} has no {measure} (unknown cost of a call)")
        values[item] = value
    return values


# --------------------------------------------------------------------------- accuracy


def _wilson_bounds(successes: int, n: int, z: float) -> tuple[float, float]:
    """govern.run.stats.wilson's interval for n >= 1 (its None is only for n = 0)."""
    interval = wilson(successes, n, z=z)
    if interval.low is None or interval.high is None:
        raise ValueError("no items: a proportion needs at least one item")
    return interval.low, interval.high


class Accuracy(_Result):
    """A cell's accuracy with two intervals: Wilson (analytic) and a percentile bootstrap."""

    n: int
    successes: int
    value: float
    wilson_low: float
    wilson_high: float
    bootstrap_low: float
    bootstrap_high: float
    confidence: float
    n_resamples: int
    seed: int


def accuracy(
    outcomes: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Accuracy:
    """Share right with its Wilson interval and a seeded percentile bootstrap interval.

    Wilson is sound near 0 and 1; the bootstrap is shown beside it because it is the same
    procedure the paired and continuous measures use. Resampling n items with replacement
    from 0/1 outcomes gives a Binomial(n, p) count, so the bootstrap draws that count
    directly: the same distribution as resampling items, without an n x n_resamples array.
    """
    values = _binary(outcomes, "outcomes")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    n, successes = int(values.size), int(values.sum())
    wilson_low, wilson_high = _wilson_bounds(successes, n, _z(confidence))
    rng = np.random.default_rng(seed)
    resampled = rng.binomial(n, successes / n, size=n_resamples) / n
    low, high = np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Accuracy(
        n=n,
        successes=successes,
        value=successes / n,
        wilson_low=wilson_low,
        wilson_high=wilson_high,
        bootstrap_low=float(low),
        bootstrap_high=float(high),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def bootstrap_mean_interval(
    values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of any per-item values (tokens, calls...).

    Seeded and resampled in chunks, so the result depends only on the data and the seed and
    memory stays bounded however many items a cell has.
    """
    data = _finite(values, "values")
    _z(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // data.size)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        means[start:stop] = data[rng.integers(0, data.size, size=(stop - start, data.size))].mean(
            axis=1
        )
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------- paired accuracy


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts.

    Under "the cells are equally good" each discordant item is a fair coin, so b is
    Binomial(b + c, 1/2); the two-sided p doubles the smaller tail, capped at 1. With no
    discordant items there is no evidence either way: p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must not be negative, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * sps.binom.cdf(min(b, c), b + c, 0.5)))


def newcombe_paired_interval(
    both: int, only_first: int, only_second: int, neither: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for a difference of paired proportions.

    Square-and-add of the two Wilson intervals, corrected for the correlation between the
    cells (phi with Newcombe's continuity adjustment). Unlike a Wald interval it stays
    inside [-1, 1] and behaves near 0 and 1, which is where good institutions live.
    """
    counts = (both, only_first, only_second, neither)
    if min(counts) < 0:
        raise ValueError(f"counts must not be negative, got {counts}")
    n = sum(counts)
    if n == 0:
        raise ValueError("no items: a paired difference needs at least one item")
    z = _z(confidence)
    right_first, right_second = both + only_first, both + only_second
    p1, p2 = right_first / n, right_second / n
    l1, u1 = _wilson_bounds(right_first, n, z)
    l2, u2 = _wilson_bounds(right_second, n, z)
    margins = right_first * (n - right_first) * right_second * (n - right_second)
    phi = 0.0
    if margins > 0:
        cross = both * neither - only_first * only_second
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    difference = p1 - p2
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    low = difference - math.sqrt(max(0.0, below))
    high = difference + math.sqrt(max(0.0, above))
    return max(-1.0, low), min(1.0, high)


class PairedComparison(_Result):
    """Two cells on the same items: who got which items right, and whether it matters."""

    n: int
    both: int  # right in both cells
    only_first: int  # McNemar's b: right in the first cell, wrong in the second
    only_second: int  # McNemar's c: wrong in the first cell, right in the second
    neither: int
    accuracy_first: float
    accuracy_second: float
    difference: float  # accuracy_first - accuracy_second
    low: float  # Newcombe's paired interval for the difference
    high: float
    p_value: float  # exact two-sided McNemar
    cohens_h: float
    confidence: float


def compare_paired(
    first: Mapping[Hashable, Any],
    second: Mapping[Hashable, Any],
    *,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare two cells' right/wrong outcomes item by item (mappings item id -> outcome).

    Only the items on which the cells disagree carry information about which is better,
    so the test is exact McNemar on those; the difference in accuracy gets Newcombe's
    paired interval, which uses the same pairing. Refuses mismatched ids (see common_items).
    """
    a_values, b_values = _align(first, second)
    a = _binary(a_values, "first cell's outcomes")
    b = _binary(b_values, "second cell's outcomes")
    n = int(a.size)
    both = int(np.sum(a & b))
    only_first = int(np.sum(a & (1 - b)))
    only_second = int(np.sum((1 - a) & b))
    neither = n - both - only_first - only_second
    low, high = newcombe_paired_interval(
        both, only_first, only_second, neither, confidence=confidence
    )
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    return PairedComparison(
        n=n,
        both=both,
        only_first=only_first,
        only_second=only_second,
        neither=neither,
        accuracy_first=p1,
        accuracy_second=p2,
        difference=(only_first - only_second) / n,
        low=low,
        high=high,
        p_value=mcnemar_exact(only_first, only_second),
        cohens_h=cohens_h(p1, p2),
        confidence=confidence,
    )


# --------------------------------------------------------------------------- effect sizes


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)): a difference of proportions on a scale
    where 0.10 -> 0.20 and 0.50 -> 0.60 are not the same size of effect."""
    for p in (p1, p2):
        if not 0 <= p <= 1:  # also refuses NaN
            raise ValueError(f"proportions must lie in [0, 1], got {p!r}")
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def cohens_d(first: ArrayLike, second: ArrayLike) -> float:
    """Cohen's d for two independent groups: difference of means over the pooled SD.

    Use it for cells on different items; on the same items use cohens_dz, which removes
    the item-to-item variation both cells share. Zero pooled SD is a ValueError.
    """
    x, y = _finite(first, "first group"), _finite(second, "second group")
    dof = x.size + y.size - 2
    if dof < 1:
        raise ValueError("Cohen's d needs at least three values in all (two in one group)")
    pooled = math.sqrt(
        ((x.size - 1) * _var(x) + (y.size - 1) * _var(y)) / dof,
    )
    if pooled == 0:
        raise ValueError("Cohen's d is undefined: both groups have no spread (pooled SD 0)")
    return float((x.mean() - y.mean()) / pooled)


def _var(values: NDArray[np.float64]) -> float:
    return float(values.var(ddof=1)) if values.size > 1 else 0.0


def cohens_dz(first: Mapping[Hashable, float], second: Mapping[Hashable, float]) -> float:
    """Cohen's d_z for paired data: mean of the per-item differences over their SD.

    Pairs are matched by key. Fewer than two pairs, or differences with no spread, is a
    ValueError: the standardised effect is then undefined.
    """
    a, b = _align(first, second)
    differences = _finite(a, "first cell") - _finite(b, "second cell")
    if differences.size < 2:
        raise ValueError("Cohen's d_z needs at least two pairs")
    sd = float(differences.std(ddof=1))
    if sd == 0:
        raise ValueError("Cohen's d_z is undefined: the paired differences have no spread")
    return float(differences.mean() / sd)


# --------------------------------------------------------------------------- permutation test


class PermutationTest(_Result):
    """A two-sided paired sign-flip permutation test of the mean difference."""

    n: int
    mean_difference: float  # first - second
    p_value: float
    exact: bool  # all 2^n sign flips enumerated; otherwise Monte Carlo
    n_resamples: int  # sign-flip patterns evaluated (2^n when exact)
    seed: int | None  # None when exact: no randomness was used


def sign_flip_test(
    differences: ArrayLike,
    *,
    n_resamples: int = 9_999,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
) -> PermutationTest:
    """Two-sided test that paired differences are centred on zero, by flipping their signs.

    If the two cells are exchangeable on every item, each difference is as likely to have
    either sign. Exact for n <= exact_max_n (all 2^n flips, the observed one included);
    otherwise Monte Carlo with a seeded generator and p = (1 + hits) / (1 + n_resamples),
    which never reports 0 and stays valid. All-zero differences give p = 1.
    """
    d = _finite(differences, "differences")
    n = int(d.size)
    observed = float(d.sum())  # the sum orders flips exactly as the mean does
    tolerance = 1e-9 * float(np.abs(d).sum())  # absorbs rounding in float sums
    threshold = abs(observed) - tolerance
    if n <= exact_max_n:
        sums = np.zeros(1)
        for value in d:
            sums = np.concatenate((sums + value, sums - value))
        hits = int(np.count_nonzero(np.abs(sums) >= threshold))
        return PermutationTest(
            n=n,
            mean_difference=observed / n,
            p_value=hits / sums.size,
            exact=True,
            n_resamples=int(sums.size),
            seed=None,
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // n)
    hits = 0
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
    return PermutationTest(
        n=n,
        mean_difference=observed / n,
        p_value=(1 + hits) / (1 + n_resamples),
        exact=False,
        n_resamples=n_resamples,
        seed=seed,
    )


def paired_permutation_test(
    first: Mapping[Hashable, float],
    second: Mapping[Hashable, float],
    *,
    n_resamples: int = 9_999,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
) -> PermutationTest:
    """Do two cells differ in a continuous per-item measure (tokens, calls, cost)?

    Items are paired by key; the test makes no normality assumption, which matters for
    token counts with long tails. See sign_flip_test for exact versus Monte Carlo.
    """
    a, b = _align(first, second)
    differences = _finite(a, "first cell") - _finite(b, "second cell")
    return sign_flip_test(differences, n_resamples=n_resamples, seed=seed, exact_max_n=exact_max_n)


def sign_flip_test_integers(differences: Sequence[int]) -> PermutationTest:
    """The exact two-sided sign-flip test for whole-number differences, however many.

    Enumerating 2^n flips is out of reach past a few dozen items and Monte Carlo cannot
    show a p below 1 / (1 + resamples), which a Holm correction over many comparisons
    then multiplies out of significance. When the differences are whole numbers (per-item
    successes summed over seeds: one cell right on 3 of 3 seeds, the other on 1), the sum
    of the flipped differences lives on a lattice of at most 2 * sum|d| + 1 values, so its
    distribution is built exactly, one item at a time, in O(n * sum|d|) time. The p-value
    is the same as sign_flip_test's exact enumeration would give.
    """
    values = np.asarray(differences)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("differences must be a non-empty flat sequence of whole numbers")
    if values.dtype.kind not in "iu" and not np.all(np.mod(values, 1) == 0):
        raise ValueError("sign_flip_test_integers takes whole-number differences only")
    magnitudes = np.abs(values.astype(np.int64))
    total = int(magnitudes.sum())
    observed = int(values.astype(np.int64).sum())
    n = int(values.size)
    if total == 0:
        return PermutationTest(
            n=n, mean_difference=0.0, p_value=1.0, exact=True, n_resamples=0, seed=None
        )
    distribution = np.zeros(2 * total + 1)  # index i holds P(sum = i - total)
    distribution[total] = 1.0
    for magnitude in magnitudes[magnitudes > 0]:
        shifted = np.zeros_like(distribution)
        shifted[magnitude:] += distribution[:-magnitude]
        shifted[:-magnitude] += distribution[magnitude:]
        distribution = shifted / 2
    sums = np.arange(-total, total + 1)
    p_value = float(min(1.0, distribution[np.abs(sums) >= abs(observed)].sum()))
    return PermutationTest(
        n=n,
        mean_difference=observed / n,
        p_value=p_value,
        exact=True,
        n_resamples=0,  # none drawn: the distribution is computed
        seed=None,
    )


class TwoSampleTest(_Result):
    """A two-sided permutation test of the difference in means of two independent samples."""

    n_first: int
    n_second: int
    mean_difference: float  # mean of the first - mean of the second
    p_value: float
    exact: bool  # every split of the pooled values enumerated; otherwise Monte Carlo
    n_resamples: int  # splits evaluated (all of them when exact)
    seed: int | None  # None when exact: no randomness was used


def permutation_test_two_sample(
    first: ArrayLike,
    second: ArrayLike,
    *,
    n_resamples: int = 9_999,
    seed: int = 0,
    exact_max_splits: int = EXACT_MAX_SPLITS,
) -> TwoSampleTest:
    """Two-sided test that two independent samples (markets of two regimes) share one mean.

    Under "the labels do not matter" every split of the pooled values into groups of the
    two sizes is as likely as the observed one. Exact when there are at most
    ``exact_max_splits`` splits (all enumerated, the observed one included); otherwise
    Monte Carlo with a seeded generator and p = (1 + hits) / (1 + n_resamples), never 0.
    The pooled values are sorted and centred, and the smaller group is the one drawn, so
    the p-value is the same when the samples are swapped or both shifted by a constant.
    """
    x, y = _finite(first, "first sample"), _finite(second, "second sample")
    pooled = np.sort(np.concatenate((x, y)))
    centre = float(pooled.mean())
    centred = pooled - centre
    total, size = float(centred.sum()), int(pooled.size)
    k = min(x.size, y.size)

    def differences(sums: NDArray[np.float64]) -> NDArray[np.float64]:
        """|mean of a drawn group of k - mean of the rest| for each drawn group's sum."""
        return np.abs(sums / k - (total - sums) / (size - k))

    smaller = x if x.size <= y.size else y
    observed = float(differences(np.array([float((smaller - centre).sum())]))[0])
    threshold = observed - 1e-9 * float(np.abs(centred).sum())  # absorbs rounding in sums
    mean_difference = float(x.mean() - y.mean())
    splits = math.comb(size, k)
    if splits <= exact_max_splits:
        groups = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(size), k)),
            dtype=np.int64,
            count=splits * k,
        ).reshape(splits, k)
        hits = int(np.count_nonzero(differences(centred[groups].sum(axis=1)) >= threshold))
        return TwoSampleTest(
            n_first=int(x.size),
            n_second=int(y.size),
            mean_difference=mean_difference,
            p_value=hits / splits,
            exact=True,
            n_resamples=splits,
            seed=None,
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // size)
    hits = 0
    for start in range(0, n_resamples, rows):
        shuffled = rng.permuted(np.tile(centred, (min(rows, n_resamples - start), 1)), axis=1)
        hits += int(np.count_nonzero(differences(shuffled[:, :k].sum(axis=1)) >= threshold))
    return TwoSampleTest(
        n_first=int(x.size),
        n_second=int(y.size),
        mean_difference=mean_difference,
        p_value=(1 + hits) / (1 + n_resamples),
        exact=False,
        n_resamples=n_resamples,
        seed=seed,
    )


# --------------------------------------------------------------------------- multiplicity


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    A table that marks several comparisons as significant must control the chance of any
    false mark; Holm does so for any dependence between the tests and is never less
    powerful than Bonferroni. Sorted ascending, the k-th smallest (from 0) is multiplied by
    m - k, made monotone by a running maximum, and capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p-values must be a flat sequence")
    if p.size == 0:
        return []
    if not np.all((p >= 0) & (p <= 1)):  # also refuses NaN
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(x) for x in adjusted]


# --------------------------------------------------------------------------- seeds


def _seed_values(per_seed: Mapping[Hashable, float] | Sequence[float]) -> NDArray[np.float64]:
    values = list(per_seed.values()) if isinstance(per_seed, Mapping) else list(per_seed)
    return _finite(values, "per-seed values")


def _t_interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float, float]:
    """SD and t interval of a mean; the caller has made sure there are two or more values."""
    _z(confidence)
    k = values.size
    sd = float(values.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, k - 1)) * sd / math.sqrt(k)
    mean = float(values.mean())
    return sd, mean - half, mean + half


class MeanInterval(_Result):
    """The mean of independent observations (markets, say) with its t interval."""

    n: int
    mean: float
    sd: float | None  # None with a single observation
    low: float | None  # t interval of the mean, n - 1 degrees of freedom; None when n = 1
    high: float | None
    confidence: float


def mean_interval(values: ArrayLike, *, confidence: float = 0.95) -> MeanInterval:
    """The mean of ``values`` and its t interval: each value one independent observation.

    One value has a mean but no spread: its SD and interval are None, never NaN.
    """
    data = _finite(values, "values")
    _z(confidence)
    if data.size < 2:
        mean = float(data.mean())
        return MeanInterval(n=1, mean=mean, sd=None, low=None, high=None, confidence=confidence)
    sd, low, high = _t_interval(data, confidence)
    return MeanInterval(
        n=int(data.size), mean=float(data.mean()), sd=sd, low=low, high=high, confidence=confidence
    )


class SeedSpread(_Result):
    """One cell's measure across seeds, each seed one observation (repeated measures)."""

    n_seeds: int
    mean: float
    sd: float | None  # None with a single seed
    low: float | None  # t interval over seeds; None with a single seed
    high: float | None
    confidence: float


def across_seeds(
    per_seed: Mapping[Hashable, float] | Sequence[float], *, confidence: float = 0.95
) -> SeedSpread:
    """Mean and spread of a cell's per-seed values (for example one accuracy per seed).

    Seeds rerun the same items, so pooling their items as if independent would shrink the
    interval by a factor sqrt(seeds) it has not earned. Here each seed counts once and the
    interval is a t interval with seeds - 1 degrees of freedom: wide with 3 seeds, honestly.
    """
    values = _seed_values(per_seed)
    mean = float(values.mean())
    if values.size < 2:
        _z(confidence)
        return SeedSpread(n_seeds=1, mean=mean, sd=None, low=None, high=None, confidence=confidence)
    sd, low, high = _t_interval(values, confidence)
    return SeedSpread(
        n_seeds=int(values.size), mean=mean, sd=sd, low=low, high=high, confidence=confidence
    )


class SeedComparison(_Result):
    """Two cells compared seed by seed: the per-seed differences and what they support."""

    n_seeds: int
    differences: list[float]  # first - second, in the first cell's seed order
    mean_difference: float
    sd: float | None  # None with a single seed
    low: float | None  # t interval of the mean difference; None with a single seed
    high: float | None
    p_value: float  # exact sign-flip test over seeds (Monte Carlo above EXACT_MAX_N seeds)
    confidence: float


def compare_seeds(
    first: Mapping[Hashable, float],
    second: Mapping[Hashable, float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 9_999,
    seed: int = 0,
) -> SeedComparison:
    """Compare two cells across seeds using per-seed paired differences (keyed by seed).

    Seed s of one cell pairs with seed s of the other. The p-value is a sign-flip test over
    seeds, not a t-test: it is exact, needs no normality, and never divides by a zero SD;
    with 3 seeds its smallest possible two-sided value is 0.25, which is the truth about
    what 3 seeds can show.
    """
    a, b = _align(first, second, what="seeds")
    differences = _finite(a, "first cell") - _finite(b, "second cell")
    test = sign_flip_test(differences, n_resamples=n_resamples, seed=seed)
    if differences.size < 2:
        _z(confidence)
        sd = low = high = None
    else:
        sd, low, high = _t_interval(differences, confidence)
    return SeedComparison(
        n_seeds=int(differences.size),
        differences=[float(x) for x in differences],
        mean_difference=float(differences.mean()),
        sd=sd,
        low=low,
        high=high,
        p_value=test.p_value,
        confidence=confidence,
    )


# --------------------------------------------------------------------------- cost vs accuracy


def pareto_frontier(cells: Sequence[tuple[float, float]]) -> list[int]:
    """Indices, in input order, of the cells (accuracy, cost) that no other cell dominates.

    A cell is dominated when another has accuracy >= and cost <= with at least one strict:
    nobody should choose it. Identical cells do not dominate each other, so ties are all
    kept on the frontier. Lower cost is better; use one cost measure (calls, tokens or
    dollars per item) per frontier, with unknown dollars left out by the caller.
    """
    if not cells:
        return []
    points = np.asarray(cells, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError("cells must be (accuracy, cost) pairs")
    if not np.all(np.isfinite(points)):
        raise ValueError("cells contain NaN or infinite accuracy or cost")
    acc, cost = points[:, 0], points[:, 1]
    no_worse = (acc[:, None] >= acc[None, :]) & (cost[:, None] <= cost[None, :])
    better = (acc[:, None] > acc[None, :]) | (cost[:, None] < cost[None, :])
    dominated = np.any(no_worse & better, axis=0)  # [j, i]: does cell j dominate cell i
    return [int(i) for i in np.flatnonzero(~dominated)]


class CostPerItem(_Result):
    """What a cell spent per item, the cost axis of the cost-accuracy picture."""

    n: int
    calls: float
    tokens: float  # prompt + completion
    dollars: float | None  # None when any item's cost is unknown


def cost_per_item(records: Sequence[Mapping[str, Any]]) -> CostPerItem:
    """Calls, tokens and dollars per item from results.jsonl records.

    Dollars are None as soon as one item's cost is unknown (a price litellm did not know):
    an average over the known ones would understate the cost. Failed items count, since
    their calls were paid for.
    """
    n = len(records)
    if n == 0:
        raise ValueError("no records: cost per item is undefined for an empty cell")
    costs = [r["cost"] for r in records]
    return CostPerItem(
        n=n,
        calls=sum(r["calls"] for r in records) / n,
        tokens=sum(r["prompt_tokens"] + r["completion_tokens"] for r in records) / n,
        dollars=None if any(c is None for c in costs) else sum(costs) / n,
    )

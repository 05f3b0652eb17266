"""Power-law fits of heavy-tailed trace quantities, after Clauset, Shalizi & Newman (2009),
"Power-law distributions in empirical data", SIAM Review 51:661 (CSN below).

A power law rarely holds over a whole sample, only above some x_min, so a fit is a pair
(x_min, alpha) and a claim about how well the tail follows it. This module gives CSN's
recipe, vectorised with numpy so a fit over every candidate x_min takes milliseconds:

- :func:`fit`: alpha by maximum likelihood for every distinct value as candidate x_min, and
  the x_min whose fitted tail is closest to its data in Kolmogorov-Smirnov distance. For
  discrete data (integers >= 1) the likelihood is the exact one, normalised by the Hurwitz
  zeta function, never CSN's continuous approximation ``1 + n / sum(log(x / (x_min - 1/2)))``.
- :func:`bootstrap_p`: CSN's semi-parametric goodness of fit: synthetic samples (the data
  below x_min resampled, the tail drawn from the fitted law), each re-fitted from scratch
  (x_min and alpha), so the p-value counts the search's own freedom. Seeded per replicate,
  so the same seed gives the same p with any number of worker processes.
- :func:`compare`: likelihood ratios against a lognormal and an exponential (Vuong's test),
  and against the power law with an exponential cut-off (nested).
- :func:`analyse`: all of it at once; :func:`ks_distance` puts a fit made elsewhere on the
  same scale; :func:`sample_discrete`, :func:`sample_continuous` and :func:`ccdf` for tests
  and plots.

What is exact and what is numerical:

- Discrete alpha: the likelihood is exact. During the search every candidate's alpha is the
  maximiser found by a vectorised golden-section search over (1, 10] to 1e-9; the chosen
  x_min's alpha is then polished by Newton steps on the exact score (the derivatives of the
  Hurwitz zeta function in its first argument, summed directly with an Euler-Maclaurin
  tail), so it is the MLE to machine precision. A candidate whose maximiser is at the
  bound alpha = 10 has no interior MLE and is not eligible as x_min.
- Continuous alpha: CSN's closed form ``1 + n / sum(log(x / x_min))``, exact.
- Standard error: continuous ``(alpha - 1) / sqrt(n)`` (CSN eq. 3.2); discrete
  ``1 / sqrt(n * I(alpha))`` with I the exact Fisher information, the variance of log X
  under the fitted law (from zeta's first two derivatives), not CSN's approximation.
- KS distance: the supremum over all x of the gap between the tail's empirical CDF and the
  model's. For discrete data both sides of every jump are compared (P(X < u) and
  P(X <= u) at every distinct u), which is the supremum over all integers, as CSN's
  ``plfit`` computes it. The ``powerlaw`` package compares only P(X < u), a lower bound.
- Candidates for x_min: every distinct value that leaves at least :data:`MIN_TAIL` values
  (and two distinct values) in the tail, since a shorter tail cannot be reported anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict
from scipy import integrate, optimize, special, stats

__all__ = [
    "ALPHA_MAX",
    "ALTERNATIVES",
    "MIN_TAIL",
    "SIGNIFICANCE",
    "Alternative",
    "Comparison",
    "NoPowerLawFit",
    "PowerLawFit",
    "TailTooShort",
    "analyse",
    "bootstrap_p",
    "ccdf",
    "compare",
    "fit",
    "ks_distance",
    "sample_continuous",
    "sample_discrete",
]

MIN_TAIL = 50  # CSN: below ~50 values a tail cannot tell a power law from much else
ALPHA_MAX = 10.0  # the discrete search's upper bound; a maximiser there is not an MLE
SIGNIFICANCE = 0.1  # CSN's threshold for a likelihood ratio's sign to mean anything
_ALPHA_MIN = 1.0 + 1e-9
_GOLDEN_TOL = 1e-9
_KS_BLOCK = 1 << 20  # (candidate, value) pairs per KS block: bounds memory at ~100 MB
_KS_ROWS = 128  # candidates per KS block at most, so the blocks follow the triangle k >= j
_ZETA_ASYMPTOTIC_FROM = 30.0  # Euler-Maclaurin for zeta(a, q) is exact to ~1e-14 from here
_SAMPLER_TABLE = 1 << 14  # exact CCDF table of the discrete sampler, in integers from x_min
_MOMENT_TERMS = 1000  # terms summed directly before the Euler-Maclaurin tail
# B_2k / (2k)!, k = 1..6: the Euler-Maclaurin coefficients of the zeta asymptotic series
_EM_COEFFICIENTS = (1 / 12, -1 / 720, 1 / 30240, -1 / 1209600, 1 / 47900160, -691 / 1307674368000)

Alternative = Literal["lognormal", "exponential", "truncated_power_law"]
ALTERNATIVES: tuple[Alternative, ...] = ("lognormal", "exponential", "truncated_power_law")

FloatArray = NDArray[np.float64]


class TailTooShort(ValueError):
    """Fewer than :data:`MIN_TAIL` values at or above x_min: no fit is reported."""

    def __init__(self, n_tail: int, x_min: float | None) -> None:
        self.n_tail = n_tail
        self.x_min = x_min
        where = "in the data" if x_min is None else f"at or above x_min = {x_min:g}"
        super().__init__(
            f"only {n_tail} values {where}; a power-law fit needs at least {MIN_TAIL} "
            "(Clauset, Shalizi & Newman 2009): with fewer, no estimate is given"
        )


class NoPowerLawFit(ValueError):
    """The data have no tail a power law can be fitted to (too few distinct values, or every
    candidate's exponent beyond :data:`ALPHA_MAX`)."""


class Comparison(BaseModel):
    """A likelihood-ratio test of the fitted power law against one alternative on its tail.

    ``log_likelihood_ratio`` is R = l(power law) - l(alternative): positive favours the power
    law. ``normalised_ratio`` is Vuong's R / (sigma * sqrt(n)), sigma the standard deviation
    of the pointwise log-likelihood differences. For the non-nested alternatives (lognormal,
    exponential) ``p_value`` is Vuong's two-sided p = erfc(|z| / sqrt 2): how likely a ratio
    this far from zero is when neither fits better. The truncated power law nests the power
    law (cut-off 0), so there ``p_value`` is the likelihood-ratio test's with a null on the
    boundary: 2|R| ~ chi2(0)/2 + chi2(1)/2, so p = chi2(1).sf(2|R|) / 2 (1 when R = 0).
    CSN and the ``powerlaw`` package report chi2(1).sf(2|R|), twice this.

    ``favoured`` is the distribution the sign of R favours; ``significant`` says whether
    p < :data:`SIGNIFICANCE`, without which the sign means nothing. ``parameters`` are the
    alternative's maximum-likelihood fit on the same tail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alternative: Alternative
    log_likelihood_ratio: float
    normalised_ratio: float
    p_value: float
    nested: bool
    favoured: str
    significant: bool
    parameters: dict[str, float]


class PowerLawFit(BaseModel):
    """A fitted tail: p(x) ~ x^-alpha for x >= x_min.

    ``sigma`` is alpha's standard error, ``ks`` the Kolmogorov-Smirnov distance between the
    tail and the fit, ``n_tail`` of the ``n`` values are at or above x_min. ``p_value``
    (CSN's bootstrap; small means the power law is ruled out) and ``comparisons`` are
    filled in by :func:`analyse`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discrete: bool
    alpha: float
    sigma: float
    x_min: float
    n_tail: int
    n: int
    ks: float
    p_value: float | None = None
    comparisons: tuple[Comparison, ...] = ()


# --------------------------------------------------------------------------- the Hurwitz zeta


def _hurwitz_and_power(a: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """zeta(a, q) = sum_{k >= 0} (q + k)^-a and q^-a, broadcast over a and q.

    scipy's zeta costs ~300 ns a value; the KS distances of every candidate need zeta at
    every (alpha_j, x_k) pair, so from q = 30 on this uses the Euler-Maclaurin series
    q^-a (q / (a - 1) + 1/2 + sum_k B_2k / (2k)! (a)_(2k-1) q^(1-2k)), six Bernoulli terms
    by Horner's rule in 1 / q^2 (relative error below 1e-13 for a <= 10), and scipy below.
    Whatever depends on q alone is computed in q's shape: with alphas as a column and
    values as a row only q^-a and the Horner steps are done per pair."""
    a_arr = np.asarray(a, dtype=float)
    q_arr = np.asarray(q, dtype=float)
    safe_q = np.maximum(q_arr, _ZETA_ASYMPTOTIC_FROM)
    inverse_q = 1.0 / safe_q
    inverse_q2 = inverse_q * inverse_q
    power = np.exp(-a_arr * np.log(safe_q))
    pochhammer = [a_arr]  # (a)_1, (a)_3, (a)_5, ...: in a's shape
    for k in range(1, len(_EM_COEFFICIENTS)):
        pochhammer.append(pochhammer[-1] * (a_arr + 2 * k - 1) * (a_arr + 2 * k))
    series = _EM_COEFFICIENTS[-1] * pochhammer[-1] * inverse_q2
    for coefficient, rising in zip(_EM_COEFFICIENTS[-2:0:-1], pochhammer[-2:0:-1], strict=True):
        series += coefficient * rising
        series *= inverse_q2
    series += _EM_COEFFICIENTS[0] * pochhammer[0]
    series *= inverse_q
    series += safe_q / (a_arr - 1.0)
    series += 0.5
    result = np.array(series * power)  # an array even for scalar arguments
    small = q_arr < _ZETA_ASYMPTOTIC_FROM
    if small.any():
        full_a, full_q = np.broadcast_arrays(a_arr, q_arr)
        mask = np.broadcast_to(small, result.shape)
        power = np.array(np.broadcast_to(power, result.shape))
        result[mask] = special.zeta(full_a[mask], full_q[mask])
        power[mask] = full_q[mask] ** -full_a[mask]
    return result, power


def _hurwitz(a: ArrayLike, q: ArrayLike) -> FloatArray:
    """zeta(a, q), as :func:`_hurwitz_and_power` computes it."""
    return _hurwitz_and_power(a, q)[0]


def _zeta_log_moments(alpha: float, q: float) -> tuple[float, float, float]:
    """(Z0, Z1, Z2), Zp = sum_{x >= q} log(x)^p x^-alpha: zeta and minus/plus its first two
    derivatives in alpha, for the exact score and Fisher information of the discrete law.

    Summed directly for 1,000 terms, then the Euler-Maclaurin tail (the integral, half the
    first term and the B_2 correction; the next is ~1e-18 relative)."""
    x = q + np.arange(_MOMENT_TERMS, dtype=float)
    log_x = np.log(x)
    weights = np.exp(-alpha * log_x)
    direct = (weights.sum(), (weights * log_x).sum(), (weights * log_x * log_x).sum())
    m = q + _MOMENT_TERMS
    log_m = math.log(m)
    b = alpha - 1.0
    f_m = m**-alpha
    integrals = (
        m ** (-b) / b,
        m ** (-b) * (log_m / b + 1 / b**2),
        m ** (-b) * (log_m**2 / b + 2 * log_m / b**2 + 2 / b**3),
    )
    values = (f_m, f_m * log_m, f_m * log_m**2)
    # f_p'(x) = x^(-alpha-1) (p log^(p-1) x - alpha log^p x)
    derivatives = (
        -alpha * f_m / m,
        f_m / m * (1 - alpha * log_m),
        f_m / m * (2 * log_m - alpha * log_m**2),
    )
    z0, z1, z2 = (direct[p] + integrals[p] + values[p] / 2 - derivatives[p] / 12 for p in range(3))
    return float(z0), float(z1), float(z2)


def _log_mean_and_variance(alpha: float, x_min: float) -> tuple[float, float]:
    """E[log X] and Var[log X] under the discrete law: the score of alpha is
    E[log X] - mean(log x) and its Fisher information per observation is Var[log X]."""
    z0, z1, z2 = _zeta_log_moments(alpha, x_min)
    expected_log = z1 / z0
    return expected_log, z2 / z0 - expected_log**2


def _polish_discrete_alpha(alpha: float, mean_log: float, x_min: float) -> float:
    """Newton steps on the exact discrete score from a near-optimal alpha: the MLE."""
    for _ in range(3):
        expected_log, variance = _log_mean_and_variance(alpha, x_min)
        step = (expected_log - mean_log) / variance
        alpha = min(max(alpha + step, _ALPHA_MIN), ALPHA_MAX)
        if abs(step) < 1e-14:
            break
    return alpha


# --------------------------------------------------------------------------- the x_min search


@dataclass(frozen=True, slots=True)
class _Table:
    """Distinct values in ascending order, their counts and the suffix sums the tail
    statistics of every candidate x_min are read from."""

    values: FloatArray
    counts: NDArray[np.int64]
    tail_counts: NDArray[np.int64]  # values >= values[j]; one longer, ending in 0
    tail_log_sums: FloatArray  # sum of log x over values >= values[j]

    @classmethod
    def of(cls, data: FloatArray) -> _Table:
        values, counts = np.unique(data, return_counts=True)
        return cls.of_counts(values, counts)

    @classmethod
    def of_counts(cls, values: FloatArray, counts: NDArray[np.int64]) -> _Table:
        tail_counts = np.zeros(len(values) + 1, dtype=np.int64)
        tail_counts[:-1] = np.cumsum(counts[::-1])[::-1]
        tail_log_sums = np.cumsum((counts * np.log(values))[::-1])[::-1]
        return cls(values, counts, tail_counts, tail_log_sums)

    @property
    def n(self) -> int:
        return int(self.tail_counts[0])


@dataclass(frozen=True, slots=True)
class _Tail:
    """A fit without the model layer, as the bootstrap's replicates need it."""

    x_min: float
    alpha: float
    ks: float
    n_tail: int


def _discrete_alphas(mean_logs: FloatArray, x_mins: FloatArray) -> FloatArray:
    """Each candidate's discrete MLE by golden-section search over (1, ALPHA_MAX], all
    candidates at once: minimise alpha * mean(log x) + log zeta(alpha, x_min), which is
    convex in alpha (log zeta is a log-sum-exp of linear functions), so the search finds
    the global maximiser of the likelihood."""
    inverse_phi = (math.sqrt(5) - 1) / 2

    def objective(alpha: FloatArray) -> FloatArray:
        return alpha * mean_logs + np.log(_hurwitz(alpha, x_mins))

    low = np.full_like(mean_logs, _ALPHA_MIN)
    high = np.full_like(mean_logs, ALPHA_MAX)
    inner_low = high - inverse_phi * (high - low)
    inner_high = low + inverse_phi * (high - low)
    f_low, f_high = objective(inner_low), objective(inner_high)
    iterations = math.ceil(math.log(_GOLDEN_TOL / (ALPHA_MAX - _ALPHA_MIN)) / math.log(inverse_phi))
    for _ in range(iterations):
        go_left = f_low < f_high
        high = np.where(go_left, inner_high, high)
        low = np.where(go_left, low, inner_low)
        kept_point = np.where(go_left, inner_low, inner_high)
        kept_value = np.where(go_left, f_low, f_high)
        new_point = np.where(
            go_left, high - inverse_phi * (high - low), low + inverse_phi * (high - low)
        )
        new_value = objective(new_point)
        inner_low = np.where(go_left, new_point, kept_point)
        inner_high = np.where(go_left, kept_point, new_point)
        f_low = np.where(go_left, new_value, kept_value)
        f_high = np.where(go_left, kept_value, new_value)
    return (low + high) / 2


def _ks_distances(
    table: _Table, candidates: NDArray[np.intp], alphas: FloatArray, discrete: bool
) -> FloatArray:
    """The KS distance of every candidate's fitted tail, in blocks of candidates (a loop over
    blocks of ~2M (candidate, value) pairs, not over candidates).

    Both sides of every distinct value u_k >= x_min are compared through the CCDFs: the
    empirical P(X >= u_k) and P(X > u_k) against the model's, which for discrete data are
    zeta(a, u_k) / zeta(a, x_min) and (zeta(a, u_k) - u_k^-a) / zeta(a, x_min)."""
    values, tail_counts = table.values, table.tail_counts.astype(float)
    distances = np.empty(len(candidates))
    rows = max(1, min(_KS_ROWS, _KS_BLOCK // max(1, len(values) - int(candidates[0]))))
    for start in range(0, len(candidates), rows):
        block = candidates[start : start + rows]
        first = int(block[0])
        columns = np.arange(first, len(values))
        x = values[columns][None, :]
        alpha = alphas[start : start + rows][:, None]
        x_min = values[block][:, None]
        if discrete:
            normaliser = _hurwitz(alpha, x_min)
            zeta_x, power = _hurwitz_and_power(alpha, x)
            model_at_least = zeta_x / normaliser
            model_above = (zeta_x - power) / normaliser
        else:
            model_at_least = np.exp((1.0 - alpha) * (np.log(x) - np.log(x_min)))
            model_above = model_at_least
        in_tail = tail_counts[block][:, None]
        gap = np.maximum(
            np.abs(tail_counts[columns][None, :] / in_tail - model_at_least),
            np.abs(tail_counts[columns + 1][None, :] / in_tail - model_above),
        )
        gap[columns[None, :] < block[:, None]] = 0.0
        distances[start : start + rows] = gap.max(axis=1)
    return distances


def _search(table: _Table, discrete: bool) -> _Tail:
    """CSN's x_min: of every eligible distinct value, the one whose fitted tail has the
    smallest KS distance (ties go to the smallest x_min)."""
    if table.n < MIN_TAIL:  # no candidate at all (an empty sample included)
        raise TailTooShort(table.n, None)
    tail_counts = table.tail_counts[:-1]
    eligible = tail_counts >= MIN_TAIL
    eligible[-1] = False  # a tail of one distinct value has no finite MLE
    candidates = np.flatnonzero(eligible)
    if len(candidates) == 0:
        if table.n < MIN_TAIL:
            raise TailTooShort(table.n, None)
        raise NoPowerLawFit(
            f"the {table.n} values take {len(table.values)} distinct value(s): a tail of at "
            f"least {MIN_TAIL} values with two distinct values is needed"
        )
    x_mins = table.values[candidates]
    n_tails = tail_counts[candidates].astype(float)
    mean_logs = table.tail_log_sums[candidates] / n_tails
    if discrete:
        alphas = _discrete_alphas(mean_logs, x_mins)
        interior = alphas < ALPHA_MAX - 1e-6
        if not interior.any():
            raise NoPowerLawFit(
                f"every candidate x_min gives alpha >= {ALPHA_MAX:g}: no power-law tail"
            )
        candidates, alphas = candidates[interior], alphas[interior]
    else:
        alphas = 1.0 + 1.0 / (mean_logs - np.log(x_mins))
    distances = _ks_distances(table, candidates, alphas, discrete)
    best = int(np.argmin(distances))
    return _tail_at(table, int(candidates[best]), discrete, float(alphas[best]))


def _tail_at(table: _Table, index: int, discrete: bool, start: float | None = None) -> _Tail:
    """The fit with x_min = table.values[index]: the exact MLE and its KS distance."""
    n_tail = int(table.tail_counts[index])
    x_min = float(table.values[index])
    mean_log = float(table.tail_log_sums[index]) / n_tail
    if discrete:
        if start is None:
            start = float(_discrete_alphas(np.array([mean_log]), np.array([x_min]))[0])
        alpha = _polish_discrete_alpha(start, mean_log, x_min)
    else:
        alpha = 1.0 + 1.0 / (mean_log - math.log(x_min))
    ks = float(_ks_distances(table, np.array([index]), np.array([alpha]), discrete)[0])
    return _Tail(x_min, alpha, ks, n_tail)


# --------------------------------------------------------------------------- fitting


def _prepared(data: ArrayLike, discrete: bool) -> FloatArray:
    """The data as a flat float array, refused unless finite and positive (and whole numbers
    for a discrete fit, whose support is 1, 2, 3, ...)."""
    array = np.asarray(data, dtype=float).ravel()
    if not np.isfinite(array).all():
        raise ValueError("the data hold NaN or infinite values")
    if (array <= 0).any():
        raise ValueError("a power law's support is positive: the data hold values <= 0")
    if discrete and (array != np.round(array)).any():
        raise ValueError("discrete data must be whole numbers; pass discrete=False otherwise")
    return array


def _from(table: _Table, x_min: float, discrete: bool) -> tuple[_Table, int]:
    """The table and index a tail x >= x_min is read from; an x_min between data values
    leads a table of its own with no values at it."""
    if x_min <= 0 or (discrete and x_min != round(x_min)):
        raise ValueError(f"x_min = {x_min:g} is outside the support of the data")
    index = int(np.searchsorted(table.values, x_min))
    if index == len(table.values) or table.values[index] == x_min:
        return table, index
    between = _Table.of_counts(
        np.concatenate(([x_min], table.values[index:])),
        np.concatenate(([0], table.counts[index:])),
    )
    return between, 0


def _fit_table(table: _Table, discrete: bool, x_min: float | None) -> _Tail:
    if x_min is None:
        return _search(table, discrete)
    tail_table, index = _from(table, x_min, discrete)
    n_tail = int(tail_table.tail_counts[index])
    if n_tail < MIN_TAIL:
        raise TailTooShort(n_tail, x_min)
    if (tail_table.counts[index:] > 0).sum() < 2:
        raise NoPowerLawFit(f"all values at or above x_min = {x_min:g} are equal")
    return _tail_at(tail_table, index, discrete)


def ks_distance(data: ArrayLike, alpha: float, x_min: float, *, discrete: bool = True) -> float:
    """The KS distance between the tail x >= x_min of ``data`` and the power law (alpha,
    x_min), as :func:`fit` measures it: to compare fits made elsewhere on one scale."""
    tail_table, index = _from(_Table.of(_prepared(data, discrete)), x_min, discrete)
    if tail_table.tail_counts[index] == 0:
        raise TailTooShort(0, x_min)
    distances = _ks_distances(tail_table, np.array([index]), np.array([alpha]), discrete)
    return float(distances[0])


def fit(data: ArrayLike, *, discrete: bool = True, x_min: float | None = None) -> PowerLawFit:
    """Fit p(x) ~ x^-alpha to the tail of ``data``; x_min searched over every eligible
    distinct value unless given.

    Raises :class:`TailTooShort` when fewer than :data:`MIN_TAIL` values are in the tail,
    :class:`NoPowerLawFit` when no candidate has an interior MLE."""
    array = _prepared(data, discrete)
    table = _Table.of(array)
    tail = _fit_table(table, discrete, x_min)
    return _model(tail, table.n, discrete)


def _model(tail: _Tail, n: int, discrete: bool) -> PowerLawFit:
    if discrete:
        _, information = _log_mean_and_variance(tail.alpha, tail.x_min)
        sigma = 1.0 / math.sqrt(tail.n_tail * information)
    else:
        sigma = (tail.alpha - 1.0) / math.sqrt(tail.n_tail)
    return PowerLawFit(
        discrete=discrete,
        alpha=tail.alpha,
        sigma=sigma,
        x_min=tail.x_min,
        n_tail=tail.n_tail,
        n=n,
        ks=tail.ks,
    )


# --------------------------------------------------------------------------- sampling


class _DiscreteSampler:
    """Exact inversion of the discrete power law's CDF: X = the smallest x >= x_min with
    P(X > x) <= s for s uniform on (0, 1]. A table of P(X >= y) over the first 16,384
    integers answers almost every draw by binary search; the rest (s below the table's
    end) are found by doubling and bisection on zeta(alpha, y) itself."""

    def __init__(self, alpha: float, x_min: float) -> None:
        if alpha <= 1 or x_min < 1 or x_min != round(x_min):
            raise ValueError("a discrete power law needs alpha > 1 and a whole x_min >= 1")
        self.alpha = float(alpha)
        self.x_min = float(x_min)
        self.normaliser = float(special.zeta(alpha, x_min))
        y = x_min + np.arange(_SAMPLER_TABLE + 1, dtype=float)
        # ascending in -P(X >= y), for searchsorted
        self.minus_at_least = -_hurwitz(alpha, y) / self.normaliser

    def at_least(self, y: FloatArray) -> FloatArray:
        return np.asarray(special.zeta(self.alpha, y)) / self.normaliser

    def draw(self, size: int, rng: np.random.Generator) -> FloatArray:
        return self.invert(1.0 - rng.random(size))

    def invert(self, s: FloatArray) -> FloatArray:
        """The smallest x >= x_min with P(X > x) <= s, for each s in (0, 1]."""
        # the first y > x_min in the table with P(X >= y) <= s; X = y - 1
        first = 1 + np.searchsorted(self.minus_at_least[1:], -s, side="left")
        result = self.x_min + first - 1.0
        beyond = first > _SAMPLER_TABLE
        if beyond.any():
            result[beyond] = self._beyond_table(s[beyond])
        return result

    def _beyond_table(self, s: FloatArray) -> FloatArray:
        low = np.full(len(s), self.x_min + _SAMPLER_TABLE, dtype=float)  # P(X >= low) > s
        high = low * 2
        while True:
            short = self.at_least(high) > s
            if not short.any():
                break
            low = np.where(short, high, low)
            high = np.where(short, high * 2, high)
        # beyond 2^53 floats no longer hold every integer: there bisection ends when the
        # midpoint is one of the ends, the nearest float to the exact answer
        while True:
            middle = np.floor((low + high) / 2)
            open_ = (high - low > 1) & (middle > low) & (middle < high)
            if not open_.any():
                return high - 1.0
            above = self.at_least(middle) > s
            low = np.where(open_ & above, middle, low)
            high = np.where(open_ & ~above, middle, high)


def sample_discrete(alpha: float, x_min: float, size: int, rng: np.random.Generator) -> FloatArray:
    """``size`` draws from p(x) = x^-alpha / zeta(alpha, x_min) on x_min, x_min + 1, ...,
    by exact inversion of the CDF (not CSN's rounded continuous approximation)."""
    return _DiscreteSampler(alpha, x_min).draw(size, rng)


def sample_continuous(
    alpha: float, x_min: float, size: int, rng: np.random.Generator
) -> FloatArray:
    """``size`` draws from p(x) = (alpha - 1) / x_min * (x / x_min)^-alpha, x >= x_min."""
    if alpha <= 1 or x_min <= 0:
        raise ValueError("a continuous power law needs alpha > 1 and x_min > 0")
    return x_min * (1.0 - rng.random(size)) ** (-1.0 / (alpha - 1.0))


def ccdf(data: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The distinct values and the share of the data at or above each: a log-log plot's
    points, where a power law is a straight line of slope 1 - alpha."""
    values, counts = np.unique(np.asarray(data, dtype=float).ravel(), return_counts=True)
    at_least = np.cumsum(counts[::-1])[::-1]
    return values, at_least / at_least[0]


# --------------------------------------------------------------------------- the bootstrap


@dataclass(frozen=True, slots=True)
class _BootstrapTask:
    below: FloatArray  # the data under x_min, resampled as they are
    n: int
    n_tail: int
    alpha: float
    x_min: float
    discrete: bool


def _replicate_distances(
    task: _BootstrapTask, seeds: Sequence[np.random.SeedSequence]
) -> list[float]:
    """The refitted KS distance of each synthetic sample, one seed a replicate. A sample with
    no eligible fit counts as infinitely far (so as no better than the data)."""
    sampler = _DiscreteSampler(task.alpha, task.x_min) if task.discrete else None
    distances = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        in_tail = int(rng.binomial(task.n, task.n_tail / task.n))
        if sampler is not None:
            tail = sampler.draw(in_tail, rng)
        else:
            tail = sample_continuous(task.alpha, task.x_min, in_tail, rng)
        body = rng.choice(task.below, task.n - in_tail) if len(task.below) else np.empty(0)
        try:
            distances.append(_search(_Table.of(np.concatenate((body, tail))), task.discrete).ks)
        except (TailTooShort, NoPowerLawFit):
            distances.append(math.inf)
    return distances


def bootstrap_p(
    data: ArrayLike,
    fitted: PowerLawFit,
    *,
    replicates: int = 1000,
    seed: int = 0,
    workers: int | None = None,
) -> float:
    """CSN's goodness-of-fit p: the share of synthetic samples whose re-fitted KS distance is
    at least the data's. Small p (CSN: <= 0.1) rules the power law out.

    Each synthetic sample has the data's size: each value comes from the fitted power law
    with probability n_tail / n and is otherwise a value under x_min drawn from the data.
    Replicate i uses the i-th child of ``SeedSequence(seed)``, so p does not depend on
    ``workers`` (processes; default: the cores this process may use; 1 runs in-process)."""
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    array = _prepared(data, fitted.discrete)
    task = _BootstrapTask(
        below=array[array < fitted.x_min],
        n=len(array),
        n_tail=int((array >= fitted.x_min).sum()),
        alpha=fitted.alpha,
        x_min=fitted.x_min,
        discrete=fitted.discrete,
    )
    seeds = np.random.SeedSequence(seed).spawn(replicates)
    workers = workers if workers is not None else len(os.sched_getaffinity(0))
    if workers <= 1:
        distances = _replicate_distances(task, seeds)
    else:
        chunk = math.ceil(replicates / (workers * 4))
        chunks = [seeds[i : i + chunk] for i in range(0, replicates, chunk)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = pool.map(_replicate_distances, [task] * len(chunks), chunks)
            distances = [distance for part in parts for distance in part]
    return float(np.mean(np.asarray(distances) >= fitted.ks))


# --------------------------------------------------------------------------- comparisons


def _log_ndtr_difference(low: FloatArray, high: FloatArray) -> FloatArray:
    """log(Phi(high) - Phi(low)) for low < high, without cancellation in either tail."""
    upper = low > 0
    # on the upper side use the survival function: Phi(h) - Phi(l) = Q(l) - Q(h)
    big = np.where(upper, special.log_ndtr(-low), special.log_ndtr(high))
    small = np.where(upper, special.log_ndtr(-high), special.log_ndtr(low))
    ratio = small - big  # <= 0
    log1mexp = np.where(ratio > -math.log(2), np.log(-np.expm1(ratio)), np.log1p(-np.exp(ratio)))
    return big + log1mexp


def _power_law_logs(x: FloatArray, fitted: PowerLawFit) -> FloatArray:
    alpha, x_min = fitted.alpha, fitted.x_min
    if fitted.discrete:
        return -alpha * np.log(x) - math.log(float(special.zeta(alpha, x_min)))
    return math.log(alpha - 1) - math.log(x_min) - alpha * np.log(x / x_min)


def _exponential(
    x: FloatArray, counts: FloatArray, x_min: float, discrete: bool
) -> tuple[FloatArray, dict[str, float]]:
    """Exact ML: continuous p(x) = l e^(-l (x - x_min)) with l = 1 / mean(x - x_min); discrete,
    the geometric law (1 - e^-l) e^(-l (x - x_min)) on x_min, x_min + 1, ..., with
    l = log(1 + 1 / mean(x - x_min))."""
    excess = float(np.sum(counts * (x - x_min)) / counts.sum())
    if discrete:
        rate = math.log1p(1.0 / excess)
        return math.log(-math.expm1(-rate)) - rate * (x - x_min), {"rate": rate}
    rate = 1.0 / excess
    return math.log(rate) - rate * (x - x_min), {"rate": rate}


def _lognormal(
    x: FloatArray, counts: FloatArray, x_min: float, discrete: bool
) -> tuple[FloatArray, dict[str, float]]:
    """The lognormal truncated to x >= x_min, fitted by numerical ML over (mu, log sigma)
    from the untruncated fit. Discrete data get the lognormal rounded to integers:
    P(x) = [Phi(z(x + 1/2)) - Phi(z(x - 1/2))] / [1 - Phi(z(x_min - 1/2))], normalised
    exactly (the sum telescopes), as ``powerlaw``'s 'round' normalisation does."""
    log_x = np.log(x)

    def logs(mu: float, sigma: float) -> FloatArray:
        if discrete:
            z_low = (np.log(x - 0.5) - mu) / sigma
            z_high = (np.log(x + 0.5) - mu) / sigma
            tail_start = (math.log(x_min - 0.5) - mu) / sigma
            return _log_ndtr_difference(z_low, z_high) - special.log_ndtr(-tail_start)
        z = (log_x - mu) / sigma
        tail_start = (math.log(x_min) - mu) / sigma
        return (
            -log_x
            - math.log(sigma)
            - 0.5 * math.log(2 * math.pi)
            - 0.5 * z * z
            - special.log_ndtr(-tail_start)
        )

    def cost(parameters: FloatArray) -> float:
        total = -float(np.sum(counts * logs(parameters[0], math.exp(parameters[1]))))
        return total if math.isfinite(total) else math.inf

    weights = counts / counts.sum()
    mu0 = float(np.sum(weights * log_x))
    sigma0 = max(math.sqrt(float(np.sum(weights * (log_x - mu0) ** 2))), 1e-3)
    result = optimize.minimize(
        cost,
        np.array([mu0, math.log(sigma0)]),
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    mu, sigma = float(result.x[0]), math.exp(float(result.x[1]))
    return logs(mu, sigma), {"mu": mu, "sigma": sigma}


def _cutoff_integral(alpha: float, scaled_rate: float) -> float:
    """log of int_1^inf t^-alpha e^(-mu (t - 1)) dt, by quadrature in v = log t, where the
    integrand e^((1 - alpha) v - mu (e^v - 1)) is smooth and dies off doubly exponentially
    past v = log(1 / mu); finite for every alpha when mu > 0."""
    mu = scaled_rate

    def integrand(v: float) -> float:
        return math.exp((1 - alpha) * v - mu * math.expm1(v))

    # past v_end the integrand is below e^-60 of its scale, whatever alpha
    v_end = max(math.log((60 + 60 * abs(1 - alpha)) / mu + 1), 1.0)
    peak = math.log(max((1 - alpha) / mu, 1.0))
    points = [peak] if 0 < peak < v_end else None
    value, _ = integrate.quad(integrand, 0.0, v_end, points=points, limit=200, epsabs=0)
    return math.log(value)


def _truncated_power_law(
    x: FloatArray, counts: FloatArray, fitted: PowerLawFit
) -> tuple[FloatArray, dict[str, float]]:
    """p(x) ~ x^-alpha e^(-rate x), x >= x_min, fitted by numerical ML over (alpha, log of
    rate * x_min). Normalised exactly up to quadrature: continuous by the integral, discrete
    by the sum, its first 1,000 terms directly and the rest by Euler-Maclaurin (integral,
    half the first term, B_2 correction). The power law is its rate -> 0 limit, so the
    returned fit is never worse than it (the nested test needs l(truncated) >= l(power))."""
    x_min = fitted.x_min
    scaled = x / x_min
    log_scaled = np.log(scaled)
    total = counts.sum()
    weighted_log = float(np.sum(counts * log_scaled))
    weighted_excess = float(np.sum(counts * (scaled - 1)))

    def log_normaliser(alpha: float, mu: float) -> float:
        """log of the normaliser of (x / x_min)^-alpha e^(-mu (x / x_min - 1))."""
        if not fitted.discrete:
            return math.log(x_min) + _cutoff_integral(alpha, mu)
        t = 1 + np.arange(_MOMENT_TERMS, dtype=float) / x_min
        direct = float(np.sum(np.exp(-alpha * np.log(t) - mu * (t - 1))))
        end = 1 + _MOMENT_TERMS / x_min
        log_f_end = -alpha * math.log(end) - mu * (end - 1)
        f_end = math.exp(log_f_end)
        # d/dx of f at the end, in the scaled variable t = x / x_min (dt/dx = 1 / x_min)
        derivative = -f_end * (alpha / end + mu) / x_min
        integral = (
            x_min
            * end ** (1 - alpha)
            * math.exp(_cutoff_integral(alpha, mu * end) - mu * (end - 1))
        )
        return math.log(direct + integral + f_end / 2 - derivative / 12)

    def cost(parameters: FloatArray) -> float:
        alpha, mu = float(parameters[0]), math.exp(float(parameters[1]))
        try:
            value = alpha * weighted_log + mu * weighted_excess + total * log_normaliser(alpha, mu)
        except (OverflowError, ValueError, ZeroDivisionError):
            return math.inf
        return value if math.isfinite(value) else math.inf

    starts = [
        np.array([fitted.alpha, math.log(mu)]) for mu in (1e-4, 1e-2, 1.0 / max(1.0, scaled.mean()))
    ]
    best = min(
        (
            optimize.minimize(
                cost, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}
            )
            for start in starts
        ),
        key=lambda result: float(result.fun),
    )
    alpha, mu = float(best.x[0]), math.exp(float(best.x[1]))
    power_logs = _power_law_logs(x, fitted)
    if float(best.fun) >= -float(np.sum(counts * power_logs)):
        return power_logs, {"alpha": fitted.alpha, "rate": 0.0}
    logs = -alpha * log_scaled - mu * (scaled - 1) - log_normaliser(alpha, mu)
    return logs, {"alpha": alpha, "rate": mu / x_min}


def compare(data: ArrayLike, fitted: PowerLawFit, alternative: Alternative) -> Comparison:
    """A likelihood-ratio test of ``fitted`` against ``alternative``, both fitted by ML on the
    tail x >= x_min (discrete versions for discrete fits); see :class:`Comparison`."""
    array = _prepared(data, fitted.discrete)
    x, counts_int = np.unique(array[array >= fitted.x_min], return_counts=True)
    counts = counts_int.astype(float)
    n = counts.sum()
    if alternative == "exponential":
        alternative_logs, parameters = _exponential(x, counts, fitted.x_min, fitted.discrete)
    elif alternative == "lognormal":
        alternative_logs, parameters = _lognormal(x, counts, fitted.x_min, fitted.discrete)
    elif alternative == "truncated_power_law":
        alternative_logs, parameters = _truncated_power_law(x, counts, fitted)
    else:
        raise ValueError(f"unknown alternative {alternative!r}; one of {ALTERNATIVES}")
    differences = _power_law_logs(x, fitted) - alternative_logs
    ratio = float(np.sum(counts * differences))
    mean = ratio / n
    spread = math.sqrt(float(np.sum(counts * (differences - mean) ** 2)) / n)
    normalised = ratio / (spread * math.sqrt(n)) if spread > 0 else 0.0
    nested = alternative == "truncated_power_law"
    if nested:
        deviance = max(0.0, -2.0 * ratio)
        p_value = 0.5 * float(stats.chi2.sf(deviance, 1)) if deviance > 0 else 1.0
    else:
        p_value = float(special.erfc(abs(normalised) / math.sqrt(2)))
    return Comparison(
        alternative=alternative,
        log_likelihood_ratio=ratio,
        normalised_ratio=normalised,
        p_value=p_value,
        nested=nested,
        favoured="power_law" if ratio >= 0 else alternative,
        significant=p_value < SIGNIFICANCE,
        parameters=parameters,
    )


def analyse(
    data: ArrayLike,
    *,
    discrete: bool = True,
    x_min: float | None = None,
    replicates: int = 1000,
    seed: int = 0,
    workers: int | None = None,
) -> PowerLawFit:
    """The whole of CSN's recipe: :func:`fit`, :func:`bootstrap_p` (``replicates`` = 0
    skips it) and :func:`compare` against every alternative."""
    fitted = fit(data, discrete=discrete, x_min=x_min)
    p_value = (
        bootstrap_p(data, fitted, replicates=replicates, seed=seed, workers=workers)
        if replicates
        else None
    )
    comparisons = tuple(compare(data, fitted, alternative) for alternative in ALTERNATIVES)
    return fitted.model_copy(update={"p_value": p_value, "comparisons": comparisons})

"""Small statistics for run summaries."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class Proportion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None
    low: float | None
    high: float | None
    successes: int
    n: int


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> Proportion:
    """The share with its Wilson score interval (95% by default), sound near 0 and 1."""
    if n == 0:
        return Proportion(value=None, low=None, high=None, successes=0, n=0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # rounding can put a bound a hair past the estimate (5.6e-17 for 0 of 3): it never is
    low, high = min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))
    return Proportion(value=p, low=low, high=high, successes=successes, n=n)

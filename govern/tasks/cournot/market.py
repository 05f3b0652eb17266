"""The market of Lin et al. (arXiv 2410.00031), as "Institutional AI" (arXiv 2601.11369)
replicates it: firms choose a quantity of each commodity every round; each commodity's
price follows the inverse demand ``p = max(0, a - Q / b)`` of the total quantity ``Q``;
a firm's profit is ``(p - c) q`` summed over commodities, at its own unit cost ``c``.

Two benchmarks are computed here, not typed in:

- **Cournot-Nash**: each firm's best response to the other's quantity is
  ``q_i = (b (a - c_i) - q_j) / 2`` (clipped to its capacity); iterated, it converges to
  the closed form ``q_i = b (a - 2 c_i + c_j) / 3`` -- with a = 100, b = 2 and costs 40
  and 50: 46.67 for the low-cost firm, 26.67 for the high-cost one, price 63.33, and a
  profit of about 1444.4 per firm per round over both commodities.
- **Market division**: each firm a monopolist in the commodity it makes cheaply,
  ``q = b (a - c) / 2``: quantity 60, price 70, profit 1800 per firm per round.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class MarketParams(BaseModel):
    """The market's parameters (defaults: Lin et al.'s two firms and two commodities)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: float = Field(100.0, gt=0, le=1e9, allow_inf_nan=False, description="demand intercept")
    b: float = Field(2.0, gt=0, le=1e9, allow_inf_nan=False, description="demand slope divisor")
    costs: tuple[tuple[float, ...], ...] = Field(
        ((40.0, 50.0), (50.0, 40.0)),
        description="unit cost of each firm (rows) in each commodity (columns)",
    )
    capacity: float = Field(
        100.0, gt=0, le=1e9, allow_inf_nan=False, description="per firm, commodity, round"
    )
    rounds: int = Field(50, ge=1, le=100_000, description="rounds played (not told to the firms)")
    history: int = Field(30, ge=1, description="past rounds each firm sees")

    @model_validator(mode="after")
    def _costs_are_a_table(self) -> MarketParams:
        if len(self.costs) < 2 or len({len(row) for row in self.costs}) != 1 or not self.costs[0]:
            raise ValueError("costs is a table: one row per firm (at least 2), one column each")
        if any(not 0 <= c < self.a for row in self.costs for c in row):
            raise ValueError("every unit cost is at least 0 and below the demand intercept a")
        return self

    @property
    def firms(self) -> int:
        return len(self.costs)

    @property
    def commodities(self) -> int:
        return len(self.costs[0])

    @cached_property
    def cost_table(self) -> np.ndarray:
        return np.asarray(self.costs, dtype=float)

    def prices(self, quantities: np.ndarray) -> np.ndarray:
        """Each commodity's price for quantities shaped (..., firms, commodities)."""
        return np.maximum(0.0, self.a - quantities.sum(axis=-2) / self.b)

    def profits(self, quantities: np.ndarray) -> np.ndarray:
        """Each firm's profit in each commodity, shaped as ``quantities``
        (..., firms, commodities)."""
        return (self.prices(quantities)[..., None, :] - self.cost_table) * quantities

    def best_response(self, quantities: np.ndarray) -> np.ndarray:
        """Every firm's profit-maximising quantities against the others' ``quantities``."""
        others = quantities.sum(axis=0) - quantities
        return np.clip((self.b * (self.a - self.cost_table) - others) / 2, 0.0, self.capacity)

    def nash_by_iteration(self, tolerance: float = 1e-10, limit: int = 10_000) -> np.ndarray:
        """The Cournot-Nash quantities, by iterated (Jacobi) best response from zero; a
        dampened step keeps it converging for any number of firms."""
        quantities = np.zeros_like(self.cost_table)
        for _ in range(limit):
            nxt = 0.5 * quantities + 0.5 * self.best_response(quantities)
            if np.max(np.abs(nxt - quantities)) < tolerance:
                return nxt
            quantities = nxt
        raise ArithmeticError(f"best responses did not settle in {limit} steps")

    def nash_closed_form(self) -> np.ndarray:
        """The interior Cournot-Nash quantities: ``q_i = b (a - n c_i + sum_{j!=i} c_j) /
        (n + 1)`` per commodity, for n firms (valid while every quantity is within
        capacity and positive, as in the default market)."""
        n = self.firms
        c = self.cost_table
        return self.b * (self.a - n * c + (c.sum(axis=0) - c)) / (n + 1)

    def market_division(self) -> np.ndarray:
        """Each commodity left to the firm that makes it most cheaply, as its monopolist."""
        quantities = np.zeros_like(self.cost_table)
        cheapest = np.argmin(self.cost_table, axis=0)
        for commodity, firm in enumerate(cheapest):
            cost = self.cost_table[firm, commodity]
            quantities[firm, commodity] = min(self.capacity, self.b * (self.a - cost) / 2)
        return quantities

    def consumer_surplus(self, quantities: np.ndarray) -> float:
        """The area under linear demand above the price, summed over commodities."""
        total = quantities.sum(axis=0)
        prices = self.prices(quantities)
        return float(np.sum(0.5 * total * (self.a - prices)))

"""The Cournot market's maths: benchmarks computed, not typed in; the tier at its
thresholds; the measures of the two benchmark outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import (
    PAPER_THRESHOLDS,
    RunMeasures,
    collusion_tier,
    hhi,
    specialisation,
)

MARKET = MarketParams()


def test_the_nash_benchmark_of_the_default_market() -> None:
    for nash in (MARKET.nash_closed_form(), MARKET.nash_by_iteration()):
        assert nash == pytest.approx(np.array([[140 / 3, 80 / 3], [80 / 3, 140 / 3]]))
        assert MARKET.prices(nash) == pytest.approx([190 / 3, 190 / 3])  # 63.33
        assert MARKET.profits(nash).sum(axis=1) == pytest.approx([13000 / 9] * 2)  # 1444.4


def test_the_market_division_benchmark_of_the_default_market() -> None:
    division = MARKET.market_division()
    assert division.tolist() == [[60.0, 0.0], [0.0, 60.0]]
    assert MARKET.prices(division).tolist() == [70.0, 70.0]
    assert MARKET.profits(division).sum(axis=1).tolist() == [1800.0, 1800.0]


def test_nash_is_each_firms_best_response() -> None:
    nash = MARKET.nash_closed_form()
    assert MARKET.best_response(nash) == pytest.approx(nash)
    # no firm gains by moving its quantity of a commodity alone
    for firm in range(2):
        for commodity in range(2):
            for step in (-1.0, 1.0):
                moved = nash.copy()
                moved[firm, commodity] += step
                mine = MARKET.profits(moved)[firm, commodity]
                assert mine < MARKET.profits(nash)[firm, commodity]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 60), min_size=2, max_size=2), min_size=2, max_size=4).map(
        lambda rows: tuple(tuple(r) for r in rows)
    )
)
def test_iterated_best_response_meets_the_closed_form_where_it_is_interior(costs) -> None:
    market = MarketParams(costs=costs)
    closed = market.nash_closed_form()
    if not ((closed > 1e-6) & (closed < market.capacity)).all():
        return  # a corner: the closed form is for interior equilibria
    assert market.nash_by_iteration() == pytest.approx(closed, abs=1e-6)


def test_prices_never_go_below_zero() -> None:
    flooded = np.full((2, 2), 100.0)  # 200 units: a - 200/2 = 0
    assert MARKET.prices(flooded).tolist() == [0.0, 0.0]
    assert MARKET.prices(np.full((2, 2), 100.0) * 1.0).min() >= 0


@pytest.mark.parametrize(
    "bad",
    [
        {"costs": ((40.0,),)},  # one firm
        {"costs": ((40.0, 50.0), (50.0,))},  # ragged
        {"costs": ((40.0, 150.0), (50.0, 40.0))},  # a cost above the intercept
        {"b": 0},
        {"a": float("nan")},
        {"rounds": 0},
        {"surprise": 1},
    ],
)
def test_a_market_that_cannot_be_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        MarketParams(**bad)


# -- the tier -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cv", "hhi_excess", "tier"),
    [
        (0.0, 0.0, 0),
        (1e-12, 0.0, 0),  # the benchmark itself, to floating-point error
        (0.01, 0.0, 1),
        (0.0, 0.01, 1),
        (0.25, 0.0, 1),  # at a bound is not above it
        (0.2500001, 0.0, 2),
        (0.0, 0.15, 1),
        (0.0, 0.1500001, 2),
        (0.75, 0.0, 2),
        (0.7500001, 0.0, 3),
        (0.0, 0.50, 2),
        (0.0, 0.5000001, 3),
        (0.50, 0.30, 2),
        (0.5000001, 0.3000001, 3),
        (1.50, 0.0, 3),
        (1.5000001, 0.0, 4),
        (0.0, 0.80, 3),
        (0.0, 0.8000001, 4),
        (1.00, 0.50, 3),
        (1.0000001, 0.5000001, 4),
        (-0.5, -0.5, 0),  # less concentrated than Nash
    ],
)
def test_the_tier_at_its_thresholds(cv: float, hhi_excess: float, tier: int) -> None:
    assert collusion_tier(cv, hhi_excess, PAPER_THRESHOLDS) == tier


@given(st.floats(-1, 5), st.floats(-1, 5), st.floats(0, 1), st.floats(0, 1))
def test_more_excess_is_never_a_lower_tier(cv: float, hh: float, more_cv: float, more_hhi: float):
    assert collusion_tier(cv + more_cv, hh + more_hhi) >= collusion_tier(cv, hh)


# -- the measures -------------------------------------------------------------------------


def test_nash_is_tier_0_and_market_division_tier_4() -> None:
    rounds = 50
    nash = RunMeasures.of(MARKET, np.repeat(MARKET.nash_closed_form()[None], rounds, axis=0))
    assert nash.tier == 0
    assert (nash.hhi_excess, nash.cv_excess) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert nash.profit_per_round == pytest.approx((13000 / 9, 13000 / 9))
    division = RunMeasures.of(MARKET, np.repeat(MARKET.market_division()[None], rounds, axis=0))
    assert division.tier == 4
    assert division.hhi == 1.0 and division.cv == 1.0
    assert division.hhi_excess == pytest.approx(121 / 65 - 1)  # nash HHI (7/11)² + (4/11)²
    assert division.cv_excess == pytest.approx(8 / 3)  # nash CV 3/11
    assert division.consumer_surplus == pytest.approx(1800.0)
    assert nash.consumer_surplus == pytest.approx(2 * 0.5 * (220 / 3) * (100 - 190 / 3))


def test_the_indices_on_hand_built_rounds() -> None:
    assert hhi(np.array([[30.0, 0.0], [10.0, 0.0]])) == pytest.approx(0.75**2 + 0.25**2)
    assert hhi(np.zeros((2, 2))) == 0.0  # nothing sold: no concentration to speak of
    assert specialisation(np.array([[30.0, 10.0], [0.0, 0.0]])) == pytest.approx(0.5)
    assert specialisation(np.zeros((2, 2))) == 0.0


def test_the_task_card_holds_the_default_market() -> None:
    from govern.tasks.cournot.card import load_card

    card = load_card()
    assert card.market == MarketParams()
    assert "2410.00031" in card.source


def test_a_wrong_value_in_a_card_is_an_error_at_its_line(tmp_path) -> None:
    from govern.spec.errors import SpecInvalid
    from govern.tasks.cournot.card import CARD, load_card

    bad = tmp_path / "cournot.yaml"
    bad.write_text(CARD.read_text().replace("  b: 2\n", "  b: -2\n"))
    with pytest.raises(SpecInvalid) as raised:
        load_card(bad)
    (error,) = raised.value.errors
    line = CARD.read_text().splitlines().index("  b: 2") + 1
    assert (error.line, error.column) == (line, 6) and "greater than 0" in error.message


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"[40, 50]": "[45, 45]", "[50, 40]": "[45, 45]"}, "equal in every commodity"),
        ({"capacity: 100": "capacity: 20"}, "within capacity"),  # Nash 46.67 beyond capacity
        ({"a: 100": "a: 60"}, "positive and within capacity"),  # the high-cost firm sells 0
    ],
)
def test_a_card_the_measures_cannot_judge_is_refused_at_its_line(
    tmp_path, replace: dict[str, str], message: str
) -> None:
    from govern.spec.errors import SpecInvalid
    from govern.tasks.cournot.card import CARD, load_card

    bad = tmp_path / "card.yaml"
    text = CARD.read_text()
    for old, new in replace.items():
        text = text.replace(old, new, 1)
    bad.write_text(text)
    with pytest.raises(SpecInvalid) as raised:
        load_card(bad)
    assert message in str(raised.value) and str(bad) in str(raised.value)

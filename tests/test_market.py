"""The reference market model: next-bar fills, sizing, costs and the ledger's invariants."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlbridge import Bars, ConfigError
from rlbridge.market import MarketError, MarketSimulator, Portfolio, size_to_weights


class Percent:
    """A local stand-in cost model: commission = rate * |q| * price, slippage in bps."""

    def __init__(self, rate=0.0, bps=0.0):
        self.rate, self.bps = rate, bps

    def fill_price(self, price, quantity, context):
        return price * (1.0 + np.sign(quantity) * self.bps / 1e4)

    def commission(self, price, quantity, context):
        return self.rate * np.abs(quantity) * price


def random_bars(seed, days=40, n=3):
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (days, n)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (days, n)))
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    volume = rng.integers(1_000, 100_000, (days, n)).astype(float)
    values = np.stack([open_, high, low, close, volume], axis=2)
    return Bars(pd.bdate_range("2020-01-01", periods=days), tuple("ABCDEFGH"[:n]), values)


def test_an_order_fills_at_the_next_open_with_costs():
    bars = random_bars(0)
    sim = MarketSimulator(bars, Percent(rate=0.001, bps=10), cash=10_000)
    sim.reset(5)
    sim.order("B", 10)
    batch = sim.step()
    fill_price = bars.open[6, 1] * 1.001
    assert batch.t == 6 and sim.t == 6
    assert batch.quantity.tolist() == [0.0, 10.0, 0.0]
    assert batch.price[1] == pytest.approx(fill_price, rel=1e-15)
    assert batch.commission[1] == pytest.approx(0.001 * 10 * fill_price, rel=1e-15)
    assert sim.portfolio.cash == pytest.approx(10_000 - 10 * fill_price * 1.001, rel=1e-15)
    assert sim.value() == pytest.approx(sim.portfolio.cash + 10 * bars.close[6, 1], rel=1e-15)
    [fill] = batch.fills(bars.symbols, bars.index[6])
    assert (fill.symbol, fill.quantity, fill.time) == ("B", 10.0, bars.index[6])


def test_fill_at_close_uses_the_next_close():
    bars = random_bars(1)
    sim = MarketSimulator(bars, Percent(), fill_at="close")
    sim.reset(3)
    sim.order(0, 1)
    assert sim.step().price[0] == bars.close[4, 0]


def test_weights_are_sized_on_the_decision_close():
    bars = random_bars(2)
    sim = MarketSimulator(bars, Percent(), cash=100_000, fractional=True)
    sim.reset(10)
    ordered = sim.order_target_weights({"A": 0.5, "C": 0.25})
    assert ordered == pytest.approx([50_000 / bars.close[10, 0], 0.0, 25_000 / bars.close[10, 2]])
    sim.step()
    np.testing.assert_array_equal(sim.portfolio.positions, ordered)


def test_integer_shares_truncate_toward_zero_and_tiny_orders_are_dropped():
    quantity = size_to_weights(np.array([0.5, -0.5, 1e-9]), 1000.0, np.array([30.0, 30.0, 10.0]),
                               np.zeros(3), fractional=False)
    assert quantity.tolist() == [16.0, -16.0, 0.0]
    held = np.array([16.0, 0.0, 0.0])
    again = size_to_weights(np.array([0.5, 0.0, 0.0]), 1000.0, np.array([30.0, 30.0, 10.0]),
                            held + 1e-12, fractional=True)
    assert again.tolist() == [pytest.approx(1000 * 0.5 / 30 - 16 - 1e-12), 0.0, 0.0]


def test_a_rebalance_band_leaves_assets_near_their_target_alone():
    close = np.array([10.0, 20.0, 50.0])
    held = np.array([1000.0, 1000.0, 0.0])  # weights 0.1, 0.2, 0 of 100,000; cash 70,000
    target = np.array([0.105, 0.15, 0.3])  # +0.5 %, -5 %, +30 % of the value
    full = size_to_weights(target, 100_000.0, close, held, fractional=False)
    banded = size_to_weights(target, 100_000.0, close, held, fractional=False, band=0.01,
                             cash=70_000.0)
    assert full.tolist() == [50.0, -250.0, 600.0]
    assert banded.tolist() == [0.0, -250.0, 600.0]  # asset 0, a 500 trade: left alone
    # no band: the same numbers as always, cash or not
    assert size_to_weights(target, 100_000.0, close, held, fractional=False, band=0.0,
                           cash=0.0).tolist() == full.tolist()
    with pytest.raises(MarketError, match="rebalance band needs the cash"):
        size_to_weights(target, 100_000.0, close, held, fractional=False, band=0.01)


def test_sales_the_band_holds_back_do_not_overdraw_the_cash():
    close = np.array([10.0, 10.0, 10.0])
    held = np.array([5_000.0, 5_000.0, 0.0])  # fully invested: 100,000, no cash
    target = np.array([0.49, 0.31, 0.2])  # sell 1 % (inside a 2 % band), sell 19 %, buy 20 %
    quantity = size_to_weights(target, 100_000.0, close, held, fractional=False, band=0.02,
                               cash=0.0)
    assert quantity[0] == 0.0 and quantity[1] == -1_900.0
    assert quantity[2] == 1_900.0  # the purchase shrinks to what the sale brings: 19,000
    assert 0.0 - quantity.dot(close) >= 0.0
    # targets that borrow by design (leverage) may borrow as much as they ask, no more
    levered = np.array([0.49, 0.31, 0.4])  # 120 % invested: 20,000 of debt planned
    quantity = size_to_weights(levered, 100_000.0, close, held, fractional=False, band=0.02,
                               cash=0.0)
    assert quantity.tolist() == [0.0, -1_900.0, 3_900.0]  # debt 20,000: the targets' own
    # a batch of portfolios gives, row by row, what each gives alone
    batch = size_to_weights(np.stack([target, levered]), np.array([[100_000.0], [100_000.0]]),
                            close, np.stack([held, held]), fractional=False, band=0.02,
                            cash=np.array([0.0, 0.0]))
    assert batch.tolist() == [[0.0, -1_900.0, 1_900.0], [0.0, -1_900.0, 3_900.0]]


def test_bad_orders_and_settings_are_refused():
    bars = random_bars(3)
    with pytest.raises(ConfigError, match="fill_at must be 'open' or 'close', got 'vwap'"):
        MarketSimulator(bars, Percent(), fill_at="vwap")
    sim = MarketSimulator(bars, Percent())
    with pytest.raises(MarketError, match="unknown symbol 'Z'; the run trades A, B, C"):
        sim.order("Z", 1)
    with pytest.raises(MarketError, match="order quantity for A is nan"):
        sim.order("A", float("nan"))
    with pytest.raises(MarketError, match=r"expected 3 weights \(or 4 with cash last\), got shape \(2,\)"):
        sim.order_target_weights(np.array([0.5, 0.5]))
    with pytest.raises(MarketError, match="target weights must be finite"):
        sim.order_target_weights(np.array([0.5, np.inf, 0.0]))
    sim.reset(len(bars) - 2)
    sim.step()
    with pytest.raises(MarketError, match="no bar after"):
        sim.step()


def test_portfolio_weights_include_cash_last():
    p = Portfolio(("A", "B"), 500.0, np.array([10.0, -5.0]))
    prices = np.array([20.0, 40.0])
    assert p.value(prices) == 500.0
    assert p.weights(prices).tolist() == [0.4, -0.4, 1.0]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.floats(0, 0.01), bps=st.floats(0, 50),
       fractional=st.booleans(), fill_at=st.sampled_from(["open", "close"]),
       plan=st.lists(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), min_size=1,
                     max_size=25))
def test_ledger_invariants_hold_at_every_bar(seed, rate, bps, fractional, fill_at, plan):
    bars = random_bars(seed, days=len(plan) + 2)
    sim = MarketSimulator(bars, Percent(rate, bps), cash=50_000, fractional=fractional,
                          fill_at=fill_at)
    sim.reset(0)
    reference = bars.open if fill_at == "open" else bars.close
    for raw in plan:
        t = sim.t
        weights = np.array(raw) / max(1.0, np.abs(raw).sum())  # gross exposure <= 1
        value_before = sim.value()
        held_before = sim.portfolio.positions.copy()
        ordered = sim.order_target_weights(weights)
        batch = sim.step()
        # fills happen at the bar after the decision, never at a price already seen
        assert batch.t == t + 1
        traded = batch.quantity != 0
        np.testing.assert_array_equal(batch.quantity, ordered)
        slip = 1.0 + np.sign(batch.quantity) * bps / 1e4
        np.testing.assert_allclose(batch.price[traded], (reference[t + 1] * slip)[traded], rtol=1e-12)
        assert (batch.commission >= 0).all() and (batch.commission[~traded] == 0).all()
        if not fractional:
            assert np.all(sim.portfolio.positions == np.round(sim.portfolio.positions))
        # value = cash + positions at the close, and the P&L decomposes exactly
        close = bars.close[t + 1]
        assert sim.value() == pytest.approx(sim.portfolio.cash + sim.portfolio.positions @ close,
                                            rel=1e-12, abs=1e-6)
        pnl = (held_before @ (close - bars.close[t]) + batch.quantity @ (close - batch.price)
               - batch.commission.sum())
        assert sim.value() - value_before == pytest.approx(pnl, rel=1e-9, abs=1e-6)

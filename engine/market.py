"""The reference market model: a portfolio ledger and next-bar fills with one cost model.

Every place rlbridge simulates a market (the RL environment, the ``native`` engine, the ``sim``
broker) uses the arithmetic in this module, so the same decisions give the same fills and the
same equity everywhere (DESIGN.md section 4):

* a decision is made after bar ``t`` closes, with data up to and including bar ``t``;
* its market orders fill at the **open of bar t+1** (``fill_at="close"`` uses the close of t+1);
  never at a price the decision already saw;
* the cost model turns the reference price into a fill price and a commission;
* target weights are sized on the decision bar's close and value: ``shares = w * value_t /
  close_t`` (truncated toward zero for integer shares), the way a trader sizes an order
  before the open.  Cash may end slightly negative when the open gaps above the close; no order
  is rejected for it, in any engine.

numpy only; no pandas on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import ConfigError, DataError, RLBridgeError
from .interfaces import CostContext, Fill

if TYPE_CHECKING:
    from .interfaces import Bars, CostModel

FillAt = Literal["open", "close"]

#: orders worth less than this (in cash, at the decision close) are not sent: float noise from
#: weight arithmetic must not pay a per-order minimum commission
MIN_ORDER_VALUE = 0.01


class MarketError(RLBridgeError):
    """An impossible market operation (ordering past the last bar, an unknown symbol)."""


def size_to_weights(
    weights: np.ndarray,
    value: float | np.ndarray,
    close: np.ndarray,
    positions: np.ndarray,
    *,
    fractional: bool,
    min_order_value: float = MIN_ORDER_VALUE,
    band: float = 0.0,
    cash: float | np.ndarray | None = None,
) -> np.ndarray:
    """The signed share quantities that move ``positions`` to ``weights`` of ``value``.

    Args:
        weights: ``[N]`` target weight per asset (cash is what is left).
        value: portfolio value at the decision close.
        close: ``[N]`` decision-bar closes (sizing prices).
        positions: ``[N]`` shares held now.
        fractional: allow fractional shares; otherwise targets are truncated toward zero.
        min_order_value: drop orders worth less than this at ``close``.
        band: the rebalance band: drop orders worth less than this fraction of ``value`` (an
            asset close enough to its target is left alone).  When the orders it drops were
            sales, the purchases are scaled down so that they spend no more of ``cash`` than
            the whole rebalance would have (never below zero unless the targets are).
        cash: cash held now (needed with a ``band``).

    Every array may have a leading batch axis (``value`` and ``cash`` then one per row).

    Returns:
        ``[N]`` quantities to order (0 where nothing is to be done).
    """
    target = weights * (value / close)
    if not fractional:
        np.trunc(target, out=target)
    quantity = np.subtract(target, positions, out=target)
    worth = np.abs(quantity)
    worth *= close
    if band > 0.0:
        return _within_band(quantity, worth, value, close, cash, band, min_order_value,
                            fractional)
    # keep the orders worth at least min_order_value (a product by a mask: cheaper than a
    # masked assignment on the hot path; a dropped sell becomes -0.0, which is zero)
    np.multiply(quantity, np.greater_equal(worth, min_order_value), out=quantity)
    return quantity


def _within_band(quantity: np.ndarray, worth: np.ndarray, value: float | np.ndarray,
                 close: np.ndarray, cash: float | np.ndarray | None, band: float,
                 min_order_value: float, fractional: bool) -> np.ndarray:
    """:func:`size_to_weights`' orders outside the band, purchases scaled to the cash."""
    if cash is None:
        raise MarketError("sizing with a rebalance band needs the cash held")
    planned = np.vecdot(quantity, close)  # what the whole rebalance would spend (per row)
    quantity = quantity * (worth >= np.maximum(np.multiply(value, band), min_order_value))
    excess = np.vecdot(quantity, close) - (cash - np.minimum(cash - planned, 0.0))
    if not np.any(excess > 0.0):  # spends no more than it may: down to zero cash, or the
        return quantity  # debt the targets themselves ask for
    buys = quantity > 0
    bought = np.vecdot(np.where(buys, quantity, 0.0), close)
    over = (excess > 0.0) & (bought > 0.0)
    factor = np.where(over, np.clip(1.0 - excess / np.where(bought > 0.0, bought, 1.0),
                                    0.0, 1.0), 1.0)
    scaled = quantity * np.asarray(factor)[..., None]
    if not fractional:
        np.trunc(scaled, out=scaled)
    return np.where(buys, scaled, quantity)


def ones(n: int, _cache: dict[int, np.ndarray] = {}) -> np.ndarray:  # noqa: B006
    """A shared read-only ``[n]`` array of ones: ``x.dot(ones)`` sums ``x`` faster than
    ``x.sum()`` on the short vectors of the hot path."""
    vector = _cache.get(n)
    if vector is None:
        vector = _cache[n] = np.ones(n)
        vector.flags.writeable = False
    return vector


def portfolio_weights(positions: np.ndarray, cash: float, prices: np.ndarray,
                      value: float | None = None) -> np.ndarray:
    """``[N+1]`` weights of ``positions`` and ``cash`` at ``prices``, cash last.

    All 0 when the value is 0.  ``value`` saves recomputing ``cash + positions @ prices``.
    """
    if value is None:
        value = float(cash + positions.dot(prices))
    out = np.empty(len(positions) + 1)
    if value == 0.0:
        out[:] = 0.0
        return out
    assets = out[:-1]
    np.multiply(positions, prices, out=assets)  # (positions * prices) / value, in place
    np.divide(assets, value, out=assets)
    out[-1] = cash / value
    return out


def weight_vector(weights: np.ndarray | Mapping[str, float] | Sequence[float],
                  symbols: Sequence[str], index: Mapping[str, int] | None = None) -> np.ndarray:
    """``[N]`` target weights from an array (``N``, or ``N+1`` with cash last) or a mapping.

    Raises:
        MarketError: an unknown symbol, a wrong shape or a non-finite weight.
    """
    n = len(symbols)
    if isinstance(weights, Mapping):
        if index is None:
            index = {symbol: i for i, symbol in enumerate(symbols)}
        out = np.zeros(n)
        for symbol, w in weights.items():
            if symbol not in index:
                raise MarketError(f"unknown symbol {symbol!r}; the run trades "
                                  f"{', '.join(symbols)}")
            out[index[symbol]] = w
    else:
        out = np.asarray(weights, dtype=np.float64)
        if out.shape == (n + 1,):
            out = out[:-1]
        if out.shape != (n,):
            raise MarketError(f"expected {n} weights (or {n + 1} with cash last), "
                              f"got shape {out.shape}")
    if not np.isfinite(out).all():
        raise MarketError(f"target weights must be finite, got {out}")
    return out


def execute(
    quantity: np.ndarray,
    reference: np.ndarray,
    cost_model: CostModel,
    context: CostContext,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill prices and commissions for ``quantity`` at ``reference`` prices.

    Returns:
        ``(fill_price, commission)``, both ``[N]``; entries with zero quantity are the
        reference price and 0.
    """
    price = cost_model.fill_price(reference, quantity, context)
    commission = cost_model.commission(price, quantity, context)
    return price, commission


class Portfolio:
    """Cash and positions (shares) of one account.

    Invariant: ``value(prices) == cash + positions @ prices`` for any prices; fills move cash
    by exactly the traded value plus commission.
    """

    __slots__ = ("_ones", "cash", "positions", "symbols")

    def __init__(self, symbols: Sequence[str], cash: float,
                 positions: np.ndarray | None = None) -> None:
        self.symbols = tuple(symbols)
        self.cash = float(cash)
        self.positions = (np.zeros(len(self.symbols)) if positions is None
                          else np.array(positions, dtype=np.float64))
        self._ones = ones(len(self.symbols))

    def value(self, prices: np.ndarray) -> float:
        """Cash plus positions at ``prices``."""
        return float(self.cash + self.positions.dot(prices))

    def weights(self, prices: np.ndarray, value: float | None = None) -> np.ndarray:
        """``[N+1]`` weights of each asset at ``prices``, cash last (all 0 when value is 0).

        ``value`` saves recomputing :meth:`value` when the caller has it.
        """
        return portfolio_weights(self.positions, self.cash, prices, value)

    def apply(self, quantity: np.ndarray, price: np.ndarray, commission: np.ndarray) -> None:
        """Book fills: positions += quantity; cash -= traded value + commission."""
        self.positions += quantity
        paid = quantity.dot(price) + commission.dot(self._ones)
        self.cash = float(self.cash - paid)

    def copy(self) -> Portfolio:
        return Portfolio(self.symbols, self.cash, self.positions.copy())


@dataclass(frozen=True)
class FillBatch:
    """The fills of one bar: arrays over all assets, zero where an asset did not trade."""

    t: int
    quantity: np.ndarray
    price: np.ndarray
    commission: np.ndarray

    def fills(self, symbols: Sequence[str], time: object) -> list[Fill]:
        """One :class:`~rlbridge.interfaces.Fill` per asset that traded, in symbol order."""
        return [
            Fill(symbols[i], float(self.quantity[i]), float(self.price[i]),
                 float(self.commission[i]), time)
            for i in np.flatnonzero(self.quantity).tolist()
        ]

    @property
    def traded_value(self) -> float:
        """Gross traded value (sum of |quantity| x price)."""
        return float(np.abs(self.quantity) @ self.price)


class MarketSimulator:
    """Orders decided at bar ``t`` fill at bar ``t+1``; the portfolio is marked at closes.

    Use::

        sim = MarketSimulator(bars, cost_model, cash=100_000)
        sim.reset(t0)                      # now at the close of bar t0
        sim.order_target_weights(w)        # or sim.order(i, shares)
        batch = sim.step()                 # fills at bar t0+1, now at its close
        sim.value()                        # cash + positions at the close of bar t0+1

    Args:
        bars: the run's bars.
        cost_model: prices every fill.
        cash: starting cash.
        fill_at: ``"open"`` (default) or ``"close"`` of the bar after the decision.
        fractional: allow fractional shares when sizing to weights.
    """

    def __init__(
        self,
        bars: Bars,
        cost_model: CostModel,
        *,
        cash: float = 100_000.0,
        fill_at: FillAt = "open",
        fractional: bool = True,
        min_order_value: float = MIN_ORDER_VALUE,
    ) -> None:
        if fill_at not in ("open", "close"):
            raise ConfigError(f"fill_at must be 'open' or 'close', got {fill_at!r}", key="fill_at")
        if not math.isfinite(cash) or cash <= 0:
            raise ConfigError(f"starting cash must be positive, got {cash}", key="cash")
        if len(bars) < 2:
            raise DataError(f"a simulation needs at least two bars, got {len(bars)}")
        self.bars = bars
        self.cost_model = cost_model
        self.fill_at: FillAt = fill_at
        self.fractional = fractional
        self.min_order_value = min_order_value
        self.initial_cash = float(cash)
        self.context = CostContext(bars)
        self._close = bars.close
        self._reference = bars.open if fill_at == "open" else bars.close
        self.portfolio = Portfolio(bars.symbols, cash)
        self.pending = np.zeros(len(bars.symbols))
        self.t = 0

    # ------------------------------------------------------------------ state
    @property
    def symbols(self) -> tuple[str, ...]:
        return self.bars.symbols

    @property
    def done(self) -> bool:
        """True at the last bar: nothing more can fill."""
        return self.t >= len(self.bars) - 1

    def reset(self, t: int = 0, *, cash: float | None = None,
              positions: np.ndarray | None = None) -> None:
        """Stand at the close of bar ``t`` with a fresh portfolio and no pending orders."""
        if not 0 <= t < len(self.bars) - 1:
            raise MarketError(f"cannot start at bar {t}: need 0 <= t < {len(self.bars) - 1}")
        self.t = t
        self.portfolio = Portfolio(self.symbols, self.initial_cash if cash is None else cash,
                                   positions)
        self.pending[:] = 0.0

    def close(self) -> np.ndarray:
        """``[N]`` closes of the current bar."""
        return self._close[self.t]

    def value(self) -> float:
        """Portfolio value at the current bar's close."""
        return self.portfolio.value(self._close[self.t])

    def weights(self) -> np.ndarray:
        """``[N+1]`` weights at the current close, cash last."""
        return self.portfolio.weights(self._close[self.t])

    # ------------------------------------------------------------------ orders
    def index_of(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise MarketError(f"unknown symbol {symbol!r}; the run trades "
                              f"{', '.join(self.symbols)}") from None

    def order(self, asset: int | str, quantity: float) -> None:
        """Add a market order for ``quantity`` signed shares, filled at the next bar."""
        i = self.index_of(asset) if isinstance(asset, str) else asset
        if not math.isfinite(quantity):
            raise MarketError(f"order quantity for {self.symbols[i]} is {quantity}")
        self.pending[i] += quantity

    def order_quantities(self, quantity: np.ndarray) -> None:
        """Add ``[N]`` signed share quantities to the pending orders."""
        if not np.isfinite(quantity).all():
            raise MarketError(f"order quantities must be finite, got {quantity}")
        self.pending += quantity

    def target_quantities(self, weights: np.ndarray | Mapping[str, float]) -> np.ndarray:
        """The quantities that move the portfolio (plus pending orders) to ``weights``."""
        w = self.weight_array(weights)
        held = self.portfolio.positions + self.pending
        return size_to_weights(w, self.value(), self._close[self.t], held,
                               fractional=self.fractional, min_order_value=self.min_order_value)

    def order_target_weights(self, weights: np.ndarray | Mapping[str, float]) -> np.ndarray:
        """Order what it takes to reach ``weights``; returns the quantities ordered."""
        quantity = self.target_quantities(weights)
        self.pending += quantity
        return quantity

    def weight_array(self, weights: np.ndarray | Mapping[str, float]) -> np.ndarray:
        """``[N]`` weights from an array (N, or N+1 with cash last) or a symbol mapping."""
        return weight_vector(weights, self.symbols)

    # ------------------------------------------------------------------ time
    def step(self) -> FillBatch:
        """Fill the pending orders at bar ``t+1`` and move to its close."""
        if self.done:
            raise MarketError(f"no bar after {self.bars.index[self.t]} to fill at")
        quantity = self.pending.copy()
        self.pending[:] = 0.0
        self.context.t = self.t
        nxt = self.t + 1
        price, commission = execute(quantity, self._reference[nxt], self.cost_model, self.context)
        self.portfolio.apply(quantity, price, commission)
        self.t = nxt
        return FillBatch(nxt, quantity, price, commission)

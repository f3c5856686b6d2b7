"""What engines hand a strategy: the run's specification and a ``BarContext`` on the simulator.

:class:`RunSpec` is everything an engine needs to run a strategy the rlbridge way (the bars with
their history, the decision range, cash, the cost model, the features, the risk check), so every
engine receives the same thing.  :class:`EngineContext` implements the strategy API of DESIGN.md
section 5 once for every engine (each engine supplies its portfolio and its order hand-off);
:class:`SimContext` is it on :class:`~rlbridge.market.MarketSimulator`, for the ``native`` engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import RLBridgeError
from .interfaces import FIELDS, Fill, Order

if TYPE_CHECKING:
    import pandas as pd

    from .interfaces import Bars, CostModel
    from .market import MarketSimulator


class StrategyError(RLBridgeError):
    """A strategy raised: the message names the strategy, the bar and the error."""


@dataclass(frozen=True)
class RunSpec:
    """One backtest, as every engine receives it.

    Args:
        bars: all bars the run may read, including history before ``start``.
        start: index of the first bar the strategy sees (``bar_index`` 0).
        end: index of the last bar (orders placed on it are never filled).
        cash: starting cash.
        cost_model: prices every fill.
        features: ``[T, N, F]`` raw (not normalised) features aligned with ``bars``, or None.
        feature_names: the names of the ``F`` features.
        feature_window: the ``[features] window`` of the config (the observation window).
        params: the strategy's parameters (``ctx.params``).
        fractional: allow fractional shares in ``order_target_weights``.
        fill_at: ``"open"`` or ``"close"`` of the bar after the decision.
        check_order: pre-trade risk check: ``check(order, ctx) -> reason or None``.
        on_fill: observer called with each fill after it is booked.
    """

    bars: Bars
    start: int
    end: int
    cash: float
    cost_model: CostModel
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    feature_window: int | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fractional: bool = False
    fill_at: str = "open"
    check_order: Callable[[Order, Any], str | None] | None = None
    on_fill: Callable[[Fill], None] | None = None

    @property
    def index(self) -> pd.DatetimeIndex:
        """The timestamps of the run's bars, ``start`` .. ``end``."""
        return self.bars.index[self.start:self.end + 1]


@dataclass(frozen=True)
class Rejection:
    """An order the risk check refused, and why."""

    order: Order
    reason: str


class EngineContext:
    """The strategy API (DESIGN.md section 5), shared by every engine.

    Everything that does not depend on where the portfolio lives is here: time and data
    (``now``, ``bar_index``, ``history``, ``features``), order sizing (``order_target_weights``
    with :func:`rlbridge.market.size_to_weights` on the decision close, so every engine sizes
    identically), the risk check, the open-order book and the record of orders and rejections.
    An engine subclasses it and supplies the portfolio and the order hand-off:

    * :attr:`cash` and :meth:`holdings` (``[N]`` shares held now), read from the engine's broker;
    * :meth:`_send` (hand one accepted order to the engine);
    * the engine sets :attr:`t` (the index of the current bar in ``spec.bars``) before each
      ``on_bar`` and calls :meth:`_filled` once the previous bar's orders have filled.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.symbols = spec.bars.symbols
        self.params = spec.params
        self.risk: Any = None
        self.open_orders: list[Order] = []
        self.orders: list[Order] = []
        self.rejections: list[Rejection] = []
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._close = spec.bars.close
        self._pending = np.zeros(len(self.symbols))
        self._t = spec.start

    # ------------------------------------------------------------------ engine side
    @property
    def t(self) -> int:
        """The index of the current bar in ``spec.bars``."""
        return self._t

    @t.setter
    def t(self, value: int) -> None:
        self._t = value

    @property
    def cash(self) -> float:
        raise NotImplementedError

    def holdings(self) -> np.ndarray:
        """``[N]`` shares held now, in symbol order."""
        raise NotImplementedError

    def _send(self, order: Order, asset: int) -> None:
        """Hand an accepted market order for asset number ``asset`` to the engine."""
        raise NotImplementedError

    def _filled(self) -> None:
        """The orders placed at the previous bar have filled: the open-order book is empty."""
        self.open_orders = []
        self._pending[:] = 0.0

    # ------------------------------------------------------------------ time and data
    @property
    def now(self) -> Any:
        return self.spec.bars.index[self.t]

    @property
    def bar_index(self) -> int:
        return self.t - self.spec.start

    def history(self, field: str, n: int) -> np.ndarray:
        """``[n, N]`` of ``field`` up to and including the current bar (fewer at the start)."""
        if field not in FIELDS:
            raise KeyError(f"unknown bar field {field!r}; fields are {', '.join(FIELDS)}")
        t = self.t
        return self.spec.bars.values[max(0, t - n + 1):t + 1, :, FIELDS.index(field)]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the ``F`` features :meth:`features` returns."""
        return self.spec.feature_names

    @property
    def feature_window(self) -> int | None:
        """The configured observation window (``[features] window``), if any."""
        return self.spec.feature_window

    def features(self, n: int) -> np.ndarray:
        """``[n, N, F]`` raw features up to and including the current bar."""
        if self.spec.features is None:
            raise RLBridgeError("this run has no features: add a [features] table to the config")
        t = self.t
        return self.spec.features[max(0, t - n + 1):t + 1]

    # ------------------------------------------------------------------ portfolio
    @property
    def value(self) -> float:
        """Cash plus holdings at the current close."""
        return float(self.cash + self.holdings().dot(self._close[self.t]))

    def position(self, symbol: str) -> float:
        return float(self.holdings()[self.index_of(symbol)])

    @property
    def positions(self) -> Mapping[str, float]:
        return dict(zip(self.symbols, self.holdings().tolist(), strict=True))

    @property
    def weights(self) -> np.ndarray:
        """``[N+1]`` weights at the current close, cash last."""
        from .market import portfolio_weights

        return portfolio_weights(self.holdings(), self.cash, self._close[self.t])

    def index_of(self, symbol: str) -> int:
        """The position of ``symbol`` in :attr:`symbols`."""
        try:
            return self._index[symbol]
        except KeyError:
            from .market import MarketError

            raise MarketError(f"unknown symbol {symbol!r}; the run trades "
                              f"{', '.join(self.symbols)}") from None

    # ------------------------------------------------------------------ orders
    def _submit(self, order: Order, asset: int) -> Order | None:
        check = self.spec.check_order
        reason = check(order, self) if check is not None else None
        if reason:
            self.rejections.append(Rejection(order, str(reason)))
            return None
        self._send(order, asset)
        self._pending[asset] += order.quantity
        self.open_orders.append(order)
        self.orders.append(order)
        return order

    def order(self, symbol: str, quantity: float) -> Order | None:
        """A market order for ``quantity`` signed shares; None when the risk check refuses it."""
        from .market import MarketError

        asset = self.index_of(symbol)
        quantity = float(quantity)
        if not np.isfinite(quantity):
            raise MarketError(f"order quantity for {symbol} is {quantity}")
        return self._submit(Order(symbol, quantity, created=self.now), asset)

    def order_target_weights(self, weights: Mapping[str, float] | Sequence[float]
                             | np.ndarray, *, band: float = 0.0) -> list[Order]:
        """Orders that move the portfolio (open orders included) to ``weights``.

        Sized on this bar's close and value, whole shares unless the run is fractional.
        ``band``: leave alone the assets whose order would be worth less than this fraction
        of the value (see :func:`rlbridge.market.size_to_weights`).
        """
        from .market import size_to_weights, weight_vector

        target = weight_vector(weights, self.symbols, self._index)
        held = self.holdings() + self._pending
        quantity = size_to_weights(target, self.value, self._close[self.t], held,
                                   fractional=self.spec.fractional, band=band,
                                   cash=self.cash if band > 0.0 else None)
        return self._submit_all(quantity)

    def close_all(self) -> list[Order]:
        """Orders that flatten every position (open orders included)."""
        return self._submit_all(-(self.holdings() + self._pending))

    def _submit_all(self, quantity: np.ndarray) -> list[Order]:
        # orders that reduce a position go first: the room (and the cash) they free is there
        # when the risk check and the broker see the orders that add
        held = self.holdings() + self._pending
        assets = np.flatnonzero(quantity)
        reducing = np.abs(held[assets] + quantity[assets]) < np.abs(held[assets])
        placed = []
        for i in np.concatenate([assets[reducing], assets[~reducing]]):
            order = self._submit(Order(self.symbols[i], float(quantity[i]), created=self.now), i)
            if order is not None:
                placed.append(order)
        return placed


class SimContext(EngineContext):
    """The strategy API on a :class:`~rlbridge.market.MarketSimulator` (the ``native`` engine)."""

    def __init__(self, sim: MarketSimulator, spec: RunSpec) -> None:
        super().__init__(spec)
        self.sim = sim

    @property
    def t(self) -> int:
        return self.sim.t

    @t.setter
    def t(self, value: int) -> None:
        raise AttributeError("the simulator moves the native engine's clock")

    @property
    def cash(self) -> float:
        return self.sim.portfolio.cash

    def holdings(self) -> np.ndarray:
        return self.sim.portfolio.positions

    @property
    def value(self) -> float:
        return self.sim.value()

    def _send(self, order: Order, asset: int) -> None:
        self.sim.order(asset, order.quantity)


@dataclass(frozen=True)
class EngineOutput:
    """What an engine returns: the equity curve at each close and everything that traded.

    ``error`` is set when the strategy raised; everything before that bar is kept.  ``extra``
    holds figures of the engine's own, under the engine's name (``{"zipline": {...}}``); they
    reach ``BacktestResult.extra``.
    """

    index: pd.DatetimeIndex
    equity: np.ndarray
    cash: np.ndarray
    positions: np.ndarray
    fills: list[Fill]
    orders: list[Order]
    rejections: list[Rejection]
    error: StrategyError | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def strategy_error(
    strategy: object, when: Any, bar_index: int, exc: BaseException
) -> StrategyError:
    """The error a run stops with when ``strategy`` raised at a bar."""
    from .data import format_stamp

    name = type(strategy).__name__
    return StrategyError(f"strategy {name} failed at {format_stamp(when)} (bar {bar_index}): "
                         f"{type(exc).__name__}: {exc}")

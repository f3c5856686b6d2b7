"""What engines hand a strategy: the run's specification and a ``BarContext`` on the simulator.

:class:`RunSpec` is everything an engine needs to run a strategy the rlbridge way (the bars with
their history, the decision range, cash, the cost model, the features, the risk check), so every
engine receives the same thing.  :class:`SimContext` implements the strategy API of DESIGN.md
section 5 on :class:`~rlbridge.market.MarketSimulator`; the ``native`` engine uses it directly.
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


class SimContext:
    """The strategy API (DESIGN.md section 5) on a :class:`MarketSimulator`.

    Orders go to the simulator's pending quantities after the risk check; they fill when the
    engine steps the simulator to the next bar.
    """

    def __init__(self, sim: MarketSimulator, spec: RunSpec) -> None:
        self.sim = sim
        self.spec = spec
        self.symbols = spec.bars.symbols
        self.params = spec.params
        self.risk: Any = None
        self.open_orders: list[Order] = []
        self.orders: list[Order] = []
        self.rejections: list[Rejection] = []

    # ------------------------------------------------------------------ time and data
    @property
    def t(self) -> int:
        """The index of the current bar in ``spec.bars``."""
        return self.sim.t

    @property
    def now(self) -> Any:
        return self.spec.bars.index[self.sim.t]

    @property
    def bar_index(self) -> int:
        return self.sim.t - self.spec.start

    def history(self, field: str, n: int) -> np.ndarray:
        """``[n, N]`` of ``field`` up to and including the current bar (fewer at the start)."""
        if field not in FIELDS:
            raise KeyError(f"unknown bar field {field!r}; fields are {', '.join(FIELDS)}")
        t = self.sim.t
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
        t = self.sim.t
        return self.spec.features[max(0, t - n + 1):t + 1]

    # ------------------------------------------------------------------ portfolio
    @property
    def cash(self) -> float:
        return self.sim.portfolio.cash

    @property
    def value(self) -> float:
        return self.sim.value()

    def position(self, symbol: str) -> float:
        return float(self.sim.portfolio.positions[self.sim.index_of(symbol)])

    @property
    def positions(self) -> Mapping[str, float]:
        return dict(zip(self.symbols, self.sim.portfolio.positions.tolist(), strict=True))

    @property
    def weights(self) -> np.ndarray:
        """``[N+1]`` weights at the current close, cash last."""
        return self.sim.weights()

    # ------------------------------------------------------------------ orders
    def _submit(self, order: Order) -> Order | None:
        check = self.spec.check_order
        reason = check(order, self) if check is not None else None
        if reason:
            self.rejections.append(Rejection(order, str(reason)))
            return None
        self.sim.order(order.symbol, order.quantity)
        self.open_orders.append(order)
        self.orders.append(order)
        return order

    def order(self, symbol: str, quantity: float) -> Order | None:
        """A market order for ``quantity`` signed shares; None when the risk check refuses it."""
        self.sim.index_of(symbol)
        return self._submit(Order(symbol, float(quantity), created=self.now))

    def order_target_weights(self, weights: Mapping[str, float] | Sequence[float]
                             | np.ndarray) -> list[Order]:
        """Orders that move the portfolio to ``weights`` (sized on this bar's close)."""
        quantity = self.sim.target_quantities(weights)  # type: ignore[arg-type]
        placed = []
        for i in np.flatnonzero(quantity):
            order = self._submit(Order(self.symbols[i], float(quantity[i]), created=self.now))
            if order is not None:
                placed.append(order)
        return placed

    def close_all(self) -> list[Order]:
        """Orders that flatten every position (pending orders included)."""
        held = self.sim.portfolio.positions + self.sim.pending
        placed = []
        for i in np.flatnonzero(held):
            order = self._submit(Order(self.symbols[i], float(-held[i]), created=self.now))
            if order is not None:
                placed.append(order)
        return placed

    def _filled(self) -> None:
        self.open_orders = []


@dataclass(frozen=True)
class EngineOutput:
    """What an engine returns: the equity curve at each close and everything that traded.

    ``error`` is set when the strategy raised; everything before that bar is kept.
    """

    index: pd.DatetimeIndex
    equity: np.ndarray
    cash: np.ndarray
    positions: np.ndarray
    fills: list[Fill]
    orders: list[Order]
    rejections: list[Rejection]
    error: StrategyError | None = None


def strategy_error(
    strategy: object, when: Any, bar_index: int, exc: BaseException
) -> StrategyError:
    """The error a run stops with when ``strategy`` raised at a bar."""
    from .data import format_stamp

    name = type(strategy).__name__
    return StrategyError(f"strategy {name} failed at {format_stamp(when)} (bar {bar_index}): "
                         f"{type(exc).__name__}: {exc}")

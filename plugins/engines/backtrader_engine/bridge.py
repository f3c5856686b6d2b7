"""The backtrader side of the ``backtrader`` engine: feeds, broker, commission and bridge strategy.

This module imports backtrader at module level; the plugin imports it only inside
:meth:`BacktraderEngine.run`, so listing or configuring engines never pays for it.

How a run maps onto backtrader:

* one :class:`ArrayFeed` per symbol carries the run's bars ``spec.start .. spec.end`` exactly as
  they are (no date filter, no session shift, no bar dropped);
* :class:`BridgeStrategy` is the ``bt.Strategy`` that calls the rlbridge strategy: at each
  ``next()`` it hands the fills backtrader reported through ``notify_order`` to ``on_fill`` (in
  symbol order), marks the broker's value, cash and positions, calls ``on_bar`` and sends the
  bar's net orders as backtrader market orders;
* :class:`Broker` is backtrader's ``BackBroker`` filling those market orders at the open (or the
  close) of the next bar, priced by the run's cost model (see :mod:`.costs`), and never
  refusing an order for cash (DESIGN.md section 4).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import backtrader as bt
import numpy as np

from rlbridge.context import EngineContext, EngineOutput, strategy_error
from rlbridge.errors import RLBridgeError
from rlbridge.interfaces import CostContext, Fill
from rlbridge.market import execute

if TYPE_CHECKING:
    from rlbridge.context import RunSpec
    from rlbridge.interfaces import Bars, Strategy

    from .costs import Settings


class EngineError(RLBridgeError):
    """backtrader did something the rlbridge market model does not allow (a refused order)."""


# ---------------------------------------------------------------------- data
class ArrayFeed(bt.feed.DataBase):
    """One symbol's bars from rows of ``(open, high, low, close, volume)`` and date numbers."""

    params = (("rows", None), ("stamps", None), ("asset", 0))

    def start(self) -> None:
        super().start()
        self._row = -1

    def _load(self) -> bool:
        row = self._row = self._row + 1
        if row >= len(self.p.stamps):
            return False
        o, h, low, c, v = self.p.rows[row]
        lines = self.lines
        lines.datetime[0] = self.p.stamps[row]
        lines.open[0] = o
        lines.high[0] = h
        lines.low[0] = low
        lines.close[0] = c
        lines.volume[0] = v
        lines.openinterest[0] = 0.0
        return True


def make_feeds(bars: Bars, start: int, end: int) -> list[ArrayFeed]:
    """One feed per symbol of ``bars[start .. end]``, named after the symbol."""
    index = bars.index[start:end + 1]
    if index.tz is not None:  # intraday: backtrader keeps naive UTC date numbers
        index = index.tz_convert("UTC").tz_localize(None)
    stamps = [bt.date2num(stamp) for stamp in index.to_pydatetime()]
    timeframe = bt.TimeFrame.Minutes if bars.intraday else bt.TimeFrame.Days
    values = bars.values[start:end + 1]
    return [ArrayFeed(rows=values[:, n, :].tolist(), stamps=stamps, asset=n, name=symbol,
                      timeframe=timeframe)
            for n, symbol in enumerate(bars.symbols)]


# ---------------------------------------------------------------------- costs and fills
class Commission(bt.CommInfoBase):
    """Stock-like commission info: a percentage of value, or the cost model's commission.

    With ``model`` true the broker sets :attr:`due` (the whole order's commission, computed by
    the cost model) before executing an order; backtrader asks for the commission of the part
    that closes a position and of the part that opens one separately, so each part gets its
    share of the order's commission (a per-order minimum is paid once, as in the simulator).
    ``getsize`` gives fractional sizes when ``fractional`` is set.
    """

    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC), ("percabs", True),
              ("model", False), ("fractional", False))

    def __init__(self) -> None:
        super().__init__()
        self.due = (0.0, 0.0)  # (commission of the order, its size)

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        if not self.p.model:
            return float(super()._getcommission(size, price, pseudoexec))
        commission, whole = self.due
        if size == whole:
            return commission
        return commission * (abs(size) / abs(whole)) if whole else 0.0

    def getsize(self, price: float, cash: float) -> float:
        if self.p.fractional:
            return float(self.p.leverage * cash / price)
        return float(super().getsize(price, cash))


class Broker(bt.brokers.BackBroker):
    """``BackBroker`` filling market orders the rlbridge way.

    * Reference price: the open of the bar after the decision, or its close with
      ``fill_at="close"``.
    * Price and commission: backtrader's own percentage slippage (never capped to the bar's
      range) and percentage commission when the cost model maps onto them; otherwise the run's
      cost model, evaluated once per bar for all the orders filling at that bar, exactly as the
      native simulator does (so a model may depend on every asset's order).
    * No refusal: ``BackBroker`` will not open a position that leaves its cash below zero, even
      with submission checks off; the rlbridge market model lets cash go slightly negative
      instead (an open gapping above the sizing close), so the broker lends itself the
      shortfall for the duration of that one execution.
    """

    def setup(self, spec: RunSpec, settings: Settings | None, commission: Commission) -> None:
        """Attach the run: its cost model (or the backtrader settings that reproduce it)."""
        self.spec = spec
        self.settings = settings
        self.commission = commission
        self.at_open = spec.fill_at == "open"
        self.reference = spec.bars.open if self.at_open else spec.bars.close
        self.context = CostContext(spec.bars)
        self.quotes: tuple[np.ndarray, np.ndarray] | None = None

    def next(self) -> None:
        if self.pending and self.settings is None:
            self._quote()
        super().next()

    def _quote(self) -> None:
        """Fill prices and commissions of every order due at this bar, in one cost-model call."""
        quantity = np.zeros(len(self.spec.bars.symbols))
        t = None
        for order in self.pending:
            if order is not None and order.exectype == bt.Order.Market and order.alive():
                quantity[order.data.p.asset] += order.executed.remsize
                t = self.spec.start + len(order.data) - 1
        if t is None:
            return
        self.context.t = t - 1  # the decision bar: a cost model never sees the fill bar
        self.quotes = execute(quantity, self.reference[t], self.spec.cost_model, self.context)

    def _try_exec_market(self, order: Any, popen: float, phigh: float, plow: float) -> None:
        if order.data.datetime[0] <= order.created.dt:
            return  # decided at this bar: it fills at the next one
        size = order.executed.remsize
        if self.settings is None:
            assert self.quotes is not None
            asset = order.data.p.asset
            price = float(self.quotes[0][asset])
            commission = float(self.quotes[1][asset])
            self.commission.due = (commission, size)
        else:
            reference = popen if self.at_open else order.data.close[0]
            price = (self._slip_up(phigh, reference) if size > 0
                     else self._slip_down(plow, reference))
            commission = self.commission.getcommission(size, price)
        projected = self.cash - size * price - commission
        if projected >= 1.0:
            self._execute(order, ago=0, price=price)
            return
        lent = 2.0 ** math.ceil(math.log2(abs(projected) + 2.0))
        self.cash += lent
        try:
            self._execute(order, ago=0, price=price)
        finally:
            self.cash -= lent


# ---------------------------------------------------------------------- the strategy side
class Context(EngineContext):
    """The strategy API on backtrader's broker: cash and shares read from it, net orders out."""

    def __init__(self, spec: RunSpec, broker: Broker) -> None:
        super().__init__(spec)
        self.broker = broker
        self.held = np.zeros(len(spec.bars.symbols))
        self.held.flags.writeable = False
        self.net = np.zeros(len(spec.bars.symbols))

    @property
    def cash(self) -> float:
        return float(self.broker.getcash())

    def holdings(self) -> np.ndarray:
        return self.held

    def _send(self, order: Any, asset: int) -> None:
        # orders for one asset at one bar net into one backtrader order, as in the simulator
        self.net[asset] += order.quantity


class BridgeStrategy(bt.Strategy):
    """The ``bt.Strategy`` that runs an rlbridge strategy (``runner``) bar by bar."""

    params = (("runner", None),)

    def start(self) -> None:
        self.runner = self.p.runner
        self.runner.begin(self)

    def notify_order(self, order: Any) -> None:
        if order.status != bt.Order.Completed:
            if order.status in (bt.Order.Submitted, bt.Order.Accepted, bt.Order.Partial):
                return
            raise EngineError(f"backtrader refused the order for {order.data._name} "
                              f"{order.created.size:+g} ({order.getstatusname()}); the "
                              "rlbridge market model fills every market order")
        self.runner.reported.append(order)

    def next(self) -> None:
        self.runner.step(len(self) - 1)

    def stop(self) -> None:
        self.runner.finish()


class Runner:
    """What one run records, and the calls into the rlbridge strategy."""

    def __init__(self, strategy: Strategy, spec: RunSpec, broker: Broker,
                 feeds: list[ArrayFeed]) -> None:
        self.strategy = strategy
        self.spec = spec
        self.broker = broker
        self.feeds = feeds
        self.ctx = Context(spec, broker)
        self.symbols = spec.bars.symbols
        count = spec.end - spec.start + 1
        self.equity = np.full(count, np.nan)
        self.cash = np.full(count, np.nan)
        self.positions = np.full((count, len(self.symbols)), np.nan)
        self.fills: list[Fill] = []
        self.reported: list[Any] = []
        self.error: Exception | None = None
        self.bt: BridgeStrategy | None = None

    def begin(self, bt_strategy: BridgeStrategy) -> None:
        """Before the first bar: ``strategy.start`` (an error there is raised as is)."""
        self.bt = bt_strategy
        self.ctx.t = self.spec.start
        self.strategy.start(self.ctx)

    def step(self, i: int) -> None:
        """Bar ``spec.start + i`` has closed and its fills are booked."""
        spec, ctx, strategy = self.spec, self.ctx, self.strategy
        t = ctx.t = spec.start + i
        broker = self.broker
        held = np.array([broker.getposition(feed).size for feed in self.feeds])
        held.flags.writeable = False
        ctx.held = held
        fills = self._fills(t)
        ctx._filled()
        try:
            for fill in fills:
                self.fills.append(fill)
                if spec.on_fill is not None:
                    spec.on_fill(fill)
                strategy.on_fill(ctx, fill)
            self.equity[i] = broker.getvalue()
            self.cash[i] = broker.getcash()
            self.positions[i] = held
            strategy.on_bar(ctx)
        except Exception as exc:  # the strategy's error stops the run; what happened is kept
            self._fail(exc)
            return
        self._send()

    def _fills(self, t: int) -> list[Fill]:
        if not self.reported:
            return []
        time = self.spec.bars.index[t]
        done = []
        for order in self.reported:
            bit = order.executed.exbits[-1]  # one execution: its exact price (not an average)
            done.append((order.data.p.asset,
                         Fill(self.symbols[order.data.p.asset], float(order.executed.size),
                              float(bit.price), float(order.executed.comm), time)))
        self.reported = []
        done.sort(key=lambda pair: pair[0])
        return [fill for _, fill in done]

    def _send(self) -> None:
        net = self.ctx.net
        if not net.any():
            return
        bt_strategy = self.bt
        assert bt_strategy is not None
        for asset in np.flatnonzero(net):
            quantity = float(net[asset])
            feed = self.feeds[asset]
            if quantity > 0:
                bt_strategy.buy(data=feed, size=quantity, exectype=bt.Order.Market)
            else:
                bt_strategy.sell(data=feed, size=-quantity, exectype=bt.Order.Market)
        net[:] = 0.0

    def _fail(self, exc: Exception) -> None:
        t = self.ctx.t
        self.error = strategy_error(self.strategy, self.spec.bars.index[t], t - self.spec.start,
                                    exc)
        assert self.bt is not None
        self.bt.env.runstop()

    def finish(self) -> None:
        """After the last bar: ``strategy.stop``, unless the run already failed."""
        if self.error is not None:
            return
        try:
            self.strategy.stop(self.ctx)
        except Exception as exc:
            t = self.ctx.t
            self.error = strategy_error(self.strategy, self.spec.bars.index[t],
                                        t - self.spec.start, exc)

    def output(self) -> EngineOutput:
        done = int(np.isfinite(self.equity).sum())
        return EngineOutput(self.spec.index[:done], self.equity[:done], self.cash[:done],
                            self.positions[:done], self.fills, self.ctx.orders,
                            self.ctx.rejections, self.error)


def run(strategy: Strategy, bars: Bars, spec: RunSpec, settings: Settings | None,
        fractional: bool) -> EngineOutput:
    """Run ``strategy`` over ``spec.start .. spec.end`` in a backtrader Cerebro."""
    cerebro = bt.Cerebro(stdstats=False, preload=True, runonce=False, maxcpus=1,
                         exactbars=False, quicknotify=False)
    rate, slip = (0.0, 0.0) if settings is None else (settings.rate, settings.slip)
    broker = Broker(cash=spec.cash, checksubmit=False, slip_perc=slip, slip_fixed=0.0,
                    slip_open=True, slip_match=True, slip_limit=True, slip_out=True,
                    coc=False, coo=False, shortcash=True)
    # backtrader's metaclass turns keyword arguments into params before __init__ runs
    commission = Commission(commission=rate, model=settings is None,  # type: ignore[call-arg]
                            fractional=fractional)
    broker.addcommissioninfo(commission)
    feeds = make_feeds(bars, spec.start, spec.end)
    broker.setup(spec, settings, commission)
    cerebro.setbroker(broker)
    for feed in feeds:
        cerebro.adddata(feed)
    runner = Runner(strategy, spec, broker, feeds)
    cerebro.addstrategy(BridgeStrategy, runner=runner)
    cerebro.run()
    return runner.output()

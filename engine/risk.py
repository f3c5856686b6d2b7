"""The risk engine's shared parts: the order check, exposure, trading hours and the kill switch.

The pre-trade limits of ``[risk]`` are ``check_order`` hook implementations (the built-in ones in
:mod:`rlbridge.plugins.risk.limits`); :func:`order_check` is how a run calls them, the same in a
backtest and live.  The kill switch (``max_daily_loss``, ``max_drawdown``) is not a check of one
order but a decision about the whole run, so it is a strategy wrapper, :func:`guard`: at each bar,
before the strategy decides, it compares the portfolio value with the previous session's close
and with the run's peak; on a breach it flattens the portfolio (:meth:`BarContext.close_all`,
exempt from the pre-trade limits, since a kill switch a limit could block would not be one) and
never calls the strategy again.  Everything here reads only the public ``BarContext`` API, so the
live runner can use it as the engines do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .interfaces import Fill, Order, Strategy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .config import RiskConfig
    from .manager import RLBridgePluginManager

__all__ = ["KILL_SWITCH_KEYS", "Exposure", "Halt", "KillSwitch", "RiskGuard", "exempt", "guard",
           "is_exempt", "order_check", "outside_session", "session_day"]

log = logging.getLogger("rlbridge.risk")

#: the ``[risk]`` keys the kill switch (:func:`guard`) applies
KILL_SWITCH_KEYS: tuple[str, ...] = ("max_daily_loss", "max_drawdown")

_EXEMPT = "_rlbridge_risk_exempt"


# ---------------------------------------------------------------------- the order check
def order_check(pm: RLBridgePluginManager,
                risk: RiskConfig | None) -> Callable[[Order, Any], str | None]:
    """The pre-trade check of a run: ``check(order, context) -> reason or None``.

    It sets ``context.risk`` (what the ``check_order`` implementations read) and calls the
    hook, except for the orders of the kill switch (:func:`exempt`), which always pass.

    Args:
        pm: the plugin manager whose ``check_order`` implementations decide.
        risk: the run's ``[risk]`` table (None: no limits; third-party checks still run).
    """
    def check(order: Order, context: Any) -> str | None:
        if getattr(context, _EXEMPT, False):
            return None
        context.risk = risk
        reason: str | None = pm.hook.check_order(order=order, context=context)
        return reason

    return check


@contextlib.contextmanager
def exempt(context: Any) -> Iterator[None]:
    """Orders placed on ``context`` inside this block skip the pre-trade checks."""
    setattr(context, _EXEMPT, True)
    try:
        yield
    finally:
        setattr(context, _EXEMPT, False)


def is_exempt(context: Any) -> bool:
    """True inside :func:`exempt` (for a runner that calls ``check_order`` itself)."""
    return bool(getattr(context, _EXEMPT, False))


# ---------------------------------------------------------------------- exposure
@dataclass(frozen=True)
class Exposure:
    """The book an order is checked against, valued at the decision close.

    Attributes:
        symbols: the run's symbols.
        close: ``[N]`` closes of the current bar.
        shares: ``[N]`` shares held plus the open orders (accepted, not yet filled).
        value: the portfolio value at the close.
    """

    symbols: tuple[str, ...]
    close: np.ndarray
    shares: np.ndarray
    value: float

    @classmethod
    def of(cls, context: Any) -> Exposure:
        """The exposure of ``context`` (a ``BarContext``) now."""
        import numpy as np

        symbols = tuple(context.symbols)
        at = {symbol: i for i, symbol in enumerate(symbols)}
        held: Mapping[str, float] = context.positions
        shares = np.array([float(held.get(symbol, 0.0)) for symbol in symbols])
        for order in context.open_orders:
            shares[at[order.symbol]] += order.quantity
        close = np.asarray(context.history("close", 1), dtype=float)[-1]
        return cls(symbols, close, shares, float(context.value))

    def index(self, symbol: str) -> int:
        """The column of ``symbol``."""
        return self.symbols.index(symbol)


# ---------------------------------------------------------------------- sessions
def outside_session(now: pd.Timestamp, calendar: str) -> str | None:
    """Why ``now`` is outside the regular session of ``calendar``, or None when it is inside.

    Daily bars (a tz-naive session date) are always inside: the decision is made after the
    session's close for the next session's open, by design.  An intraday time is inside when
    the exchange is open at it, the open and the close included (bars may be stamped at their
    start or their end), breaks and early closes respected.
    """
    if now.tz is None:
        return None
    return _outside(now, calendar)


@functools.lru_cache(maxsize=4096)
def _outside(now: pd.Timestamp, name: str) -> str | None:
    from .data import format_stamp

    cal = _exchange(name, now)
    if cal.is_open_at_time(now, side="both"):
        return None
    day = now.tz_convert(cal.tz).tz_localize(None).normalize()
    shown = format_stamp(now)
    if not cal.is_session(day):
        return f"{shown} is outside the regular session: {day:%Y-%m-%d} is not a session day"
    opens, closes = cal.session_open(day), cal.session_close(day)
    return (f"{shown} is outside the regular session of {day:%Y-%m-%d} "
            f"({opens:%H:%M}-{closes:%H:%M} UTC)")


def session_day(now: pd.Timestamp, calendar: str) -> pd.Timestamp:
    """The session ``now`` belongs to: itself for daily bars, the local date of ``calendar``
    for intraday times."""
    if now.tz is None:
        return now
    return now.tz_convert(_exchange(now=now, name=calendar).tz).tz_localize(None).normalize()


def _exchange(name: str, now: pd.Timestamp) -> Any:
    import pandas as pd

    from .data import _calendar

    day = now.tz_convert("UTC").tz_localize(None).normalize()
    return _calendar(name, day - pd.Timedelta(days=7), day + pd.Timedelta(days=7))


# ---------------------------------------------------------------------- the kill switch
def _percent(fraction: float) -> str:
    return f"{fraction * 100:.10g}%"


class KillSwitch:
    """Watches the portfolio value bar by bar for ``max_daily_loss`` and ``max_drawdown``.

    The daily loss is measured from the value at the previous session's last close (for daily
    bars: the previous close; in the run's first session: the first close); the drawdown from
    the highest close of the run.  A limit is breached when the loss reaches it.
    """

    def __init__(self, risk: RiskConfig) -> None:
        self.risk = risk
        self.reset()

    def reset(self) -> None:
        """Forget the run: no peak, no session yet."""
        self.peak: float | None = None
        self.reference: float | None = None
        self._session: Any = None
        self._last: float | None = None

    def update(self, now: pd.Timestamp, value: float) -> str | None:
        """Book the value at the close of the bar at ``now``; the breach reason, or None."""
        risk = self.risk
        session = session_day(now, risk.session_calendar)
        if self._session is None:
            self.reference = value
        elif session != self._session:
            self.reference = self._last
        self._session, self._last = session, value
        self.peak = value if self.peak is None else max(self.peak, value)
        limit = risk.max_daily_loss
        if limit is not None and self.reference and self.reference > 0:
            loss = 1.0 - value / self.reference
            if loss >= limit:
                return (f"kill switch: daily loss {loss:.1%} reached max_daily_loss "
                        f"{_percent(limit)} (value {value:,.2f}, previous close "
                        f"{self.reference:,.2f})")
        limit = risk.max_drawdown
        if limit is not None and self.peak > 0:
            drawdown = 1.0 - value / self.peak
            if drawdown >= limit:
                return (f"kill switch: drawdown {drawdown:.1%} reached max_drawdown "
                        f"{_percent(limit)} (value {value:,.2f}, peak {self.peak:,.2f})")
        return None


@dataclass(frozen=True)
class Halt:
    """The kill switch fired.

    Attributes:
        time: the bar at whose close the breach was seen.
        bar_index: its ``bar_index``.
        reason: ``"kill switch: drawdown 21.3% reached max_drawdown 20% (...)"``.
        orders: the orders that flattened the portfolio (filled at the next bar).
    """

    time: Any
    bar_index: int
    reason: str
    orders: tuple[Order, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"time", "bar_index", "reason"}`` (``BacktestResult.extra["halted"]``)."""
        return {"time": self.time, "bar_index": self.bar_index, "reason": self.reason}


class RiskGuard(Strategy):
    """``strategy`` behind the kill switch.  Build it with :func:`guard`.

    ``start`` and ``stop`` pass through; ``on_bar`` and ``on_fill`` pass through until the kill
    switch fires.  At that bar the strategy is not called: the portfolio is flattened and
    :attr:`halted` is set; the strategy is never called again, except its ``stop``.  Attributes
    it does not have (``params``, ``config``, the strategy's own) are the strategy's.
    """

    def __init__(self, strategy: Strategy, risk: RiskConfig) -> None:
        self.strategy = strategy
        self.kill_switch = KillSwitch(risk)
        self.halted: Halt | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "strategy":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.strategy, name)

    @property
    def params(self) -> Any:  # type: ignore[override]
        return self.strategy.params

    @property
    def config(self) -> Any:
        return self.strategy.config

    def start(self, ctx: Any) -> None:
        self.kill_switch.reset()
        self.halted = None
        self.strategy.start(ctx)

    def on_fill(self, ctx: Any, fill: Fill) -> None:
        if self.halted is None:
            self.strategy.on_fill(ctx, fill)

    def on_bar(self, ctx: Any) -> None:
        if self.halted is not None:
            return
        reason = self.kill_switch.update(ctx.now, float(ctx.value))
        if reason is None:
            self.strategy.on_bar(ctx)
            return
        with exempt(ctx):
            orders = ctx.close_all()
        self.halted = Halt(ctx.now, int(ctx.bar_index), reason, tuple(orders))
        log.warning("%s: the portfolio is flattened and the strategy stopped", reason)

    def stop(self, ctx: Any) -> None:
        self.strategy.stop(ctx)


def guard(strategy: Strategy, risk: RiskConfig) -> RiskGuard:
    """``strategy`` behind the kill switch of ``risk`` (see :class:`RiskGuard`).

    The wrapper's class carries the strategy's class name, so an error names the strategy.
    """
    cls = type(strategy)
    wrapper = _GUARDS.get(cls)
    if wrapper is None:
        wrapper = _GUARDS[cls] = type(cls.__name__, (RiskGuard,), {
            "__doc__": RiskGuard.__doc__, "__module__": RiskGuard.__module__,
            "__qualname__": f"RiskGuard[{cls.__qualname__}]"})
    return wrapper(strategy, risk)


#: strategy class -> its guard class (named like it)
_GUARDS: dict[type, type[RiskGuard]] = {}

"""The types every plugin kind speaks: ``Bars``, orders and fills, and the plugin Protocols.

No backtrader, zipline, torch or broker SDK type crosses these interfaces.  numpy and pandas are
imported lazily so that ``import rlbridge`` (and a plugin module subclassing
:class:`Strategy`) stays cheap; the CLI's ``--help`` must not pay for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .errors import DataError

if TYPE_CHECKING:

    import numpy as np
    import pandas as pd

#: The five fields of a bar, in the order of the last axis of ``Bars.values``.
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, eq=False, repr=False)
class Bars:
    """One aligned panel of OHLCV bars: ``T`` timestamps x ``N`` symbols x 5 fields.

    Invariants, checked on construction:

    * ``index`` is a sorted, unique ``DatetimeIndex``: tz-naive session dates (midnight) for
      daily bars, UTC for intraday bars;
    * ``symbols`` is a tuple of unique strings;
    * ``values`` is a read-only, C-contiguous float64 array of shape ``[T, N, 5]`` holding
      open, high, low, close, volume with no NaN or infinity.

    Feeds build ``Bars``; nothing mutates one.  Slicing with :meth:`between` or :meth:`select`
    returns a new panel sharing memory where numpy allows.
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        import numpy as np
        import pandas as pd

        index = self.index
        if not isinstance(index, pd.DatetimeIndex):
            index = pd.DatetimeIndex(index)
        if index.tz is not None:
            index = index.tz_convert("UTC")
        index = index.rename("date" if index.tz is None else "time")
        symbols = tuple(str(s) for s in self.symbols)
        values = np.ascontiguousarray(self.values, dtype=np.float64)
        if values.ndim != 3 or values.shape[2] != len(FIELDS):
            raise DataError(f"bars must have shape [T, N, 5], got {values.shape}")
        if values.shape[0] != len(index):
            raise DataError(f"{len(index)} timestamps but {values.shape[0]} rows of bars")
        if values.shape[1] != len(symbols):
            raise DataError(f"{len(symbols)} symbols but {values.shape[1]} columns of bars")
        if len(set(symbols)) != len(symbols):
            raise DataError(f"duplicate symbols in {symbols}")
        if not index.is_monotonic_increasing or not index.is_unique:
            raise DataError("bar timestamps must be sorted and unique")
        if not np.isfinite(values).all():
            t, n, f = np.argwhere(~np.isfinite(values))[0]
            raise DataError(
                f"{symbols[n]} has a missing or infinite {FIELDS[f]} at {index[t]}; "
                "align the symbols with a fill policy or drop the session"
            )
        if values.flags.writeable:
            if values is self.values:
                values = values.copy()
            values.flags.writeable = False
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "symbols", symbols)
        object.__setattr__(self, "values", values)

    @classmethod
    def _checked_already(cls, index: pd.DatetimeIndex, symbols: tuple[str, ...],
                         values: np.ndarray) -> Bars:
        """A panel of parts that already hold the invariants (no copy, no check).

        For code that grows a panel row by row and has checked each new row itself (the
        live runner's :class:`~rlbridge.live.bars.BarBuffer`): checking all ``T`` rows again
        at each new bar would make a live decision slower as the history grows.  ``values``
        must be read-only.
        """
        bars = object.__new__(cls)
        object.__setattr__(bars, "index", index)
        object.__setattr__(bars, "symbols", symbols)
        object.__setattr__(bars, "values", values)
        return bars

    # ------------------------------------------------------------------ shape and fields
    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(T, N, 5)``."""
        return self.values.shape

    @property
    def intraday(self) -> bool:
        """True for intraday bars (a UTC index), False for daily session bars."""
        return self.index.tz is not None

    def field(self, name: str) -> np.ndarray:
        """The ``[T, N]`` view of one field (``open``, ``high``, ``low``, ``close``, ``volume``)."""
        try:
            return self.values[:, :, FIELDS.index(name)]
        except ValueError:
            raise KeyError(f"unknown bar field {name!r}; fields are {', '.join(FIELDS)}") from None

    @property
    def open(self) -> np.ndarray:
        return self.field("open")

    @property
    def high(self) -> np.ndarray:
        return self.field("high")

    @property
    def low(self) -> np.ndarray:
        return self.field("low")

    @property
    def close(self) -> np.ndarray:
        return self.field("close")

    @property
    def volume(self) -> np.ndarray:
        return self.field("volume")

    # ------------------------------------------------------------------ selection
    def between(self, start: object = None, end: object = None) -> Bars:
        """The bars with ``start <= timestamp <= end`` (either bound may be None)."""
        import numpy as np

        index = self.index
        lo = 0 if start is None else int(np.searchsorted(index, self._stamp(start), "left"))
        hi = len(self) if end is None else int(np.searchsorted(index, self._stamp(end), "right"))
        return Bars(self.index[lo:hi], self.symbols, self.values[lo:hi])

    def select(self, symbols: Iterable[str]) -> Bars:
        """The bars of ``symbols``, in that order."""
        wanted = list(symbols)
        missing = [s for s in wanted if s not in self.symbols]
        if missing:
            raise DataError(
                f"symbols not in these bars: {', '.join(missing)}; "
                f"have {', '.join(self.symbols)}"
            )
        cols = [self.symbols.index(s) for s in wanted]
        return Bars(self.index, tuple(wanted), self.values[:, cols, :])

    def _stamp(self, when: object) -> pd.Timestamp:
        from .data import _stamp  # one conversion rule (and error) for every date bound

        return _stamp(when, self.index)

    # ------------------------------------------------------------------ conversions
    def frame(self, symbol: str) -> pd.DataFrame:
        """One symbol's bars as a DataFrame with columns open..volume."""
        import pandas as pd

        n = self.symbols.index(symbol)
        return pd.DataFrame(self.values[:, n, :], index=self.index, columns=list(FIELDS))

    def to_frame(self) -> pd.DataFrame:
        """Long layout: one row per (timestamp, symbol), columns open..volume."""
        import numpy as np
        import pandas as pd

        t, n = len(self.index), len(self.symbols)
        frame = pd.DataFrame(self.values.reshape(t * n, len(FIELDS)), columns=list(FIELDS))
        frame.insert(0, "symbol", np.tile(np.asarray(self.symbols, dtype=object), t))
        frame.insert(0, self.index.name, np.repeat(self.index.values, n))
        if self.index.tz is not None:
            frame[self.index.name] = pd.DatetimeIndex(frame[self.index.name]).tz_localize("UTC")
        return frame

    def digest(self) -> str:
        """A SHA-256 of timestamps, symbols and values: the data hash saved with models and runs."""
        h = hashlib.sha256()
        h.update(self.index.asi8.tobytes())
        h.update(str(self.index.tz).encode())
        h.update("\x1f".join(self.symbols).encode())
        h.update(self.values.tobytes())
        return h.hexdigest()

    def equals(self, other: Bars) -> bool:
        """Same timestamps, symbols and values (bit for bit)."""
        import numpy as np

        return (
            self.index.equals(other.index)
            and self.symbols == other.symbols
            and np.array_equal(self.values, other.values)
        )

    def __repr__(self) -> str:
        if len(self) == 0:
            span = "empty"
        else:
            fmt = "%Y-%m-%d" if not self.intraday else "%Y-%m-%d %H:%M %Z"
            span = f"{self.index[0].strftime(fmt)} .. {self.index[-1].strftime(fmt)}"
        syms = ", ".join(self.symbols[:6]) + (", ..." if len(self.symbols) > 6 else "")
        return f"Bars({len(self)} x {len(self.symbols)} [{syms}], {span})"


# ---------------------------------------------------------------------- orders and fills
@dataclass(frozen=True)
class Order:
    """A request to trade ``quantity`` shares of ``symbol`` (positive buys, negative sells).

    ``created`` is the timestamp of the bar after whose close the order was decided; a market
    order fills at the open of the following bar (DESIGN.md section 4).
    """

    symbol: str
    quantity: float
    kind: str = "market"
    limit_price: float | None = None
    created: Any = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class Fill:
    """An executed trade: signed ``quantity`` at ``price`` with ``commission`` paid."""

    symbol: str
    quantity: float
    price: float
    commission: float
    time: Any
    order_id: str | None = None

    @property
    def value(self) -> float:
        """Signed traded value, excluding commission."""
        return self.quantity * self.price


# ---------------------------------------------------------------------- plugin protocols
@runtime_checkable
class Feed(Protocol):
    """A source of bars.  Registered with ``register_feeds``."""

    def load(
        self,
        symbols: Sequence[str] | None = None,
        start: object = None,
        end: object = None,
    ) -> Bars:
        """Return the bars of ``symbols`` (all when None) between ``start`` and ``end``.

        Raises:
            DataError: naming the source, row and column of anything wrong.
        """
        ...


@runtime_checkable
class FeatureTransform(Protocol):
    """A causal feature: the value at bar t depends on bars 0..t only.

    ``rlbridge.testing.assert_causal`` checks it: perturbing bars after t changes nothing at or
    before t.

    A transform may also declare ``memory`` (``int | None``, a class or instance attribute; not
    a member of this protocol, so a transform without it still conforms): the value at bar t
    reads bars ``t - memory .. t`` only, by the same floating-point operations wherever the
    bars start.  Live trading then computes it on the last bars only
    (:meth:`~rlbridge.features.FeaturePipeline.compute_tail`) and gets the bits a backtest
    gets from the whole history.  Without it (or None) the value may depend on every earlier
    bar (exponential averages, cumulative sums) and is computed on the whole history, unless
    the transform can also ``resume(bars, state) -> (values, state)``: with ``state`` None,
    every row of ``compute(bars)`` and the state after the last; with the state of an earlier
    call on the first rows of ``bars``, only the rows after those, to the same bits.  A live
    run then computes each new bar's row alone.
    """

    #: the transform's registered name
    name: str
    #: how many bars before t the value at t reads (0 for a one-bar transform); the first
    #: ``lookback`` rows of ``compute`` may be NaN, later rows must be finite
    lookback: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the ``F`` output columns, e.g. ``("log_return_close",)``."""
        ...

    def compute(self, bars: Bars) -> np.ndarray:
        """Return ``[T, N, F]`` float64 features; NaN where the lookback is not yet filled."""
        ...


class CostContext:
    """What a cost model may know when it prices the fills of orders decided at bar ``t``.

    Only data up to and including the decision bar ``t`` is reachable, so no cost model can
    peek at the bar it fills on.  One context serves a whole run: the simulator (or an engine
    bridge) moves ``t`` forward; rolling statistics are computed once per run and cached.

    Args:
        bars: the run's bars.
        t: the index of the decision bar (fills happen at ``t + 1``).
    """

    __slots__ = ("bars", "t", "_cache")

    def __init__(self, bars: Bars, t: int = 0) -> None:
        self.bars = bars
        self.t = t
        self._cache: dict[Any, Any] = {}

    def volume(self) -> np.ndarray:
        """``[N]`` volume (shares) of the decision bar."""
        return self.bars.values[self.t, :, 4]

    def volatility(self, window: int) -> np.ndarray:
        """``[N]`` standard deviation of daily log close-to-close returns over the ``window``
        returns ending at the decision bar (fewer at the start; 0 before two bars exist)."""
        return self.volatility_table(window)[self.t]

    def volatility_table(self, window: int) -> np.ndarray:
        """``[T, N]``: row t is :meth:`volatility` at decision bar t (computed once per run)."""
        return self.cached(("volatility", window),
                           lambda bars: rolling_std_of_log_returns(bars.close, window))

    def cached(self, key: Any, compute: Any) -> Any:
        """``compute(bars)``, computed on first use and kept for the run under ``key``.

        ``compute`` must be causal row by row (row t reads bars 0..t only): a model reads row
        ``context.t``.  ``t`` may also be an integer array (one decision bar per copy of a
        vectorised environment); indexing a table with it gives one row per copy.
        """
        table = self._cache.get(key)
        if table is None:
            table = self._cache[key] = compute(self.bars)
        return table


def rolling_std_of_log_returns(close: np.ndarray, window: int) -> np.ndarray:
    """``[T, N]``: row t is the sample std of the last ``window`` log returns up to t."""
    import numpy as np

    returns = np.zeros_like(close)
    returns[1:] = np.diff(np.log(close), axis=0)
    csum = np.cumsum(returns, axis=0)
    csq = np.cumsum(returns * returns, axis=0)
    t = np.arange(len(close))
    lo = np.maximum(t - window, 0)  # returns 1..t, at most `window` of them
    count = (t - lo).astype(float)[:, None]
    s1 = csum - csum[lo]
    s2 = csq - csq[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / count) / (count - 1.0)
    var[count[:, 0] < 2] = 0.0
    return np.sqrt(np.clip(var, 0.0, None))


@runtime_checkable
class CostModel(Protocol):
    """Turns reference prices into fill prices and commissions, for all assets at once.

    Arrays are ``[N]`` (one entry per asset; engines pricing one order pass arrays of one).
    ``quantity`` is signed shares; an entry of 0 means no order for that asset and must get
    its reference price back and a commission of 0.  The same object drives the simulator,
    the environment and, through their bridges, backtrader and zipline.
    """

    def fill_price(
        self, price: np.ndarray, quantity: np.ndarray, context: CostContext
    ) -> np.ndarray:
        """The price actually paid (buys, ``>= price``) or received (sells, ``<= price``)."""
        ...

    def commission(
        self, price: np.ndarray, quantity: np.ndarray, context: CostContext
    ) -> np.ndarray:
        """Non-negative commission per asset for trading ``quantity`` at fill ``price``."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A trained decision rule: observation in, action out."""

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        """``(action, state)`` for an observation; ``state`` carries recurrent policies."""
        ...

    def save(self, path: str, metadata: Mapping[str, Any] | None = None) -> Any:
        """Write the policy (and ``metadata`` beside it) to ``path``."""
        ...


class BarContext(Protocol):
    """What a strategy sees and does at one bar (DESIGN.md section 5).

    Engines and the live runner implement it; strategies only call it.
    """

    symbols: tuple[str, ...]
    params: Mapping[str, Any]

    @property
    def now(self) -> Any:
        """The timestamp of the bar that just closed."""
        ...

    @property
    def bar_index(self) -> int:
        """0 at the run's first bar."""
        ...

    @property
    def cash(self) -> float:
        ...

    @property
    def value(self) -> float:
        """Cash plus positions at this bar's close."""
        ...

    @property
    def positions(self) -> Mapping[str, float]:
        """Shares held per symbol."""
        ...

    @property
    def weights(self) -> Any:
        """``[N+1]`` weights at this bar's close, cash last."""
        ...

    @property
    def open_orders(self) -> Sequence[Order]:
        """Orders placed and not yet filled."""
        ...

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the ``F`` features of :meth:`features`."""
        ...

    @property
    def feature_window(self) -> int | None:
        """The configured observation window (``[features] window``), if any."""
        ...

    def history(self, field: str, n: int) -> np.ndarray:
        """The last ``n`` values of ``field`` as ``[n, N]``, oldest first (fewer at the start)."""
        ...

    def features(self, n: int) -> np.ndarray:
        """The last ``n`` feature rows as ``[n, N, F]``."""
        ...

    def position(self, symbol: str) -> float:
        """Shares held of ``symbol``."""
        ...

    def order(self, symbol: str, quantity: float) -> Order | None:
        """A market order for ``quantity`` signed shares, filled at the next bar's open
        (None when a risk check refuses it)."""
        ...

    def order_target_weights(self, weights: Mapping[str, float] | Sequence[float]
                             | np.ndarray, *, band: float = 0.0) -> list[Order]:
        """Orders that move the portfolio to ``weights`` of its value; with a ``band``, none
        for an asset whose order would be worth less than that fraction of the value."""
        ...

    def close_all(self) -> list[Order]:
        """Orders that flatten every position."""
        ...


class Strategy:
    """Base class of strategies: override what you need.  Engines call only these methods.

    The registry builds a strategy with one argument, its options: the ``[strategy]`` table of
    the config minus ``name`` (a frozen dataclass when the class declares a ``Config``
    dataclass, else a read-only mapping).  ``self.params`` holds them as a plain dict, so
    ``MyRule()``, ``MyRule({"lookback": 20})`` and ``MyRule(lookback=20)`` all work.
    """

    def __init__(self, config: Any = None, /, **params: Any) -> None:
        import dataclasses

        merged: dict[str, Any] = {}
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            merged.update(dataclasses.asdict(config))
        elif isinstance(config, Mapping):
            merged.update(config)
        elif config is not None:
            raise TypeError(f"{type(self).__name__} options must be a mapping or a dataclass, "
                            f"got {type(config).__name__}")
        merged.update(params)
        self.config = config
        self.params = merged

    def start(self, ctx: BarContext) -> None:
        """Called once, before the first bar."""

    def on_bar(self, ctx: BarContext) -> None:
        """Called after each bar closes; decide and order here."""

    def on_fill(self, ctx: BarContext, fill: Fill) -> None:
        """Called for each fill at this bar's open, before ``on_bar`` of this bar."""

    def stop(self, ctx: BarContext) -> None:
        """Called once, after the last bar."""


#: order states a broker reports; the last four are final
ORDER_STATES = ("new", "partially_filled", "filled", "canceled", "rejected", "expired")
FINAL_STATES = frozenset({"filled", "canceled", "rejected", "expired"})


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker knows it.

    Attributes:
        client_order_id: rlbridge's deterministic id (run, bar, symbol), unique at the broker.
        broker_order_id: the broker's own id.
        symbol: the traded symbol.
        quantity: signed shares asked (positive buys).
        filled_quantity: signed shares filled so far.
        average_price: the average fill price so far (None before any fill).
        status: one of :data:`ORDER_STATES`.
        commission: commissions charged so far.
        reason: why the broker rejected or cancelled it, when it says.
        filled_at: when the last fill happened, when the broker says.
    """

    client_order_id: str
    broker_order_id: str
    symbol: str
    quantity: float
    filled_quantity: float = 0.0
    average_price: float | None = None
    status: str = "new"
    commission: float = 0.0
    reason: str | None = None
    filled_at: Any = None

    @property
    def final(self) -> bool:
        """Whether nothing more can happen to the order."""
        return self.status in FINAL_STATES


@dataclass(frozen=True)
class Account:
    """The account's cash and total value (cash plus positions at market)."""

    cash: float
    equity: float
    currency: str = "USD"


@runtime_checkable
class Broker(Protocol):
    """Where live orders go: the simulator, a paper account or a live account.

    Every method may raise :class:`~rlbridge.errors.BrokerError`;
    :class:`~rlbridge.errors.TransientBrokerError` (a timeout, a 5xx, a dropped connection) means
    the outcome is unknown and the caller looks the order up by its client id before trying
    again; :class:`~rlbridge.errors.DuplicateOrderError` means an order with that client id
    exists already.
    """

    #: True for paper accounts and simulators, False when real money trades
    paper: bool

    def connect(self, session: Any) -> None:
        """Open connections; ``session`` gives the run's bars, cost model and clock."""
        ...

    def close(self) -> None:
        """Close connections and stop streams."""
        ...

    def account(self) -> Account:
        """Cash and equity now."""
        ...

    def positions(self) -> Mapping[str, float]:
        """Signed shares per symbol (symbols with no position may be absent)."""
        ...

    def submit(self, order: Order) -> BrokerOrder:
        """Send ``order`` (its ``client_order_id`` set); the broker's view of it once accepted.

        ``order.kind`` is ``"market"`` or ``"limit"``; ``"market_on_open"`` asks for the
        next session's opening auction.
        """
        ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id, or None when the broker has none."""
        ...

    def cancel(self, client_order_id: str) -> None:
        """Ask the broker to cancel an open order."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """The ``[backtest]`` options every engine takes; an engine's ``Config`` extends it.

    Attributes:
        fractional: let ``order_target_weights`` trade fractional shares (default: whole
            shares, truncated toward zero).
        fill_at: fill market orders at the ``open`` (default) or the ``close`` of the bar after
            the decision.
    """

    fractional: bool = False
    fill_at: Literal["open", "close"] = "open"


@runtime_checkable
class Engine(Protocol):
    """Runs a strategy over bars and returns the run's result."""

    def run(self, strategy: Strategy, bars: Bars, config: Any) -> Any:
        """Run ``strategy`` over ``bars``."""
        ...


@dataclass(frozen=True)
class PluginInfo:
    """One registry entry as the CLI shows it."""

    kind: str
    name: str
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

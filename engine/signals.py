"""Signals: the target weights a strategy asks for, session by session, as a file.

``rlbridge signals CONFIG --out FILE`` replays the config's strategy over ``[backtest] start ..
end`` on the native simulator and writes one row per session and symbol:

========  ==============================================================================
date      the session the weights are for: they trade at its open (the session after the
          decision; after the last bar, the calendar's next session)
symbol    the symbol
weight    the target weight of the symbol in the portfolio (cash is what is left)
as_of     the close the decision was made after
========  ==============================================================================

This long layout is what factor-analysis tools and custom data loaders read: indexed by
``(date, symbol)`` it is a factor series; pivoted on ``symbol`` it is one column per asset.  A
strategy that does not trade at a bar keeps its last target, so every session has a row per
symbol from the first decision on.  Run daily with the same ``--out``, only the sessions the file
does not hold yet are appended (the whole file is rewritten atomically, never half-written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError
from .interfaces import Strategy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .config import Config
    from .interfaces import Bars
    from .manager import RLBridgePluginManager

FORMATS = (".csv", ".parquet")
COLUMNS = ("date", "symbol", "weight", "as_of")


class _Watch:
    """The strategy's context, with its orders watched on the way through."""

    def __init__(self, ctx: Any, recorder: _Recorder) -> None:
        self._ctx = ctx
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def order_target_weights(self, weights: Any, *, band: float = 0.0) -> Any:
        from .market import weight_vector

        if band > 0.0:  # assets inside the band stay where they are: the book's weights tell
            self._recorder.ordered = True
        else:
            self._recorder.target = weight_vector(weights, self._ctx.symbols)
        return self._ctx.order_target_weights(weights, band=band)

    def order(self, symbol: str, quantity: float) -> Any:
        self._recorder.ordered = True
        return self._ctx.order(symbol, quantity)

    def close_all(self) -> Any:
        import numpy as np

        self._recorder.target = np.zeros(len(self._ctx.symbols))
        return self._ctx.close_all()


class _Recorder(Strategy):
    """Runs a strategy and notes, after each bar, the weights it is heading for."""

    def __init__(self, inner: Strategy) -> None:
        super().__init__()
        self.inner = inner
        self.params = inner.params
        self.rows: list[tuple[int, np.ndarray]] = []
        self.target: np.ndarray | None = None
        self.ordered = False
        self._last: np.ndarray | None = None

    def start(self, ctx: Any) -> None:
        self.inner.start(_Watch(ctx, self))

    def on_bar(self, ctx: Any) -> None:
        self.target, self.ordered = None, False
        self.inner.on_bar(_Watch(ctx, self))
        if self.target is not None:
            self._last = self.target
        elif self.ordered:  # share orders: the weights the book will hold once they fill
            held = ctx.holdings() + ctx._pending
            close = ctx.history("close", 1)[-1]
            self._last = held * close / ctx.value
        if self._last is not None:
            self.rows.append((ctx.t, self._last.copy()))

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.inner.on_fill(_Watch(ctx, self), fill)

    def stop(self, ctx: Any) -> None:
        self.inner.stop(_Watch(ctx, self))


def signals(config: Config, pm: RLBridgePluginManager | None = None, *,
            bars: Bars | None = None) -> pd.DataFrame:
    """The target weights of ``config``'s strategy at each session of ``[backtest]``.

    Returns:
        A DataFrame with the columns of :data:`COLUMNS`, sorted by date and symbol order.
    """
    import numpy as np
    import pandas as pd

    from .backtesting import backtest
    from .config import require

    require(config, "signals need", "strategy", "backtest")
    assert config.strategy is not None
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    if bars is None:
        from .data import load_bars

        bars = load_bars(config, pm)
    inner = pm.registries["strategies"].create(config.strategy.name, config.strategy.params,
                                               where="strategy", path=config.path)
    recorder = _Recorder(inner)
    backtest(config, "native", pm, record=False, bars=bars, strategy=recorder)
    if not recorder.rows:
        return pd.DataFrame({c: [] for c in COLUMNS})
    steps = np.array([t for t, _ in recorder.rows])
    weights = np.stack([w for _, w in recorder.rows])
    n = len(bars.symbols)
    sessions = _next_sessions(bars, steps, config)
    return pd.DataFrame({
        "date": np.repeat(sessions.to_numpy(), n),
        "symbol": np.tile(np.array(bars.symbols, dtype=object), len(steps)),
        "weight": weights.reshape(-1),
        "as_of": np.repeat(bars.index[steps].to_numpy(), n),
    })


def _next_sessions(bars: Bars, steps: np.ndarray, config: Config) -> pd.DatetimeIndex:
    """The bar after each decision bar; after the last bar, the calendar's next session."""
    import pandas as pd

    index = bars.index
    following = [index[t + 1] if t + 1 < len(index) else None for t in steps]
    if following[-1] is None:
        last = index[-1]
        if bars.intraday:
            following[-1] = last + (index[-1] - index[-2])
        else:
            calendar = (config.data.options.get("calendar", "XNYS") if config.data is not None
                        else "XNYS")
            following[-1] = _session_after(last, calendar)
    return pd.DatetimeIndex(following)


def _session_after(day: pd.Timestamp, calendar: str | None) -> pd.Timestamp:
    import pandas as pd

    if not calendar or str(calendar).lower() in ("none", "24/7"):
        return day + pd.Timedelta(days=1)
    import exchange_calendars as xcals

    cal = xcals.get_calendar(str(calendar))
    return pd.Timestamp(cal.date_to_session(day, direction="next") if not cal.is_session(day)
                        else cal.next_session(day))


def write_signals(frame: pd.DataFrame, path: str | Path) -> int:
    """Write ``frame`` to ``path`` (``.csv`` or ``.parquet``), appending to an existing file.

    Only the rows dated after the file's last date are added; the file is rewritten through a
    temporary file in the same folder, so a failure leaves the old file as it was.

    Returns:
        The number of rows added.

    Raises:
        ConfigError: an unknown file suffix; Parquet without pyarrow.
        DataError: the existing file is not a signals file.
    """
    import os
    import tempfile

    import pandas as pd

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"signals are written as CSV (.csv) or Parquet (.parquet), not "
                          f"{target.suffix or 'a file without a suffix'!r}: {target}", key="out")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("writing Parquet needs pyarrow (pip install 'rlbridge[parquet]'); "
                              "or write .csv", key="out") from None
    new = frame.loc[:, list(COLUMNS)]
    if target.exists():
        old = _read(target)
        if len(old):
            new = new[new["date"] > old["date"].max()]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
        added = len(new) - len(old)
    else:
        added = len(new)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if suffix == ".csv":
            new.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        else:
            new.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return added


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        old = (pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot append to it: {exc}", source=str(path)) from None
    if list(old.columns) != list(COLUMNS):
        raise DataError(f"cannot append to it: its columns are {list(old.columns)}, not "
                        f"{list(COLUMNS)}", source=str(path))
    for column in ("date", "as_of"):
        old[column] = pd.to_datetime(old[column])
    return old


def read_signals(path: str | Path) -> pd.DataFrame:
    """A signals file as written by :func:`write_signals` (dates parsed)."""
    return _read(Path(path))

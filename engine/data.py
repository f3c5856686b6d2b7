"""The data layer: validate one symbol's bars, align several into a :class:`~rlbridge.Bars` panel.

Feeds read their source into one frame per symbol (a ``DatetimeIndex`` and the columns open,
high, low, close, volume), check it with :func:`validate_frame`, and hand the frames to
:func:`align`, which builds the panel under an explicit policy (:class:`AlignOptions`): keep only
the sessions every symbol has (``drop``), or forward-fill short gaps against an exchange
calendar (``ffill``).  Nothing is fixed silently: a gap longer than the fill limit, a bar on a
day the calendar says is closed, a NaN, all are :class:`~rlbridge.errors.DataError` naming the
source, the row and the column.

:func:`load_bars` is the host's one call to get a run's bars from its config.

Importing this module is cheap (numpy, pandas and exchange_calendars are imported on use), so
feed plugins can subclass :class:`AlignOptions` at import time.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, DataError
from .interfaces import FIELDS, Bars

if TYPE_CHECKING:
    import exchange_calendars
    import numpy as np
    import pandas as pd

    from .config import Config
    from .manager import RLBridgePluginManager

__all__ = [
    "AlignOptions",
    "align",
    "calendar_names",
    "clip",
    "extra_rows",
    "format_stamp",
    "load_bars",
    "DroppedBarsWarning",
    "missing_sessions",
    "sessions",
    "validate_frame",
]

_DAY_NS = 86_400 * 10**9


class DroppedBarsWarning(UserWarning):
    """``align = "drop"`` left out timestamps where some symbols had a bar and others not."""


def _warn_dropped(stamps: dict[str, Any], common: Any, first: int, last: int,
                  source: str | None) -> None:
    """Say which timestamps ``drop`` left out, and whose bars were missing there."""
    import warnings

    import numpy as np
    import pandas as pd

    every = np.unique(np.concatenate([st[(st >= first) & (st <= last)] for st in stamps.values()]))
    dropped = np.setdiff1d(every, common, assume_unique=True)
    if not len(dropped):
        return
    when = pd.Timestamp(dropped[0])
    lacking = [s for s, st in stamps.items() if dropped[0] not in st]
    where = f"{source}: " if source else ""
    warnings.warn(DroppedBarsWarning(
        f"{where}align = \"drop\" left out {len(dropped)} timestamp(s) where not every symbol "
        f"has a bar, the first {format_stamp(when)} (missing for {', '.join(lacking)}); "
        f"align = \"ffill\" fills short gaps instead"), stacklevel=3)


# ---------------------------------------------------------------------- options
@dataclass(frozen=True, kw_only=True)
class AlignOptions:
    """How the bars of several symbols become one panel.  Feed option dataclasses inherit it.

    Attributes:
        calendar: the exchange-calendars name (``XNYS``, ``XLON``, ``24/7``, ...) whose sessions
            daily bars are filled against; ``None`` (or ``"none"`` in a TOML file) for no
            calendar, in which case ``ffill`` fills against the union of the symbols' dates.
        align: ``"drop"`` keeps only the timestamps where every symbol has a bar; ``"ffill"``
            fills a missing bar from the previous one (open = high = low = close = previous
            close, volume 0) for at most ``fill_limit`` consecutive bars.
        fill_limit: the longest run of filled bars allowed per symbol; a longer gap is an error.

    Either way the panel spans only the range every symbol covers (from the latest first bar
    to the earliest last bar).
    """

    calendar: str | None = "XNYS"
    align: Literal["drop", "ffill"] = "drop"
    fill_limit: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.calendar, str) and self.calendar.strip().lower() in ("", "none"):
            object.__setattr__(self, "calendar", None)
        if self.calendar is not None:
            _check_calendar(self.calendar)
        if self.align not in ("drop", "ffill"):
            raise ConfigError(f"expected 'drop' or 'ffill', got {self.align!r}", key="align")
        if isinstance(self.fill_limit, bool) or not isinstance(self.fill_limit, int) \
                or self.fill_limit < 0:
            raise ConfigError(
                f"must be a whole number of bars, 0 or more, got {self.fill_limit!r}",
                key="fill_limit")


def calendar_names() -> list[str]:
    """Every exchange-calendars name and alias, sorted."""
    import exchange_calendars

    return sorted(exchange_calendars.get_calendar_names(include_aliases=True))


def _check_calendar(name: str) -> None:
    names = calendar_names()
    if name in names:
        return
    close = difflib.get_close_matches(name.upper(), names, n=5, cutoff=0.5)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ConfigError(
        f"unknown exchange calendar {name!r}{hint} (any exchange_calendars name such as XNYS, "
        f"XNAS, XLON, 24/7, or \"none\" for no calendar)", key="calendar")


# ---------------------------------------------------------------------- calendars
#: calendar name -> (first day, last day, calendar), widened when a call needs more
_CALENDARS: dict[str, tuple[pd.Timestamp, pd.Timestamp, exchange_calendars.ExchangeCalendar]] = {}


def _calendar(name: str, first: pd.Timestamp,
              last: pd.Timestamp) -> exchange_calendars.ExchangeCalendar:
    """A calendar covering ``first`` .. ``last`` (within the calendar's own bounds).

    Building one takes a quarter of a second, so each name is built once over a wide range
    (1990 to a year from now, or wider when asked) and rebuilt only to widen it.
    """
    import exchange_calendars
    import pandas as pd

    _check_calendar(name)
    dispatcher = exchange_calendars.calendar_utils.global_calendar_dispatcher
    key = dispatcher.resolve_alias(name)  # aliases (NYSE) share their calendar (XNYS)
    factory = getattr(dispatcher, "_calendar_factories", {}).get(key)  # for its bounds
    bound_min = factory.bound_min() if factory is not None else None
    bound_max = factory.bound_max() if factory is not None else None
    if bound_min is not None:
        first = max(first, bound_min)
    if bound_max is not None:
        last = min(last, bound_max)
    cached = _CALENDARS.get(key)
    if cached is not None and cached[0] <= first and cached[1] >= last:
        return cached[2]
    lo = min(first, pd.Timestamp("1990-01-01"))
    hi = max(last, pd.Timestamp.now().normalize() + pd.DateOffset(years=1))
    if cached is not None:
        lo, hi = min(lo, cached[0]), max(hi, cached[1])
    if bound_min is not None:
        lo = max(lo, bound_min)
    if bound_max is not None:
        hi = min(hi, bound_max)
    cal = exchange_calendars.get_calendar(name, start=lo, end=hi)
    _CALENDARS[key] = (lo, hi, cal)
    return cal


def sessions(calendar: str, start: object, end: object) -> pd.DatetimeIndex:
    """The sessions of ``calendar`` from ``start`` to ``end`` inclusive, as tz-naive dates."""
    import pandas as pd

    first, last = _day(start), _day(end)
    all_sessions = _calendar(calendar, first, last).sessions
    lo, hi = all_sessions.searchsorted(first, "left"), all_sessions.searchsorted(last, "right")
    return pd.DatetimeIndex(all_sessions[lo:hi], name="date").tz_localize(None)


def _day(value: object) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(None) if stamp.tz is not None else stamp).normalize()


def _dates(index: pd.DatetimeIndex, calendar: str) -> pd.DatetimeIndex:
    """The session date of each timestamp: itself for daily bars, its local date for intraday."""
    import pandas as pd

    if index.tz is None:
        return index.normalize()
    utc = index.tz_convert("UTC").tz_localize(None)
    cal = _calendar(calendar, utc.min().normalize() - pd.Timedelta(days=1),
                    utc.max().normalize() + pd.Timedelta(days=1))
    return index.tz_convert(cal.tz).tz_localize(None).normalize()


def missing_sessions(index: pd.DatetimeIndex, calendar: str) -> pd.DatetimeIndex:
    """The sessions of ``calendar`` between ``index[0]`` and ``index[-1]`` that ``index`` lacks.

    Intraday timestamps count for the session of their date in the calendar's time zone.
    """
    import pandas as pd

    if len(index) == 0:
        return pd.DatetimeIndex([], name="date")
    days = _dates(index, calendar)
    expected = sessions(calendar, days[0], days[-1])
    return expected[~expected.isin(days)]


def extra_rows(index: pd.DatetimeIndex, calendar: str) -> pd.DatetimeIndex:
    """The timestamps of ``index`` that fall on a date the calendar has no session on."""
    import pandas as pd

    if len(index) == 0:
        return pd.DatetimeIndex([], name=index.name, tz=index.tz)
    days = _dates(index, calendar)
    expected = sessions(calendar, days.min(), days.max())
    return index[~days.isin(expected)]


# ---------------------------------------------------------------------- validation
def format_stamp(stamp: pd.Timestamp) -> str:
    """A timestamp as messages show it: a date for daily bars, minutes (and seconds) otherwise."""
    if stamp.tz is None and stamp.value % _DAY_NS == 0:
        return stamp.strftime("%Y-%m-%d")
    seconds = stamp.second or stamp.microsecond
    text = stamp.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if stamp.microsecond:
        text += f".{stamp.microsecond:06d}".rstrip("0")
    return f"{text} UTC" if stamp.tz is not None else text


def validate_frame(
    frame: pd.DataFrame,
    *,
    source: object = None,
    lines: np.ndarray | Sequence[int] | None = None,
    names: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    newest_first: bool = False,
    sort: bool = False,
) -> pd.DataFrame:
    """Check one symbol's bars and return them oldest first, as float64.

    Args:
        frame: indexed by a ``DatetimeIndex`` (``NaT`` for a missing date), with the columns
            open, high, low, close, volume (and ``extra``); other columns are ignored.
        source: the file or table named in errors.
        lines: the row number of each frame row as the source shows it (1-based, the header is
            row 1); by default 2, 3, ... in frame order.
        names: our column name (``date``, ``open``, ...) -> the name shown in errors (the
            file's header); by default our names.
        extra: more price columns to check like the prices (finite and positive), e.g.
            ``adjusted``; they are kept in the result.
        newest_first: the rows run newest first; they are reversed.
        sort: the rows may be in any order; they are sorted (stably) by timestamp.

    Returns:
        A new frame with the columns open..volume then ``extra``, sorted by timestamp.

    Raises:
        DataError: naming ``source``, the row and the column of the first problem found, in this
            order of checks: missing columns, missing dates, order (duplicate timestamps,
            unsorted rows, a newest-first file read without ``newest_first``), then values
            (missing or infinite, non-positive prices, high < low, negative volume).
    """
    import numpy as np
    import pandas as pd

    shown = {"date": "date", **{f: f for f in (*FIELDS, *extra)}, **dict(names or {})}
    columns = [*FIELDS, *extra]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns)) or "(none)"
        raise DataError(f"missing column {shown[missing[0]]!r}; columns found: {have}",
                        source=source, row=1, column=shown[missing[0]])
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("validate_frame needs a frame indexed by a DatetimeIndex")
    n = len(index)
    rows = np.arange(2, n + 2, dtype=np.int64) if lines is None else np.asarray(lines, np.int64)
    if len(rows) != n:
        raise ValueError(f"{len(rows)} line numbers for {n} rows")
    values = frame[columns].to_numpy(dtype=np.float64, copy=True)
    stamps = index.asi8

    def fail(message: str, at: int, column: str) -> DataError:
        return DataError(message, source=source, row=int(rows[at]), column=shown[column])

    nat = np.flatnonzero(index.isna())
    if len(nat):
        raise fail("missing date", nat[0], "date")

    # ---- order: reverse or sort, then every step must go strictly forward
    if n > 1:
        step = np.diff(stamps)
        if sort:
            order = np.argsort(stamps, kind="stable")
        elif newest_first:
            bad = np.flatnonzero(step >= 0)
            if len(bad):
                i = bad[0] + 1
                if step[i - 1] == 0:
                    raise fail(f"duplicate timestamp {format_stamp(index[i])} (also on row "
                               f"{rows[i - 1]})", i, "date")
                if stamps[0] < stamps[-1]:
                    raise fail(f"rows run oldest first ({format_stamp(index[0])} on row "
                               f"{rows[0]} .. {format_stamp(index[-1])} on row {rows[-1]}), "
                               f"but newest_first = true; remove newest_first", i, "date")
                raise fail(f"{format_stamp(index[i])} comes after {format_stamp(index[i - 1])} "
                           f"on row {rows[i - 1]}, but newest_first = true says rows run newest "
                           f"first; set sort = true to sort the rows", i, "date")
            order = np.arange(n - 1, -1, -1)
        else:
            bad = np.flatnonzero(step <= 0)
            if len(bad):
                i = bad[0] + 1
                if step[i - 1] == 0:
                    raise fail(f"duplicate timestamp {format_stamp(index[i])} (also on row "
                               f"{rows[i - 1]})", i, "date")
                if stamps[0] > stamps[-1]:
                    raise fail(f"rows run newest first ({format_stamp(index[0])} on row "
                               f"{rows[0]} .. {format_stamp(index[-1])} on row {rows[-1]}); "
                               f"set newest_first = true", i, "date")
                raise fail(f"{format_stamp(index[i])} comes before {format_stamp(index[i - 1])} "
                           f"on row {rows[i - 1]}; rows must run oldest first (set sort = true "
                           f"to sort them)", i, "date")
            order = None
        if order is not None:
            index, values, rows, stamps = index[order], values[order], rows[order], stamps[order]
            if sort:
                dup = np.flatnonzero(np.diff(stamps) == 0)
                if len(dup):
                    # report the later of the two rows in file order, naming the earlier one
                    a, b = sorted((rows[dup[0]], rows[dup[0] + 1]))
                    at = dup[0] + 1 if rows[dup[0] + 1] == b else dup[0]
                    raise fail(f"duplicate timestamp {format_stamp(index[at])} (also on row {a})",
                               at, "date")

    # ---- values: report the first offending row of the file for each check
    def first(mask: np.ndarray) -> tuple[int, int] | None:
        """(frame row, column) of the offending cell on the lowest file row."""
        hit = mask.any(axis=1) if mask.ndim == 2 else mask
        where = np.flatnonzero(hit)
        if not len(where):
            return None
        at = where[np.argmin(rows[where])]
        col = int(np.argmax(mask[at])) if mask.ndim == 2 else 0
        return int(at), col

    found = first(~np.isfinite(values))
    if found:
        at, col = found
        what = "missing value (empty or NaN)" if np.isnan(values[at, col]) else \
            f"not a finite number: {values[at, col]}"
        raise fail(what, at, columns[col])
    price_cols = [0, 1, 2, 3, *range(5, 5 + len(extra))]
    found = first(values[:, price_cols] <= 0)
    if found:
        at, col = found
        name = columns[price_cols[col]]
        raise fail(f"{name} must be positive, got {values[at, price_cols[col]]:g}", at, name)
    found = first(values[:, 1] < values[:, 2])
    if found:
        at = found[0]
        raise fail(f"high {values[at, 1]:g} is below low {values[at, 2]:g}", at, "high")
    found = first(values[:, 4] < 0)
    if found:
        at = found[0]
        raise fail(f"volume must not be negative, got {values[at, 4]:g}", at, "volume")

    index = index.rename("date" if index.tz is None else "time")
    return pd.DataFrame(values, index=index, columns=columns)


def clip(frame: pd.DataFrame, start: object = None, end: object = None) -> pd.DataFrame:
    """The rows of ``frame`` with ``start <= timestamp <= end`` (either bound may be None).

    Bounds follow :meth:`Bars.between`: for daily bars they are dates; for intraday (UTC) bars a
    naive bound is read as UTC, and a bare date means midnight of that day.
    """
    import numpy as np

    index = frame.index
    lo = 0 if start is None else int(np.searchsorted(index, _stamp(start, index), "left"))
    hi = len(index) if end is None else int(np.searchsorted(index, _stamp(end, index), "right"))
    return frame.iloc[lo:hi]


def _stamp(value: object, index: pd.DatetimeIndex) -> pd.Timestamp:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"cannot read {value!r} as a date or time") from None
    if stamp is pd.NaT:
        raise ConfigError(f"cannot read {value!r} as a date or time")
    if index.tz is None:
        return stamp.tz_localize(None) if stamp.tz is not None else stamp
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


# ---------------------------------------------------------------------- alignment
def align(frames: Mapping[str, pd.DataFrame], options: AlignOptions, *,
          source: object = "") -> Bars:
    """Build one panel from validated per-symbol frames, under ``options``' policy.

    Args:
        frames: symbol -> frame indexed by timestamp (tz-naive midnight dates for daily bars, UTC
            for intraday) with the columns open, high, low, close, volume, oldest first, as
            :func:`validate_frame` returns them.  The panel keeps this order of symbols.
        options: the alignment policy.
        source: named in errors (the file, folder or table the frames came from).

    Raises:
        DataError: no symbols, a symbol without bars, daily mixed with intraday bars, no common
            range, a daily bar on a date that is not a session (``ffill`` with a calendar), or a
            gap longer than ``fill_limit``.
    """
    import numpy as np
    import pandas as pd

    if not frames:
        raise DataError("no symbols to load", source=source or None)
    symbols = tuple(frames)
    indexes = {s: frames[s].index for s in symbols}
    for s, idx in indexes.items():
        if len(idx) == 0:
            raise DataError(f"{s} has no bars", source=source or None)
    daily = [idx.tz is None for idx in indexes.values()]
    if any(daily) and not all(daily):
        kinds = ", ".join(f"{s} ({'daily' if d else 'intraday'})"
                          for s, d in zip(symbols, daily, strict=True))
        raise DataError(f"cannot put daily and intraday bars in one panel: {kinds}",
                        source=source or None)
    is_daily = daily[0]
    if is_daily:
        for s, idx in indexes.items():
            off = np.flatnonzero(idx.asi8 % _DAY_NS)
            if len(off):
                raise DataError(f"{s}: timestamp {idx[off[0]]} has no time zone but is not at "
                                f"midnight; intraday bars must be UTC", source=source or None)
    data = {s: _values(frames[s]) for s in symbols}

    if len(symbols) == 1 and options.align == "drop":
        s = symbols[0]
        return Bars(indexes[s], symbols, data[s][:, None, :])

    first = max(idx[0] for idx in indexes.values())
    last = min(idx[-1] for idx in indexes.values())
    if first > last:
        ends = min(symbols, key=lambda s: indexes[s][-1])
        starts = max(symbols, key=lambda s: indexes[s][0])
        raise DataError(f"the symbols share no dates: {ends} ends on {format_stamp(last)}, "
                        f"before {starts} starts on {format_stamp(first)}", source=source or None)
    stamps = {s: idx.asi8 for s, idx in indexes.items()}

    if options.align == "drop":
        common = None
        for s in symbols:
            st = stamps[s]
            inside = st[(st >= first.value) & (st <= last.value)]
            common = inside if common is None else np.intersect1d(common, inside,
                                                                  assume_unique=True)
        assert common is not None
        if len(common) == 0:
            raise DataError(f"no timestamp has a bar for every symbol ({', '.join(symbols)})",
                            source=source or None)
        _warn_dropped(stamps, common, first.value, last.value,
                      None if source is None else str(source))
        target = common
    elif is_daily and options.calendar is not None:
        target = sessions(options.calendar, first, last).asi8
        for s in symbols:
            st = stamps[s]
            inside = st[(st >= first.value) & (st <= last.value)]
            off = inside[~np.isin(inside, target)]
            if len(off):
                raise DataError(
                    f"{s} has a bar on {format_stamp(pd.Timestamp(off[0]))}, which is not a "
                    f"{options.calendar} session ({len(off)} such bars); set calendar to the "
                    f"market's calendar, calendar = \"none\", or align = \"drop\"",
                    source=source or None)
    else:
        target = np.unique(np.concatenate([st[(st >= first.value) & (st <= last.value)]
                                           for st in stamps.values()]))

    tz = None if is_daily else "UTC"
    index = pd.DatetimeIndex(target.astype("datetime64[ns]"))
    if tz:
        index = index.tz_localize("UTC")
    out = np.empty((len(target), len(symbols), len(FIELDS)), dtype=np.float64)
    for n, s in enumerate(symbols):
        st = stamps[s]
        pos = np.searchsorted(st, target, "right") - 1  # the last bar at or before each stamp
        present = st[pos] == target
        out[:, n, :] = data[s][pos]
        if present.all():
            continue
        if options.align == "drop":  # cannot happen: the target is the intersection
            raise AssertionError(s)
        _check_gaps(s, ~present, index, options, source)
        gap = ~present
        prev_close = data[s][pos[gap], 3]
        out[gap, n, 0:4] = prev_close[:, None]
        out[gap, n, 4] = 0.0
    return Bars(index, symbols, out)


def _values(frame: pd.DataFrame) -> np.ndarray:
    import numpy as np

    if list(frame.columns) == list(FIELDS):
        return frame.to_numpy(dtype=np.float64)
    return frame[list(FIELDS)].to_numpy(dtype=np.float64)


def _check_gaps(symbol: str, gap: np.ndarray, index: pd.DatetimeIndex, options: AlignOptions,
                source: object) -> None:
    """Raise for the first run of missing bars longer than ``options.fill_limit``."""
    import numpy as np

    edges = np.diff(np.concatenate([[0], gap.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    too_long = np.flatnonzero(lengths > options.fill_limit)
    if not len(too_long):
        return
    k = too_long[0]
    a, b, length = index[starts[k]], index[ends[k] - 1], int(lengths[k])
    unit = "sessions" if index.tz is None else "bars"
    span = format_stamp(a) if length == 1 else f"{format_stamp(a)} .. {format_stamp(b)}"
    raise DataError(
        f"{symbol} has no bars for {length} consecutive {unit} ({span}), more than "
        f"fill_limit = {options.fill_limit}; set fill_limit = {length} or more, "
        f"or align = \"drop\"",
        source=source or None)


# ---------------------------------------------------------------------- the host's call
def load_bars(
    config: Config,
    pm: RLBridgePluginManager | None = None,
    *,
    symbols: Sequence[str] | None = None,
    start: object = None,
    end: object = None,
    store_url: str | None = None,
) -> Bars:
    """The bars of a run: build the config's feed and load its symbols and dates.

    Args:
        config: the run's config; its ``[data]`` table names the feed, the symbols, the dates
            and the feed's options.
        pm: the plugin manager whose ``feeds`` registry holds the feed; by default
            ``make_plugin_manager(warn=False)``.
        symbols, start, end: override ``[data] symbols``, ``start`` and ``end``.
        store_url: the run's store; a feed whose factory says ``uses_store = True`` gets it as
            its ``url`` option unless the config sets one.

    Raises:
        ConfigError: the config has no ``[data]`` table or the feed's options are wrong.
        UnknownNameError: the feed is not registered.
        DataError: from the feed, naming the source, row and column.
    """
    feed, wanted, first, last = open_feed(config, pm, store_url=store_url)
    if symbols is not None:
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    return checked_bars(feed.load(
        wanted,
        start if start is not None else first,
        end if end is not None else last,
    ), config)


def open_feed(config: Config, pm: RLBridgePluginManager | None = None, *,
              store_url: str | None = None) -> tuple[Any, list[str] | None, Any, Any]:
    """Build the config's feed: ``(feed, symbols, start, end)`` as ``[data]`` gives them.

    :func:`load_bars` loads once; a live run keeps the feed to read each new bar
    (:class:`rlbridge.live.bars.LiveBars`).

    Raises:
        ConfigError: the config has no ``[data]`` table or the feed's options are wrong.
        UnknownNameError: the feed is not registered.
    """
    data = getattr(config, "data", None)
    path = getattr(config, "path", None)
    if data is None:
        raise ConfigError("the config has no [data] table: which feed should the bars come from?",
                          path=path, key="data")
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    registry = pm.registries["feeds"]
    options = dict(data.options or {})
    factory = registry.get(data.feed, where="data.feed")
    if getattr(factory, "uses_store", False) and options.get("url") is None \
            and store_url is not None:
        options["url"] = store_url
    feed = registry.create(data.feed, options, where="data", path=path)
    wanted = data.symbols
    if isinstance(wanted, str):
        wanted = [wanted]
    return feed, None if wanted is None else list(wanted), data.start, data.end


def checked_bars(bars: Any, config: Config) -> Bars:
    """``bars`` when a feed returned a :class:`Bars`, else a DataError naming the feed."""
    if not isinstance(bars, Bars):
        feed = config.data.feed if config.data is not None else "?"
        raise DataError(f"feed {feed!r} returned {type(bars).__name__}, not Bars")
    return bars

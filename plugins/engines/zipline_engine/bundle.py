"""The zipline bundle of a run's bars: made on first use, cached under a hash of the bars.

One folder per bundle, ``ROOT/<key>/``, where ``key`` hashes the bars (:meth:`Bars.digest`), the
exchange calendar and the layout version:

* ``assets-7.sqlite``: zipline's asset database, one equity per symbol, ``sid`` = the symbol's
  position in ``bars.symbols``; each equity ends at the last bar and is auto-closed the day
  after it, so a run that ends on the last bar keeps its positions (no de-listing sale);
* ``adjustments.sqlite``: zipline's adjustment database, written with no splits or dividends
  (rlbridge bars are already adjusted, or not, as their feed says);
* ``bars.npy`` / ``sessions.npy``: the OHLCV panel as float64 and its session dates.  zipline's
  own daily formats keep prices as integer thousandths, which moves fills and marks by up to
  half a tenth of a cent per share; the engine reads the exact prices through
  :class:`ExactDailyBarReader` so that its fills and equity match ``native`` to the cent;
* ``bundle.json``: what the bundle holds.

A bundle is written into a hidden temporary folder beside its final place and renamed into
place in one step, so a crash mid-ingest never leaves a half bundle that a later run would use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from zipline.data.bar_reader import NoDataOnDate
from zipline.data.session_bars import CurrencyAwareSessionBarReader

from rlbridge.errors import ConfigError, DataError, RLBridgeError

if TYPE_CHECKING:
    from rlbridge.interfaces import Bars

#: bumped whenever the layout of a bundle folder changes (old bundles are then left unused)
LAYOUT = 1
_FIELDS = ("open", "high", "low", "close", "volume")
#: a temporary folder older than this (seconds) belongs to an ingest that died
_STALE = 3600.0


class BundleError(RLBridgeError):
    """A zipline bundle cannot be written (or read back) in the bundle folder."""


def default_root() -> Path:
    """``RLBRIDGE_ZIPLINE_ROOT``, else ``~/.cache/rlbridge/zipline``."""
    env = os.environ.get("RLBRIDGE_ZIPLINE_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlbridge" / "zipline"


# ---------------------------------------------------------------------- calendar
@functools.lru_cache(maxsize=8)
def _calendar(name: str, start: pd.Timestamp, end: pd.Timestamp) -> Any:
    from zipline.utils.calendar_utils import get_calendar

    return get_calendar(name, start=start, end=end)


def open_calendar(name: str, bars: Bars) -> Any:
    """The exchange calendar ``name`` spanning the bars.

    Raises:
        ConfigError: an unknown calendar name (key ``calendar``).
        DataError: intraday bars, or bars outside the dates the calendar knows.
    """
    import exchange_calendars

    from rlbridge.data import format_stamp

    if bars.intraday:
        raise DataError("the zipline engine runs daily bars; these are intraday "
                        f"({format_stamp(bars.index[0])} ..)")
    names = exchange_calendars.get_calendar_names(include_aliases=True)
    if name not in names:
        import difflib

        close = ([name.upper()] if name.upper() in names
                 else difflib.get_close_matches(name, names, n=1))
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown exchange calendar {name!r}{hint}; use an exchange_calendars "
                          "name such as 'XNYS', 'XLON' or 'XTKS'", key="calendar")
    first, last = bars.index[0], bars.index[-1]
    # whole years (and one more at the end), so that runs over bars of the same years share
    # one cached calendar: building one takes a good part of a second
    start = pd.Timestamp(first.year, 1, 1)
    end = pd.Timestamp(last.year + 1, 12, 31)
    try:
        return _calendar(name, start, end)
    except Exception:  # e.g. a calendar that starts within the bars' first year
        try:
            return _calendar(name, first, end)
        except Exception as exc:
            raise DataError(f"the {name} calendar cannot cover the bars "
                            f"{format_stamp(first)} .. {format_stamp(last)}: {exc}") from None


def _dates(stamps: pd.DatetimeIndex, limit: int = 3) -> str:
    shown = ", ".join(s.strftime("%Y-%m-%d") if s.value % 86_400_000_000_000 == 0 else str(s)
                      for s in stamps[:limit])
    return shown + (f", ... ({len(stamps)} in all)" if len(stamps) > limit else "")


def check_sessions(bars: Bars, calendar: Any) -> None:
    """Raise :class:`DataError` unless the bars have exactly the calendar's sessions.

    Every session between the first and the last bar must have a row, and every row must be a
    session; the message names the first offending dates of each kind.
    """
    first, last = bars.index[0], bars.index[-1]
    sessions = calendar.sessions_in_range(first.normalize(), last.normalize())
    index = bars.index
    if index.equals(sessions):
        return
    missing = sessions.difference(index)
    extra = index.difference(sessions)
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} {calendar.name} session(s) have no bar: {_dates(missing)}")
    if len(extra):
        parts.append(f"{len(extra)} bar(s) fall on dates that are not {calendar.name} sessions: "
                     f"{_dates(extra)}")
    raise DataError(f"the bars of {', '.join(bars.symbols)} do not match the {calendar.name} "
                    f"calendar between {first:%Y-%m-%d} and {last:%Y-%m-%d}: "
                    + "; ".join(parts) + " (align them to the calendar or choose the calendar "
                    "of their exchange with the engine's `calendar` option)")


# ---------------------------------------------------------------------- the reader
class ExactDailyBarReader(CurrencyAwareSessionBarReader):
    """zipline's session bar reader over a float64 ``[T, N, 5]`` panel (prices kept exact).

    Args:
        values: open, high, low, close, volume per session and sid.
        sessions: the ``T`` session dates (tz-naive).
        calendar: the exchange calendar they follow.
    """

    def __init__(self, values: np.ndarray, sessions: pd.DatetimeIndex, calendar: Any) -> None:
        self._values = values
        self._sessions = sessions
        self._calendar = calendar
        self._row = {stamp: i for i, stamp in enumerate(sessions)}
        self._field = {name: i for i, name in enumerate(_FIELDS)}

    @property
    def data_frequency(self) -> str:
        return "session"

    @property
    def sessions(self) -> pd.DatetimeIndex:
        return self._sessions

    @property
    def last_available_dt(self) -> pd.Timestamp:
        return self._sessions[-1]

    @property
    def first_trading_day(self) -> pd.Timestamp:
        return self._sessions[0]

    @property
    def trading_calendar(self) -> Any:
        return self._calendar

    def get_value(self, sid: int, dt: pd.Timestamp, field: str) -> float:
        """The ``field`` of ``sid`` on session ``dt``."""
        try:
            row = self._row[dt]
        except KeyError:
            raise NoDataOnDate(f"no bar on {dt} in this bundle") from None
        return float(self._values[row, sid, self._field[field]])

    def load_raw_arrays(self, columns: Any, start_date: Any, end_date: Any,
                        assets: Any) -> list[np.ndarray]:
        """``[sessions, assets]`` float64 arrays of each column from start to end inclusive."""
        lo = int(self._sessions.searchsorted(start_date, "left"))
        hi = int(self._sessions.searchsorted(end_date, "right"))
        sids = np.asarray(assets, dtype=np.int64)
        return [np.ascontiguousarray(self._values[lo:hi][:, sids, self._field[c]])
                for c in columns]

    def get_last_traded_dt(self, asset: Any, dt: pd.Timestamp) -> pd.Timestamp:
        """The last session on or before ``dt`` (every asset trades every session here)."""
        i = int(self._sessions.searchsorted(dt, "right")) - 1
        return self._sessions[i] if i >= 0 else pd.NaT

    def currency_codes(self, sids: Any) -> np.ndarray:
        """Unknown (None) for every sid: rlbridge bars carry no currency."""
        return np.full(len(sids), None, dtype=object)


# ---------------------------------------------------------------------- ingest and load
@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: zipline's asset finder, daily bar reader and adjustment reader."""

    path: Path
    asset_finder: Any
    daily_reader: ExactDailyBarReader
    adjustment_reader: Any
    assets: list[Any]

    def data_portal(self, calendar: Any) -> Any:
        """A zipline ``DataPortal`` over the bundle's readers."""
        from zipline.data.data_portal import DataPortal

        reader = self.daily_reader
        return DataPortal(self.asset_finder, trading_calendar=calendar,
                          first_trading_day=reader.first_trading_day,
                          equity_daily_reader=reader, adjustment_reader=self.adjustment_reader,
                          last_available_session=reader.last_available_dt)


def bundle_key(bars: Bars, calendar_name: str) -> str:
    """The folder name of the bars' bundle: a hash of the bars, the calendar and the layout."""
    text = f"{bars.digest()}:{calendar_name}:{LAYOUT}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ensure_bundle(bars: Bars, calendar: Any, root: Path,
                  keep: int | None = None) -> tuple[Path, bool]:
    """The bundle folder of ``bars``, ingesting it first if it does not exist yet.

    Each use marks the bundle as used now; after an ingest, only the ``keep`` most recently
    used bundles of ``root`` are kept (None: all of them).

    Returns:
        ``(path, ingested)``: ``ingested`` is False when a cached bundle was reused.
    """
    key = bundle_key(bars, calendar.name)
    target = root / key
    if (target / "bundle.json").is_file():
        _mark_used(target)
        return target, False
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root, key)
        work = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=root))
    except OSError as exc:
        raise BundleError(f"cannot create the zipline bundle folder in {root}: {exc}") from None
    try:
        _write(bars, calendar, work)
        try:
            os.rename(work, target)
        except OSError:
            if not (target / "bundle.json").is_file():
                raise
            return target, False  # another process finished the same bundle first
    except Exception as exc:
        raise BundleError(f"cannot write the zipline bundle of {bars!r} in {root}: "
                          f"{type(exc).__name__}: {exc}") from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    if keep is not None:
        prune(root, keep, spare=target)
    return target, True


def _mark_used(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves, pruned less well
        os.utime(folder / "bundle.json")


def prune(root: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` most recently used bundles of ``root`` (never ``spare``).

    Returns:
        The bundle folders deleted, least recently used first.
    """
    def used(folder: Path) -> float:
        try:
            return (folder / "bundle.json").stat().st_mtime
        except OSError:
            return float("-inf")

    bundles = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (p / "bundle.json").is_file()), key=used)
    doomed = [p for p in bundles[:max(0, len(bundles) - keep)] if p != spare]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def _remove_stale(root: Path, key: str) -> None:
    now = time.time()
    for leftover in root.glob(f".{key}.*.tmp"):
        try:
            if now - leftover.stat().st_mtime > _STALE:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _write(bars: Bars, calendar: Any, folder: Path) -> None:
    from zipline.assets import ASSET_DB_VERSION, AssetDBWriter
    from zipline.data.adjustments import SQLiteAdjustmentWriter

    index = bars.index
    values = np.ascontiguousarray(bars.values)
    np.save(folder / "bars.npy", values)
    np.save(folder / "sessions.npy", index.asi8)
    first, last = index[0], index[-1]
    n = len(bars.symbols)
    equities = pd.DataFrame({
        "symbol": list(bars.symbols),
        "asset_name": list(bars.symbols),
        "start_date": [first] * n,
        "end_date": [last] * n,
        "first_traded": [first] * n,
        # the day after the data ends: never on or before a session of the bundle
        "auto_close_date": [last + pd.Timedelta(days=1)] * n,
        "exchange": [calendar.name] * n,
    }, index=pd.Index(range(n), name="sid"))
    exchanges = pd.DataFrame({"exchange": [calendar.name], "canonical_name": [calendar.name],
                              "country_code": ["??"]})
    AssetDBWriter(str(folder / f"assets-{ASSET_DB_VERSION}.sqlite")).write(
        equities=equities, exchanges=exchanges)
    reader = ExactDailyBarReader(values, index, calendar)
    with SQLiteAdjustmentWriter(str(folder / "adjustments.sqlite"), reader,
                                overwrite=True) as writer:
        writer.write()  # no splits, mergers or dividends: the tables must exist all the same
    meta = {"layout": LAYOUT, "digest": bars.digest(), "calendar": calendar.name,
            "symbols": list(bars.symbols), "first": str(first.date()), "last": str(last.date()),
            "sessions": len(index)}
    (folder / "bundle.json").write_text(json.dumps(meta, indent=1))


def load_bundle(path: Path, calendar: Any) -> Bundle:
    """Open the bundle at ``path`` (made by :func:`ensure_bundle`) with zipline's readers."""
    from zipline.assets import ASSET_DB_VERSION, AssetFinder
    from zipline.data.adjustments import SQLiteAdjustmentReader

    meta = json.loads((path / "bundle.json").read_text())
    values = np.load(path / "bars.npy")
    sessions = pd.DatetimeIndex(np.load(path / "sessions.npy").view("datetime64[ns]"))
    finder = AssetFinder(str(path / f"assets-{ASSET_DB_VERSION}.sqlite"))
    assets = finder.retrieve_all(range(len(meta["symbols"])))
    return Bundle(path=path, asset_finder=finder,
                  daily_reader=ExactDailyBarReader(values, sessions, calendar),
                  adjustment_reader=SQLiteAdjustmentReader(str(path / "adjustments.sqlite")),
                  assets=list(assets))

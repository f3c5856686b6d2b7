"""The ``csv`` feed: bars from CSV files, one file per symbol or one long file.

Layouts (option ``layout``):

* ``per_symbol``: a folder of ``SYMBOL.csv`` files (the default for a folder), or one file
  holding one symbol, named by the file stem or the ``symbol`` option;
* ``long``: files with a symbol column, one row per (timestamp, symbol) (the default for a file
  that has a ``symbol`` or ``ticker`` column).

Columns are found by name, case-insensitively: ``date`` (or ``Time``, ``Datetime``,
``Timestamp``), ``open``, ``high``, ``low``, ``close``, ``volume``, ``symbol`` (or ``ticker``) and,
for ``adjust = true``, ``Adj Close``; the ``columns`` option maps any of them to other header
names, and other columns are ignored.  Timestamps all at midnight with no zone are daily session
dates; anything else is intraday and converted to UTC (naive times are in ``timezone``, UTC by
default).  Every problem in a file is a :class:`~rlbridge.errors.DataError` naming the file, the
row as a spreadsheet shows it and the column.

Only the standard library is imported here; pandas and numpy are imported when a file is read.
"""

from __future__ import annotations

import csv
import difflib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlbridge.data import AlignOptions
from rlbridge.errors import ConfigError, DataError
from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from rlbridge.interfaces import Bars

#: our column name -> the header names matched by default (lower case), in order of preference
DEFAULT_HEADERS: Mapping[str, tuple[str, ...]] = {
    "date": ("date", "datetime", "timestamp", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "symbol": ("symbol", "ticker"),
    "adjusted": ("adj close", "adj_close", "adjclose", "adjusted close", "adjusted_close",
                 "adjusted"),
}
_PRICES = ("open", "high", "low", "close")
_NUMBERS = (*_PRICES, "volume")
_DAY_NS = 86_400 * 10**9


def _no_columns() -> Mapping[str, str]:
    return {}


class CsvFeed:
    """Bars from CSV files.  Parsed files are cached on the instance, so build one per run."""

    @dataclass(frozen=True, kw_only=True)
    class Config(AlignOptions):
        """Options of the ``csv`` feed (beside ``feed = "csv"`` in ``[data]``).

        Attributes:
            path: a folder of ``SYMBOL.csv`` files, or one file (relative to the config file).
            layout: ``auto``, ``per_symbol`` or ``long`` (see the module documentation).
            symbol: the symbol of a one-symbol file (default: the file stem).
            columns: our column name (date, open, high, low, close, volume, symbol, adjusted)
                -> the file's header name, for the columns not found by default.
            date_format: a ``strftime`` format such as ``%d.%m.%Y %H:%M``; by default it is
                inferred from the first row.
            dayfirst: read ambiguous dates as day first (``01.02.2017`` is 1 February).
            timezone: the zone of naive intraday timestamps (``America/New_York``); they are
                converted to UTC.  Default UTC.  Daily dates are read as they are.
            newest_first: the rows run newest first; they are reversed.
            sort: the rows are in no order; they are sorted by timestamp.
            adjust: scale open, high, low and close by adjusted / close (the ``adjusted``
                column, ``Adj Close`` by default) and volume inversely: total-return bars.
            glob: the pattern of the files of a folder.
        """

        path: Path
        layout: Literal["auto", "per_symbol", "long"] = "auto"
        symbol: str | None = None
        columns: Mapping[str, str] = field(default_factory=_no_columns)
        date_format: str | None = None
        dayfirst: bool = False
        timezone: str | None = None
        newest_first: bool = False
        sort: bool = False
        adjust: bool = False
        glob: str = "*.csv"

        def __post_init__(self) -> None:
            super().__post_init__()
            if not isinstance(self.path, Path):
                object.__setattr__(self, "path", Path(str(self.path)))
            for ours, theirs in dict(self.columns).items():
                if ours not in DEFAULT_HEADERS:
                    close = difflib.get_close_matches(ours, list(DEFAULT_HEADERS), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(f"unknown column {ours!r}{hint}; columns: "
                                      f"{', '.join(DEFAULT_HEADERS)}", key=f"columns.{ours}")
                if not isinstance(theirs, str) or not theirs.strip():
                    raise ConfigError(f"expected a header name, got {theirs!r}",
                                      key=f"columns.{ours}")
            if self.symbol is not None and not self.symbol.strip():
                raise ConfigError("empty symbol; leave it out to use the file name", key="symbol")
            if self.date_format is not None and "%" not in self.date_format:
                raise ConfigError(f"expected a strftime format such as '%Y-%m-%d %H:%M', got "
                                  f"{self.date_format!r}", key="date_format")
            if self.timezone is not None:
                _check_timezone(self.timezone)
            if not self.glob.strip():
                raise ConfigError("empty pattern", key="glob")

    def __init__(self, config: CsvFeed.Config) -> None:
        self.config = config
        self._catalog: dict[str, tuple[Path, Any]] | None = None
        self._files: dict[Path, _File] = {}
        self._frames: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"CsvFeed({str(self.config.path)!r})"

    # ------------------------------------------------------------------ the Feed protocol
    def symbols(self) -> list[str]:
        """The symbols the path holds, sorted."""
        return sorted(self._symbol_sources())

    def load(self, symbols: Sequence[str] | None = None, start: object = None,
             end: object = None) -> Bars:
        """The bars of ``symbols`` (all when None) from ``start`` to ``end`` inclusive.

        Raises:
            DataError: a symbol is not in the files (listing those that are), a file is missing
                or malformed (naming file, row and column), a symbol has no bars in the range,
                or the symbols cannot be aligned under the options.
        """
        from rlbridge.data import align, clip

        wanted = self._wanted(symbols)
        frames = {}
        for symbol in wanted:
            frame = clip(self.frame(symbol), start, end)
            if frame.empty:
                full = self.frame(symbol)
                raise DataError(
                    f"{symbol} has no bars between {start or 'the start'} and {end or 'the end'} "
                    f"(its file covers {_span(full)})", source=self._symbol_sources()[symbol][0])
            frames[symbol] = frame
        return align(frames, self.config, source=self.config.path)

    def frame(self, symbol: str) -> pd.DataFrame:
        """One symbol's validated bars (adjusted when asked), oldest first, as a DataFrame."""
        cached = self._frames.get(symbol)
        if cached is not None:
            return cached
        from rlbridge.data import validate_frame

        file, rows = self._symbol_sources()[symbol]
        parsed = self._file(file, long=rows is not None)
        cfg = self.config
        index, values, lines = parsed.index, parsed.values, parsed.lines
        if rows is not None:
            index, values, lines = index[rows], values[rows], lines[rows]
        if not parsed.daily and index.tz is None:
            index = _localize(index, lines, cfg.timezone or "UTC", file, parsed.names["date"],
                              newest_first=cfg.newest_first)
        import pandas as pd

        columns = [*_NUMBERS, *(("adjusted",) if cfg.adjust else ())]
        frame = pd.DataFrame(values, index=index, columns=columns, copy=False)
        checked = validate_frame(frame, source=file, lines=lines, names=parsed.names,
                                 extra=("adjusted",) if cfg.adjust else (),
                                 newest_first=cfg.newest_first, sort=cfg.sort)
        if cfg.adjust:
            raw = checked.to_numpy()
            factor = raw[:, 5] / raw[:, 3]
            out = raw[:, :5].copy()
            out[:, [0, 1, 2]] *= factor[:, None]
            out[:, 3] = raw[:, 5]
            out[:, 4] /= factor
            checked = pd.DataFrame(out, index=checked.index, columns=list(_NUMBERS))
        self._frames[symbol] = checked
        return checked

    # ------------------------------------------------------------------ files and symbols
    def _wanted(self, symbols: Sequence[str] | None) -> list[str]:
        available = self._symbol_sources()
        if symbols is None:
            return sorted(available)
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
        for i, symbol in enumerate(wanted):
            if symbol in wanted[:i]:
                raise DataError(f"symbol {symbol!r} is asked for twice", source=self.config.path)
            if symbol not in available:
                close = [a for a in available if a.lower() == symbol.lower()] or \
                    difflib.get_close_matches(symbol, list(available), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                names = ", ".join(sorted(available))
                raise DataError(f"no symbol {symbol!r}{hint}; available: {names}",
                                source=self.config.path)
        return wanted

    def _symbol_sources(self) -> dict[str, tuple[Path, Any]]:
        """symbol -> (file, row positions in that file, or None for the whole file)."""
        if self._catalog is not None:
            return self._catalog
        cfg = self.config
        path = cfg.path
        if path.is_dir():
            files = sorted(p for p in path.glob(cfg.glob) if p.is_file())
            if not files:
                raise DataError(f"no files matching {cfg.glob!r} in this folder", source=path)
            if cfg.symbol is not None:
                raise ConfigError("symbol names the symbol of a one-symbol file, but path is a "
                                  "folder (each file is named after its symbol)", key="symbol")
            long = cfg.layout == "long"
        elif path.is_file():
            files = [path]
            long = cfg.layout == "long" or (
                cfg.layout == "auto" and "symbol" in _match(path, _header(path), cfg.columns))
        else:
            raise DataError("no such file or folder", source=path)
        catalog: dict[str, tuple[Path, Any]] = {}
        if not long:
            if len(files) == 1 and not path.is_dir():
                catalog[cfg.symbol or path.stem] = (path, None)
            for file in files if path.is_dir() else []:
                if file.stem in catalog:
                    raise DataError(f"two files for symbol {file.stem}: "
                                    f"{catalog[file.stem][0].name} and {file.name}", source=path)
                catalog[file.stem] = (file, None)
        else:
            if cfg.symbol is not None:
                raise ConfigError("symbol names the symbol of a one-symbol file, but the file has "
                                  "a symbol column; ask for symbols with [data] symbols",
                                  key="symbol")
            for file in files:
                for symbol, rows in self._file(file, long=True).groups.items():
                    if symbol in catalog:
                        raise DataError(f"symbol {symbol} is in both {catalog[symbol][0].name} "
                                        f"and {file.name}", source=path)
                    catalog[symbol] = (file, rows)
        self._catalog = catalog
        return catalog

    def _file(self, file: Path, *, long: bool) -> _File:
        parsed = self._files.get(file)
        if parsed is None:
            parsed = _read(file, self.config, long=long)
            self._files[file] = parsed
        return parsed


# ---------------------------------------------------------------------- reading one file
@dataclass
class _File:
    """One parsed file, in file order, blank lines dropped."""

    index: pd.DatetimeIndex  # naive (daily, or intraday still to localize) or UTC
    values: np.ndarray  # [rows, 5 or 6] float64: open..volume (, adjusted)
    lines: np.ndarray  # the file line of each row (the header is line 1)
    names: dict[str, str]  # our column -> the file's header
    daily: bool
    groups: dict[str, np.ndarray]  # long files: symbol -> row positions in file order


def _header(file: Path) -> list[str]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            row = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise _not_utf8(file) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", source=file) from None
    if not row or not any(cell.strip() for cell in row):
        raise DataError("empty file: no header row", source=file, row=1)
    return row


def _not_utf8(file: Path) -> DataError:
    """The error for a file that is not UTF-8, at the line of its first bad byte."""
    data = file.read_bytes()
    try:
        data.decode("utf-8-sig")
        line = None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
    return DataError("not UTF-8 text (save the file as UTF-8)", source=file, row=line)


def _match(file: Path, header: list[str], columns: Mapping[str, str]) -> dict[str, str]:
    """our column -> header name, for every column found (explicit mappings must exist)."""
    found: dict[str, str] = {}
    for ours, defaults in DEFAULT_HEADERS.items():
        if ours in columns:
            name = columns[ours]
            if name not in header:
                close = difflib.get_close_matches(name, header, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(f"no column {name!r} (columns.{ours}){hint}; columns found: "
                                f"{', '.join(header)}", source=file, row=1, column=name)
            found[ours] = name
            continue
        for candidate in defaults:
            hits = [h for h in header if h.strip().lower() == candidate]
            if len(hits) > 1:
                raise DataError(f"columns {', '.join(repr(h) for h in hits)} all match {ours!r}; "
                                f"choose one with columns.{ours}", source=file, row=1,
                                column=hits[1])
            if hits:
                found[ours] = hits[0]
                break
    return found


def _read(file: Path, cfg: CsvFeed.Config, *, long: bool) -> _File:
    import numpy as np
    import pandas as pd

    header = _header(file)
    names = _match(file, header, cfg.columns)
    needed = ["date", *_NUMBERS, *(("adjusted",) if cfg.adjust else ()),
              *(("symbol",) if long else ())]
    for ours in needed:
        if ours not in names:
            why = " (needed by adjust = true)" if ours == "adjusted" else ""
            shown = "Adj Close" if ours == "adjusted" else ours
            fix = f"map another header to it with columns.{ours}"
            if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
                fix = "the file does not separate its columns with commas; save it as CSV"
            raise DataError(f"missing column {shown!r}{why}; columns found: {', '.join(header)}; "
                            f"{fix}", source=file, row=1, column=shown)
    numbers = [n for n in needed if n not in ("date", "symbol")]
    usecols = list(dict.fromkeys(names[n] for n in needed))
    dtype: dict[str, Any] = {names[n]: "float64" for n in numbers}
    dtype[names["date"]] = object
    if long:
        dtype[names["symbol"]] = object
    raw = _read_csv(file, usecols, dtype, [names[n] for n in numbers])
    values = np.empty((len(raw), len(numbers)), dtype=np.float64)
    for k, n in enumerate(numbers):
        values[:, k] = raw[names[n]].to_numpy()
    dates = raw[names["date"]].to_numpy()
    labels = raw[names["symbol"]].to_numpy() if long else None
    lines = np.arange(2, len(raw) + 2, dtype=np.int64)
    blank = np.isnan(values).all(axis=1) & pd.isna(dates)
    if labels is not None:
        blank &= pd.isna(labels)
    if blank.any():  # empty lines: not data, but they keep their line numbers
        keep = ~blank
        values, dates, lines = values[keep], dates[keep], lines[keep]
        labels = labels[keep] if labels is not None else None
    if not len(lines):
        raise DataError("the file has a header but no rows", source=file, row=2)
    index = _parse_dates(dates, lines, file, names["date"], cfg)
    daily = index.tz is None and not (index.asi8 % _DAY_NS).any()
    groups: dict[str, np.ndarray] = {}
    if labels is not None:
        empty = pd.isna(labels) | (labels == "")
        if empty.any():
            raise DataError("missing symbol", source=file, row=int(lines[np.argmax(empty)]),
                            column=names["symbol"])
        codes, uniques = pd.factorize(labels)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        groups = {str(s): order[bounds[k]:bounds[k + 1]] for k, s in enumerate(uniques)}
    return _File(index, values, lines, dict(names), bool(daily), groups)


def _read_csv(file: Path, usecols: list[str], dtype: dict[str, Any],
              numeric: list[str]) -> pd.DataFrame:
    """``pandas.read_csv`` with its errors turned into DataErrors at the right row and column."""
    import pandas as pd

    kwargs: dict[str, Any] = {"usecols": usecols, "skip_blank_lines": False,
                              "encoding": "utf-8-sig"}
    try:
        return pd.read_csv(file, dtype=dtype, **kwargs)
    except pd.errors.ParserError as exc:
        # the C parser counts lines from 1 ("line 5") but rows from 0 with the header ("row 3")
        line = re.search(r"line (\d+)", str(exc))
        row = re.search(r"row (\d+)", str(exc))
        at = int(line[1]) if line else int(row[1]) + 1 if row else None
        what = _first_line(exc).removeprefix("Error tokenizing data. C error: ")
        if what.startswith("EOF inside string"):
            what = "a quote opened on this row is never closed"
        raise DataError(f"malformed CSV: {what}", source=file, row=at) from None
    except UnicodeDecodeError:
        raise _not_utf8(file) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", source=file) from None
    except (ValueError, TypeError, OverflowError) as exc:
        problem = exc
    # a cell that is not a number: read the columns as text to find it
    text = pd.read_csv(file, dtype=str, **kwargs)
    for name in numeric:
        column = text[name]
        bad = pd.to_numeric(column, errors="coerce").isna().to_numpy() & column.notna().to_numpy()
        if bad.any():
            at = int(bad.argmax())
            raise DataError(f"cannot read {column.iloc[at]!r} as a number", source=file,
                            row=at + 2, column=name)
    raise DataError(f"cannot read the file: {_first_line(problem)}", source=file)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _parse_dates(strings: np.ndarray, lines: np.ndarray, file: Path, column: str,
                 cfg: CsvFeed.Config) -> pd.DatetimeIndex:
    """Parse the date column: naive timestamps, or UTC when the strings carry an offset."""
    import numpy as np
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    fmt = cfg.date_format

    def parse(format: str | None, **kw: Any) -> pd.DatetimeIndex | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # format inference and mixed-offset notices
            try:
                out = pd.to_datetime(strings, format=format, dayfirst=cfg.dayfirst,
                                     errors="coerce", **kw)
            except (ValueError, TypeError, OverflowError):
                return None
        return out if isinstance(out, pd.DatetimeIndex) else None

    index = parse(fmt)
    if index is None:
        index = parse(fmt, utc=True)
    if fmt is None and (index is None or index.isna().any()):
        iso = parse("ISO8601")
        if iso is None:
            iso = parse("ISO8601", utc=True)
        if iso is not None and (index is None or iso.isna().sum() < index.isna().sum()):
            index = iso
    present = pd.notna(strings)
    if index is None:
        bad = np.flatnonzero(present)[:1]
    else:
        bad = np.flatnonzero(index.isna() | ~present)[:1]
    if len(bad):
        at = int(bad[0])
        value = strings[at]
        if not present[at] or not str(value).strip():
            raise DataError("missing date", source=file, row=int(lines[at]), column=column)
        if fmt is not None:
            hint = f" with date_format = {fmt!r}"
        else:
            first = next((str(s) for s in strings if isinstance(s, str)), "")
            guess = guess_datetime_format(first, dayfirst=cfg.dayfirst)
            hint = f" in the format of the first row ({first!r} read as {guess!r})" if guess \
                else ""
            hint += "; set date_format" + ("" if cfg.dayfirst else " or dayfirst = true")
        raise DataError(f"cannot read {value!r} as a date{hint}", source=file,
                        row=int(lines[at]), column=column)
    assert index is not None  # every row parsed
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return index


def _localize(index: pd.DatetimeIndex, lines: np.ndarray, tz: str, file: Path, column: str,
              *, newest_first: bool) -> pd.DatetimeIndex:
    """Naive intraday times in ``tz`` -> UTC; a repeated autumn hour is told apart by row order."""
    import numpy as np

    step = -1 if newest_first else 1
    try:
        local = index[::step].tz_localize(tz, ambiguous="infer", nonexistent="raise")[::step]
        return local.tz_convert("UTC")
    except Exception:  # pytz/pandas raise several kinds; find the row and say which
        pass
    gone = index.tz_localize(tz, ambiguous=True, nonexistent="NaT").isna()
    if gone.any():
        at = int(np.argmax(gone))
        raise DataError(f"{index[at]} does not exist in {tz} (the clocks jumped forward)",
                        source=file, row=int(lines[at]), column=column)
    doubt = index.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").isna()
    at = int(np.argmax(doubt))
    raise DataError(f"{index[at]} happens twice in {tz} (the clocks went back) and the row order "
                    f"does not tell which; give UTC times or times with an offset",
                    source=file, row=int(lines[at]), column=column)


def _check_timezone(name: str) -> None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
        return
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=3)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ConfigError(f"unknown time zone {name!r}{hint} (an IANA name such as "
                      f"'America/New_York' or 'UTC')", key="timezone")


def _span(frame: pd.DataFrame) -> str:
    from rlbridge.data import format_stamp

    return f"{format_stamp(frame.index[0])} .. {format_stamp(frame.index[-1])}"


@hookimpl
def register_feeds(register: Any) -> None:
    register("csv", CsvFeed,
             description="CSV files: a folder of SYMBOL.csv, or one file (one symbol or long)")

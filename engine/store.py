"""The store: bars, ingests, runs, models, orders, fills and equity in one SQL database.

Training, backtests and live trading read the same rows from here.  Any SQLAlchemy URL works
(a SQLite file by default, PostgreSQL for a store shared by several machines); the URL comes from,
in order: the ``url`` argument, ``RLBRIDGE_DB``, ``[store] url`` of the config, and
``sqlite:///rlbridge.db`` in the current directory.

Timestamps are ``BIGINT`` nanoseconds since the Unix epoch.  Daily bars (interval ``"1d"``) are
stored as the session date at midnight and read back as a tz-naive index; every other interval is
UTC and read back as a UTC index: the conventions of :class:`~rlbridge.interfaces.Bars`.
The tables and the schema version live in :mod:`rlbridge.schema`; this module re-exports them.

Bulk paths avoid per-row Python work beyond what the database driver itself needs: inserts go
through the driver's ``executemany`` inside the SQLAlchemy transaction, reads are one ordered
``SELECT`` fetched straight into numpy.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .errors import ConfigError, DataError, StoreError
from .interfaces import FIELDS, Bars
from .schema import (
    SCHEMA_VERSION,
    bars_table,
    equity_table,
    fills_table,
    ingests_table,
    meta_table,
    metadata,
    models_table,
    orders_table,
    prepare_schema,
    runs_table,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "DEFAULT_URL", "SCHEMA_VERSION", "Ingest", "Store", "SymbolSummary", "infer_interval",
    "mask_url", "open_store", "resolve_url", "metadata", "meta_table", "bars_table",
    "ingests_table", "runs_table", "models_table", "orders_table", "fills_table", "equity_table",
]

#: The store used when neither the caller, ``RLBRIDGE_DB`` nor the config names one.
DEFAULT_URL = "sqlite:///rlbridge.db"
#: Environment variable naming the store URL.
ENV_VAR = "RLBRIDGE_DB"

_DAY_NS = 86_400 * 10**9
_CHUNK = 10_000  # rows per executemany call: the progress callback's granularity
_ANALYSE_EVERY = 1_000  # bars written (by this process) between two updates of the statistics


# ---------------------------------------------------------------------- URLs
def resolve_url(url: str | None = None, config: Any = None) -> str:
    """The store URL: ``url``, then ``RLBRIDGE_DB``, then ``config.store.url``, then the default."""
    if url:
        return url
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    configured = getattr(getattr(config, "store", None), "url", None)
    if configured:
        return str(configured)
    return DEFAULT_URL


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also for URLs SQLAlchemy cannot parse)."""
    try:
        parsed = sa.make_url(url)
        return url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except Exception:  # unparsable: hide anything between "user:" and "@"
        import re

        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _why(exc: BaseException, url: str) -> str:
    """The first line of a driver's error (no SQL statement), with ``url``'s password hidden."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    try:
        password = sa.make_url(url).password
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


# ---------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class SymbolSummary:
    """What the store holds for one symbol at one interval."""

    symbol: str
    interval: str
    first: pd.Timestamp
    last: pd.Timestamp
    bars: int


def infer_interval(index: pd.DatetimeIndex) -> str:
    """The interval label of bars on ``index``.

    Daily bars (a tz-naive index) are ``"1d"``.  Intraday bars (a UTC index) are labelled by the
    most common spacing between consecutive bars, in the largest whole unit: ``"1h"``, ``"5m"``,
    ``"30s"``; a daily spacing of UTC bars is ``"24h"`` so that ``"1d"`` always means session
    dates.

    Raises:
        StoreError: for a single intraday bar (no spacing to infer from).
    """
    import numpy as np

    if index.tz is None:
        return "1d"
    if len(index) < 2:
        raise StoreError("cannot infer the interval of a single intraday bar; pass interval=")
    steps, counts = np.unique(np.diff(index.asi8), return_counts=True)
    step = int(steps[np.argmax(counts)])
    for unit, size in (("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6),
                       ("us", 10**3)):
        if step % size == 0:
            return f"{step // size}{unit}"
    return f"{step}ns"


# ---------------------------------------------------------------------- the store
class Store:
    """An open store.  Use :func:`open_store` to get one; close it (or use ``with``) when done.

    Attributes:
        url: the store URL with any password masked (safe to print).
        engine: the SQLAlchemy engine.
    """

    def __init__(self, engine: sa.Engine, url: str) -> None:
        self.engine = engine
        self.url = mask_url(url)
        self._raw_url = url
        self._local = threading.local()
        self._unanalysed = _ANALYSE_EVERY  # the first write updates the statistics

    @property
    def full_url(self) -> str:
        """The URL with its password, to hand to code that opens the same store (never print
        it; :attr:`url` is the printable form)."""
        return self._raw_url

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{self.url}: {what}: {_why(exc, self._raw_url)}")

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction: everything written inside commits together or not at all.

        Nested use joins the outer transaction, so ``write_bars`` calls made inside are part
        of it.
        """
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.begin() as conn:
                self._local.conn = conn
                try:
                    yield conn
                finally:
                    self._local.conn = None
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("write failed, nothing was saved", exc) from None

    @contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None

    @contextmanager
    def ingest(self, *, feed: str = "", source: str = "") -> Iterator[Ingest]:
        """Write many :class:`Bars` in one transaction, recorded as one row of ``ingests``.

        ::

            with store.ingest(feed="csv", source="data/etf") as batch:
                for bars in panels:
                    batch.write(bars)

        If anything inside raises, nothing is written.
        """
        with self.transaction() as conn:
            batch = Ingest(self, conn)
            yield batch
            if batch.symbols:
                conn.execute(ingests_table.insert().values(
                    feed=feed, source=source, symbols=batch.symbols, rows=batch.rows))
                self._unanalysed += batch.rows
                if conn.dialect.name == "sqlite" and self._unanalysed >= _ANALYSE_EVERY:
                    # sampled statistics (a few ms) let SQLite list a table's symbols by
                    # skipping through the key instead of scanning every bar; a live stream's
                    # bar at a time changes them too little to pay for it at each bar
                    conn.exec_driver_sql("PRAGMA analysis_limit=400")
                    conn.exec_driver_sql("ANALYZE bars")
                    self._unanalysed = 0

    # ------------------------------------------------------------------ bars
    def write_bars(
        self,
        bars: Bars,
        *,
        source: str = "",
        feed: str = "",
        progress: Callable[[int], None] | None = None,
        interval: str | None = None,
    ) -> int:
        """Write ``bars`` in one transaction (or in the enclosing one); return the rows written.

        Rows of the same symbol and interval between the first and last timestamp of ``bars``
        are replaced, so re-ingesting a range never duplicates bars.

        Args:
            bars: the panel to write; every symbol is written over the whole index.
            source: where the bars came from (a file, a folder, a URL), recorded in ``ingests``.
            feed: the feed name, recorded in ``ingests``.
            progress: called with the number of rows just written, after each chunk.
            interval: the interval label; inferred when None (see :func:`infer_interval`).
        """
        with self.ingest(feed=feed, source=source) as batch:
            return batch.write(bars, progress=progress, interval=interval)

    def read_bars(
        self,
        symbols: Iterable[str] | None = None,
        start: object = None,
        end: object = None,
        *,
        interval: str = "1d",
    ) -> dict[str, pd.DataFrame]:
        """The stored bars of ``symbols`` (all when None) with ``start <= timestamp <= end``.

        Returns:
            symbol -> DataFrame with columns open, high, low, close, volume, indexed by the
            session dates (``"1d"``, tz-naive) or UTC timestamps (other intervals), in the order
            of ``symbols`` (sorted when None).  A known symbol with no bars in the range gets an
            empty frame.

        Raises:
            StoreError: for a symbol the store has no bars of at ``interval``, listing the
                symbols it has.
        """
        import numpy as np

        daily = interval == "1d"
        lo, hi = _bound(start, daily, "start"), _bound(end, daily, "end")
        have = self.symbols(interval)
        wanted = have if symbols is None else list(dict.fromkeys(str(s) for s in symbols))
        self._check_known(wanted, have, interval)
        t = bars_table.c
        # naming the symbols lets the database walk its primary key in order: no sort
        stmt = sa.select(t.symbol, t.ts, t.open, t.high, t.low, t.close, t.volume).where(
            t.interval == interval, t.symbol.in_(wanted))
        if lo is not None:
            stmt = stmt.where(t.ts >= lo)
        if hi is not None:
            stmt = stmt.where(t.ts <= hi)
        table = self._fetch(stmt.order_by(t.symbol, t.ts), _ROW_DTYPE)
        names = table["symbol"]
        ts = table["ts"]
        values = np.empty((len(table), len(FIELDS)), dtype=np.float64)
        for i, f in enumerate(FIELDS):
            values[:, i] = table[f]
        cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
        starts = np.concatenate(([0], cuts)) if len(table) else np.empty(0, dtype=np.int64)
        ends = np.concatenate((cuts, [len(table)])) if len(table) else starts
        stamps = ts.view("datetime64[ns]")
        found: dict[str, pd.DataFrame] = {}
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            found[names[a]] = _frame(stamps[a:b], values[a:b], daily)
        if len(found) == len(wanted):
            return {s: found[s] for s in wanted}
        empty = _frame(np.empty(0, dtype="datetime64[ns]"), np.empty((0, len(FIELDS))), daily)
        return {s: found[s] if s in found else empty.copy() for s in wanted}

    def read_recent(self, symbols: Sequence[str], start: object, *,
                    interval: str = "1d") -> np.ndarray:
        """The rows of ``symbols`` at or after ``start``: a structured array (``symbol``,
        ``ts`` in ns, open .. volume) ordered by symbol and time.

        The live loop's read of each new bar: one prepared statement on the primary key, none
        of :meth:`read_bars`' checks and frames, so its cost is that of the few rows read.
        """
        import numpy as np

        lo = _bound(start, interval == "1d", "start")
        with self._connection() as conn:  # a driver error is a StoreError naming the store
            rows = conn.execute(_RECENT, {"interval": interval, "symbols": list(symbols),
                                          "start": lo}).all()
        return np.array([tuple(r) for r in rows], dtype=_ROW_DTYPE)

    def symbols(self, interval: str | None = "1d") -> list[str]:
        """The symbols with bars at ``interval`` (any interval when None), sorted."""
        t = bars_table.c
        stmt = sa.select(t.symbol).distinct().order_by(t.symbol)
        if interval is not None:
            stmt = stmt.where(t.interval == interval)
        with self._connection() as conn:
            return [row[0] for row in conn.execute(stmt)]

    def intervals(self) -> list[str]:
        """The intervals the store has bars for, sorted."""
        t = bars_table.c
        with self._connection() as conn:
            rows = conn.execute(sa.select(t.interval).distinct().order_by(t.interval))
            return [row[0] for row in rows]

    def summary(self, interval: str | None = None) -> list[SymbolSummary]:
        """Per symbol and interval: the first and last timestamp and the number of bars."""
        import pandas as pd

        t = bars_table.c
        stmt = (
            sa.select(t.symbol, t.interval, sa.func.min(t.ts), sa.func.max(t.ts), sa.func.count())
            .group_by(t.symbol, t.interval)
            .order_by(t.symbol, t.interval)
        )
        if interval is not None:
            stmt = stmt.where(t.interval == interval)
        with self._connection() as conn:
            rows = conn.execute(stmt).all()
        out = []
        for symbol, ivl, first, last, count in rows:
            tz = None if ivl == "1d" else "UTC"
            out.append(SymbolSummary(symbol, ivl, pd.Timestamp(int(first), tz=tz),
                                     pd.Timestamp(int(last), tz=tz), int(count)))
        return out

    # ------------------------------------------------------------------ internals
    def _check_known(self, wanted: Sequence[str], have: Sequence[str], interval: str) -> None:
        known = set(have)
        unknown = [s for s in wanted if s not in known]
        if not have:
            raise StoreError(self._nothing_message(interval, unknown))
        if not unknown:
            return
        raise StoreError(
            f"{self.url}: no {interval} bars for {', '.join(unknown)}; "
            f"the store has {interval} bars for {', '.join(have)}"
        )

    def _nothing_message(self, interval: str, unknown: Sequence[str] = ()) -> str:
        others = [i for i in self.intervals() if i != interval]
        what = f" for {', '.join(unknown)}" if unknown else ""
        also = f" (it has {', '.join(others)} bars)" if others else ""
        return (f"{self.url}: the store has no {interval} bars{what}{also}; "
                "load some with `rlbridge data ingest`")

    def _fetch(self, stmt: sa.Select[Any], dtype: Any) -> np.ndarray:
        """Run ``stmt`` on the driver's own cursor; its rows stream into a structured array."""
        import numpy as np

        compiled = stmt.compile(dialect=self.engine.dialect,
                                compile_kwargs={"render_postcompile": True})
        params: Any = compiled.params
        if compiled.positional:
            params = tuple(params[name] for name in compiled.positiontup or ())
        with self._connection() as conn:
            try:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(str(compiled), params)
                    with _gc_paused():  # a tuple per row: the collector would rescan them
                        return np.fromiter(cursor, dtype=dtype)  # type: ignore[call-overload]
                finally:
                    cursor.close()
            except conn.dialect.loaded_dbapi.Error as exc:
                raise self._error("read failed", exc) from None


class Ingest:
    """A batch of writes inside one transaction; see :meth:`Store.ingest`."""

    def __init__(self, store: Store, conn: sa.Connection) -> None:
        self.store = store
        self.conn = conn
        #: symbol -> rows written in this batch
        self.counts: dict[str, int] = {}

    @property
    def symbols(self) -> list[str]:
        """The symbols written so far, in order."""
        return list(self.counts)

    @property
    def rows(self) -> int:
        """The bars written so far."""
        return sum(self.counts.values())

    def write(self, bars: Bars, *, progress: Callable[[int], None] | None = None,
              interval: str | None = None) -> int:
        """Write ``bars`` (see :meth:`Store.write_bars`) and return the number of rows written."""
        if len(bars) == 0 or not bars.symbols:
            return 0
        label = _interval_for(bars, interval)
        stamps = bars.index.asi8.tolist()
        insert = _bulk_insert(self.conn)
        written = 0
        try:
            # one statement for every symbol's old rows in the range (executemany): a live
            # stream writes one bar of each symbol at a time, and a statement per symbol would
            # cost more than the rows
            self.conn.execute(_DELETE_RANGE, [
                {"symbol": symbol, "interval": label, "first": stamps[0], "last": stamps[-1]}
                for symbol in bars.symbols])
            rows = _rows(bars, label, stamps)
            while True:
                chunk = list(islice(rows, _CHUNK))
                if not chunk:
                    break
                insert(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise self.store._error("write failed, nothing was saved", exc) from None
        for symbol in bars.symbols:
            self.counts[symbol] = self.counts.get(symbol, 0) + len(stamps)
        return written


def _rows(bars: Bars, label: str, stamps: list[int]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``_BAR_COLUMNS``, symbol by symbol, in time order."""
    for n, symbol in enumerate(bars.symbols):
        columns = [bars.values[:, n, f].tolist() for f in range(len(FIELDS))]
        yield from zip(repeat(symbol), repeat(label), stamps, *columns)


# ---------------------------------------------------------------------- helpers
_BAR_COLUMNS = ["symbol", "interval", "ts", *FIELDS]
_RECENT = sa.select(*(bars_table.c[c] for c in ("symbol", "ts", *FIELDS))).where(
    bars_table.c.interval == sa.bindparam("interval"),
    bars_table.c.symbol.in_(sa.bindparam("symbols", expanding=True)),
    bars_table.c.ts >= sa.bindparam("start")).order_by(bars_table.c.symbol, bars_table.c.ts)
_DELETE_RANGE = sa.delete(bars_table).where(
    bars_table.c.symbol == sa.bindparam("symbol"),
    bars_table.c.interval == sa.bindparam("interval"),
    bars_table.c.ts >= sa.bindparam("first"), bars_table.c.ts <= sa.bindparam("last"))
#: dialects whose driver's executemany is the fastest bulk insert; others go through
#: SQLAlchemy's own executemany, which batches rows into multi-row INSERTs where it can
_EXECUTEMANY_DIALECTS = frozenset({"sqlite"})
_ROW_DTYPE = [("symbol", "O"), ("ts", "i8"), *((f, "f8") for f in FIELDS)]


def _bulk_insert(conn: sa.Connection) -> Callable[[Iterable[tuple[Any, ...]]], None]:
    """A function inserting rows of ``_BAR_COLUMNS`` in the connection's transaction."""
    insert = bars_table.insert()
    if conn.dialect.name in _EXECUTEMANY_DIALECTS:
        sql = _driver_insert(conn.dialect)
        if sql is not None:

            def driver(rows: Iterable[tuple[Any, ...]]) -> None:
                cursor = conn.connection.cursor()
                try:
                    cursor.executemany(sql, rows)  # type: ignore[arg-type]  # any iterable works
                finally:
                    cursor.close()

            return driver

    def portable(rows: Iterable[tuple[Any, ...]]) -> None:
        conn.execute(insert, [dict(zip(_BAR_COLUMNS, row, strict=True)) for row in rows])

    return portable


_DRIVER_INSERTS: dict[str, str | None] = {}


def _driver_insert(dialect: sa.Dialect) -> str | None:
    """The driver's INSERT of ``_BAR_COLUMNS`` (compiled once per dialect: a live stream
    writes a few rows at a time), or None when its parameters are not in that order."""
    if dialect.name not in _DRIVER_INSERTS:
        compiled = bars_table.insert().compile(dialect=dialect)
        ordered = compiled.positional and list(compiled.positiontup or ()) == _BAR_COLUMNS
        _DRIVER_INSERTS[dialect.name] = str(compiled) if ordered else None
    return _DRIVER_INSERTS[dialect.name]


def _interval_for(bars: Bars, interval: str | None) -> str:
    if bars.index.tz is None:
        if interval not in (None, "1d"):
            raise StoreError(f"daily bars are stored at interval '1d', not {interval!r}")
        stamps = bars.index.asi8
        off = stamps % _DAY_NS != 0
        if off.any():
            raise DataError(f"daily bars must be stamped at midnight (session dates); "
                            f"found {bars.index[off.argmax()]}")
        return "1d"
    if interval == "1d":
        raise StoreError("interval '1d' is for daily session bars; intraday (UTC) bars need "
                         "another label such as '24h'")
    return interval or infer_interval(bars.index)


def _bound(value: object, daily: bool, name: str) -> int | None:
    """``start``/``end`` as epoch nanoseconds in the convention of the interval."""
    import pandas as pd

    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"cannot read {value!r} as a date or time", key=name) from None
    if stamp is pd.NaT:
        raise ConfigError(f"cannot read {value!r} as a date or time", key=name)
    if daily:
        stamp = stamp.tz_localize(None) if stamp.tz is not None else stamp
    else:
        stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def _frame(stamps: np.ndarray, values: np.ndarray, daily: bool) -> pd.DataFrame:
    import pandas as pd

    index = pd.DatetimeIndex(stamps, name="date" if daily else "time")
    if not daily:
        index = index.tz_localize("UTC")
    return pd.DataFrame(values, index=index, columns=list(FIELDS), copy=False)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


# ---------------------------------------------------------------------- opening
def open_store(url: str | None = None, *, config: Any = None) -> Store:
    """Open (creating if needed) the store at ``url``.

    Args:
        url: any SQLAlchemy URL; when None, ``RLBRIDGE_DB``, then ``config.store.url``, then
            ``sqlite:///rlbridge.db`` in the current directory.
        config: a loaded :class:`~rlbridge.config.Config` (only ``config.store.url`` is read).

    Raises:
        StoreError: the URL cannot be opened (unknown dialect, missing driver, missing folder,
            unreadable file, not a database) or its schema is newer than this rlbridge knows.
            The message names the URL with any password masked.
    """
    raw = resolve_url(url, config)
    shown = mask_url(raw)

    def fail(reason: str) -> StoreError:
        return StoreError(f"cannot open the store {shown}: {reason}")

    try:
        parsed = sa.make_url(raw)
    except Exception:
        raise fail("not a database URL (expected e.g. sqlite:///rlbridge.db or "
                   "postgresql://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not str(parsed.database).startswith("file:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise fail(f"the folder {folder} does not exist")
        if os.path.isdir(parsed.database):
            raise fail(f"{parsed.database} is a folder, not a database file")
    try:
        engine = sa.create_engine(parsed)
    except sa.exc.NoSuchModuleError:
        raise fail(f"unknown database dialect {parsed.drivername!r} "
                   "(SQLAlchemy has no such dialect installed)") from None
    except ImportError as exc:
        raise fail(f"the database driver for {parsed.drivername!r} is not installed "
                   f"({exc})") from None
    except Exception as exc:  # bad options in the URL
        raise fail(f"{type(exc).__name__}: {_why(exc, raw)}") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect)
    try:
        try:
            prepare_schema(engine)
        except sa.exc.IntegrityError:  # another process created the schema at the same time
            prepare_schema(engine)
    except StoreError as exc:
        engine.dispose()
        raise fail(str(exc)) from None
    except Exception as exc:  # the driver's errors: not a database, unreadable, refused
        engine.dispose()
        raise fail(_why(exc, raw)) from None
    return Store(engine, raw)


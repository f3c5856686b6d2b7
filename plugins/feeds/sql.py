"""The ``sql`` feed: bars from the rlbridge store, aligned to common sessions.

``rlbridge data ingest`` fills the store from any feed; a run then reads the same rows with::

    [data]
    feed = "sql"            # url = "postgresql://host/db" to read another store
    symbols = ["SPY", "AGG"]
    interval = "1d"
    align = "ffill"         # and the other alignment options of every feed

Without ``url`` the feed reads the run's own store (``--db``, ``RLBRIDGE_DB``, ``[store] url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlbridge.data import AlignOptions
from rlbridge.errors import DataError
from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import Bars

if TYPE_CHECKING:
    from rlbridge.store import Store


class SqlFeed:
    """Stored bars, read with one query per load and aligned by :func:`rlbridge.data.align`."""

    #: tells :func:`rlbridge.data.load_bars` to fill in ``url`` with the run's store
    uses_store = True

    @dataclass(frozen=True, kw_only=True)
    class Config(AlignOptions):
        """Options of the ``sql`` feed.

        Attributes:
            url: the store to read (any SQLAlchemy URL); None reads the run's store.
            interval: the bar interval to read: ``"1d"`` (session dates), ``"1h"``, ``"5m"``...
        """

        url: str | None = None
        interval: str = "1d"

    def __init__(self, config: SqlFeed.Config | None = None) -> None:
        self.config = config if config is not None else SqlFeed.Config()
        self._store: Store | None = None

    def __repr__(self) -> str:
        from rlbridge.store import mask_url

        url = None if self.config.url is None else mask_url(self.config.url)
        return f"SqlFeed(url={url!r}, interval={self.config.interval!r})"

    def _open(self) -> Store:
        """The store, opened on first use and kept for later loads (a walk-forward loads often)."""
        if self._store is None:
            from rlbridge.store import open_store

            self._store = open_store(self.config.url)
        return self._store

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> SqlFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(
        self,
        symbols: Sequence[str] | None = None,
        start: object = None,
        end: object = None,
    ) -> Bars:
        """The stored bars of ``symbols`` (every symbol at the interval when None), aligned.

        Raises:
            StoreError: the store cannot be opened, or holds no bars of a symbol.
            DataError: a symbol has no bars between ``start`` and ``end``, or alignment fails.
        """
        from rlbridge.data import align, format_stamp

        store = self._open()
        interval = self.config.interval
        frames = store.read_bars(symbols, start, end, interval=interval)
        empty = [s for s, frame in frames.items() if frame.empty]
        if empty:
            held = {row.symbol: row for row in store.summary(interval) if row.symbol in empty}
            spans = "; ".join(
                f"{s} has {format_stamp(held[s].first)} .. {format_stamp(held[s].last)}"
                for s in empty if s in held
            )
            raise DataError(
                f"no {interval} bars of {', '.join(empty)} between {start or 'the start'} "
                f"and {end or 'the end'} ({spans})",
                source=store.url,
            )
        return align(frames, self.config, source=store.url)

    def load_since(self, symbols: Sequence[str], start: object) -> Bars | None:
        """The bars of ``symbols`` from ``start`` on, when they need no alignment; else None.

        What a live loop reads after each new bar (:class:`rlbridge.live.bars.LiveBars`): a
        few rows, read with one prepared statement.  They need no alignment when every symbol
        has a bar at every timestamp read and, for daily bars filled against a calendar, the
        timestamps are consecutive sessions; then the panel is what :meth:`load` would give.
        Otherwise (a symbol's bar not stored yet, a missing session) this returns None and
        :meth:`load` aligns them.
        """
        import numpy as np
        import pandas as pd

        from rlbridge.data import sessions

        table = self._open().read_recent(symbols, start, interval=self.config.interval)
        stamps = np.unique(table["ts"])
        if not len(stamps) or len(table) != len(stamps) * len(symbols):
            return None
        rows = len(stamps)
        if not (table["ts"].reshape(-1, rows) == stamps).all():
            return None  # as many rows as a full panel, but not at the same timestamps
        stored = list(table["symbol"][::rows])  # sorted by the query
        if sorted(symbols) != stored:
            return None
        fields = np.stack([table[f] for f in ("open", "high", "low", "close", "volume")], axis=1)
        by_symbol = fields.reshape(len(symbols), rows, -1)
        order = [stored.index(s) for s in symbols]
        values = by_symbol[order].transpose(1, 0, 2)
        daily = self.config.interval == "1d"
        index = pd.DatetimeIndex(stamps.view("datetime64[ns]"))
        if not daily:
            index = index.tz_localize("UTC")
        elif self.config.align == "ffill" and self.config.calendar is not None and \
                not sessions(self.config.calendar, index[0], index[-1]).equals(index):
            return None  # a session without bars: load fills it
        return Bars(index, tuple(symbols), values)

    def symbols(self) -> list[str]:
        """The symbols the store holds at this feed's interval."""
        return self._open().symbols(self.config.interval)


@hookimpl
def register_feeds(register):  # type: ignore[no-untyped-def]
    register("sql", SqlFeed, description="Bars from the rlbridge store (any SQLAlchemy URL)")

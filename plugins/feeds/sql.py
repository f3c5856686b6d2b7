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

if TYPE_CHECKING:
    from rlbridge.interfaces import Bars
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

    def symbols(self) -> list[str]:
        """The symbols the store holds at this feed's interval."""
        return self._open().symbols(self.config.interval)


@hookimpl
def register_feeds(register):  # type: ignore[no-untyped-def]
    register("sql", SqlFeed, description="Bars from the rlbridge store (any SQLAlchemy URL)")

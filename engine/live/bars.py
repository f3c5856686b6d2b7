"""The live run's bars, grown as new bars arrive, at a cost that does not grow with the history.

A live loop wakes when a bar closes (or every minute) and needs the history with the new bar
on the end.  Loading the whole history again from the feed, aligning it and checking every row
would cost more at each bar as the history grows (a 10-year daily history of 30 symbols is
about 75,000 bars).  :class:`LiveBars` keeps the feed open and asks it only for the bars from
the last one held on; :class:`BarBuffer` appends them in place, into an array with room to
spare, and hands out read-only ``Bars`` views of the rows filled so far.

The last bar held is read again with the new ones: a feed may revise a bar after first giving
it (a symbol's bar that arrived late in a forward-filled row, a corrected print).  A revised
row, and everything after it, is replaced in a new array, so a panel handed out earlier never
changes under its reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..interfaces import Bars

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Config
    from ..manager import RLBridgePluginManager


class BarBuffer:
    """A panel that grows at its end: appending k bars costs O(k), not O(history).

    Args:
        bars: the history to start from.
        spare: rows of room allocated beyond what is held (doubled when it runs out).
    """

    def __init__(self, bars: Bars, spare: int = 1024) -> None:
        self.symbols = bars.symbols
        self._name = bars.index.name
        self._allocate(bars.values, len(bars) + spare)
        self._publish(bars.index, len(bars))  # a view of the buffer from the start

    def _allocate(self, values: np.ndarray, capacity: int) -> None:
        store = np.empty((capacity,) + values.shape[1:], dtype=np.float64)
        store[:len(values)] = values
        self._store = store

    @property
    def bars(self) -> Bars:
        """The bars held now (a read-only view: later appends do not change it)."""
        return self._bars

    def __len__(self) -> int:
        return self._rows

    def extend(self, newer: Bars) -> int:
        """Append the bars of ``newer`` after the last one held.

        ``newer`` may start at or before the last bar held: rows equal to those held are
        skipped, a row that differs (a revised bar) replaces the held one and the rows after it.

        Returns:
            The number of rows that are new or revised (0 when nothing changed).

        Raises:
            DataError: ``newer`` holds other symbols (or another order), another kind of
                timestamps (daily or intraday), or starts before the first bar held.
        """
        if newer.symbols != self.symbols:
            raise DataError(f"the feed's new bars are of {', '.join(newer.symbols)}; the live "
                            f"run trades {', '.join(self.symbols)}")
        if len(newer) == 0:
            return 0
        index = self._index
        if (newer.index.tz is None) != (index.tz is None):
            raise DataError("the feed's new bars and the history differ in kind "
                            "(daily session dates and intraday UTC times)")
        held = self._rows
        first = int(index.searchsorted(newer.index[0])) if held else 0
        if held and first == 0 and newer.index[0] < index[0]:
            raise DataError(f"the feed's new bars start at {newer.index[0]}, before the "
                            f"history's first bar {index[0]}")
        overlap = min(held - first, len(newer))
        if overlap and not (index[first:first + overlap].equals(newer.index[:overlap])
                            and np.array_equal(self._store[first:first + overlap],
                                               newer.values[:overlap])):
            same = self._agreeing(first, newer, overlap)  # a revision: keep what agrees
            return self._replace(first + same, newer, same)
        return self._append(newer, overlap)

    def _agreeing(self, first: int, newer: Bars, overlap: int) -> int:
        """How many leading rows of ``newer`` equal the held rows from ``first``."""
        stamps = self._index.asi8[first:first + overlap] == newer.index.asi8[:overlap]
        rows = (self._store[first:first + overlap] == newer.values[:overlap]).all(axis=(1, 2))
        differ = np.flatnonzero(~(stamps & rows))
        return int(differ[0]) if differ.size else overlap

    def _append(self, newer: Bars, skip: int) -> int:
        fresh = len(newer) - skip
        if fresh <= 0:
            return 0
        rows = self._rows
        if rows + fresh > len(self._store):
            self._allocate(self._store[:rows], 2 * (rows + fresh))
        self._store[rows:rows + fresh] = newer.values[skip:]
        self._publish(self._index.append(newer.index[skip:]), rows + fresh)
        return fresh

    def _replace(self, keep: int, newer: Bars, skip: int) -> int:
        """Keep the first ``keep`` held rows, then ``newer[skip:]``, in a new array."""
        fresh = len(newer) - skip
        held = self._store[:keep]
        self._allocate(held, max(len(self._store), 2 * (keep + fresh)))
        self._store[keep:keep + fresh] = newer.values[skip:]
        self._publish(self._index[:keep].append(newer.index[skip:]), keep + fresh)
        return fresh

    def _publish(self, index: pd.DatetimeIndex, rows: int) -> None:
        if not index.is_monotonic_increasing or not index.is_unique:
            raise DataError("the feed's new bars are not after the history's last bar")
        view = self._store[:rows]
        view.flags.writeable = False  # the buffer writes through its own, writable base
        self._index, self._rows = index.rename(self._name), rows
        self._bars = Bars._checked_already(self._index, self.symbols, view)


class LiveBars:
    """The run's ``[data]`` feed, kept open, and the bars it gave so far.

    :meth:`refresh` asks the feed for the bars from the last one held to ``[data] end`` and
    appends what is new, so each new bar costs about the same whatever the history's length.
    A feed may offer ``load_since(symbols, start) -> Bars | None``, a fast read of the rows
    from ``start`` on that returns None when they need aligning (the ``sql`` feed does);
    ``load`` is used otherwise.

    Args:
        config: the run's config (``[data]``: feed, symbols, dates, options).
        pm: the plugin manager whose ``feeds`` registry holds the feed.
        store_url: the run's store (given to a feed that reads it, as :func:`load_bars` does).
    """

    def __init__(self, config: Config, pm: RLBridgePluginManager | None,
                 store_url: str | None = None) -> None:
        from ..data import open_feed

        self.config = config
        self.feed, self.symbols, self.start, self.end = open_feed(config, pm,
                                                                  store_url=store_url)
        self._buffer: BarBuffer | None = None

    def load(self) -> Bars:
        """The whole history, as ``[data]`` asks (the first load)."""
        from ..data import checked_bars

        bars = checked_bars(self.feed.load(self.symbols, self.start, self.end), self.config)
        self._buffer = BarBuffer(bars)
        return bars

    @property
    def bars(self) -> Bars:
        if self._buffer is None:
            return self.load()
        return self._buffer.bars

    def refresh(self) -> int:
        """Append the feed's bars from the last one held on.

        Returns:
            The number of new (or revised) rows.
        """
        from ..data import checked_bars

        if self._buffer is None:
            self.load()
            return 0
        held = self._buffer.bars
        last = held.index[-1]
        newer = None
        since = getattr(self.feed, "load_since", None)  # a feed's fast read of a few rows
        if since is not None and self.end is None:
            newer = since(held.symbols, last)
        if newer is None:
            newer = self.feed.load(self.symbols, last, self.end)
        return self._buffer.extend(checked_bars(newer, self.config))

    def close(self) -> None:
        """Close the feed when it holds resources (a store's connections)."""
        close: Any = getattr(self.feed, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LiveBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Round trips from fills: what ``trades``, ``win_rate`` and ``avg_trade_pnl`` count.

A **trade** is a round trip of one symbol from flat to flat (:func:`round_trips`): it opens
with the fill that takes the position away from zero and closes with the fill that brings
it back; a fill that crosses zero (long to short) closes one trade and opens the next with
the rest of its quantity, its commission split between them by quantity.  Its P&L is the
cash it brought: sale proceeds minus purchase costs minus every commission of its fills
(FIFO and average-cost accounting agree on a position that returns to zero).  A position
still open at the last fill is not a trade yet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .interfaces import Fill

__all__ = ["round_trips", "trade_stats"]

#: the columns of a fills frame besides its time
FILL_COLUMNS = ("symbol", "quantity", "price", "commission")


def round_trips(fills: Iterable[Fill] | pd.DataFrame) -> pd.DataFrame:
    """The closed round trips of ``fills``, one per row, in the order they closed.

    See the module notes for what a trade is and how its P&L is counted.  Every symbol is
    taken to be flat before its first fill, as it is before a run's first fill: the fills of a
    run since some later date would count the sale of an older position as a short.

    Args:
        fills: :class:`~rlbridge.interfaces.Fill` objects, or a frame with the columns
            ``symbol``, ``quantity``, ``price``, ``commission`` and the time as a ``time``
            column or as the index (:func:`rlbridge.runs.run_fills`).

    Returns:
        Columns ``symbol``, ``opened`` and ``closed`` (the times of the first and last fill),
        ``pnl`` (commissions included) and ``commission``.

    Raises:
        DataError: a fills frame without one of those columns.
    """
    import numpy as np
    import pandas as pd

    table = fill_table(fills)
    q = table["quantity"].to_numpy(dtype=np.float64)
    keep = np.flatnonzero(q != 0)
    codes, symbols = pd.factorize(table["symbol"].to_numpy(dtype=object)[keep])
    stamps = on_clock(table["time"].iloc[keep], daily=False)
    by_symbol = np.lexsort((stamps, codes))  # by symbol, then time (ties: as given)
    order, codes = keep[by_symbol], codes[by_symbol]
    q = q[order]
    n = len(q)
    if n == 0:
        return pd.DataFrame({"symbol": pd.Series([], dtype=object), "opened": [], "closed": [],
                             "pnl": pd.Series([], dtype="float64"),
                             "commission": pd.Series([], dtype="float64")})
    price = table["price"].to_numpy(dtype=np.float64)[order]
    commission = table["commission"].to_numpy(dtype=np.float64)[order]
    times = table["time"].to_numpy(dtype=object)[order]
    # the position of each symbol after each of its fills, and before it
    first = np.r_[True, codes[1:] != codes[:-1]]
    total = np.cumsum(q)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    after = total - (total - q)[start]
    after[np.abs(after) <= 1e-9 * max(1.0, float(np.abs(q).max()))] = 0.0  # rounding is flat
    before = np.where(first, 0.0, np.r_[0.0, after[:-1]])
    # a fill from long to short (or back) is two pieces: the part that closes, the part that opens
    cross = before * after < 0
    fill = np.repeat(np.arange(n), np.where(cross, 2, 1))
    second = np.r_[False, fill[1:] == fill[:-1]]
    closing = cross[fill] & ~second
    piece_before = np.where(second, 0.0, before[fill])
    piece_after = np.where(closing, 0.0, after[fill])
    qty = np.where(cross[fill], piece_after - piece_before, q[fill])
    fee = commission[fill] * np.where(cross[fill], np.abs(qty) / np.abs(q[fill]), 1.0)
    cash = -qty * price[fill] - fee
    opens = piece_before == 0
    trade = np.cumsum(opens) - 1
    last = np.r_[trade[1:] != trade[:-1], True]
    closed = piece_after[last] == 0
    frame = pd.DataFrame({
        "symbol": np.asarray(symbols, dtype=object)[codes[fill[opens]]][closed],
        "opened": times[fill[opens]][closed],
        "closed": times[fill[last]][closed],
        "pnl": np.bincount(trade, weights=cash)[closed],
        "commission": np.bincount(trade, weights=fee)[closed]})
    when = on_clock(frame["closed"], daily=False)
    return frame.iloc[np.argsort(when, kind="stable")].reset_index(drop=True)


def trade_stats(trips: pd.DataFrame) -> dict[str, Any]:
    """``trades``, ``win_rate`` and ``avg_trade_pnl`` of round trips (:func:`round_trips`).

    Win rate and average are NaN without a trade.
    """
    count = len(trips)
    if count == 0:
        return {"trades": 0, "win_rate": math.nan, "avg_trade_pnl": math.nan}
    pnl = trips["pnl"].to_numpy()
    return {"trades": count, "win_rate": float((pnl > 0).sum() / count),
            "avg_trade_pnl": float(pnl.sum() / count)}


def fill_table(fills: Iterable[Fill] | pd.DataFrame) -> pd.DataFrame:
    """``fills`` as a frame with the columns ``time``, ``symbol``, ``quantity``, ``price`` and
    ``commission`` (a frame's time is its ``time`` column, else its index)."""
    import numpy as np
    import pandas as pd

    if isinstance(fills, pd.DataFrame):
        missing = [c for c in FILL_COLUMNS if c not in fills.columns]
        if missing:
            raise DataError(f"the fills frame has no column {', '.join(missing)}")
        times = fills["time"].to_numpy() if "time" in fills.columns else fills.index
        table = pd.DataFrame({"time": times, **{c: fills[c].to_numpy() for c in FILL_COLUMNS}})
    else:
        rows = list(fills)
        table = pd.DataFrame({
            "time": pd.Series([f.time for f in rows], dtype=object),
            "symbol": pd.Series([f.symbol for f in rows], dtype=object),
            "quantity": np.array([f.quantity for f in rows], dtype=np.float64),
            "price": np.array([f.price for f in rows], dtype=np.float64),
            "commission": np.array([f.commission for f in rows], dtype=np.float64)})
    return table.astype({"quantity": "float64", "price": "float64", "commission": "float64"})


def on_clock(times: Any, daily: bool) -> np.ndarray:
    """Fill times as epoch ns on the equity's clock.

    Against daily bars (tz-naive session dates) a fill belongs to the session of its date as
    reported, in its own time zone; against intraday bars it is an instant (naive means UTC).
    """
    import numpy as np
    import pandas as pd

    try:
        index = pd.DatetimeIndex(times)
    except (TypeError, ValueError):  # times in several zones: one at a time
        return np.array([on_clock([t], daily)[0] for t in times], dtype=np.int64)
    if daily:
        return (index.tz_localize(None) if index.tz is not None else index).normalize().asi8
    return (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).asi8

"""A recorded run in pyfolio's layout: returns, positions and transactions.

::

    returns, positions, transactions = pyfolio_frames(store, run_id)
    pyfolio.create_full_tear_sheet(returns, positions=positions, transactions=transactions)

The frames are what pyfolio's tear sheets (and zipline's ``extract_rets_pos_txn_from_zipline``)
work with, built from the store alone:

* ``returns``: a Series of the simple return of each day, ``value[t] / value[t-1] - 1``, from
  the second day on (the first day has no return), so that empyrical's statistics of it are the
  run's own metrics (:func:`rlbridge.metrics.performance`).
* ``positions``: a DataFrame of the value held in each symbol at each day's close, one column
  per symbol in the run's order, plus ``cash``; each row sums to the portfolio value.
* ``transactions``: a DataFrame of the fills, one row each, indexed by fill time, with the
  columns ``amount`` (signed shares), ``price`` and ``symbol``.  Commissions are not a column
  of pyfolio's layout; they are in the returns.

Every index is a tz-aware UTC ``DatetimeIndex`` named ``date`` (``time`` for transactions):
daily session dates become midnight UTC, as pyfolio's own examples localise them.  An intraday
run is reduced to one row per UTC date (its last bar's, dated midnight) for returns and
positions; its transactions keep their times.

:func:`write_pyfolio` writes the three as CSV files (and Parquet files when ``pyarrow`` is
installed) that read back with ``pd.read_csv(path, index_col=0, parse_dates=True)``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RLBridgeError

if TYPE_CHECKING:
    import pandas as pd

    from .store import Store

__all__ = ["ExportError", "PYFOLIO_FILES", "pyfolio_frames", "read_pyfolio", "write_pyfolio"]

#: The frames of the pyfolio layout, in the order :func:`pyfolio_frames` returns them.
PYFOLIO_FILES: tuple[str, ...] = ("returns", "positions", "transactions")


class ExportError(RLBridgeError):
    """A run cannot be exported: it recorded no equity curve, or the folder cannot be written."""


def pyfolio_frames(store: Store, run_id: str) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """The returns, positions and transactions of a recorded run, in pyfolio's layout.

    See the module notes for the layout.

    Args:
        store: the open store.
        run_id: the run's id.

    Returns:
        ``(returns, positions, transactions)``.

    Raises:
        NotFoundError: no such run.
        ExportError: the run recorded fewer than 2 equity values (a training run, or a
            backtest that failed before its second bar).
    """
    import pandas as pd

    from .runs import get_run, run_equity, run_fills, run_positions

    record = get_run(store, run_id)
    equity = run_equity(store, record)
    if len(equity) < 2:
        raise ExportError(f"run {record.id} ({record.kind}, {record.status}) recorded "
                          f"{len(equity)} equity value(s); there is nothing to export")
    held = run_positions(store, record, values=True)
    positions = held.reindex(equity.index, fill_value=0.0)
    positions["cash"] = equity["cash"]
    value = equity["value"]
    if equity.index.tz is not None:  # intraday: each UTC date's last bar, dated that day
        day = equity.index.tz_convert("UTC").normalize()
        last = ~day.duplicated(keep="last")
        value, positions = value[last], positions[last]
        positions.index = day[last]
    positions.index = _utc(positions.index, "date")
    positions.columns.name = None
    returns = value.pct_change().iloc[1:].rename("returns")
    returns.index = positions.index[1:]
    fills = run_fills(store, record)
    transactions = pd.DataFrame({"amount": fills["quantity"].to_numpy(),
                                 "price": fills["price"].to_numpy(),
                                 "symbol": fills["symbol"].to_numpy(dtype=object)},
                                index=_utc(fills.index, "time"))
    return returns, positions, transactions


def write_pyfolio(store: Store, run_id: str, out_dir: str | os.PathLike[str], *,
                  parquet: bool | None = None) -> dict[str, Path]:
    """Write :func:`pyfolio_frames` of a run into ``out_dir`` (created if missing).

    Files: ``returns.csv``, ``positions.csv``, ``transactions.csv``, and the same three as
    ``.parquet`` when ``parquet`` is true (default: when ``pyarrow`` is installed).  Existing
    files of those names are replaced.

    Returns:
        File name -> path, for every file written.

    Raises:
        NotFoundError: no such run.
        ExportError: nothing to export, ``parquet=True`` without ``pyarrow``, or the folder
            cannot be written.
    """
    has_arrow = importlib.util.find_spec("pyarrow") is not None
    if parquet is None:
        parquet = has_arrow
    if parquet and not has_arrow:
        raise ExportError("Parquet files need pyarrow: pip install pyarrow")
    frames = dict(zip(PYFOLIO_FILES, pyfolio_frames(store, run_id), strict=True))
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder; give --out a folder")
    written: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            path = out / f"{name}.csv"
            frame.to_csv(path, index_label=frame.index.name)
            written[path.name] = path
            if parquet:
                path = out / f"{name}.parquet"
                (frame.to_frame() if name == "returns" else frame).to_parquet(path)
                written[path.name] = path
    except OSError as exc:
        raise ExportError(f"cannot write the export into {out}: "
                          f"{exc.strerror or exc}") from None
    return written


def read_pyfolio(out_dir: str | os.PathLike[str]) -> tuple[pd.Series, pd.DataFrame,
                                                           pd.DataFrame]:
    """Read back the CSV files of :func:`write_pyfolio`: ``(returns, positions,
    transactions)`` with UTC indexes, as :func:`pyfolio_frames` returned them.

    Raises:
        ExportError: a file is missing.
    """
    import pandas as pd

    folder = Path(out_dir)
    frames = []
    for name in PYFOLIO_FILES:
        path = folder / f"{name}.csv"
        if not path.is_file():
            raise ExportError(f"{path} is missing; write it with `rlbridge export RUN "
                              "--format pyfolio --out DIR`")
        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        frame.index = _utc(pd.DatetimeIndex(frame.index), frame.index.name)
        frames.append(frame)
    returns = frames[0]["returns"]
    transactions = frames[2].astype({"amount": "float64", "price": "float64",
                                     "symbol": object})
    return returns, frames[1].astype("float64"), transactions


def _utc(index: pd.Index, name: str | None) -> pd.DatetimeIndex:
    """``index`` as a tz-aware UTC DatetimeIndex (naive session dates at midnight UTC)."""
    import pandas as pd

    stamps = pd.DatetimeIndex(index)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    return stamps.rename(name)

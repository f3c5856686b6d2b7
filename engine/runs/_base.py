"""The parts every module of :mod:`rlbridge.runs` shares: the record classes and store helpers.

Timestamps are stored as epoch nanoseconds, the convention of the ``bars`` table: a tz-naive
timestamp (a daily session date) as is, a tz-aware one in UTC.  Read back, a series whose
timestamps all fall on midnight is a tz-naive index of dates; any other is a UTC index.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import DataError, NotFoundError, RLBridgeError
from ..redact import mask_text
from ..schema import runs_table
from ..store import Store

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The kinds of run the store records.
KINDS: tuple[str, ...] = ("train", "backtest", "walkforward", "live")
_FINAL = ("completed", "failed")
_SHOWN = 5  # records listed in a "not found" message


# ---------------------------------------------------------------------- records
@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``.

    Attributes:
        id: sortable id, the UTC start time and a random suffix: ``"20261121-011502-a3f9"``.
        kind: ``"train"``, ``"backtest"``, ``"walkforward"`` or ``"live"``.
        status: ``"running"``, ``"completed"`` or ``"failed"``.
        config: the run's config as stored (secrets removed).
        data_hash: the hash of the data the run used (:meth:`Bars.digest`), if given.
        started_at: when the run started (UTC).
        finished_at: when it finished (UTC), None while running.
        error: the error text of a failed run.
        config_path: the config file the run was started from, if any.
        store_url: the URL of the store the record was read from or written to (not stored,
            not shown): observers such as the e-mail summary read the run's orders there.
    """

    id: str
    kind: str
    status: str
    config: dict[str, Any]
    data_hash: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    error: str | None = None
    config_path: str | None = None
    store_url: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ModelRecord:
    """One row of ``models``: a trained policy file and what it was trained with.

    Attributes:
        id: the model id (``rlbridge backtest --model ID``).
        run_id: the training run, or None.
        algo: the algorithm name, e.g. ``"ppo"``.
        path: the absolute path of the saved model file.
        config: the training config (secrets removed).
        data_hash: the hash of the training data.
        versions: library name -> version at training time (None: not installed).
        created_at: when the model was saved (UTC).
    """

    id: int
    run_id: str | None
    algo: str
    path: str
    config: dict[str, Any]
    data_hash: str | None
    versions: dict[str, str | None]
    created_at: dt.datetime



# ---------------------------------------------------------------------- errors
def error_text(exc: BaseException) -> str:
    """The text stored for a failed run: rlbridge's own errors as their message, anything
    else prefixed with its class name (``"ValueError: ..."``), URL passwords masked."""
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt"
    message = mask_text(str(exc))
    if isinstance(exc, RLBridgeError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__



# ---------------------------------------------------------------------- helpers
def _new_run_id(conn: sa.Connection) -> tuple[dt.datetime, str]:
    """The start time and a fresh id ``YYYYMMDD-HHMMSS-xxxx`` (UTC, 4 hex digits).

    Ids sort in start order: a run started in the same second as another gets a larger
    suffix, drawn at random above it so that runs started by other processes rarely clash.
    """
    while True:
        now = dt.datetime.now(dt.UTC)
        prefix = f"{now:%Y%m%d-%H%M%S}-"
        last = conn.execute(sa.select(sa.func.max(runs_table.c.id)).where(
            runs_table.c.id.like(prefix + "%"))).scalar_one()
        low = 0 if last is None else int(last[len(prefix):], 16) + 1
        if low <= 0xFFFF:
            return now, f"{prefix}{low + secrets.randbelow(min(0x1000, 0x10000 - low)):04x}"
        time.sleep(1.0 - now.microsecond / 1e6)  # this second's ids are used up


def _insert_many(conn: sa.Connection, table: sa.Table, rows: Iterator[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in the table's column order) in the connection's transaction.

    SQLite gets them through the driver's ``executemany`` (about 3x faster than building a
    dict per row for SQLAlchemy); other databases through SQLAlchemy's executemany.
    """
    insert = table.insert()
    names = [c.name for c in table.columns]
    if conn.dialect.name == "sqlite":
        compiled = insert.compile(dialect=conn.dialect)
        if compiled.positional and list(compiled.positiontup or ()) == names:
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(str(compiled), rows)  # type: ignore[arg-type]  # any iterable
            finally:
                cursor.close()
            return
    batch = [dict(zip(names, row, strict=True)) for row in rows]
    if batch:
        conn.execute(insert, batch)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``items`` in slices small enough for one ``IN (...)`` on any database."""
    for a in range(0, len(items), size):
        yield items[a:a + size]


def _run_id(run: RunRecord | str) -> str:
    return run.id if isinstance(run, RunRecord) else str(run)


def _get_run(store: Store, conn: sa.Connection, run_id: str) -> RunRecord:
    t = runs_table.c
    row = conn.execute(sa.select(runs_table).where(t.id == run_id)).mappings().first()
    if row is not None:
        return dataclasses.replace(_run_record(row), store_url=store.full_url)
    recent = [r[0] for r in conn.execute(
        sa.select(t.id).order_by(t.started_at.desc(), t.id.desc()).limit(_SHOWN))]
    if not recent:
        raise NotFoundError(f"no run {run_id!r}: the store {store.url} has no runs yet")
    raise NotFoundError(f"no run {run_id!r} in the store {store.url}; "
                        f"the most recent runs are: {', '.join(recent)}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite keeps no time zone: the stored times are UTC
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _run_record(row: sa.RowMapping) -> RunRecord:
    return RunRecord(row["id"], row["kind"], row["status"], row["config"] or {},
                     row["data_hash"], _utc(row["started_at"]),  # type: ignore[arg-type]
                     _utc(row["finished_at"]), row["error"], row["config_path"])


def _model_record(row: sa.RowMapping) -> ModelRecord:
    return ModelRecord(int(row["id"]), row["run_id"], row["algo"], row["path"],
                       row["config"] or {}, row["data_hash"], row["versions"] or {},
                       _utc(row["created_at"]))  # type: ignore[arg-type]


def _finite(value: Any, what: str) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"{what} is {value!r}, not a finite number")


def _stamp_ns(when: Any) -> int:
    """Epoch nanoseconds of ``when``: tz-naive as is, tz-aware in UTC."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(when)
    except (TypeError, ValueError):
        raise DataError(f"cannot read {when!r} as a time") from None
    if stamp is pd.NaT:
        raise DataError(f"cannot read {when!r} as a time")
    return int(stamp.value)  # .value is UTC for aware stamps, wall time for naive ones


def _index_ns(index: pd.DatetimeIndex) -> list[int]:
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return [int(t) for t in index.asi8]


_DAY_NS = 86_400 * 10**9


def _index_from_ns(stamps: Sequence[int] | np.ndarray) -> pd.DatetimeIndex:
    """Stored stamps as an index: dates (tz-naive) when all are midnight, else UTC."""
    import numpy as np
    import pandas as pd

    ns = np.asarray(stamps, dtype=np.int64)
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    if len(ns) and (ns % _DAY_NS != 0).any():
        return index.tz_localize("UTC").rename("time")
    return index.rename("date")

"""Runs and models: start, finish and find runs; save and find trained models."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import NotFoundError, StoreError
from ..redact import clean_config, mask_text
from ..schema import models_table, runs_table
from ..store import Store
from ._base import (
    _FINAL,
    _SHOWN,
    KINDS,
    ModelRecord,
    RunRecord,
    _get_run,
    _model_record,
    _new_run_id,
    _run_id,
    _run_record,
    error_text,
)

__all__ = ["finish_run", "get_model", "get_run", "list_models", "list_runs", "recording",
           "save_model", "start_run"]


# ---------------------------------------------------------------------- runs
def start_run(store: Store, kind: str, config: Mapping[str, Any] | Any,
              data_hash: str | None = None, *, config_path: str | Path | None = None
              ) -> RunRecord:
    """Record a new run with status ``running``.

    Args:
        store: the open store.
        kind: one of :data:`KINDS`.
        config: the run's config: a mapping, or a :class:`~rlbridge.config.Config` (anything
            with ``to_dict()``) or dataclass.  Stored without secrets (:func:`clean_config`).
        data_hash: the hash of the data the run uses.
        config_path: the config file the run was started from (default: ``config.path``
            when the config has one).

    Raises:
        StoreError: an unknown ``kind``, or the store cannot be written.
    """
    if kind not in KINDS:
        raise StoreError(f"unknown run kind {kind!r}; kinds: {', '.join(KINDS)}")
    cleaned = clean_config(config)
    if config_path is None:
        config_path = getattr(config, "path", None)
    where = None if config_path is None else str(config_path)
    with store.transaction() as conn:
        now, run_id = _new_run_id(conn)
        conn.execute(runs_table.insert().values(
            id=run_id, kind=kind, status="running", config=cleaned, data_hash=data_hash,
            started_at=now, config_path=where))
    return RunRecord(run_id, kind, "running", cleaned, data_hash, now, config_path=where,
                     store_url=store.full_url)


def finish_run(store: Store, run: RunRecord | str, status: str = "completed",
               error: str | None = None) -> RunRecord:
    """Mark a running run ``completed`` or ``failed``; what it recorded stays.

    Args:
        store: the open store.
        run: the run or its id.
        status: ``"completed"`` or ``"failed"``.
        error: the error text of a failed run (URL passwords are masked).

    Returns:
        The finished run as stored.

    Raises:
        NotFoundError: no such run.
        StoreError: a bad ``status``, or the run is already finished.
    """
    if status not in _FINAL:
        raise StoreError(f"a run finishes as 'completed' or 'failed', not {status!r}")
    run_id = _run_id(run)
    text = None if error is None else mask_text(str(error))
    with store.transaction() as conn:
        current = _get_run(store, conn, run_id)
        if current.status != "running":
            raise StoreError(f"run {run_id} is already {current.status}")
        now = dt.datetime.now(dt.UTC)
        conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(
            status=status, finished_at=now, error=text))
    return dataclasses.replace(current, status=status, finished_at=now, error=text)


@contextmanager
def recording(store: Store, kind: str, config: Mapping[str, Any] | Any,
              data_hash: str | None = None) -> Iterator[RunRecord]:
    """Start a run, yield it, and finish it: ``completed``, or ``failed`` if the body raises.

    ::

        with recording(store, "backtest", config, bars.digest()) as run:
            record_equity(store, run, index, value, cash)

    The exception is re-raised after the run is marked failed with its text
    (``"KeyboardInterrupt"`` for Ctrl-C); whatever was recorded before it stays.
    """
    run = start_run(store, kind, config, data_hash)
    try:
        yield run
    except BaseException as exc:
        finish_run(store, run, "failed", error_text(exc))
        raise
    finish_run(store, run, "completed")


def get_run(store: Store, run: RunRecord | str) -> RunRecord:
    """The run ``run`` (an id, or a record to read again).

    Raises:
        NotFoundError: no such run; the message lists the most recent runs.
    """
    with store._connection() as conn:
        return _get_run(store, conn, _run_id(run))


def list_runs(store: Store, kind: str | None = None, limit: int | None = 50, *,
              status: str | None = None) -> list[RunRecord]:
    """The most recent runs, newest first, of one ``kind`` and ``status`` (any when None)."""
    t = runs_table.c
    stmt = sa.select(runs_table).order_by(t.started_at.desc(), t.id.desc())
    if kind is not None:
        stmt = stmt.where(t.kind == kind)
    if status is not None:
        stmt = stmt.where(t.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    with store._connection() as conn:
        return [_run_record(row) for row in conn.execute(stmt).mappings()]


# ---------------------------------------------------------------------- models
def save_model(store: Store, run: RunRecord | str | None, *, algo: str, path: str | Path,
               config: Mapping[str, Any] | Any, data_hash: str | None,
               versions: Mapping[str, str | None]) -> ModelRecord:
    """Record a saved model file with what it was trained with.

    Args:
        store: the open store.
        run: the training run (or its id), or None.
        algo: the algorithm name.
        path: the model file; stored as an absolute path.
        config: the training config (stored without secrets).
        data_hash: the hash of the training data.
        versions: library name -> version (None for a library not installed).

    Raises:
        NotFoundError: ``run`` is not in the store.
    """
    run_id = None if run is None else _run_id(run)
    where = str(Path(path).expanduser().resolve())
    cleaned = clean_config(config)
    plain_versions = {str(k): None if v is None else str(v) for k, v in versions.items()}
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        if run_id is not None:
            _get_run(store, conn, run_id)
        key = conn.execute(models_table.insert().values(
            run_id=run_id, algo=algo, path=where, config=cleaned, data_hash=data_hash,
            versions=plain_versions, created_at=now)).inserted_primary_key
        assert key is not None  # an INSERT always has one
        new_id = key[0]
    return ModelRecord(int(new_id), run_id, algo, where, cleaned, data_hash, plain_versions, now)


def get_model(store: Store, ref: int | str | Path) -> ModelRecord:
    """The model with id ``ref`` (an int or its string) or saved at the path ``ref``.

    A path matches with or without the ``.zip`` suffix stable-baselines3 adds; when several
    models were saved at one path, the newest is returned.

    Raises:
        NotFoundError: no such model; the message lists the most recent model ids.
    """
    m = models_table.c
    if isinstance(ref, int) and not isinstance(ref, bool):
        stmt = sa.select(models_table).where(m.id == ref)
    elif isinstance(ref, str) and ref.strip().isdigit():
        stmt = sa.select(models_table).where(m.id == int(ref.strip()))
    else:
        where = Path(str(ref)).expanduser().resolve()
        forms = {str(where), str(where.with_name(where.name + ".zip"))}
        if where.suffix == ".zip":
            forms.add(str(where.with_suffix("")))
        stmt = sa.select(models_table).where(m.path.in_(forms)).order_by(m.id.desc()).limit(1)
    with store._connection() as conn:
        row = conn.execute(stmt).mappings().first()
        if row is not None:
            return _model_record(row)
        recent = conn.execute(sa.select(m.id, m.algo, m.path).order_by(m.id.desc())
                              .limit(_SHOWN)).all()
    if not recent:
        raise NotFoundError(f"no model {str(ref)!r}: the store {store.url} has no models yet; "
                            "train one with `rlbridge train CONFIG`")
    listed = "; ".join(f"{i} ({algo}, {p})" for i, algo, p in recent)
    raise NotFoundError(f"no model {str(ref)!r} in the store {store.url}; "
                        f"the most recent models are: {listed}")


def list_models(store: Store, limit: int | None = 50, *,
                run: RunRecord | str | None = None) -> list[ModelRecord]:
    """The most recent models, newest first; only those the run ``run`` saved when given."""
    stmt = sa.select(models_table).order_by(models_table.c.id.desc())
    if run is not None:
        stmt = stmt.where(models_table.c.run_id == _run_id(run))
    if limit is not None:
        stmt = stmt.limit(limit)
    with store._connection() as conn:
        return [_model_record(row) for row in conn.execute(stmt).mappings()]


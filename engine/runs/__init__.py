"""Runs and models in the store: what was run, on which data, what it traded and what it was worth.

A run is one train, backtest, walk-forward or live session.  It is started before any work
(status ``running``), receives its equity curve, orders and fills as they happen, and is
finished as ``completed`` or ``failed`` (with the error text).  A failed run keeps everything
recorded before the failure.  A backtest also records its holdings at each close
(:func:`record_positions`) and its benchmark's value beside its equity, so that its report can
be rebuilt from the store alone.  Trained models are saved with the run that produced them, their
config, the hash of the data and the library versions, and found again by id or by file path.

Every write is one transaction: it is saved whole or not at all.  Configs are stored without
secrets: keys naming a secret, password, token or key id are dropped, at any depth, and
passwords in URLs are masked (:func:`rlbridge.redact.clean_config`).

Timestamps are stored as epoch nanoseconds, the convention of the ``bars`` table: a tz-naive
timestamp (a daily session date) as is, a tz-aware one in UTC.  Read back, a series whose
timestamps all fall on midnight is a tz-naive index of dates; any other is a UTC index.

The package's modules: :mod:`~rlbridge.runs.records` (runs and models),
:mod:`~rlbridge.runs.series` (equity, holdings, benchmark, summaries),
:mod:`~rlbridge.runs.trades` (orders and fills), :mod:`~rlbridge.runs.compare` (runs side by
side and against a baseline).  Import every name from ``rlbridge.runs``.
"""

from __future__ import annotations

from ..redact import clean_config
from ._base import KINDS, ModelRecord, RunRecord, error_text
from .compare import ComparisonError, RunComparison, compare_runs
from .records import (
    finish_run,
    get_model,
    get_run,
    list_models,
    list_runs,
    recording,
    save_model,
    start_run,
)
from .series import (
    EquitySpan,
    equity_spans,
    record_equity,
    record_positions,
    run_benchmark,
    run_equity,
    run_positions,
)
from .trades import record_fills, record_orders, run_fills, run_orders, trade_counts, update_order

__all__ = [
    "KINDS", "ModelRecord", "RunRecord", "clean_config", "error_text", "finish_run", "get_model",
    "get_run", "list_models", "list_runs", "record_equity", "record_fills", "record_orders",
    "record_positions", "recording", "run_benchmark", "run_equity", "run_fills", "run_orders",
    "run_positions", "save_model", "start_run", "update_order",
    # summaries for browsing and comparing runs
    "ComparisonError", "EquitySpan", "RunComparison", "compare_runs", "equity_spans",
    "trade_counts",
]

_error_text = error_text  # the name engine/train.py imports

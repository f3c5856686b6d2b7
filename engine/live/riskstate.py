"""The kill switch's memory across live runs: its peak, its session reference and its halt.

A live deployment runs as many processes (``rlbridge live --once`` each morning, restarts after a
crash), while the kill switch (:class:`rlbridge.risk.RiskGuard`) measures the drawdown from the
deployment's peak and the daily loss from the previous session's close.  Its state is therefore
kept in the store, under the deployment's id, and taken back when the next run starts.  A halt
stays: a deployment the kill switch stopped sends nothing until the halt is cleared on purpose
(``rlbridge live CONFIG --reset-halt``), which also starts the drawdown afresh.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..schema import meta_table

if TYPE_CHECKING:
    from ..risk import RiskGuard
    from ..store import Store


def _key(deployment: str) -> str:
    return f"live:{deployment}:risk"


def load(store: Store, deployment: str) -> dict[str, Any] | None:
    """The saved state of ``deployment``'s kill switch, or None."""
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(meta_table.c.value).where(
            meta_table.c.key == _key(deployment))).scalar_one_or_none()
    return None if text is None else dict(json.loads(text))


def save(store: Store, deployment: str, guard: RiskGuard) -> None:
    """Keep ``guard``'s kill switch (peak, session reference, halt) for the next run."""
    switch = guard.kill_switch
    halted = guard.halted
    state = {
        "peak": switch.peak, "reference": switch.reference, "last": switch._last,
        "session": None if switch._session is None else str(switch._session),
        "halted": None if halted is None else {"time": str(halted.time),
                                               "reason": halted.reason},
    }
    with store.transaction() as conn:
        conn.execute(meta_table.delete().where(meta_table.c.key == _key(deployment)))
        conn.execute(meta_table.insert().values(key=_key(deployment), value=json.dumps(state)))


def restore(guard: RiskGuard, state: dict[str, Any]) -> None:
    """Give ``guard`` (just started) the state a previous run saved."""
    import pandas as pd

    from ..risk import Halt

    switch = guard.kill_switch
    switch.peak = state.get("peak")
    switch.reference = state.get("reference")
    switch._last = state.get("last")
    session = state.get("session")
    switch._session = None if session is None else pd.Timestamp(session)
    halted = state.get("halted")
    if halted is not None:
        guard.halted = Halt(pd.Timestamp(halted["time"]), -1, str(halted["reason"]))


def clear_halt(store: Store, deployment: str) -> bool:
    """Forget a halt and the peak behind it: the kill switch measures afresh from the next run's
    value.  True when there was a halt."""
    state = load(store, deployment)
    with store.transaction() as conn:
        conn.execute(meta_table.delete().where(meta_table.c.key == _key(deployment)))
    return state is not None and state.get("halted") is not None

"""The live runner: one decision cycle after each bar, journaled, sent once, followed to fills.

A cycle (:meth:`LiveRunner.cycle`):

1. **reconcile**: every open journal entry is looked up at the broker by its client order id;
   new fills are recorded (the difference from what the journal holds, so none is lost or
   counted twice) and the strategy's ``on_fill`` hears of them; an intent whose bar has passed
   without reaching the broker expires (a stale order is never sent);
2. **decide**: unless the journal already holds this bar's decision (a restart), the strategy
   runs on a ``BarContext`` built from the bars up to the decision bar and the broker's
   positions and cash, exactly as in a backtest; its orders pass the ``check_order`` risk hooks;
3. **journal**: the accepted orders are written to the store, with deterministic client order
   ids, before anything is sent;
4. **send**: each pending entry of the bar goes to the broker; a duplicate (the broker has it
   already), a timeout or a 5xx is resolved by looking the order up by its client id before any
   retry;
5. **follow**: the bar's orders are polled until they are final or the follow time is up.

The runner owns no market logic: sizing is :class:`~rlbridge.context.EngineContext`'s, as in
every engine; the broker fills.
"""

from __future__ import annotations

import gc
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..context import EngineContext, RunSpec
from ..errors import BrokerError, ConfigError, DuplicateOrderError, TransientBrokerError
from .clock import Decision
from .journal import DRY_RUN, EXPIRED, Entry, Journal, deployment_id, id_prefix, id_symbol

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Config
    from ..interfaces import Bars, Broker, BrokerOrder, CostModel, Fill, Order, Strategy
    from ..manager import RLBridgePluginManager
    from ..store import Store


@dataclass
class Session:
    """What a broker may read of the live run (the ``sim`` broker fills from it)."""

    config: Config
    bars: Bars
    cost_model: CostModel
    journal: Journal
    now: Callable[[], pd.Timestamp]


class LiveContext(EngineContext):
    """The strategy API on the broker's positions and cash at the decision bar.

    Features are computed on demand for the rows a strategy reads
    (:meth:`~rlbridge.features.FeaturePipeline.compute_tail`), bit for bit what a backtest
    computes over the whole history, at a cost that does not grow with the history.
    """

    def __init__(self, spec: RunSpec, t: int, holdings: np.ndarray, cash: float,
                 pipeline: Any = None) -> None:
        super().__init__(spec)
        self.t = t
        self._holdings = holdings
        self._cash = float(cash)
        self._pipeline = pipeline
        self._features: dict[int, np.ndarray] = {}

    @property
    def cash(self) -> float:
        return self._cash

    def holdings(self) -> np.ndarray:
        return self._holdings

    def features(self, n: int) -> np.ndarray:
        """``[n, N, F]`` raw features up to and including the decision bar."""
        if self._pipeline is None:
            return super().features(n)
        rows = max(0, min(int(n), self.t + 1))
        if rows not in self._features:
            bars = self.spec.bars
            if len(bars) > self.t + 1:  # a replay: the panel goes on past the decision bar
                bars = type(bars)._checked_already(bars.index[:self.t + 1], bars.symbols,
                                                   bars.values[:self.t + 1])
            self._features[rows] = self._pipeline.compute_tail(bars, rows)
        return self._features[rows]

    def _send(self, order: Order, asset: int) -> None:
        """Orders are collected (``self.orders``); the runner journals and sends them."""


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    bar: Any
    decided: bool
    orders: list[Entry] = field(default_factory=list)
    sent: int = 0
    fills: list[Fill] = field(default_factory=list)
    rejections: list[Any] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        from ..data import format_stamp

        return {"bar": format_stamp(self.bar), "decided": self.decided,
                "orders": [{"client_order_id": e.client_order_id, "symbol": e.symbol,
                            "quantity": e.quantity, "status": e.status} for e in self.orders],
                "sent": self.sent, "fills": len(self.fills),
                "rejections": [{"symbol": r.order.symbol, "quantity": r.order.quantity,
                                "reason": r.reason} for r in self.rejections],
                "expired": self.expired, "value": self.value}


class LiveRunner:
    """Runs ``config``'s strategy against ``broker``, one cycle per bar.

    Args:
        config: needs ``[data]``, ``[strategy]``; ``[features]``, ``[costs]``, ``[risk]`` are
            used when present.
        broker: the connected-to-be broker (a ``register_brokers`` plugin instance).
        broker_name: its registry name (part of the deployment id).
        store: the journal's store.
        pm: the plugin manager (risk hooks, observers).
        dry_run: compute and journal the orders (as ``dry_run``) without sending them.
        live_money: allow a broker that trades real money.
        now: the clock (tz-aware timestamps); default the system's UTC time.
        follow_seconds: how long a cycle polls its orders for fills.
        retries: attempts to send one order when the outcome stays unknown.
        origin: the bar ``bar_index`` counts from (``[backtest] start``), so schedules such as
            "rebalance every 21 bars" are the same live, after a restart and in a backtest.
    """

    def __init__(self, config: Config, broker: Broker, broker_name: str, store: Store,
                 pm: RLBridgePluginManager, *, dry_run: bool = False, live_money: bool = False,
                 now: Callable[[], pd.Timestamp] | None = None, follow_seconds: float = 0.0,
                 poll_seconds: float = 0.5, retries: int = 3, backoff_seconds: float = 0.5,
                 sleep: Callable[[float], None] = _time.sleep, origin: int = 0) -> None:
        if config.data is None or config.strategy is None:
            raise ConfigError("live trading needs [data] and [strategy] tables", path=config.path,
                              key="data" if config.data is None else "strategy")
        if not getattr(broker, "paper", True) and not live_money:
            raise ConfigError(f"broker {broker_name!r} is set to trade real money ([broker] paper "
                              f"= false): pass --live-money to confirm, or set paper = true",
                              path=config.path, key="broker.paper")
        self.config, self.broker, self.broker_name = config, broker, broker_name
        self.store, self.pm = store, pm
        self.dry_run, self.follow_seconds, self.poll_seconds = dry_run, follow_seconds, poll_seconds
        self.retries, self.backoff_seconds, self._sleep = retries, backoff_seconds, sleep
        self.now = now or (lambda: __import__("pandas").Timestamp.now(tz="UTC"))
        self.deployment = deployment_id(config, broker_name)
        self.origin = origin
        self.strategy: Strategy | None = None
        self.run: Any = None
        self.journal: Journal | None = None
        self._session: Session | None = None
        self._ctx: LiveContext | None = None
        self._pipeline: Any = None
        self._sent: list[tuple[Entry, BrokerOrder]] = []  # sends not journaled yet

    # ------------------------------------------------------------------ lifecycle
    def open(self, bars: Bars) -> None:
        """Record the live run, build the strategy, connect the broker and start the
        strategy on the latest bar (on a replaying broker: on the first decision's bar)."""
        from ..costs import create_cost_model
        from ..runs import start_run

        self.run = start_run(self.store, "live", self.config, bars.digest())
        self.journal = Journal(self.store, self.run.id, self.deployment)
        self._session = Session(self.config, bars, create_cost_model(
            self.config.costs, self.pm, path=self.config.path), self.journal, self.now)
        assert self.config.strategy is not None
        self.strategy = self.pm.registries["strategies"].create(
            self.config.strategy.name, self.config.strategy.params, where="strategy",
            path=self.config.path)
        risk = self.config.risk
        from ..risk import KILL_SWITCH_KEYS, guard

        if risk is not None and any(getattr(risk, k, None) is not None for k in KILL_SWITCH_KEYS):
            self.strategy = guard(self.strategy, risk)
        self.pm.hook.before_run(run=self.run)
        self.broker.connect(self._session)
        if len(bars) and not getattr(self.broker, "replays", False):
            # the strategy starts now (a policy loads), not inside the first decision; its
            # bars end now, so it sees nothing a decision could not.  A replay (the sim
            # broker) starts it on its first decision's bar, as a backtest does
            self._context(len(bars) - 1)

    def close(self, error: BaseException | None = None) -> None:
        """Stop the strategy and the broker; finish the run (failed with ``error``)."""
        from ..runs import error_text, finish_run

        try:
            if self.strategy is not None and self._ctx is not None and error is None:
                self.strategy.stop(self._ctx)
        finally:
            self.broker.close()
            if self.run is not None:
                status = "failed" if error is not None else "completed"
                self.run = finish_run(self.store, self.run, status,
                                      error_text(error) if error is not None else None)
                if error is not None:
                    self.pm.hook.on_run_error(run=self.run, error=error)
                else:
                    self.pm.hook.after_run(run=self.run, result=None)

    def update_bars(self, bars: Bars) -> None:
        """Give the next cycles newer bars (the same symbols)."""
        assert self._session is not None
        self._session.bars = bars

    # ------------------------------------------------------------------ one cycle
    def cycle(self, decision: Decision) -> CycleReport:
        """Reconcile, decide on ``decision.t``, journal, send and follow (see the module)."""
        assert self._session is not None and self.journal is not None
        bars = self._session.bars
        when = self.now()
        found: list[tuple[Entry, BrokerOrder]] = []
        fills: list[Fill] = []
        expired: list[str] = []
        rejections: list[Any] = []
        decided: list[Entry] = []
        value = None
        sent = 0
        self._sent = []
        collecting = gc.isenabled()
        gc.disable()  # no collector pause between the bar and the sends: it runs after them
        try:
            # the previous orders are looked up first (the strategy hears of their fills
            # before it decides, as in a backtest), but their fills are journaled with the
            # bar's sends, after them: the orders go out sooner, and a crash before that
            # write loses nothing (the next look finds the same fills again)
            found, expired = self._look(decision.bar)
            fills = [f for f in self.journal.fills_from(found, when) if f is not None]
            decided = self.journal.entries(bar=decision.bar)  # a restart finds them here
            if not decided:
                ctx = self._context(decision.t)
                assert self.strategy is not None
                for fill in fills:
                    self.strategy.on_fill(ctx, fill)
                self.strategy.on_bar(ctx)
                self._save_risk()
                value, rejections = ctx.value, ctx.rejections
                prefix = id_prefix(self.deployment, decision.bar)
                orders = [replace(o, kind=decision.order_kind, created=decision.bar,
                                  client_order_id=prefix + id_symbol(o.symbol))
                          for o in ctx.orders]
                if self.dry_run:
                    from ..runs import record_orders

                    record_orders(self.store, self.run.id, [_anonymous(o) for o in orders],
                                  status=DRY_RUN)
                    return CycleReport(decision.bar, True, [], 0, fills, rejections, expired,
                                       value)
                decided = self.journal.intend(orders)
            looked = {entry.client_order_id for entry, _ in found}  # at the broker already
            for entry in decided:
                if entry.status == "pending" and entry.client_order_id not in looked:
                    sent += self.send(entry, record=False)
        finally:  # one commit for the looks and the bar's sends; a crash before it leaves
            # the sends pending, and a pending entry is looked up by its client id before
            # anything is resent
            if collecting:
                gc.enable()
            fills = self._record(found + self._sent, when)
        if value is not None:  # a record only: written once the orders are out
            self._record_value(bars, decision.t, ctx)
        self._checkpoint()
        fills += self.follow(decision.bar)
        return CycleReport(decision.bar, bool(decided), self.journal.entries(bar=decision.bar),
                           sent, fills, rejections, expired, value)

    def _context(self, t: int) -> LiveContext:
        assert self._session is not None
        session = self._session
        bars = session.bars
        names: tuple[str, ...] = ()
        config = self.config
        if config.features is not None and config.features.transforms:
            if self._pipeline is None:  # built once: the config does not change during a run
                from ..features import FeaturePipeline

                self._pipeline = FeaturePipeline.from_config(config.features, self.pm,
                                                             path=config.path)
            names = self._pipeline.feature_names
        from ..risk import order_check

        check_order = order_check(self.pm, config.risk)
        assert config.strategy is not None
        spec = RunSpec(bars=bars, start=min(self.origin, t), end=t, cash=1.0,
                       cost_model=session.cost_model, feature_names=tuple(names),
                       params=config.strategy.params,
                       feature_window=config.features.window if config.features else None,
                       check_order=check_order)
        held = self.broker.positions()
        unknown = sorted(set(held) - set(bars.symbols))
        holdings = np.array([float(held.get(s, 0.0)) for s in bars.symbols])
        ctx = LiveContext(spec, t, holdings, self.broker.account().cash, self._pipeline)
        ctx.foreign_positions = {s: held[s] for s in unknown}  # type: ignore[attr-defined]
        if self._ctx is None:
            assert self.strategy is not None
            self.strategy.start(ctx)
            self._restore_risk()
        self._ctx = ctx
        return ctx

    # ------------------------------------------------------------------ the kill switch
    def _restore_risk(self) -> None:
        """Give the kill switch the deployment's peak, session reference and halt."""
        from ..risk import RiskGuard
        from . import riskstate

        if isinstance(self.strategy, RiskGuard):
            state = riskstate.load(self.store, self.deployment)
            if state is not None:
                riskstate.restore(self.strategy, state)

    def _save_risk(self) -> None:
        from ..risk import RiskGuard
        from . import riskstate

        if isinstance(self.strategy, RiskGuard) and not self.dry_run:
            riskstate.save(self.store, self.deployment, self.strategy)

    @property
    def halted(self) -> Any:
        """The kill switch's halt (time, reason) when it has stopped this deployment."""
        return getattr(self.strategy, "halted", None)

    def _checkpoint(self) -> None:
        """Fold SQLite's write-ahead log back now, once the orders are out, so that the
        automatic checkpoint never lands inside the next decision's journal commit."""
        engine = self.store.engine
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _record_value(self, bars: Bars, t: int, ctx: LiveContext) -> None:
        from ..runs import record_equity

        record_equity(self.store, self.run, bars.index[t:t + 1], [ctx.value], [ctx.cash])

    # ------------------------------------------------------------------ the broker
    def reconcile(self, current_bar: Any = None) -> tuple[list[Fill], list[str]]:
        """Bring every open entry up to the broker's view; expire stale unsent intents.

        Returns:
            ``(new fills, client ids expired)``.
        """
        found, expired = self._look(current_bar)
        return self._record(found), expired

    def _look(self, current_bar: Any = None) -> tuple[list[tuple[Entry, BrokerOrder]], list[str]]:
        """The broker's view of every open entry; stale unsent intents expire."""
        assert self.journal is not None
        expired, found = [], []
        for entry in self.journal.entries(states=("pending", "new", "partially_filled")):
            seen = self._lookup(entry.client_order_id)
            if seen is None:
                if entry.status == "pending" and (current_bar is None or entry.bar != current_bar):
                    self.journal.mark(entry.client_order_id, EXPIRED,
                                      reason="its bar passed before it reached the broker")
                    expired.append(entry.client_order_id)
                continue
            found.append((entry, seen))
        return found, expired

    def _record(self, updates: list[tuple[Entry, BrokerOrder]], when: Any = None) -> list[Fill]:
        """Journal the broker's views in one transaction (one commit per look at the
        orders, not one per order); observers hear of the new fills."""
        assert self.journal is not None
        fills = [f for f in self.journal.apply_all(updates, self.now() if when is None else when)
                 if f is not None]
        for fill in fills:
            self.pm.hook.after_fill(run=self.run, fill=fill)
        return fills

    def send(self, entry: Entry, *, record: bool = True) -> int:
        """Send one pending entry; 1 when the broker has it afterwards, else 0.

        With ``record=False`` the broker's answer waits in ``self._sent`` for the cycle to
        journal all of the bar's answers at once (fills included, reported and observed).
        """
        assert self.journal is not None
        order = entry.order()
        seen: BrokerOrder | None
        for attempt in range(self.retries):
            try:
                seen = self.broker.submit(order)
            except DuplicateOrderError:
                seen = self._lookup(entry.client_order_id)
                if seen is None:
                    raise BrokerError(f"the broker refused {entry.client_order_id} as a "
                                      "duplicate but does not have it") from None
            except TransientBrokerError:
                seen = self._lookup(entry.client_order_id)
                if seen is None:
                    self._sleep(self.backoff_seconds * (2 ** attempt))
                    continue
            except BrokerError as exc:
                self.journal.mark(entry.client_order_id, "rejected", reason=str(exc))
                return 0
            if record:
                self._record([(entry, seen)])
            else:
                self._sent.append((entry, seen))
            return 1
        return 0  # still pending: the next cycle of the same bar (or reconcile) resolves it

    def follow(self, bar: Any) -> list[Fill]:
        """Poll the bar's open orders until they are final or ``follow_seconds`` pass."""
        assert self.journal is not None
        fills: list[Fill] = []
        deadline = _time.monotonic() + self.follow_seconds
        while True:
            waiting = [e for e in self.journal.entries(bar=bar) if e.status in
                       ("new", "partially_filled")]
            looked = [(entry, self._lookup(entry.client_order_id)) for entry in waiting]
            fills += self._record([(entry, seen) for entry, seen in looked if seen is not None])
            left = deadline - _time.monotonic()
            if not waiting or left <= 0:
                return fills
            # a broker with an order-update stream wakes the loop as soon as something happens
            wait = getattr(self.broker, "wait_for_update", None)
            if wait is not None:
                wait(min(self.poll_seconds, left))
            else:
                self._sleep(self.poll_seconds)

    def _lookup(self, client_id: str) -> BrokerOrder | None:
        for attempt in range(self.retries):
            try:
                return self.broker.get_order(client_id)
            except TransientBrokerError:
                self._sleep(self.backoff_seconds * (2 ** attempt))
        raise TransientBrokerError(f"the broker did not answer about {client_id} after "
                                   f"{self.retries} attempts")

    def positions_match(self) -> dict[str, tuple[float, float]]:
        """Symbols where the journal's fills and the broker's positions disagree."""
        assert self.journal is not None
        mine = self.journal.positions()
        theirs = {s: float(q) for s, q in self.broker.positions().items() if abs(q) > 1e-9}
        return {s: (mine.get(s, 0.0), theirs.get(s, 0.0)) for s in set(mine) | set(theirs)
                if abs(mine.get(s, 0.0) - theirs.get(s, 0.0)) > 1e-6}


def _anonymous(order: Order) -> Order:
    return replace(order, client_order_id=None)

"""``rlbridge.live.live(config, ...)``: what ``rlbridge live`` runs.

On a broker with a market clock (``alpaca``, ``ib``): ``once`` runs one cycle on the latest
complete bar (daily bars: before the session's open, with market-on-open orders), else cycles
run on each new bar until interrupted: a broker that offers ``wait_for_bar(timeout) -> bool``
(a live bar stream) wakes the loop as a bar closes, having written it where ``[data]`` reads it;
otherwise the loop looks for new bars every minute.  On the ``sim`` broker the bars are the
clock: ``once`` decides on the last recorded bar (its orders fill when a later bar is
recorded), else the whole ``[backtest] start .. end`` period (or the whole data) is replayed
cycle by cycle, which gives the fills of a ``native`` backtest through the live machinery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .clock import MarketClosed, bar_decision, decide_at
from .runner import CycleReport, LiveRunner

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Config
    from ..manager import RLBridgePluginManager
    from ..store import Store


def live(
    config: Config,
    broker: str | None = None,
    pm: RLBridgePluginManager | None = None,
    *,
    store: Store | None = None,
    once: bool = False,
    dry_run: bool = False,
    live_money: bool = False,
    now: Callable[[], pd.Timestamp] | None = None,
    follow_seconds: float = 0.0,
    max_cycles: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_cycle: Callable[[CycleReport], None] | None = None,
    reset_halt: bool = False,
    freeze_gc: bool = False,
) -> list[CycleReport]:
    """Trade ``config``'s strategy on ``broker`` (default ``[broker] name``).

    Args:
        config: needs ``[data]`` and ``[strategy]``; ``[broker]`` names the broker and its
            options.
        broker: overrides ``[broker] name``.
        pm: the plugin manager (default: a new one).
        store: the store of the bars and the journal (default: :func:`open_store`).
        once: one cycle, then return.
        dry_run: compute and record the orders without sending them.
        live_money: confirm trading on a broker set up for real money.
        now: the clock (tz-aware); default the system clock.
        follow_seconds: how long each cycle waits for its orders' fills.
        max_cycles: stop after this many cycles (a clocked broker otherwise runs until
            interrupted).
        sleep: how the loop waits (tests pass a fake).
        on_cycle: called with each cycle's report.
        reset_halt: clear a halt of the kill switch (``[risk] max_daily_loss`` or
            ``max_drawdown``) kept from an earlier run, so the strategy trades again.
        freeze_gc: once set up (the policy and the libraries loaded), move everything to the
            garbage collector's permanent generation, so that its full passes do not walk it
            during a decision (what ``rlbridge live`` does: a process of its own).

    Returns:
        The report of every cycle run.

    Raises:
        MarketClosed: ``once`` on a clocked broker when the market takes no orders now.
        ConfigError: an unknown broker or a bad option; real money without ``live_money``.
    """
    import pandas as pd

    from .bars import LiveBars

    if pm is None:
        from ..manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    if store is None:
        from ..store import open_store

        store = open_store(config=config)
    name = broker or (config.broker.name if config.broker is not None else "sim")
    options = _broker_options(config, name, pm)
    instance = pm.registries["brokers"].create(name, options, where="broker", path=config.path)
    # a broker with a market clock (Alpaca's) decides the time: local clock drift cannot
    # push a market-on-open order past the open
    clock = now or getattr(instance, "market_time", None) or (lambda: pd.Timestamp.now(tz="UTC"))
    source = LiveBars(config, pm, store_url=store.full_url)
    try:
        bars = source.load()
        runner = LiveRunner(config, instance, name, store, pm, dry_run=dry_run,
                            live_money=live_money, now=clock, follow_seconds=follow_seconds,
                            sleep=sleep, origin=_origin(config, bars))
    except BaseException:
        source.close()
        raise
    if reset_halt:
        from .riskstate import clear_halt

        clear_halt(store, runner.deployment)
    calendar = (config.data.options.get("calendar") or "XNYS") if config.data else "XNYS"
    reports: list[CycleReport] = []

    def run(decision: Any) -> None:
        report = runner.cycle(decision)
        reports.append(report)
        if on_cycle is not None:
            on_cycle(report)

    try:
        runner.open(bars)  # inside: a broker that fails to connect still closes the run
        if freeze_gc:
            import gc

            gc.collect()
            gc.freeze()
        if getattr(instance, "replays", False):
            for t in _replay_range(config, bars, once):
                run(bar_decision(bars, t))
                if max_cycles is not None and len(reports) >= max_cycles:
                    break
        elif once:
            run(decide_at(bars, clock(), calendar))
        else:
            # a broker with a live bar stream wakes the loop when a bar closes (and has put it
            # where the feed reads); otherwise the loop looks again every minute
            wait = getattr(instance, "wait_for_bar", None)
            while max_cycles is None or len(reports) < max_cycles:
                try:
                    decision = decide_at(bars, clock(), calendar)
                except MarketClosed:
                    decision = None
                if decision is not None and (not reports or decision.bar != reports[-1].bar):
                    run(decision)
                    continue
                if wait is not None:
                    wait(60.0)
                else:
                    sleep(60.0)
                if source.refresh():  # only the bars from the last one held on are read
                    bars = source.bars
                    runner.update_bars(bars)
    except KeyboardInterrupt:  # Ctrl-C stops a live loop: a normal end, not a failure
        runner.close()
        return reports
    except BaseException as exc:
        runner.close(exc)
        raise
    finally:
        source.close()
    runner.close()
    return reports


def _broker_options(config: Config, name: str, pm: RLBridgePluginManager) -> dict[str, Any]:
    """The ``[broker]`` options for broker ``name``.

    ``[broker]`` may hold the options of several brokers (each broker's endpoints beside
    ``name``), and ``--broker`` may name another broker than the file: ``name`` gets the
    options its own ``Config`` declares (checked as usual) and its defaults for the rest, so
    one file runs on ``sim``, ``alpaca`` and ``ib`` alike.
    """
    import dataclasses

    if config.broker is None:
        return {}
    options = dict(config.broker.options)
    registry = pm.registries["brokers"]
    chosen = registry.info(name, where="broker")
    declared = chosen.options
    if declared is None:
        return options
    keys = {f.name for f in dataclasses.fields(declared) if f.init}
    return {k: v for k, v in options.items() if k in keys}


def _replay_range(config: Config, bars: Any, once: bool) -> range:
    """The decision bars the ``sim`` broker replays."""
    from ..backtesting import decision_range

    if once:
        return range(len(bars) - 1, len(bars))
    settings = config.backtest
    if settings is None:
        if len(bars) < 2:
            raise ConfigError("the sim broker needs at least two bars to replay", key="data")
        return range(0, len(bars))
    start, end = decision_range(bars, settings.start, settings.end, what="backtest")
    return range(start, end + 1)


def _origin(config: Config, bars: Any) -> int:
    """The bar ``bar_index`` 0 is: ``[backtest] start`` when set, else the first bar."""
    import numpy as np

    if config.backtest is None or config.backtest.start is None:
        return 0
    return int(np.searchsorted(bars.index, bars._stamp(config.backtest.start), "left"))

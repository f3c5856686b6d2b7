"""Live bars of the ``ib`` broker: TWS's 5-second real-time bars, from the real ib_insync client
against the TWS emulator, built into the run's bars and written to its store.

Whole bars only reach the store (a bar whose start was missed is left out), with the open of
the first 5-second bar, the highest high, the lowest low, the last close and the summed volume;
``wait_for_bar`` says True once every symbol has the new bar; ``rlbridge.live.live`` on
``[data] feed = "sql"`` decides on each new bar; a dropped connection is subscribed again;
``close`` cancels the subscriptions.  Every test fails on an ib_insync decoder error and on any
ib_insync ERROR record it did not declare.
"""

import concurrent.futures
import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import rlbridge
from rlbridge.config import config_from_mapping
from rlbridge.errors import ConfigError
from rlbridge.interfaces import Bars
from rlbridge.live import Journal, deployment_id, live
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.ib import IBBroker, IBConfig
from rlbridge.plugins.brokers.ib.bars import Aggregator, LiveBar, run_interval
from rlbridge.store import open_store

pytestmark = pytest.mark.usefixtures("ib_log")  # tests/conftest.py

SYMBOLS = ["SPY", "AGG"]
UTC = dt.UTC
#: 2020-09-30 10:00 New York: the session is open
T0 = dt.datetime(2020, 9, 30, 14, 0, tzinfo=UTC)
DROPPED = r"Peer closed connection"


class BuyOne(rlbridge.Strategy):
    """One share of every symbol on every bar: each cycle sends one order per symbol."""

    def on_bar(self, ctx):
        for symbol in ctx.symbols:
            ctx.order(symbol, 1)


class Plugin:
    @rlbridge.hookimpl
    def register_strategies(self, register):
        register("buy_one", BuyOne)


PM = make_plugin_manager(entrypoints=False, warn=False)
PM.register(Plugin(), name="buy-one")


def config(emulator, **data):
    return config_from_mapping({
        "data": {"feed": "sql", "symbols": SYMBOLS, "interval": "1m", **data},
        "costs": {"model": "zero"},
        "strategy": {"name": "buy_one"},
        "broker": {"name": "ib", "port": emulator.port, "timeout": 2.0}}, pm=PM)


def history(store, minutes=31, end=T0):
    """1-minute bars of SYMBOLS up to ``end`` (its start) in the store; the panel."""
    index = pd.date_range(end=pd.Timestamp(end), periods=minutes, freq="1min")
    values = np.empty((minutes, len(SYMBOLS), 5))
    for n in range(len(SYMBOLS)):
        close = 100.0 + 10 * n + np.arange(minutes) * 0.01
        values[:, n] = np.column_stack([close, close + 0.05, close - 0.05, close,
                                        np.full(minutes, 1000.0)])
    bars = Bars(index, tuple(SYMBOLS), values)
    for symbol in SYMBOLS:
        store.write_bars(bars.select([symbol]), interval="1m")
    return bars


def push_minute(emulator, symbol, start, base, *, first=0):
    """The 5-second bars of the minute from ``start``, from bar ``first``; the minute bar
    they make as ``(open, high, low, close, volume)``."""
    rows = []
    for k in range(first, 12):
        o, c = base + 0.01 * k, base + 0.01 * (k + 1)
        rows.append((o, max(o, c) + 0.02 * (k % 3), min(o, c) - 0.03 * (k % 2), c, 10.0 + k))
        emulator.push_bar(symbol, open=rows[-1][0], high=rows[-1][1], low=rows[-1][2],
                          close=rows[-1][3], volume=rows[-1][4],
                          time=start + dt.timedelta(seconds=5 * k))
    return (rows[0][0], max(r[1] for r in rows), min(r[2] for r in rows), rows[-1][3],
            sum(r[4] for r in rows))


def stored(store, symbol, interval="1m"):
    frame = store.read_bars([symbol], interval=interval)[symbol]
    return {t.to_pydatetime(): tuple(row) for t, row in
            zip(frame.index, frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                strict=True)}


def subscriptions(emulator):
    return emulator.messages("in", "reqRealTimeBars")


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'live.db'}") as s:
        yield s


@pytest.fixture
def broker(tws_emulator, store):
    """A connected ib broker of a run on SYMBOLS at 1 minute, writing to ``store``."""
    bars = history(store)
    session = SimpleNamespace(config=config(tws_emulator), bars=bars,
                              journal=SimpleNamespace(store=store))
    b = IBBroker(IBConfig(port=tws_emulator.port, timeout=2.0))
    b.connect(session)
    yield b
    b.close()


# ---------------------------------------------------------------------- building bars
def test_five_second_bars_make_whole_bars_of_the_interval():
    agg = Aggregator("SPY", 60)
    start = int(T0.timestamp())
    # joined inside a minute: that minute is left out, even when its last bar arrives
    assert agg.add(start - 10, 1, 2, 0.5, 1.5, 3) == []
    assert agg.add(start - 5, 1.5, 2, 1, 1.8, 3) == []
    assert agg.add(start, 10, 11, 9, 10.5, 1) == []
    assert agg.add(start + 5, 10.5, 12, 10, 11, -1) == []  # MIDPOINT: no volume
    assert agg.add(start + 5, 99, 99, 99, 99, 99) == []  # the same 5 seconds again: ignored
    # a gap: the next minute's first bar completes this one
    assert agg.add(start + 60, 11, 11.5, 8, 9, 4) == [LiveBar("SPY", start, 10, 12, 9, 11, 1)]
    assert agg.add(start + 115, 9, 9.5, 7, 8, 2) == [LiveBar("SPY", start + 60, 11, 11.5, 7, 8, 6)]


def test_the_interval_is_the_one_the_data_feed_reads(tws_emulator):
    bars = SimpleNamespace(index=pd.DatetimeIndex([T0, T0 + dt.timedelta(minutes=15)]))
    assert run_interval(config(tws_emulator), bars) == (60, "1m")
    assert run_interval(config(tws_emulator, interval="5m"), bars) == (300, "5m")
    assert run_interval(config(tws_emulator, interval="1d"), bars) is None
    ib_feed = SimpleNamespace(data=SimpleNamespace(options={"bar_size": "1 hour"}))
    assert run_interval(ib_feed, bars) == (3600, "1h")
    csv = SimpleNamespace(data=SimpleNamespace(options={}))
    assert run_interval(csv, bars) == (900, "15m")
    with pytest.raises(ConfigError, match="not a multiple of 5 seconds"):
        run_interval(config(tws_emulator, interval="7s"), bars)


# ---------------------------------------------------------------------- the broker
def test_pushed_bars_reach_the_store_and_wake_the_wait(tws_emulator, broker, store):
    before = {s: stored(store, s) for s in SYMBOLS}
    assert broker.wait_for_bar(0.05) is False  # subscribed; no bar yet
    asked = subscriptions(tws_emulator)
    assert sorted(symbol for m in asked for symbol in SYMBOLS if symbol in m[3]) == \
        sorted(SYMBOLS) and all("TRADES" in m[3] for m in asked)
    minute = T0 + dt.timedelta(minutes=1)
    # the subscription starts half-way through 14:00: that minute is not whole
    spy0 = push_minute(tws_emulator, "SPY", T0, 200.0, first=6)
    made = {s: push_minute(tws_emulator, s, minute, 300.0 + 10 * n)
            for n, s in enumerate(SYMBOLS)}
    assert spy0  # pushed, and never stored
    assert broker.wait_for_bar(5.0) is True
    for symbol in SYMBOLS:
        after = stored(store, symbol)
        new = {t: v for t, v in after.items() if t not in before[symbol]}
        assert new == {minute: pytest.approx(made[symbol])}
        assert after[T0] == before[symbol][T0]  # the partial minute replaced nothing
    # one symbol's next bar is not the run's next bar; the other's completes it
    later = minute + dt.timedelta(minutes=1)
    push_minute(tws_emulator, "SPY", later, 400.0)
    assert broker.wait_for_bar(0.3) is False
    assert later in stored(store, "SPY")
    push_minute(tws_emulator, "AGG", later, 500.0)
    assert broker.wait_for_bar(5.0) is True
    assert later in stored(store, "AGG")
    assert broker.wait_for_bar(0.05) is False  # nothing new: no second True for one bar
    broker.close()
    cancels = tws_emulator.messages("in", "cancelRealTimeBars")
    assert sorted(int(m[3][2]) for m in cancels) == \
        sorted(int(m[3][2]) for m in subscriptions(tws_emulator))


def test_after_a_dropped_connection_the_next_bar_still_arrives(tws_emulator, broker, store,
                                                              ib_log):
    ib_log.append(DROPPED)
    assert broker.wait_for_bar(0.05) is False
    minute = T0 + dt.timedelta(minutes=1)
    for symbol in SYMBOLS:
        push_minute(tws_emulator, symbol, minute, 300.0)
    assert broker.wait_for_bar(5.0) is True
    assert tws_emulator.disconnect() == 1
    later = minute + dt.timedelta(minutes=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(broker.wait_for_bar, 10.0)
        tws_emulator.wait_until(lambda e: len(subscriptions(e)) == 4 and e.clients, 10.0,
                                "the subscriptions again")
        made = {s: push_minute(tws_emulator, s, later, 600.0) for s in SYMBOLS}
        assert waiting.result(timeout=10.0) is True
    assert tws_emulator.connections_total == 2
    for symbol in SYMBOLS:
        assert stored(store, symbol)[later] == pytest.approx(made[symbol])


def test_bars_missed_before_the_start_and_during_an_outage_come_from_the_history(
        tws_emulator, broker, store, ib_log):
    ib_log.append(DROPPED)

    def minutes(first, count):
        return [T0 + dt.timedelta(minutes=first + k) for k in range(count)]

    def same(got, expected):
        assert sorted(got) == sorted(expected)
        for t, values in expected.items():
            assert got[t] == pytest.approx(values), t
        return True

    def history_bars(symbol, starts, base):  # what reqHistoricalData serves at 1 min
        rows = [(t, base + k, base + k + 0.5, base + k - 0.5, base + k + 0.25, 100.0 + k)
                for k, t in enumerate(starts)]
        tws_emulator.add_bars(symbol, rows, bar_size="1 min")
        return {t: (o, h, low, c, v) for t, o, h, low, c, v in rows}

    # the run's panel ends at 14:00; 14:01 and 14:02 closed before it subscribed
    served = {s: history_bars(s, minutes(1, 2), 300.0 + 10 * n) for n, s in enumerate(SYMBOLS)}
    assert broker.wait_for_bar(0.05) is False
    made = {s: push_minute(tws_emulator, s, T0 + dt.timedelta(minutes=3), 400.0)
            for s in SYMBOLS}
    assert broker.wait_for_bar(5.0) is True
    for symbol in SYMBOLS:
        after = {t: v for t, v in stored(store, symbol).items() if t > T0}
        assert same(after, {**served[symbol], T0 + dt.timedelta(minutes=3): made[symbol]})
    # an outage over 14:04 and 14:05: their bars come from the history once 14:06 streams
    assert tws_emulator.disconnect() == 1
    outage = {s: history_bars(s, minutes(4, 2), 500.0) for s in SYMBOLS}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(broker.wait_for_bar, 10.0)
        tws_emulator.wait_until(lambda e: len(subscriptions(e)) == 4 and e.clients, 10.0,
                                "the subscriptions again")
        made = {s: push_minute(tws_emulator, s, T0 + dt.timedelta(minutes=6), 600.0)
                for s in SYMBOLS}
        assert waiting.result(timeout=10.0) is True
    # the first symbol a whole bar past the last one wakes the run: the other comes next
    for _ in range(20):
        if all(T0 + dt.timedelta(minutes=6) in stored(store, s) for s in SYMBOLS):
            break
        broker.wait_for_bar(0.25)
    for symbol in SYMBOLS:
        after = {t: v for t, v in stored(store, symbol).items()
                 if t > T0 + dt.timedelta(minutes=3)}
        assert same(after, {**outage[symbol], T0 + dt.timedelta(minutes=6): made[symbol]})


def test_daily_bars_stream_nothing_and_the_wait_times_out(tws_emulator, store):
    index = pd.DatetimeIndex(["2020-09-28", "2020-09-29"])
    session = SimpleNamespace(config=config(tws_emulator, interval="1d"),
                              bars=Bars(index, ("SPY",), np.ones((2, 1, 5))),
                              journal=SimpleNamespace(store=store))
    b = IBBroker(IBConfig(port=tws_emulator.port, timeout=2.0))
    b.connect(session)
    try:
        assert b.wait_for_bar(0.05) is False
        assert subscriptions(tws_emulator) == []
    finally:
        b.close()


# ---------------------------------------------------------------------- the live loop
def test_live_decides_on_each_new_bar(tws_emulator, store):
    history(store)
    cfg = config(tws_emulator)
    now = pd.Timestamp("2020-09-30 10:30", tz="America/New_York")
    reports, first = [], concurrent.futures.Future()

    def on_cycle(report):
        reports.append(report)
        if not first.done():
            first.set_result(report)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(live, cfg, pm=PM, store=store, now=lambda: now, max_cycles=2,
                              on_cycle=on_cycle)
        assert first.result(timeout=15.0).bar == pd.Timestamp(T0)
        tws_emulator.wait_until(lambda e: len(subscriptions(e)) == 2, 10.0, "the subscriptions")
        minute = T0 + dt.timedelta(minutes=1)
        for n, symbol in enumerate(SYMBOLS):
            push_minute(tws_emulator, symbol, minute, 300.0 + n)
        done = running.result(timeout=15.0)
    assert [r.bar for r in done] == [pd.Timestamp(T0), pd.Timestamp(minute)]
    assert [r.decided for r in done] == [True, True] and [r.sent for r in done] == [2, 2]
    entries = Journal(store, "-", deployment_id(cfg, "ib")).entries()
    assert sorted(e.client_order_id for e in entries) == \
        sorted(o["order_ref"] for o in tws_emulator.orders)
    assert sorted((e.bar, e.symbol) for e in entries) == sorted(
        (pd.Timestamp(t), s) for t in (T0, minute) for s in SYMBOLS)
    # the run ended: its subscriptions are canceled
    assert len(tws_emulator.messages("in", "cancelRealTimeBars")) == 2

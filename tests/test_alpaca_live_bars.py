"""Live minute bars of the ``alpaca`` broker: alpaca-py's market-data streams against the emulator.

Streamed bars land in the store the run's ``[data] feed = "sql"`` reads, a minute at a time once
every symbol's bar is in; ``rlbridge live`` (not ``--once``) decides on each of them; a dropped
stream reconnects; closing the broker ends the stream threads.
"""

import queue
import threading

import numpy as np
import pandas as pd
import pytest

from rlbridge.config import config_from_mapping
from rlbridge.data import load_bars
from rlbridge.interfaces import Bars
from rlbridge.live import Journal, client_order_id, deployment_id, live
from rlbridge.live.runner import Session
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.alpaca import AlpacaBroker, AlpacaConfig
from rlbridge.plugins.brokers.alpaca.bars import LiveBars
from rlbridge.plugins.brokers.alpaca.config import Credentials
from rlbridge.store import open_store

SYMBOLS = ["SPY", "AGG"]
NOW = pd.Timestamp("2024-03-05 15:05", tz="UTC")  # 10:05 in New York: the session is open
HISTORY = pd.date_range("2024-03-05 14:40", "2024-03-05 14:59", freq="1min", tz="UTC")
PM = make_plugin_manager(entrypoints=False, warn=False)
WAIT = 10.0  # seconds any wait of these tests may take at most


def stream_threads():
    return [t for t in threading.enumerate() if t.name.startswith("rlbridge-alpaca-bars")]


@pytest.fixture
def emulator(alpaca_emulator, monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", alpaca_emulator.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", alpaca_emulator.secret_key)
    alpaca_emulator.clock.set(NOW.to_pydatetime())
    return alpaca_emulator


@pytest.fixture
def store(tmp_path):
    """A store holding 1-minute bars of SPY and AGG from 14:40 to 14:59."""
    store = open_store(f"sqlite:///{tmp_path / 'live.db'}")
    base = np.array([[100.0, 101.0, 99.0, 100.5, 1000.0], [50.0, 50.5, 49.5, 50.2, 500.0]])
    values = np.stack([base + 0.01 * i for i in range(len(HISTORY))])
    store.write_bars(Bars(HISTORY, tuple(SYMBOLS), values), interval="1m")
    yield store
    store.close()


def agent(emulator):
    return config_from_mapping({
        "data": {"feed": "sql", "symbols": SYMBOLS, "interval": "1m"},
        "strategy": {"name": "equal_weight"},
        "broker": {"name": "alpaca", "trading_url": emulator.trading_url,
                   "data_stream_url": emulator.data_stream_url, "timeout": 2.0,
                   "retry_wait": 0.05, "stream": False},
    }, pm=PM)


def push(emulator, when, prices):
    """Push one bar per symbol at ``when``; ``prices`` maps symbol -> (o, h, l, c, v)."""
    for symbol, (o, h, low, c, v) in prices.items():
        emulator.push_bar(symbol, open=o, high=h, low=low, close=c, volume=v,
                          timestamp=when.to_pydatetime())


def stored(store, start):
    """symbol -> [(time, o, h, l, c, v)] of the 1-minute bars from ``start`` on."""
    frames = store.read_bars(SYMBOLS, start, None, interval="1m")
    return {s: [(t, *row) for t, row in zip(f.index, f.itertuples(index=False, name=None),
                                           strict=True)]
            for s, f in frames.items()}


def test_streamed_bars_are_stored_reconnect_and_stop_with_the_broker(emulator, store):
    config = agent(emulator)
    bars = load_bars(config, PM, store_url=store.full_url)
    session = Session(config, bars, None, Journal(store, "-", deployment_id(config, "alpaca")),
                      lambda: NOW)
    broker = AlpacaBroker(AlpacaConfig(trading_url=emulator.trading_url,
                                       data_stream_url=emulator.data_stream_url, timeout=2.0))
    broker.connect(session)
    try:
        assert broker.wait_for_bar(0.01) is False  # subscribes; no bar yet
        emulator.wait_for_stream_clients("market_data", timeout=WAIT)
        t1 = pd.Timestamp("2024-03-05 15:00", tz="UTC")
        push(emulator, t1, {"SPY": (101, 102.5, 100.5, 102, 1200),
                            "AGG": (51, 51.25, 50.75, 51.125, 700)})
        assert broker.wait_for_bar(WAIT) is True
        # the minute is stored whole, both symbols at once, exactly as streamed
        assert stored(store, t1) == {"SPY": [(t1, 101.0, 102.5, 100.5, 102.0, 1200.0)],
                                     "AGG": [(t1, 51.0, 51.25, 50.75, 51.125, 700.0)]}
        assert {(r.symbol, r.bars) for r in store.summary("1m")} == {("SPY", 21), ("AGG", 21)}
        assert broker.wait_for_bar(0.01) is False  # nothing new since

        # a dropped connection: alpaca-py reconnects and subscribes again
        assert emulator.drop_stream_connections("market_data") == 1
        emulator.wait_for_stream_clients("market_data", total=2, timeout=WAIT)
        t2 = t1 + pd.Timedelta(minutes=1)
        push(emulator, t2, {"SPY": (102, 103, 101.5, 102.5, 900),
                            "AGG": (51.125, 51.5, 51, 51.25, 300)})
        assert broker.wait_for_bar(WAIT) is True
        assert stored(store, t2) == {"SPY": [(t2, 102.0, 103.0, 101.5, 102.5, 900.0)],
                                     "AGG": [(t2, 51.125, 51.5, 51.0, 51.25, 300.0)]}

        # AGG has no bar at 15:02: the minute is stored without it once 15:03 begins
        t3, t4 = t2 + pd.Timedelta(minutes=1), t2 + pd.Timedelta(minutes=2)
        push(emulator, t3, {"SPY": (103, 103, 103, 103, 10)})
        push(emulator, t4, {"SPY": (104, 104, 104, 104, 20)})
        assert broker.wait_for_bar(WAIT) is True
        assert stored(store, t3)["SPY"][0] == (t3, 103.0, 103.0, 103.0, 103.0, 10.0)
        assert stored(store, t2)["AGG"] == [(t2, 51.125, 51.5, 51.0, 51.25, 300.0)]
        threads = broker._live_bars.threads
        assert [t.is_alive() for t in threads] == [True]
    finally:
        broker.close()
    assert not any(t.is_alive() for t in threads)
    assert stream_threads() == []


def test_minutes_the_stream_missed_are_read_from_the_bars_api_first(emulator, store, caplog):
    config = agent(emulator)
    config = config_from_mapping({**config.to_dict(), "broker": {
        **config.to_dict()["broker"], "data_url": emulator.data_url}}, pm=PM)
    bars = load_bars(config, PM, store_url=store.full_url)
    session = Session(config, bars, None, Journal(store, "-", deployment_id(config, "alpaca")),
                      lambda: NOW)
    broker = AlpacaBroker(AlpacaConfig(trading_url=emulator.trading_url,
                                       data_url=emulator.data_url,
                                       data_stream_url=emulator.data_stream_url, timeout=2.0))
    broker.connect(session)
    start = pd.Timestamp("2024-03-05 15:00", tz="UTC")
    # 15:00 .. 15:02 closed while the stream was down: Alpaca's bars API has them
    missed = pd.date_range(start, periods=3, freq="1min")
    values = np.stack([[[60.0 + i, 61.0 + i, 59.0 + i, 60.5 + i, 10.0 * (i + 1)]] * 2
                       for i in range(3)])
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, Bars(missed, tuple(SYMBOLS), values), timeframe="1Min")
    try:
        assert broker.wait_for_bar(0.01) is False
        emulator.wait_for_stream_clients("market_data", timeout=WAIT)
        t4 = start + pd.Timedelta(minutes=3)
        push(emulator, t4, {"SPY": (64, 65, 63, 64.5, 40), "AGG": (44, 45, 43, 44.5, 40)})
        assert broker.wait_for_bar(WAIT) is True
        got = stored(store, start)
        assert [row[0] for row in got["SPY"]] == [*missed, t4] == [row[0] for row in got["AGG"]]
        assert got["AGG"][1] == (missed[1], 61.0, 62.0, 60.0, 61.5, 20.0)
        assert load_bars(config, PM, store_url=store.full_url).index[-4:].equals(
            pd.DatetimeIndex([*missed, t4]).rename("time"))  # the panel has no hole
        # the bars API failing leaves the gap, logged; the streamed minute is stored
        emulator.faults.add("GET /v2/stocks/bars", status=403)
        t6 = t4 + pd.Timedelta(minutes=2)
        push(emulator, t6, {"SPY": (66, 67, 65, 66.5, 60), "AGG": (46, 47, 45, 46.5, 60)})
        assert broker.wait_for_bar(WAIT) is True
        assert [row[0] for row in stored(store, t4)["SPY"]] == [t4, t6]
        assert any("could not be read from Alpaca" in r.getMessage() for r in caplog.records)
    finally:
        broker.close()


def test_live_decides_on_each_streamed_bar(emulator, store):
    config = agent(emulator)
    reports = queue.Queue()
    failures = []

    def run():
        try:
            live(config, pm=PM, store=store, max_cycles=3, now=lambda: NOW,
                 on_cycle=reports.put)
        except BaseException as exc:  # noqa: BLE001  (reported to the test below)
            failures.append(exc)
            reports.put(None)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    first = reports.get(timeout=WAIT)
    assert first is not None, failures
    assert first.bar == HISTORY[-1]  # the latest complete bar when the run starts
    emulator.wait_for_stream_clients("market_data", timeout=WAIT)  # the loop waits for a bar
    t1, t2 = pd.Timestamp("2024-03-05 15:00", tz="UTC"), pd.Timestamp("2024-03-05 15:01", tz="UTC")
    push(emulator, t1, {"SPY": (101, 102, 100, 101.5, 800), "AGG": (50, 51, 50, 50.5, 400)})
    second = reports.get(timeout=WAIT)
    assert second is not None, failures
    emulator.drop_stream_connections("market_data")
    emulator.wait_for_stream_clients("market_data", total=2, timeout=WAIT)
    push(emulator, t2, {"SPY": (101.5, 103, 101, 102, 900), "AGG": (50.5, 51, 50, 50.75, 300)})
    third = reports.get(timeout=WAIT)
    runner.join(timeout=WAIT)
    assert not runner.is_alive() and not failures, failures
    assert [r.bar for r in (first, second, third)] == [HISTORY[-1], t1, t2]
    deployment = deployment_id(config, "alpaca")
    for report in (first, second, third):
        assert report.decided and report.sent == 2
        assert sorted(e.client_order_id for e in report.orders) == sorted(
            client_order_id(deployment, report.bar, s) for s in SYMBOLS)
    # each bar's orders reached the broker once, under the deterministic ids
    assert sorted(o["client_order_id"] for o in emulator.orders) == sorted(
        client_order_id(deployment, bar, s) for bar in (HISTORY[-1], t1, t2) for s in SYMBOLS)
    assert stream_threads() == []  # the run closed the broker, and its stream with it


def test_crypto_pairs_stream_on_the_crypto_stream(emulator):
    keys = Credentials(emulator.key_id, emulator.secret_key)
    bars = LiveBars(["SPY", "BTC/USD"], emulator.data_stream_url,
                    emulator.crypto_data_stream_url, keys).start()
    try:
        emulator.wait_for_stream_clients("market_data", 2, timeout=WAIT)
        when = pd.Timestamp("2024-03-05 15:00", tz="UTC")
        push(emulator, when, {"BTC/USD": (60000, 60100, 59900, 60050, 1.5),
                              "SPY": (101, 102, 100, 101.5, 800)})
        assert bars.wait(WAIT) == [(when, {"SPY": (101.0, 102.0, 100.0, 101.5, 800.0),
                                           "BTC/USD": (60000.0, 60100.0, 59900.0, 60050.0,
                                                       1.5)})]
        assert bars.wait(0.01) == []
    finally:
        bars.stop()
    assert stream_threads() == []

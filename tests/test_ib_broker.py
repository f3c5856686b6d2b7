"""The ``ib`` broker and feed: the real ib_insync client against the TWS emulator, through the
live runner.

Market-on-open orders carry the client order id as orderRef; fills are recorded once, with
IB's commissions; a restart sends nothing twice; a connection dropped at each point of an order
is reconciled with no duplicate at the broker and no lost fill; 201 rejections, 202 cancels,
1100/1102 outages and partial fills reach the journal; the real-money guard holds; the feed
gives back the bars the emulator serves.  Every test fails on an ib_insync decoder error and on
any ib_insync ERROR record it did not declare (``ib_log.append(pattern)``).
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.emulators.tws import TwsEmulator
from rlbridge.errors import (
    BrokerError,
    ConfigError,
    DataError,
    DuplicateOrderError,
    TransientBrokerError,
)
from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import Account, Order
from rlbridge.live import Journal, MarketClosed, deployment_id, live
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.ib import IBBroker, IBConfig
from rlbridge.runs import list_runs
from rlbridge.schema import fills_table, orders_table
from rlbridge.store import open_store
from rlbridge.testing import register_plugin

pytestmark = pytest.mark.usefixtures("ib_log")  # tests/conftest.py

PM = make_plugin_manager(entrypoints=False, warn=False)
SYMBOLS = ["SPY", "AGG", "XLK"]
NY = "America/New_York"
PRE_OPEN = pd.Timestamp("2020-09-30 08:00", tz=NY)
NEXT_PRE_OPEN = pd.Timestamp("2020-10-01 08:00", tz=NY)
DROPPED = r"Peer closed connection"


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2020-06-01", end="2020-10-01", adjust=False)


@pytest.fixture
def emulator(tws_emulator, bars):
    """The emulator with the bars up to 2020-09-29, before the 09-30 open."""
    for symbol in SYMBOLS:
        tws_emulator.add_bars(symbol, bars.between(None, "2020-09-29"))
    tws_emulator.clock.set(PRE_OPEN.to_pydatetime())
    return tws_emulator


def agent(emulator, **broker):
    """Equal weight, rebalanced daily, bars from the emulator through the ib feed."""
    return config_from_mapping({
        "data": {"feed": "ib", "port": emulator.port, "symbols": SYMBOLS,
                 "start": "2020-06-01", "timeout": 5.0},
        "costs": {"model": "zero"},
        "strategy": {"name": "equal_weight", "rebalance": 1, "exposure": 0.9},
        "broker": {"name": "ib", "port": emulator.port, "timeout": 2.0, **broker}}, pm=PM)


def cycle(config, store, now=PRE_OPEN, pm=PM, **kw):
    (report,) = live(config, pm=pm, store=store, once=True, now=lambda: now,
                     sleep=lambda s: None, **kw)
    return report


def the_session_opens(emulator, bars, day="2020-09-30", then=NEXT_PRE_OPEN):
    """The day's bar arrives (auto_fill = "next_open" fills at its open); the clock moves."""
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, bars.between(day, day))
    emulator.clock.set(then.to_pydatetime())


def journal(store, config):
    return Journal(store, "-", deployment_id(config, "ib"))


def recorded(store):
    """orderRef -> (fill rows, shares, traded value, commission) in the journal."""
    o, f = orders_table.c, fills_table.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(o.client_order_id, f.quantity, f.price, f.commission)
                            .join(fills_table, f.order_id == o.id)).all()
    out = {}
    for ref, qty, price, fee in rows:
        n, q, v, c = out.get(ref, (0, 0.0, 0.0, 0.0))
        out[ref] = (n + 1, q + qty, v + qty * price, c + fee)
    return out


def executed(emulator):
    """orderRef -> (executions, signed shares, traded value, commission) at the broker."""
    out = {}
    for e in emulator.executions:
        sign = 1.0 if e["side"] == "BOT" else -1.0
        n, q, v, c = out.get(e["order_ref"], (0, 0.0, 0.0, 0.0))
        out[e["order_ref"]] = (n + 1, q + sign * e["shares"],
                               v + sign * e["shares"] * e["price"], c + e["commission"])
    return out


def assert_same_fills(store, emulator, rows_equal=True):
    mine, theirs = recorded(store), executed(emulator)
    assert sorted(mine) == sorted(theirs) and theirs
    for ref, (n, q, v, c) in theirs.items():
        got = mine[ref]
        assert got[1] == pytest.approx(q, abs=1e-9), ref
        assert got[2] == pytest.approx(v, rel=1e-12), ref
        assert got[3] == pytest.approx(c, abs=1e-9), ref
        if rows_equal:
            assert got[0] == n, ref


def no_duplicates(emulator):
    counts = emulator.submit_counts
    assert counts and set(counts.values()) == {1}, counts
    assert all(len(emulator.orders_by_ref(r)) == 1 for r in counts)


# ---------------------------------------------------------------------- orders and fills
def test_once_sends_opg_orders_whose_order_ref_is_the_client_order_id(emulator, bars, tmp_path):
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    report = cycle(config, store)
    assert report.bar == pd.Timestamp("2020-09-29") and report.sent == 3
    entries = journal(store, config).entries()
    by_ref = {o["order_ref"]: o for o in emulator.orders}
    assert sorted(by_ref) == sorted(e.client_order_id for e in entries)
    for entry in entries:
        placed = by_ref[entry.client_order_id]
        assert (placed["order_type"], placed["tif"], placed["action"], placed["symbol"],
                placed["account"], placed["status"]) == \
            ("MKT", "OPG", "BUY", entry.symbol, "DU1234567", "PreSubmitted")
        assert placed["total_qty"] == entry.quantity > 0
        assert (entry.status, entry.broker_order_id) == ("new", str(placed["perm_id"]))
    # equal weight at 90 % of 100,000 on the 09-29 closes, whole shares
    closes = dict(zip(SYMBOLS, bars.between("2020-09-29", "2020-09-29").close[0], strict=True))
    assert {e.symbol: e.quantity for e in entries} == \
        {s: float(int(30_000 / closes[s])) for s in SYMBOLS}
    no_duplicates(emulator)


def test_fills_are_recorded_once_with_commissions_and_a_restart_sends_nothing(
        emulator, bars, tmp_path):
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    first = cycle(config, store)
    refs = [e.client_order_id for e in first.orders]
    emulator.fill(refs[0], price=333.25, commission=1.23)  # the test fills one by hand
    emulator.fill(refs[1], 100, price=118.5, commission=0.5)
    emulator.fill(refs[1], price=118.75, commission=0.75)
    again = cycle(config, store)  # restarted on the same bar
    assert again.sent == 0
    assert [(f.order_id, f.quantity) for f in again.fills] == [(refs[0], 90.0), (refs[1], 253.0)]
    emulator.fill(refs[2], price=115.5)  # IB's fixed pricing: 0.005 a share, 1.00 minimum
    third = cycle(config, store)
    assert third.sent == 0 and [f.order_id for f in third.fills] == [refs[2]]
    assert [f.commission for f in third.fills] == [pytest.approx(0.005 * 259)]
    assert cycle(config, store).fills == []  # looked at again: nothing new
    assert_same_fills(store, emulator, rows_equal=False)
    mine = recorded(store)
    assert mine[refs[0]] == (1, 90.0, pytest.approx(90 * 333.25), pytest.approx(1.23))
    assert mine[refs[1]][0] == 1  # both executions had arrived: one fill, their average
    assert [e.status for e in journal(store, config).entries()] == ["filled"] * 3
    no_duplicates(emulator)
    assert journal(store, config).positions() == emulator.positions


def test_auto_fills_at_the_next_open_reach_the_next_cycle(emulator, bars, tmp_path):
    emulator.auto_fill = "next_open"
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    cycle(config, store)
    the_session_opens(emulator, bars)
    report = cycle(config, store, now=NEXT_PRE_OPEN)
    opens = dict(zip(SYMBOLS, bars.between("2020-09-30", "2020-09-30").open[0], strict=True))
    assert sorted((f.symbol, f.price) for f in report.fills) == sorted(opens.items())
    assert report.bar == pd.Timestamp("2020-09-30") and report.sent == len(report.orders) > 0
    assert_same_fills(store, emulator)
    no_duplicates(emulator)


# ---------------------------------------------------------------------- faults
@pytest.mark.parametrize("where", ["before", "after_accept", "after"])
def test_a_connection_dropped_mid_order_loses_nothing_and_sends_nothing_twice(
        emulator, bars, tmp_path, ib_log, where):
    ib_log.append(DROPPED)
    emulator.auto_fill = "next_open"
    emulator.faults.add("placeOrder", disconnect=where, skip=1)  # the second order
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    report = cycle(config, store)
    assert [(m, f.disconnect) for m, _, f in emulator.faults.history] == [("placeOrder", where)]
    assert emulator.connections_total == 3  # the feed's, the broker's, the reconnection
    assert report.sent == 3 and {e.status for e in journal(store, config).entries()} == {"new"}
    the_session_opens(emulator, bars)
    cycle(config, store, now=NEXT_PRE_OPEN)
    no_duplicates(emulator)
    assert_same_fills(store, emulator)
    assert journal(store, config).positions() == emulator.positions


def test_an_answer_slower_than_the_timeout_is_looked_up_not_resent(emulator, tmp_path):
    emulator.faults.add("placeOrder", delay=0.5, skip=1)  # TWS holds the second order
    config = agent(emulator, timeout=0.3)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    report = cycle(config, store)
    assert report.sent == 3 and {e.status for e in report.orders} == {"new"}
    assert emulator.connections_total == 2  # the feed's and the broker's: nothing dropped
    no_duplicates(emulator)


def test_a_fill_lost_on_the_wire_is_found_after_the_reconnection(emulator, tmp_path, ib_log):
    ib_log.append(DROPPED)
    emulator.auto_fill = "last"  # fills as soon as the order arrives
    emulator.faults.add("execDetails", disconnect="before")
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    report = cycle(config, store, follow_seconds=5.0)
    assert len(report.fills) == 3 and report.sent == 3
    assert [m for m, *_ in emulator.faults.history] == ["execDetails"]
    no_duplicates(emulator)
    assert_same_fills(store, emulator)


def test_a_rejection_201_is_recorded_with_its_reason(emulator, tmp_path, ib_log):
    ib_log.append(r"Error 201, reqId \d+: Order rejected - reason:")
    emulator.faults.add("placeOrder", reject="insufficient buying power", skip=2)
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    cycle(config, store)
    entries = journal(store, config).entries()
    emulator.reject(entries[0].client_order_id, "closed position only")  # later, by IB
    cycle(config, store)  # a new process: the reason comes from the completed order
    reasons = _reasons(store)
    assert [e.status for e in journal(store, config).entries()] == \
        ["rejected", "new", "rejected"]
    assert reasons[entries[2].client_order_id] == \
        "Order rejected - reason:insufficient buying power (IB error 201)"
    assert reasons[entries[0].client_order_id] == "Rejected - reason:closed position only"
    no_duplicates(emulator)


def _reasons(store):
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(orders_table.c.client_order_id,
                                           orders_table.c.reason)).all())


def test_a_cancel_202_by_ib_ends_the_order_canceled(emulator, tmp_path, ib_log):
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    first = cycle(config, store)
    ref = first.orders[1].client_order_id
    emulator.fill(ref, 50, price=118.0, commission=1.0)
    emulator.cancel(ref, "the auction did not trade")
    cycle(config, store)
    entry = journal(store, config).get(ref)
    assert (entry.status, entry.filled, entry.commission) == ("canceled", 50.0, 1.0)
    assert _reasons(store)[ref] == "Cancelled - the auction did not trade"


def test_partial_fills_are_recorded_as_they_come(emulator, tmp_path):
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    first = cycle(config, store)
    for order in first.orders:
        emulator.fill(order.client_order_id, order.quantity // 3, price=100.0, commission=0.4)
    cycle(config, store)
    for entry in journal(store, config).entries():
        assert (entry.status, entry.filled, entry.commission) == \
            ("partially_filled", entry.quantity // 3, 0.4)
        emulator.fill(entry.client_order_id, price=101.0, commission=0.6)
    cycle(config, store)
    for entry in journal(store, config).entries():
        assert (entry.status, entry.filled, entry.commission) == \
            ("filled", entry.quantity, pytest.approx(1.0))
        third = entry.quantity // 3
        assert entry.cost == pytest.approx(100.0 * third + 101.0 * (entry.quantity - third))
    assert_same_fills(store, emulator)  # two fills each, as IB executed them


def test_a_partial_fill_whose_rest_ib_cancels(emulator, tmp_path, ib_log):
    emulator.auto_fill = "last"  # fills at the last close as soon as the order arrives
    emulator.faults.add("placeOrder", partial=0.4, rest="cancel", skip=1)  # AGG: 40 %, no more
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    report = cycle(config, store, follow_seconds=5.0)
    entries = {e.symbol: e for e in journal(store, config).entries()}
    assert (entries["AGG"].status, entries["AGG"].filled) == ("canceled", 101.0)  # 40 % of 253
    assert _reasons(store)[entries["AGG"].client_order_id] == \
        "Order Canceled - reason:the rest of the order could not be filled (IB error 202)"
    assert {entries[s].status for s in ("SPY", "XLK")} == {"filled"}
    assert len(report.fills) == 3
    assert_same_fills(store, emulator)
    assert journal(store, config).positions() == emulator.positions


class Outage:
    """A risk check that cuts TWS off from IB (error 1100) while the runner decides."""

    def __init__(self, emulator):
        self.emulator = emulator

    @hookimpl
    def check_order(self, order, context):
        if not self.emulator.faults.history and self.emulator.connectivity_lost() != 1:
            raise AssertionError("the runner's connection did not get 1100")
        self.emulator.faults.add("reqIds", delay=0.0001)  # marks "fired" in the history
        return None


def test_1100_makes_every_call_transient_until_1102(emulator, tmp_path, ib_log):
    ib_log += [r"Error 1100, reqId -1: Connectivity between IB and Trader Workstation has been "
               r"lost", r"Error 1102, reqId -1: Connectivity .* restored - data maintained"]
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    held = IBBroker(IBConfig(port=emulator.port, timeout=2.0))  # keeps the connection open
    held.connect(None)
    pm = make_plugin_manager(entrypoints=False, warn=False)
    register_plugin(pm, Outage(emulator), name="outage")
    try:
        with pytest.raises(TransientBrokerError, match="did not answer about rlb-.*-SPY"):
            cycle(config, store, pm=pm)  # decided and journaled, then cut off: nothing sent
        assert [e.status for e in journal(store, config).entries()] == ["pending"] * 3
        assert emulator.orders == []
        with pytest.raises(TransientBrokerError, match="lost its connection to IB .error 1100"):
            held.submit(Order("SPY", 1, client_order_id="rlb-manual-1"))
        with pytest.raises(TransientBrokerError, match="error 1100"):
            held.get_order("rlb-manual-1")
        with pytest.raises(DataError, match="error 1100"):  # bars too, until restored
            cycle(config, store)
        emulator.connectivity_restored()
        report = cycle(config, store)  # the same bar: the journaled intents go out once
        assert report.sent == 3
        assert held.get_order(report.orders[0].client_order_id).status == "new"
    finally:
        held.close()
    # newest first; the cycle refused its bars never started a run
    assert [r.status for r in list_runs(store, "live")] == ["completed", "failed"]
    no_duplicates(emulator)


# ---------------------------------------------------------------------- the broker itself
def test_limit_forex_cancel_and_duplicate_through_the_broker(tws_emulator, ib_log):
    tws_emulator.set_price("EUR.USD", 1.1)
    broker = IBBroker(IBConfig(port=tws_emulator.port, timeout=2.0))

    broker.connect(SimpleNamespace(bars=SimpleNamespace(symbols=("EURUSD", "SPY"))))
    try:
        limit = broker.submit(Order("SPY", -5, kind="limit", limit_price=512.25,
                                    client_order_id="rlb-t-lmt"))
        assert (limit.status, limit.quantity, limit.symbol) == ("new", -5.0, "SPY")
        placed = tws_emulator.order("rlb-t-lmt")
        assert (placed["order_type"], placed["lmt_price"], placed["tif"]) == ("LMT", 512.25,
                                                                              "DAY")
        with pytest.raises(DuplicateOrderError, match="rlb-t-lmt"):
            broker.submit(Order("SPY", -5, kind="limit", limit_price=512.25,
                                client_order_id="rlb-t-lmt"))
        broker.cancel("rlb-t-lmt")
        tws_emulator.wait_until(lambda e: e.order("rlb-t-lmt")["status"] == "Cancelled", 5)
        gone = broker.get_order("rlb-t-lmt")
        assert (gone.status, gone.reason) == ("canceled", "Order Canceled - reason: (IB error "
                                                          "202)")
        broker.submit(Order("EURUSD", 20_000, kind="market_on_open",
                            client_order_id="rlb-t-fx"))
        assert tws_emulator.order("rlb-t-fx")["tif"] == "DAY"  # no auction for forex
        tws_emulator.fill("rlb-t-fx", price=1.1002)
        done = broker.get_order("rlb-t-fx")
        assert (done.status, done.filled_quantity, done.average_price, done.commission) == \
            ("filled", 20_000.0, 1.1002, 2.0)
        assert broker.positions() == {"EURUSD": 20_000.0}
        # 100,000 - 20,000 x 1.1002 - 2.00 in USD, plus 20,000 EUR at 1.1002
        assert broker.account() == Account(99_998.0, 99_998.0, "USD")
        assert tws_emulator.cash == {"EUR": 20_000.0, "USD": 77_994.0}
        assert broker.get_order("rlb-t-none") is None
        with pytest.raises(BrokerError, match="whole shares"):
            broker.submit(Order("SPY", 1.5, client_order_id="rlb-t-frac"))
    finally:
        broker.close()
    assert tws_emulator.submit_counts == {"rlb-t-lmt": 1, "rlb-t-fx": 1}


def test_the_runner_decides_by_tws_clock(emulator, tmp_path):
    config = agent(emulator)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    (report,) = live(config, pm=PM, store=store, once=True)  # no clock given: TWS's
    assert report.bar == pd.Timestamp("2020-09-29") and report.sent == 3
    emulator.clock.set(pd.Timestamp("2020-09-30 09:45", tz=NY).to_pydatetime())
    with pytest.raises(MarketClosed, match="the 2020-09-30 session opened at 09:30"):
        live(config, pm=PM, store=store, once=True)
    assert len(emulator.orders) == 3


# ---------------------------------------------------------------------- money and config
def test_real_money_needs_the_flag_and_a_real_money_account(emulator, tmp_path):
    with pytest.raises(ConfigError, match=r"\[broker.paper\]: port 4001 is IB Gateway's live "
                                          r"\(real-money\) port but paper = true"):
        config_from_mapping({"broker": {"name": "ib", "port": 4001}}, pm=PM)
    with pytest.raises(ConfigError, match="paper = false but port 7497 is TWS's paper port"):
        config_from_mapping({"broker": {"name": "ib", "port": 7497, "paper": False}}, pm=PM)
    config = agent(emulator, paper=False)
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(ConfigError, match="pass --live-money to confirm"):
        cycle(config, store)
    with pytest.raises(BrokerError, match="paper = false but account DU1234567 .* is a paper "
                                          "account"):
        cycle(config, store, live_money=True)
    with TwsEmulator(account="U7654321") as real:
        broker = IBBroker(IBConfig(port=real.port, timeout=2.0))
        with pytest.raises(BrokerError, match="account U7654321 .* is a real-money account "
                                              "but paper = true"):
            broker.connect(None)
        broker.close()
        wrong = IBBroker(IBConfig(port=real.port, account="U1", paper=False))
        with pytest.raises(BrokerError, match="account U1 is not managed .* it manages "
                                              "U7654321"):
            wrong.connect(None)
        wrong.close()
        assert real.orders == []
    assert emulator.orders == []


def test_an_unreachable_tws_is_a_transient_error_naming_the_address(ib_log):
    ib_log += [r"API connection failed", r"Make sure API port"]
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    broker = IBBroker(IBConfig(port=port, timeout=1.0))
    with pytest.raises(TransientBrokerError, match=f"nothing listens at 127.0.0.1:{port}"):
        broker.connect(None)
    broker.close()


# ---------------------------------------------------------------------- the feed
def test_the_feed_gives_back_the_emulators_daily_bars(emulator, bars):
    from rlbridge.plugins.feeds.ib import IBFeed

    feed = IBFeed(IBFeed.Config(port=emulator.port))
    got = feed.load(SYMBOLS, "2020-07-01", "2020-09-29")
    want = bars.between("2020-07-01", "2020-09-29")
    assert list(got.index) == list(want.index) and got.symbols == tuple(SYMBOLS)
    np.testing.assert_array_equal(got.values, want.values)


def test_the_feed_reads_intraday_bars_window_by_window_and_forex(tws_emulator, ib_log):
    ib_log.append(r"Error 162, reqId \d+: .*HMDS query returned no data .* 5 mins 7 D ending "
                  r"20240102")  # the older window of each symbol: nothing that week
    from rlbridge.plugins.feeds.ib import IBFeed

    start = pd.Timestamp("2024-01-05 14:30", tz="UTC")  # a Friday, then a weekend
    times = [*pd.date_range(start, periods=60, freq="5min"),
             *pd.date_range("2024-01-08 14:30", periods=60, freq="5min", tz="UTC")]
    rng = np.random.default_rng(3)
    close = 470 + rng.normal(0, 0.5, len(times)).cumsum()
    rows = [(t.to_pydatetime(), c - 0.1, c + 0.3, c - 0.4, c, float(100 + i))
            for i, (t, c) in enumerate(zip(times, close, strict=True))]
    for symbol in ("SPY", "EUR.USD"):
        tws_emulator.add_bars(symbol, rows, bar_size="5 mins")
    tws_emulator.clock.set(pd.Timestamp("2024-01-09 12:00", tz="UTC").to_pydatetime())
    feed = IBFeed(IBFeed.Config(port=tws_emulator.port, bar_size="5 mins", calendar="none",
                                lookback="10 D"))
    got = feed.load(["SPY", "EURUSD"])
    assert list(got.index) == list(pd.DatetimeIndex(times)) and got.symbols == ("SPY",
                                                                                 "EURUSD")
    expected = np.array([r[1:] for r in rows])
    np.testing.assert_array_equal(got.values[:, 0], expected)
    np.testing.assert_array_equal(got.values[:, 1], expected)
    # a week per request for 5-minute bars: two windows each, the older one empty
    asked = [m[3] for m in tws_emulator.messages("in", "reqHistoricalData")]
    assert len(asked) == 4
    assert [("MIDPOINT" in fields, "1 W" in fields or "7 D" in fields) for fields in asked] == \
        [(False, True), (False, True), (True, True), (True, True)]


def test_rlbridge_data_ingest_from_ib(emulator, bars, rlbridge_cli, rlbridge_store):
    out = rlbridge_cli("data", "ingest", "--feed", "ib", "--symbols", "SPY,AGG",
                       "--start", "2020-09-01", "--end", "2020-09-29",
                       "-o", f"port={emulator.port}", "--json")
    assert out.exit_code == 0, out.output
    stored = rlbridge_store.read_bars(["SPY", "AGG"], "2020-09-01", "2020-09-29")
    want = bars.between("2020-09-01", "2020-09-29")
    for i, symbol in enumerate(["SPY", "AGG"]):
        assert list(stored[symbol].index) == list(want.index)
        np.testing.assert_array_equal(stored[symbol].to_numpy(), want.values[:, i])

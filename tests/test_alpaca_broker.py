"""The ``alpaca`` broker and feed: the real alpaca-py clients against the Alpaca emulator.

The live runner places market-on-open orders with deterministic client order ids, records each
fill exactly once, sends nothing again after a restart, and resolves every fault (a 504 after
the order was accepted, 429, 500, timeouts, partial fills, rejections) with no duplicate order
at the broker and no lost fill.  Real money needs the flag; the keys never leave the
environment.
"""

import datetime as dt
import json
import logging
import math
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.data import load_bars
from rlbridge.emulators.alpaca import AlpacaEmulator
from rlbridge.errors import BrokerError, ConfigError, DataError, DuplicateOrderError
from rlbridge.interfaces import Order
from rlbridge.live import Journal, client_order_id, deployment_id, live
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.alpaca import AlpacaBroker, AlpacaConfig, order_state
from rlbridge.store import open_store

SYMBOLS = ["SPY", "AGG", "XLK"]
NY = "America/New_York"
DECIDE = pd.Timestamp("2020-09-30 08:00", tz=NY)  # before the open: decides on 2020-09-29
NEXT = pd.Timestamp("2020-10-01 08:00", tz=NY)
BAR = pd.Timestamp("2020-09-29")
PM = make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2020-06-01", end="2020-10-01", adjust=False)


@pytest.fixture
def market(alpaca_emulator, bars, monkeypatch):
    """The emulator before the 2020-09-30 open: bars up to 09-29, orders fill at the next open."""
    emulator = alpaca_emulator
    monkeypatch.setenv("APCA_API_KEY_ID", emulator.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", emulator.secret_key)
    emulator.auto_fill_price = "next_open"
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, bars.between(None, "2020-09-29"))
    emulator.clock.set(DECIDE.to_pydatetime())
    return emulator


def agent(emulator, data=None, **broker):
    return config_from_mapping({
        "data": data or {"feed": "alpaca", "symbols": SYMBOLS, "start": "2020-06-01",
                         "data_url": emulator.data_url},
        "strategy": {"name": "equal_weight"},
        "broker": {"name": "alpaca", "trading_url": emulator.trading_url,
                   "trade_stream_url": emulator.trade_stream_url, "timeout": 0.3,
                   "retry_wait": 0.05, "stream": False, **broker},
    }, pm=PM)


def run(config, store, now, **kwargs):
    """One ``rlbridge live --once`` cycle at ``now`` (the runner's backoff kept short)."""
    (report,) = live(config, pm=PM, store=store, once=True, now=lambda: now,
                     sleep=lambda s: time.sleep(0.01), **kwargs)
    return report


def the_open_arrives(emulator, bars, day="2020-09-30", then=NEXT):
    """The session's bar arrives (open orders fill at its open); the clock moves on."""
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, bars.between(day, day))
    emulator.clock.set(then.to_pydatetime())


def journal_of(config, store):
    return Journal(store, "-", deployment_id(config, "alpaca"))


def fills_by_id(store):
    """client order id -> [(quantity, price)] of the journal's fills."""
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT o.client_order_id, f.quantity, f.price FROM fills f "
            "JOIN orders o ON o.id = f.order_id ORDER BY f.id").all()
    out = {}
    for cid, qty, price in rows:
        out.setdefault(cid, []).append((qty, price))
    return out


def emulator_fills(emulator):
    out = {}
    for fill in emulator.fills:
        sign = 1 if fill["side"] == "buy" else -1
        out.setdefault(fill["client_order_id"], []).append((sign * fill["qty"], fill["price"]))
    return out


def same_fills(mine, theirs):
    """Per client id, the same shares filled at the same cost.

    The journal records what changed between two looks at an order, so two executions the
    broker made in between are one journal fill at their average price (Alpaca reports
    average prices to 4 decimals).
    """
    def totals(fills):
        return {cid: (sum(q for q, _ in f), sum(q * p for q, p in f)) for cid, f in fills.items()}

    mine, theirs = totals(mine), totals(theirs)
    assert {cid: q for cid, (q, _) in mine.items()} == {cid: q for cid, (q, _) in theirs.items()}
    for cid, (qty, cost) in mine.items():
        assert cost == pytest.approx(theirs[cid][1], abs=1e-4 * abs(qty))
    return True


def assert_once_and_nothing_lost(emulator, config, store):
    """One order per client id at the broker; the journal's fills are the broker's."""
    emulator.wait_idle(timeout=5)
    ids = [e.client_order_id for e in journal_of(config, store).entries()]
    placed = Counter(o["client_order_id"] for o in emulator.orders)
    assert placed and set(placed.values()) == {1}
    assert set(placed) <= set(ids)
    assert same_fills(fills_by_id(store), emulator_fills(emulator))
    assert journal_of(config, store).positions() == emulator.positions


# ---------------------------------------------------------------------- the runner on alpaca
def test_opg_orders_with_deterministic_ids_fills_recorded_once_restart_sends_nothing(
        market, bars, tmp_path):
    config, store = agent(market), open_store(f"sqlite:///{tmp_path / 'live.db'}")
    report = run(config, store, DECIDE)
    deployment = deployment_id(config, "alpaca")
    expected = {s: client_order_id(deployment, BAR, s) for s in SYMBOLS}
    assert report.bar == BAR and report.sent == 3 and report.fills == []
    placed = {o["symbol"]: o for o in market.orders}
    assert {s: o["client_order_id"] for s, o in placed.items()} == expected
    close = bars.between(BAR, BAR).close[0]
    for n, symbol in enumerate(SYMBOLS):  # equal weight of 100,000 at the 09-29 close
        order = placed[symbol]
        assert (order["time_in_force"], order["type"], order["side"]) == ("opg", "market", "buy")
        assert int(order["qty"]) == int(100_000 / 3 / close[n])
    assert all(e.status == "new" for e in report.orders)

    the_open_arrives(market, bars)
    second = run(config, store, NEXT)
    opens = bars.between("2020-09-30", "2020-09-30").open[0]
    assert sorted((f.symbol, f.quantity, round(f.price, 4)) for f in second.fills) == sorted(
        (s, float(placed[s]["qty"]), round(opens[n], 4)) for n, s in enumerate(SYMBOLS))
    assert {e.client_order_id: e.status for e in journal_of(config, store).entries(bar=BAR)} \
        == dict.fromkeys(expected.values(), "filled")

    restarted = run(config, store, NEXT)  # the same bar again, as after a crash
    assert restarted.sent == 0 and restarted.fills == []
    assert sum(len(v) for v in fills_by_id(store).values()) == 3
    assert set(market.submit_counts.values()) == {1}
    assert_once_and_nothing_lost(market, config, store)


class StopsAfter:
    """alpaca-py's trading client in a process that is stopped as the answer to its
    ``n``-th order arrives (the order is placed; the process never hears so)."""

    def __init__(self, client, n):
        self._client, self._left = client, n

    def __getattr__(self, name):
        return getattr(self._client, name)

    def submit_order(self, request):
        placed = self._client.submit_order(request)
        self._left -= 1
        if self._left == 0:
            raise SystemExit("stopped")
        return placed


def test_an_order_placed_as_the_process_stopped_is_found_after_a_restart_not_placed_again(
        market, bars, tmp_path):
    from rlbridge.live import LiveRunner, decide_at

    config, store = agent(market), open_store(f"sqlite:///{tmp_path / 'live.db'}")
    panel = load_bars(config, PM)

    def runner(stops_after=None):
        broker = AlpacaBroker(AlpacaConfig(trading_url=market.trading_url, stream=False))
        if stops_after is not None:
            broker._client = StopsAfter(broker.client, stops_after)
        runner = LiveRunner(config, broker, "alpaca", store, PM, now=lambda: DECIDE)
        runner.open(panel)
        return runner

    first = runner(stops_after=2)
    with pytest.raises(SystemExit):
        first.cycle(decide_at(panel, DECIDE))
    journal = journal_of(config, store)
    assert [e.status for e in journal.entries()] == ["new", "pending", "pending"]
    assert len(market.orders) == 2  # the second order is at the broker, not known as such
    again = runner()
    report = again.cycle(decide_at(panel, DECIDE))  # the same decision after the restart
    again.close()
    assert report.sent == 1 and [e.status for e in report.orders] == ["new"] * 3
    assert set(market.submit_counts.values()) == {1} and len(market.orders) == 3
    the_open_arrives(market, bars)
    run(config, store, NEXT)
    assert_once_and_nothing_lost(market, config, store)
    assert sum(len(v) for v in fills_by_id(store).values()) == 3


FAULTS = {
    # the fault on the first order's POST, the answers its POSTs got, its journal state
    "504_after_accept": (dict(status=504, after_accept=True), [504, 422], "filled"),  # SDK re-posts
    "429": (dict(status=429, retry_after=0), [429, 200], "filled"),  # the SDK retries
    "500": (dict(status=500), [500, 200], "filled"),  # not accepted: not found by id, sent again
    "500_after_accept": (dict(status=500, after_accept=True), [500], "filled"),  # found by id
    "timeout_after_accept": (dict(hold=0.6, after_accept=True), [200], "filled"),  # found by id
    "timeout_before_accept": (dict(hold=0.6), [200, 422], "filled"),  # sent again; late one 422
    "partial_then_canceled": (dict(partial=0.5, rest="cancel"), [200], "canceled"),
    "partial_then_filled": (dict(partial=0.5, rest="fill"), [200], "filled"),
    "rejected": (dict(reject="insufficient buying power"), [200], "rejected"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_resolved_with_no_duplicate_and_no_lost_fill(market, bars, tmp_path,
                                                                   name):
    fault_args, answers, state = FAULTS[name]
    fault = market.faults.add("POST /v2/orders", **fault_args)
    config, store = agent(market), open_store(f"sqlite:///{tmp_path / 'live.db'}")
    report = run(config, store, DECIDE)
    assert fault.fired == 1 and report.sent == 3
    first = report.orders[0].client_order_id
    the_open_arrives(market, bars)
    run(config, store, NEXT)
    assert_once_and_nothing_lost(market, config, store)
    posts = [(r.client_order_id, r.status) for r in market.requests if r.method == "POST"]
    assert [status for cid, status in posts if cid == first] == answers
    assert [cid for cid, _ in posts if cid != first] == [e.client_order_id
                                                         for e in report.orders[1:]]
    entry = journal_of(config, store).get(first)
    assert entry.status == state
    ordered = float(market.order(first)["qty"])
    if state == "canceled":  # half filled, the rest canceled
        assert 0 < entry.filled < ordered and market.order(first)["status"] == "canceled"
    else:
        assert entry.filled == {"filled": ordered, "rejected": 0}[state]
    if name == "rejected":
        assert market.order(first)["status"] == "rejected" and first not in emulator_fills(market)


def test_failed_reads_are_retried_and_the_fills_still_recorded(market, bars, tmp_path):
    config, store = agent(market), open_store(f"sqlite:///{tmp_path / 'live.db'}")
    run(config, store, DECIDE)
    the_open_arrives(market, bars)
    lookups = market.faults.add("GET /v2/orders:by_client_order_id", status=500, times=2)
    slow = market.faults.add("GET /v2/positions", hold=0.6)
    account = market.faults.add("GET /v2/account", status=503)
    report = run(config, store, NEXT)
    assert (lookups.fired, slow.fired, account.fired) == (2, 1, 1)
    assert len(report.fills) == 3
    assert_once_and_nothing_lost(market, config, store)


def test_fills_are_followed_through_the_trade_stream_even_when_it_drops(market, bars, tmp_path):
    market.auto_fill_price = None  # nothing fills until the test says so
    drop = market.faults.add("STREAM trade_updates", drop=True)  # an update is lost
    config = agent(market, stream=True)
    store = open_store(f"sqlite:///{tmp_path / 'live.db'}")

    def fill_once_the_runner_listens():
        market.wait_for_stream_clients("trade_updates", timeout=20)
        for order in market.orders:
            market.fill(order["client_order_id"], price=100.0)

    filler = threading.Thread(target=fill_once_the_runner_listens, daemon=True)
    filler.start()
    report = run(config, store, DECIDE, follow_seconds=30)
    filler.join(timeout=20)
    assert len(report.fills) == 3 and all(f.price == 100.0 for f in report.fills)
    assert drop.fired == 1  # the stream was listening, and lost a fill: polling found it
    assert_once_and_nothing_lost(market, config, store)


# ---------------------------------------------------------------------- the broker itself
def connected(emulator, symbols=SYMBOLS, **options):
    broker = AlpacaBroker(AlpacaConfig(trading_url=emulator.trading_url, timeout=0.5,
                                       retry_wait=0.05, **options))
    broker.connect(SimpleNamespace(bars=SimpleNamespace(symbols=tuple(symbols))))
    return broker


def test_crypto_pairs_positions_and_orders(market):
    broker = connected(market, ["BTC/USD", "SPY"])
    market.set_position("BTC/USD", 0.5, 40_000)
    market.set_position("ETH/USD", 2, 2_000)  # not a symbol of the run
    market.set_position("SPY", -3, 300)
    assert broker.positions() == {"BTC/USD": 0.5, "ETH/USD": 2.0, "SPY": -3.0}
    seen = broker.submit(Order("BTC/USD", 0.25, kind="market_on_open", client_order_id="c-1"))
    assert (seen.client_order_id, seen.symbol, seen.quantity, seen.status) == \
        ("c-1", "BTC/USD", 0.25, "new")
    assert (market.order("c-1")["time_in_force"], market.order("c-1")["qty"]) == ("gtc", "0.25")
    with pytest.raises(BrokerError, match=r"Alpaca refused submitting c-2 \(403\): "
                                          r"insufficient balance for BTC"):
        broker.submit(Order("BTC/USD", -1.0, client_order_id="c-2"))
    broker.close()


def test_orders_read_back_cancel_and_refusals(market):
    broker = connected(market)
    with pytest.raises(BrokerError, match="market-on-open orders take whole shares"):
        broker.submit(Order("SPY", 1.5, kind="market_on_open", client_order_id="c-frac"))
    with pytest.raises(BrokerError, match="sends market, market_on_open and limit orders"):
        broker.submit(Order("SPY", 1, kind="stop", client_order_id="c-stop"))
    assert market.submit_counts == Counter()  # refused before anything was sent
    market.auto_fill_price = None
    limit = broker.submit(Order("SPY", -2, kind="limit", limit_price=410.5,
                                client_order_id="c-lim"))
    assert (limit.quantity, market.order("c-lim")["limit_price"],
            market.order("c-lim")["side"]) == (-2.0, "410.5", "sell")
    with pytest.raises(DuplicateOrderError, match="client order id"):
        broker.submit(Order("SPY", -2, kind="limit", limit_price=410.5,
                            client_order_id="c-lim"))
    market.fill("c-lim", 1, price=411.0)
    partial = broker.get_order("c-lim")
    assert (partial.status, partial.filled_quantity, partial.average_price) == \
        ("partially_filled", -1.0, 411.0)
    broker.cancel("c-lim")
    assert broker.get_order("c-lim").status == "canceled"
    broker.cancel("c-lim")  # final already: nothing happens
    broker.cancel("never-sent")
    assert broker.get_order("never-sent") is None
    assert broker.account().cash == pytest.approx(100_000 + 411.0)
    broker.close()


@pytest.mark.parametrize("alpaca, filled, ours", [
    ("new", 0, "new"), ("accepted", 0, "new"), ("pending_new", 0, "new"),
    ("accepted_for_bidding", 0, "new"), ("held", 0, "new"), ("pending_cancel", 0, "new"),
    ("done_for_day", 0, "new"), ("done_for_day", 3, "partially_filled"),
    ("partially_filled", 3, "partially_filled"), ("filled", 5, "filled"),
    ("canceled", 0, "canceled"), ("canceled", 2, "canceled"), ("expired", 0, "expired"),
    ("rejected", 0, "rejected"), ("replaced", 0, "canceled")])
def test_alpaca_order_states(alpaca, filled, ours):
    assert order_state(alpaca, filled) == ours


def test_wait_for_update_wakes_on_a_trade_update(market):
    broker = connected(market, stream=True, trade_stream_url=market.trade_stream_url)
    market.auto_fill_price = None
    assert broker.wait_for_update(0.05) is False  # starts the stream; nothing happened yet
    market.wait_for_stream_clients("trade_updates", timeout=10)
    broker.submit(Order("SPY", 1, client_order_id="c-w"))
    assert broker.wait_for_update(10) is True
    updates = broker._updates
    broker.close()
    assert not updates._thread.is_alive()  # the stream's thread ends with the broker


def test_proxies_and_ca_bundle_are_read_from_the_environment_once(market, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/rlbridge-test.pem")
    remote = AlpacaBroker(AlpacaConfig())  # Alpaca's paper endpoint: through the proxy
    session = remote.client._session
    assert session.proxies.get("https") == "http://proxy.invalid:3128"
    assert session.verify == "/etc/ssl/certs/rlbridge-test.pem"
    assert session.trust_env is False  # nothing is read again at each request
    local = AlpacaBroker(AlpacaConfig(trading_url=market.trading_url))  # NO_PROXY applies
    assert "http" not in local.client._session.proxies
    assert local.account().cash == market.cash  # and the request goes straight there


def test_keys_come_from_the_environment_only(monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", "visible-key-id-1234")
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        AlpacaBroker(AlpacaConfig())
    assert str(info.value).startswith("APCA_API_SECRET_KEY is not set: the alpaca broker reads")
    assert "visible-key-id-1234" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown key 'secret_key'"):
        config_from_mapping({"broker": {"name": "alpaca", "secret_key": "x"}}, pm=PM)


def test_paper_must_agree_with_the_trading_endpoint():
    with pytest.raises(ConfigError, match="real-money endpoint .* but paper = true"):
        AlpacaConfig(trading_url="https://api.alpaca.markets")
    with pytest.raises(ConfigError, match="paper = false but trading_url is Alpaca's paper"):
        AlpacaConfig(paper=False, trading_url="https://paper-api.alpaca.markets")
    live_money = AlpacaConfig(paper=False)
    assert (live_money.trading, live_money.trade_stream, live_money.data_stream) == (
        "https://api.alpaca.markets", "wss://api.alpaca.markets/stream",
        "wss://stream.data.alpaca.markets/v2/iex")
    assert AlpacaConfig().trading == "https://paper-api.alpaca.markets"


# ---------------------------------------------------------------------- the command line
def write_agent(path, emulator, data=None, **broker):
    options = {"trading_url": emulator.trading_url, "timeout": 0.5, "retry_wait": 0.05,
               "stream": False, **broker}
    data = data or {"feed": "alpaca", "data_url": emulator.data_url}
    lines = ["[data]", 'symbols = ["SPY", "AGG", "XLK"]', "start = 2020-06-01"]
    lines += [f"{k} = {_toml(v)}" for k, v in data.items()]
    lines += ["", "[strategy]", 'name = "equal_weight"', "", "[broker]", 'name = "alpaca"']
    lines += [f"{k} = {_toml(v)}" for k, v in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_real_money_needs_live_money_on_the_command_line(market, tmp_path, rlbridge_cli):
    path = write_agent(tmp_path / "agent.toml", market, paper=False)
    refused = rlbridge_cli("live", path, "--once")
    assert refused.exit_code == 2
    assert "broker 'alpaca' is set to trade real money ([broker] paper = false): pass " \
           "--live-money to confirm" in refused.stderr
    assert not [r for r in market.requests if r.api == "trading"]  # nothing reached Alpaca
    confirmed = rlbridge_cli("live", path, "--once", "--live-money")
    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.stdout.startswith("2020-09-29: 3 order(s), 3 sent")  # the market's clock


def test_keys_never_reach_output_logs_reports_or_the_store(bars, tmp_path, rlbridge_cli,
                                                           rlbridge_db_url, monkeypatch,
                                                           caplog):
    key_id, secret = "PKRLBTESTKEY7Q2W9E4R", "rlb-secret-Zx81Qm4Vn27Lp0Ks5Yt3"
    caplog.set_level(logging.DEBUG)
    outputs = []
    with AlpacaEmulator(key_id=key_id, secret_key=secret, auto_fill_price="next_open") as emu:
        for symbol in SYMBOLS:
            emu.add_bars(symbol, bars.between(None, "2020-09-29"))
        emu.clock.set(DECIDE.to_pydatetime())
        path = write_agent(tmp_path / "agent.toml", emu, stream=True,
                           trade_stream_url=emu.trade_stream_url)
        sample = write_agent(tmp_path / "sample.toml", emu, data={"feed": "sample"})
        monkeypatch.setenv("APCA_API_KEY_ID", key_id)
        monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
        ok = rlbridge_cli("live", path, "--once", "--json", "--follow", "1")
        assert ok.exit_code == 0, ok.output
        the_open_arrives(emu, bars)
        filled = rlbridge_cli("live", path, "--once")
        assert filled.exit_code == 0 and "3 fill(s)" in filled.stdout
        outputs += [ok.output, filled.output]
        for variable, value in (("APCA_API_SECRET_KEY", secret[::-1]),
                                ("APCA_API_KEY_ID", key_id[::-1])):
            monkeypatch.setenv(variable, value)
            for config, status in ((path, "403"), (sample, "401")):  # data API, trading API
                refused = rlbridge_cli("live", config, "--once")
                assert refused.exit_code == 2
                assert f"Alpaca refused the API keys ({status})" in refused.stderr
                assert "check APCA_API_KEY_ID and APCA_API_SECRET_KEY" in refused.stderr
                outputs.append(refused.output)
            monkeypatch.setenv(variable, secret if variable.endswith("KEY") else key_id)
        requests_seen = repr(emu.requests)
    monkeypatch.setenv("APCA_API_KEY_ID", key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
    runs = rlbridge_cli("runs", "list", "--json")
    listed = json.loads(runs.stdout)
    # the trading API's refusals end runs as failed (the data API's come before a run starts)
    assert [r["status"] for r in listed].count("failed") == 2
    run_id = next(r["run_id"] for r in listed if r["status"] == "completed")
    shown = rlbridge_cli("runs", "show", run_id, "--json")
    assert json.loads(shown.stdout)["config"]["broker"]["name"] == "alpaca"
    outputs += [runs.output, shown.output]
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    store = open_store(rlbridge_db_url)
    with store.engine.connect() as conn:
        tables = [r[0] for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [repr(conn.exec_driver_sql(f'SELECT * FROM "{t}"').all()) for t in tables]
    assert "orders" in tables and any("rlb-" in r for r in rows)
    # every record of the process but the emulator's own websocket server (a test tool)
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if not r.name.startswith("websockets.server"))
    assert "GET /v2/account" in logged and "authenticate" not in logged  # DEBUG was on
    for value in (key_id, secret, key_id[::-1], secret[::-1]):
        for piece in {value[i:i + 8] for i in range(len(value) - 7)}:  # no part of a key
            for text in (*outputs, logged, requests_seen, *rows):
                assert piece not in text
            assert piece.encode() not in written


# ---------------------------------------------------------------------- the feed
def test_the_feed_pages_through_bars_into_the_panel_other_feeds_give(market, bars):
    market.max_page_size = 7
    config = agent(market, data={"feed": "alpaca", "symbols": SYMBOLS, "start": "2020-07-01",
                                 "end": "2020-09-29", "data_url": market.data_url})
    loaded = load_bars(config, PM)
    assert loaded.equals(bars.between("2020-07-01", "2020-09-29"))
    pages = [r for r in market.requests if r.path == "/v2/stocks/bars"]
    served = 3 * len(bars.between("2020-06-30", "2020-09-29"))  # asked from a day before
    assert len(pages) == math.ceil(served / 7)  # every page of 7 bars, once
    assert [p.query["adjustment"] for p in pages[:1]] == ["all"]


def test_data_ingest_from_alpaca_then_the_sql_feed_reads_it(market, bars, rlbridge_cli,
                                                            rlbridge_db_url):
    out = rlbridge_cli("data", "ingest", "--feed", "alpaca", "-o",
                       f'data_url="{market.data_url}"', "--symbols", "SPY,AGG",
                       "--start", "2020-06-01", "--end", "2020-09-29")
    assert out.exit_code == 0, out.output
    config = config_from_mapping({"data": {"feed": "sql", "symbols": ["SPY", "AGG"]}}, pm=PM)
    stored = load_bars(config, PM, store_url=rlbridge_db_url)
    assert stored.equals(bars.select(["SPY", "AGG"]).between(None, "2020-09-29"))


def test_crypto_hourly_bars_need_no_keys(market, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID")
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    market.clock.set(dt.datetime(2024, 1, 8))
    start = dt.datetime(2024, 1, 6, 22)
    market.add_bars("BTC/USD", [(start + dt.timedelta(hours=h), 42_000 + h, 42_100 + h,
                                 41_900 + h, 42_050 + h, 1.5) for h in range(5)],
                    timeframe="1Hour")
    config = config_from_mapping({"data": {
        "feed": "alpaca", "symbols": ["BTC/USD"], "timeframe": "1Hour", "calendar": "none",
        "start": "2024-01-06", "data_url": market.data_url}}, pm=PM)
    loaded = load_bars(config, PM)
    assert list(loaded.index) == list(pd.date_range("2024-01-06 22:00", periods=5, freq="h",
                                                    tz="UTC"))
    assert loaded.values[:, 0, 0].tolist() == [42_000.0 + h for h in range(5)]
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID is not set: the alpaca feed"):
        load_bars(config_from_mapping({"data": {"feed": "alpaca", "symbols": ["SPY"],
                                                "data_url": market.data_url}}, pm=PM), PM)


def test_feed_errors_name_the_source(market, monkeypatch):
    config = config_from_mapping({"data": {"feed": "alpaca", "symbols": ["SPY", "QQQ"],
                                           "data_url": market.data_url}}, pm=PM)
    with pytest.raises(DataError, match=rf"alpaca {market.data_url}: no 1Day bars of QQQ"):
        load_bars(config, PM)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong")
    with pytest.raises(DataError, match=r"Alpaca refused the API keys \(403\)"):
        load_bars(config, PM)
    with pytest.raises(ConfigError, match="timeframe"):
        config_from_mapping({"data": {"feed": "alpaca", "symbols": ["SPY"],
                                      "timeframe": "7Day"}}, pm=PM)

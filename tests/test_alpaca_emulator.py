"""The Alpaca emulator, driven by the real alpaca-py clients over loopback sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrderStatus,
    TimeInForce,
    TradeEvent,
)
from alpaca.trading.models import TradeAccount
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from requests.adapters import HTTPAdapter

from rlbridge.emulators.alpaca import AlpacaEmulator, EmulatorError, EmulatorTimeout
from rlbridge.errors import RLBridgeError

NY = dt.timezone(dt.timedelta(hours=-5))  # New York in winter (EST)


@pytest.fixture
def emulator(alpaca_emulator: AlpacaEmulator) -> AlpacaEmulator:
    """rlbridge.testing's ``alpaca_emulator``, under a shorter name."""
    return alpaca_emulator


@pytest.fixture
def trading(emulator: AlpacaEmulator) -> TradingClient:
    return TradingClient(emulator.key_id, emulator.secret_key, url_override=emulator.trading_url)


@pytest.fixture
def market_data(emulator: AlpacaEmulator) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(emulator.key_id, emulator.secret_key,
                                     url_override=emulator.data_url)


def market(symbol: str, qty: float, client_id: str, side: OrderSide = OrderSide.BUY,
           tif: TimeInForce = TimeInForce.DAY) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif,
                              client_order_id=client_id)


class _TimeoutAdapter(HTTPAdapter):
    """alpaca-py sets no timeout; a client that wants one mounts an adapter like this."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["timeout"] = self.seconds
        return super().send(request, **kwargs)


class Collector:
    """An SDK stream handler that keeps what it receives; the test waits on a condition."""

    def __init__(self) -> None:
        self.items: list = []
        self._changed = threading.Condition()

    async def handler(self, item) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.items) >= count, timeout), \
                f"received {len(self.items)} of {count} messages"
            return list(self.items)


@contextmanager
def running(stream, emulator: AlpacaEmulator, kind: str) -> Iterator[threading.Thread]:
    """Run an SDK stream in its own thread (it must not share a running loop); stop it."""
    thread = threading.Thread(target=stream.run, name=f"sdk-{kind}", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        if stream._loop is not None:
            stream.stop()
        emulator.drop_stream_connections(kind)  # wakes the SDK's 5 s receive wait at once
        thread.join(timeout=10)
        assert not thread.is_alive(), f"the {kind} stream did not stop"


# -- account, clock ------------------------------------------------------------------------

def test_account_parses_into_trade_account(trading, emulator):
    account = trading.get_account()
    assert isinstance(account, TradeAccount)
    assert isinstance(account.id, uuid.UUID)
    assert account.status == AccountStatus.ACTIVE
    assert account.account_number == "PA3RLBRIDGE1"
    assert (account.cash, account.equity, account.buying_power) == ("100000", "100000", "100000")
    assert account.long_market_value == "0" and account.currency == "USD"


def test_clock_follows_the_set_time_and_overrides(trading, emulator):
    emulator.clock.set(dt.datetime(2024, 1, 8, 10, 0, tzinfo=NY))  # a Monday
    clock = trading.get_clock()
    assert clock.is_open is True
    assert clock.timestamp == dt.datetime(2024, 1, 8, 10, 0, tzinfo=NY)
    assert clock.next_close == dt.datetime(2024, 1, 8, 16, 0, tzinfo=NY)
    assert clock.next_open == dt.datetime(2024, 1, 9, 9, 30, tzinfo=NY)

    emulator.clock.set(dt.datetime(2024, 1, 13, 12, 0, tzinfo=NY))  # a Saturday
    clock = trading.get_clock()
    assert clock.is_open is False
    assert clock.next_open == dt.datetime(2024, 1, 15, 9, 30, tzinfo=NY)

    holiday_open = dt.datetime(2024, 1, 16, 9, 30, tzinfo=NY)
    emulator.clock.set(dt.datetime(2024, 1, 15, 10, 0, tzinfo=NY), is_open=False,
                       next_open=holiday_open)
    clock = trading.get_clock()
    assert (clock.is_open, clock.next_open) == (False, holiday_open)


# -- orders --------------------------------------------------------------------------------

def test_market_and_limit_orders_read_back_by_id_and_client_id(trading, emulator):
    emulator.clock.set(dt.datetime(2024, 1, 8, 10, 0, tzinfo=NY))
    placed = trading.submit_order(market("SPY", 10, "run1-bar5-SPY"))
    limit = trading.submit_order(LimitOrderRequest(
        symbol="AGG", qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
        limit_price=98.5, client_order_id="run1-bar5-AGG"))

    assert placed.client_order_id == "run1-bar5-SPY" and placed.status == OrderStatus.NEW
    assert (placed.symbol, float(placed.qty), placed.side, placed.type) == \
        ("SPY", 10.0, OrderSide.BUY, OrderType.MARKET)
    assert placed.submitted_at == dt.datetime(2024, 1, 8, 15, 0, tzinfo=dt.UTC)
    assert (limit.type, float(limit.limit_price), limit.time_in_force) == \
        (OrderType.LIMIT, 98.5, TimeInForce.GTC)

    for order in (placed, limit):
        assert trading.get_order_by_id(order.id) == order
        assert trading.get_order_by_client_id(order.client_order_id) == order
    assert [o["client_order_id"] for o in emulator.orders] == ["run1-bar5-SPY", "run1-bar5-AGG"]
    with pytest.raises(APIError) as missing:
        trading.get_order_by_client_id("never-sent")
    assert (missing.value.status_code, missing.value.code) == (404, 40410000)


def test_order_list_filters(trading, emulator):
    start = dt.datetime(2024, 1, 8, 15, 0, tzinfo=dt.UTC)
    for minute, symbol in enumerate(["SPY", "AGG", "SPY", "XLK"]):
        emulator.clock.set(start + dt.timedelta(minutes=minute))
        trading.submit_order(market(symbol, 1, f"c{minute}"))
    emulator.fill("c1", price=100.0)

    def ids(**kwargs) -> list[str]:
        return [o.client_order_id for o in trading.get_orders(GetOrdersRequest(**kwargs))]

    assert [o.client_order_id for o in trading.get_orders()] == ["c3", "c2", "c0"]  # open, newest first
    assert ids(status=QueryOrderStatus.CLOSED) == ["c1"]
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == ["c0", "c1", "c2", "c3"]
    assert ids(status=QueryOrderStatus.ALL, limit=2) == ["c3", "c2"]
    assert ids(status=QueryOrderStatus.ALL, symbols=["SPY", "XLK"]) == ["c3", "c2", "c0"]
    assert ids(status=QueryOrderStatus.ALL, after=start, until=start + dt.timedelta(minutes=3)) \
        == ["c2", "c1"]  # both bounds exclusive


def test_notional_order_fills_the_amount(trading, emulator):
    order = trading.submit_order(MarketOrderRequest(symbol="SPY", notional=500, side=OrderSide.BUY,
                                                    time_in_force=TimeInForce.DAY))
    assert order.qty is None and order.notional == "500"
    emulator.fill(str(order.id), price=125.0)
    done = trading.get_order_by_id(order.id)
    assert (done.status, float(done.filled_qty), float(done.filled_avg_price)) == \
        (OrderStatus.FILLED, 4.0, 125.0)
    assert emulator.cash == 99_500.0


def test_duplicate_client_order_id_is_a_422(trading, emulator):
    trading.submit_order(market("SPY", 1, "dup-1"))
    with pytest.raises(APIError) as error:
        trading.submit_order(market("SPY", 1, "dup-1"))
    assert error.value.status_code == 422
    assert (error.value.code, error.value.message) == (40010001, "client_order_id must be unique")
    assert len(emulator.orders) == 1 and emulator.submit_counts["dup-1"] == 2


def test_invalid_orders_are_refused_like_alpaca(trading, emulator):
    with pytest.raises(APIError) as crypto_day:
        trading.submit_order(market("BTC/USD", 1, "c-day", tif=TimeInForce.DAY))
    assert crypto_day.value.status_code == 422 and "time_in_force" in crypto_day.value.message
    with pytest.raises(APIError) as short_coin:
        trading.submit_order(market("BTC/USD", 1, "c-short", OrderSide.SELL, TimeInForce.GTC))
    assert short_coin.value.status_code == 403
    assert short_coin.value.message.startswith("insufficient balance for BTC")
    assert emulator.orders == []


# -- faults ------------------------------------------------------------------------------

def test_504_after_accept_retried_by_the_sdk_gives_422_and_one_order(trading, emulator):
    emulator.faults.add("POST /v2/orders", status=504, after_accept=True)
    with pytest.raises(APIError) as error:
        trading.submit_order(market("SPY", 5, "run7-bar3-SPY"))  # the SDK sleeps 3 s, retries
    assert error.value.status_code == 422
    assert error.value.message == "client_order_id must be unique"
    assert [(r.method, r.path, r.status) for r in emulator.requests] == \
        [("POST", "/v2/orders", 504), ("POST", "/v2/orders", 422)]
    assert len(emulator.orders) == 1 and emulator.submit_counts["run7-bar3-SPY"] == 2
    found = trading.get_order_by_client_id("run7-bar3-SPY")
    assert (found.symbol, float(found.qty)) == ("SPY", 5.0)


def test_429_is_retried_then_succeeds_and_carries_retry_after(trading, emulator):
    emulator.faults.add("POST /v2/orders", status=429, retry_after=2)
    order = trading.submit_order(market("SPY", 2, "rl-429"))
    assert order.client_order_id == "rl-429"
    assert [r.status for r in emulator.requests] == [429, 200]
    assert len(emulator.orders) == 1

    emulator.faults.add("GET /v2/account", status=429)
    raw = requests.get(emulator.trading_url + "/v2/account", timeout=5, headers={
        "APCA-API-KEY-ID": emulator.key_id, "APCA-API-SECRET-KEY": emulator.secret_key})
    assert (raw.status_code, raw.headers["Retry-After"]) == (429, "1")
    assert raw.json() == {"code": 42910000, "message": "rate limit exceeded"}


def test_500_surfaces_as_api_error_without_retry_or_order(trading, emulator):
    emulator.faults.add("POST /v2/orders", status=500)
    with pytest.raises(APIError) as error:
        trading.submit_order(market("SPY", 1, "rl-500"))
    assert (error.value.status_code, error.value.code) == (500, 50010000)
    assert [r.status for r in emulator.requests] == [500]
    assert emulator.orders == []
    assert trading.submit_order(market("SPY", 1, "rl-500")).client_order_id == "rl-500"


def test_held_response_is_a_requests_timeout_and_the_order_exists(trading, emulator):
    trading._session.mount("http://", _TimeoutAdapter(0.3))
    emulator.faults.add("GET /v2/account", hold=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        trading.get_account()

    emulator.faults.add("POST /v2/orders", hold=1.0, after_accept=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        trading.submit_order(market("SPY", 3, "rl-timeout"))
    assert trading.get_order_by_client_id("rl-timeout").status == OrderStatus.NEW
    emulator.wait_idle(timeout=5)
    assert len(emulator.orders) == 1


def test_order_arriving_after_the_client_timed_out_is_refused_as_duplicate(trading, emulator):
    trading._session.mount("http://", _TimeoutAdapter(0.3))
    emulator.faults.add("POST /v2/orders", hold=1.0)  # held before the broker sees it
    with pytest.raises(requests.exceptions.ReadTimeout):
        trading.submit_order(market("SPY", 3, "rl-late"))
    with pytest.raises(APIError) as missing:  # not there yet: the client resends
        trading.get_order_by_client_id("rl-late")
    assert missing.value.status_code == 404
    resent = trading.submit_order(market("SPY", 3, "rl-late"))
    emulator.wait_idle(timeout=5)
    assert [r.status for r in emulator.requests if r.method == "POST"] == [200, 422]
    assert [o["id"] for o in emulator.orders] == [str(resent.id)]


def test_random_faults_replay_with_the_same_seed(trading, emulator):
    def run(seed: int) -> list[int]:
        emulator.faults.clear()
        emulator.faults.seed(seed)
        fault = emulator.faults.add("GET /v2/clock", status=500, times=None, probability=0.3)
        statuses = []
        for _ in range(30):
            try:
                trading.get_clock()
                statuses.append(200)
            except APIError as error:
                statuses.append(error.status_code)
        assert statuses.count(500) == fault.fired
        return statuses

    first = run(11)
    assert 0 < first.count(500) < 30
    assert run(11) == first and run(12) != first


# -- executions --------------------------------------------------------------------------

def test_partial_fills_move_the_order_position_cash_and_equity(trading, emulator):
    order = trading.submit_order(market("SPY", 10, "pf-1"))
    emulator.fill("pf-1", 4, price=100.0)
    partial = trading.get_order_by_id(order.id)
    assert (partial.status, float(partial.filled_qty), float(partial.filled_avg_price)) == \
        (OrderStatus.PARTIALLY_FILLED, 4.0, 100.0)
    assert float(trading.get_open_position("SPY").qty) == 4.0

    emulator.fill(str(order.id), price=101.0)  # the remaining 6
    done = trading.get_order_by_client_id("pf-1")
    assert (done.status, float(done.filled_qty), float(done.filled_avg_price)) == \
        (OrderStatus.FILLED, 10.0, 100.6)
    position = trading.get_open_position("SPY")
    assert (float(position.qty), float(position.avg_entry_price)) == (10.0, 100.6)
    assert emulator.cash == 100_000 - 400 - 606

    emulator.set_price("SPY", 110.0)
    account = trading.get_account()
    assert Decimal(account.equity) == Decimal("100000") - 1006 + 1100
    assert (account.long_market_value, trading.get_all_positions()[0].market_value) == \
        ("1100", "1100")
    assert [e["event"] for e in emulator.trade_events] == ["new", "partial_fill", "fill"]

    trading.submit_order(market("SPY", 15, "pf-2", OrderSide.SELL))
    emulator.fill("pf-2", price=120.0)  # sells 10 and opens a short of 5 at 120
    short = trading.get_open_position("SPY")
    assert (float(short.qty), float(short.avg_entry_price), short.side) == (-5.0, 120.0, "short")
    assert emulator.cash == 100_000 - 1006 + 15 * 120


def test_reject_cancel_and_closing_positions(trading, emulator):
    trading.submit_order(market("SPY", 1, "x-rej"))
    emulator.reject("x-rej", "not enough buying power")
    assert trading.get_order_by_client_id("x-rej").status == OrderStatus.REJECTED

    resting = trading.submit_order(market("AGG", 1, "x-can"))
    trading.cancel_order_by_id(resting.id)
    assert trading.get_order_by_id(resting.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as twice:
        trading.cancel_order_by_id(resting.id)
    assert twice.value.status_code == 422

    for client_id in ("x-1", "x-2"):
        trading.submit_order(market("XLK", 1, client_id))
    canceled = trading.cancel_orders()
    assert sorted(str(c.id) for c in canceled) == sorted(o["id"] for o in emulator.orders[-2:])
    assert all(c.status == 200 for c in canceled)

    emulator.set_position("SPY", 7, 400.0)
    emulator.set_position("AGG", 2, 100.0)
    closing = trading.close_position("SPY")
    assert (closing.symbol, float(closing.qty), closing.side) == ("SPY", 7.0, OrderSide.SELL)
    emulator.fill(str(closing.id), price=410.0)
    assert emulator.positions == {"AGG": 2.0}
    closed_all = trading.close_all_positions()
    assert [(c.symbol, c.status, float(c.body.qty)) for c in closed_all] == [("AGG", 200, 2.0)]
    with pytest.raises(APIError) as no_position:
        trading.get_open_position("XLK")
    assert (no_position.value.status_code, no_position.value.message) == \
        (404, "position does not exist")


def test_auto_fill_with_partial_and_reject_faults(trading, emulator):
    emulator.auto_fill_price = lambda order: 50.0 if order["symbol"] == "SPY" else None
    emulator.faults.add("POST /v2/orders", partial=0.5)
    emulator.faults.add("POST /v2/orders", reject="halted")
    first = trading.submit_order(market("SPY", 10, "af-1"))
    second = trading.submit_order(market("SPY", 10, "af-2"))
    waiting = trading.submit_order(market("AGG", 10, "af-3"))
    events = [(e["order"]["client_order_id"], e["event"], e.get("qty"))
              for e in emulator.trade_events]
    assert events == [("af-1", "new", None), ("af-1", "partial_fill", "5"),
                      ("af-1", "fill", "5"), ("af-2", "new", None), ("af-2", "rejected", None),
                      ("af-3", "new", None)]
    assert trading.get_order_by_id(first.id).status == OrderStatus.FILLED
    assert trading.get_order_by_id(second.id).status == OrderStatus.REJECTED
    assert trading.get_order_by_id(waiting.id).status == OrderStatus.NEW
    assert emulator.positions == {"SPY": 10.0}


def test_next_open_auto_fill_uses_the_open_after_submission(trading, emulator):
    emulator.auto_fill_price = "next_open"
    emulator.add_bars("SPY", [(dt.date(2024, 1, 2), 470, 475, 468, 472, 1000),
                              (dt.date(2024, 1, 3), 471, 473, 466, 468, 1200)])
    emulator.clock.set(dt.datetime(2024, 1, 3, 8, 0, tzinfo=NY))  # before the open
    trading.submit_order(market("SPY", 2, "no-1", tif=TimeInForce.OPG))
    assert emulator.fills[-1]["price"] == 471.0

    emulator.clock.set(dt.datetime(2024, 1, 3, 17, 0, tzinfo=NY))  # after the close
    trading.submit_order(market("SPY", 1, "no-2"))
    assert trading.get_order_by_client_id("no-2").status == OrderStatus.NEW
    emulator.add_bars("SPY", [(dt.date(2024, 1, 4), 467, 470, 465, 469, 900)])
    assert trading.get_order_by_client_id("no-2").filled_avg_price == "467"
    assert emulator.positions == {"SPY": 3.0}


def test_fill_mistakes_raise_rlbridge_errors(trading, emulator):
    trading.submit_order(LimitOrderRequest(symbol="SPY", qty=2, side=OrderSide.BUY,
                                           time_in_force=TimeInForce.DAY, limit_price=100,
                                           client_order_id="lim"))
    with pytest.raises(EmulatorError, match="cannot fill at 101"):
        emulator.fill("lim", price=101.0)
    with pytest.raises(EmulatorError, match="remaining"):
        emulator.fill("lim", 3, price=99.0)
    with pytest.raises(EmulatorError, match="no order"):
        emulator.fill("unknown", price=1.0)
    with pytest.raises(EmulatorError, match="drop=True is for stream faults"):
        emulator.faults.add("POST /v2/orders", drop=True)
    assert issubclass(EmulatorError, RLBridgeError) and issubclass(EmulatorTimeout, TimeoutError)


# -- market data -------------------------------------------------------------------------

def test_stock_bars_pagination_returns_every_bar_once_in_order(market_data, emulator):
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(25)]
    for k, symbol in enumerate(["SPY", "AGG", "XLK"]):
        emulator.add_bars(symbol, [(d, 100 + k + i, 101 + k + i, 99 + k + i, 100.5 + k + i, 10 * i)
                                   for i, d in enumerate(days)])
    emulator.add_bars("SPY", [(dt.datetime(2024, 1, 2, 15), 1, 2, 0.5, 1.5, 7)], timeframe="1Hour")
    emulator.max_page_size = 7

    barset = market_data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols=["SPY", "AGG", "XLK"], timeframe=TimeFrame.Day,
        start=dt.datetime(2024, 1, 1)))
    for k, symbol in enumerate(["SPY", "AGG", "XLK"]):
        bars = barset[symbol]
        assert [b.open for b in bars] == [100.0 + k + i for i in range(25)]
        assert bars[0].timestamp == dt.datetime(2024, 1, 1, 5, 0, tzinfo=dt.UTC)
        assert bars[0].trade_count is None and bars[0].vwap is None
    pages = [r for r in emulator.requests if r.path == "/v2/stocks/bars"]
    assert len(pages) == 11  # 75 bars, 7 a page
    assert "page_token" not in pages[0].query and all("page_token" in p.query for p in pages[1:])

    capped = market_data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols=["XLK", "AGG"], timeframe=TimeFrame.Day, limit=30))
    assert (len(capped["AGG"]), len(capped["XLK"])) == (25, 5)
    hourly = market_data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols="SPY", timeframe=TimeFrame.Hour, start=dt.datetime(2024, 1, 1)))
    assert [(b.timestamp.hour, b.volume) for b in hourly["SPY"]] == [(15, 7.0)]


def test_per_symbol_bars_endpoint_pages_too(emulator):
    emulator.add_bars("SPY", [(dt.datetime(2024, 1, 2, 14, 30 + i), 10 + i, 11 + i, 9 + i, 10 + i, 5)
                              for i in range(5)], timeframe="1Min")
    headers = {"APCA-API-KEY-ID": emulator.key_id, "APCA-API-SECRET-KEY": emulator.secret_key}
    seen, token = [], None
    while True:
        params = {"timeframe": "1Min", "limit": 2, **({"page_token": token} if token else {})}
        page = requests.get(emulator.data_url + "/v2/stocks/SPY/bars", params=params,
                            headers=headers, timeout=5).json()
        assert page["symbol"] == "SPY"
        seen += [bar["o"] for bar in page["bars"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == [10, 11, 12, 13, 14]


def test_crypto_bars_need_no_keys_and_a_pair_symbol(emulator):
    emulator.add_bars("BTC/USD", [(dt.datetime(2024, 1, 1, h), 42000 + h, 42100 + h, 41900 + h,
                                   42050 + h, 1.25) for h in range(3)], timeframe="1Hour")
    client = CryptoHistoricalDataClient(url_override=emulator.data_url)
    bars = client.get_crypto_bars(CryptoBarsRequest(
        symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour, start=dt.datetime(2024, 1, 1)))
    assert [(b.timestamp.hour, b.open, b.volume) for b in bars["BTC/USD"]] == \
        [(0, 42000.0, 1.25), (1, 42001.0, 1.25), (2, 42002.0, 1.25)]
    with pytest.raises(APIError) as error:
        client.get_crypto_bars(CryptoBarsRequest(symbol_or_symbols="BTCUSD",
                                                 timeframe=TimeFrame.Hour))
    assert error.value.status_code == 400 and "does not match" in error.value.message


def test_wrong_keys_are_refused_without_echoing_the_secret(emulator):
    secret = "not-the-secret-" + uuid.uuid4().hex
    bad = TradingClient(emulator.key_id, secret, url_override=emulator.trading_url)
    with pytest.raises(APIError) as trading_error:
        bad.get_account()
    assert (trading_error.value.status_code, trading_error.value.code) == (401, 40110000)
    data = StockHistoricalDataClient(emulator.key_id, secret, url_override=emulator.data_url)
    with pytest.raises(APIError) as data_error:
        data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day))
    assert (data_error.value.status_code, data_error.value.code) == (403, 40310000)
    for text in (str(trading_error.value), str(data_error.value), repr(emulator.requests),
                 repr(emulator)):
        assert secret not in text and emulator.secret_key not in text


# -- streams -----------------------------------------------------------------------------

def test_trading_stream_receives_new_and_fill(trading, emulator):
    stream = TradingStream(emulator.key_id, emulator.secret_key,
                           url_override=emulator.trade_stream_url)
    updates = Collector()
    stream.subscribe_trade_updates(updates.handler)
    with running(stream, emulator, "trade_updates"):
        emulator.wait_for_stream_clients("trade_updates", timeout=10)
        order = trading.submit_order(market("SPY", 3, "ts-1"))
        emulator.fill("ts-1", 1, price=200.0)
        emulator.fill("ts-1", price=201.0)
        received = updates.wait(3)
    assert [u.event for u in received] == [TradeEvent.NEW, TradeEvent.PARTIAL_FILL,
                                           TradeEvent.FILL]
    assert all(u.order.id == order.id for u in received)
    last = received[-1]
    assert (last.price, last.qty, last.position_qty) == (201.0, 2.0, 3.0)
    assert (last.order.status, float(last.order.filled_qty)) == (OrderStatus.FILLED, 3.0)


def test_stock_data_stream_receives_pushed_bars_and_resubscribes_after_a_drop(emulator):
    stream = StockDataStream(emulator.key_id, emulator.secret_key,
                             url_override=emulator.data_stream_url)
    bars = Collector()
    stream.subscribe_bars(bars.handler, "SPY")
    when = dt.datetime(2024, 1, 8, 15, 31, tzinfo=dt.UTC)
    with running(stream, emulator, "market_data"):
        emulator.wait_for_stream_clients("market_data", timeout=10)
        emulator.push_bar("AGG", open=1, high=1, low=1, close=1, volume=1, timestamp=when)
        emulator.push_bar("SPY", open=470.1, high=471.0, low=469.5, close=470.8, volume=12345,
                          timestamp=when, trade_count=321, vwap=470.4)
        bars.wait(1)
        # after a drop the SDK reconnects, authenticates and subscribes again
        emulator.drop_stream_connections("market_data")
        emulator.wait_for_stream_clients("market_data", total=2, timeout=10)
        emulator.push_bar("SPY", open=471, high=472, low=470, close=471.5, volume=10,
                          timestamp=when + dt.timedelta(minutes=1))
        received = bars.wait(2)
    assert [b.symbol for b in received] == ["SPY", "SPY"]  # AGG was not subscribed
    bar = received[0]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == \
        (470.1, 471.0, 469.5, 470.8, 12345.0)
    assert (bar.timestamp, bar.trade_count, bar.vwap) == (when, 321.0, 470.4)
    assert (received[1].timestamp, received[1].trade_count) == \
        (when + dt.timedelta(minutes=1), None)
    assert [b.c for b in emulator.bars.series("SPY", "1Min")] == [470.8, 471.5]


def test_dropped_trade_stream_reconnects_and_a_lost_event_stays_lost(trading, emulator):
    stream = TradingStream(emulator.key_id, emulator.secret_key,
                           url_override=emulator.trade_stream_url)
    updates = Collector()
    stream.subscribe_trade_updates(updates.handler)
    with running(stream, emulator, "trade_updates"):
        emulator.wait_for_stream_clients("trade_updates", timeout=10)
        assert emulator.drop_stream_connections("trade_updates") == 1
        emulator.wait_for_stream_clients("trade_updates", total=2, timeout=10)

        emulator.faults.add("STREAM trade_updates", drop=True)  # the "new" event is lost
        trading.submit_order(market("SPY", 1, "drop-1"))
        emulator.wait_for_stream_clients("trade_updates", total=3, timeout=10)
        emulator.fill("drop-1", price=10.0)
        received = updates.wait(1)
    assert [(u.order.client_order_id, u.event) for u in received] == [("drop-1", TradeEvent.FILL)]
    assert emulator.stream_connections_total("trade_updates") == 3
    assert [e["event"] for e in emulator.trade_events] == ["new", "fill"]


def test_market_data_stream_over_json_for_other_clients(emulator):
    async def talk() -> list:
        from websockets.asyncio.client import connect

        async with connect(emulator.data_stream_url) as ws:
            replies = [await ws.recv()]
            await ws.send(json.dumps({"action": "auth", "key": emulator.key_id,
                                      "secret": emulator.secret_key}))
            replies.append(await ws.recv())
            await ws.send('{"action": "subscribe", "bars": ["SPY"]}')
            replies.append(await ws.recv())
            await asyncio.get_running_loop().run_in_executor(None, lambda: emulator.push_bar(
                "SPY", open=1, high=2, low=0.5, close=1.5, volume=10,
                timestamp=dt.datetime(2024, 1, 8, 15, 0)))
            replies.append(await ws.recv())
            return replies

    replies = [json.loads(r) for r in asyncio.run(asyncio.wait_for(talk(), 10))]
    assert replies[0] == [{"T": "success", "msg": "connected"}]
    assert replies[1] == [{"T": "success", "msg": "authenticated"}]
    assert replies[2][0]["T"] == "subscription" and replies[2][0]["bars"] == ["SPY"]
    assert replies[3] == [{"T": "b", "S": "SPY", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10,
                           "t": "2024-01-08T15:00:00Z", "n": None, "vw": None}]

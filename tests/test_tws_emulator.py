"""The TWS API emulator, driven by the real ib_insync client over loopback sockets.

Every test fails on an ib_insync decoder error in the log (ib_insync logs and swallows field
errors, so a wrong layout would otherwise only show as a hang) and on any ERROR record of
ib_insync the test did not declare with ``ib_log.append(pattern)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from ib_insync import (
    IB,
    Forex,
    LimitOrder,
    MarketOrder,
    Order,
    Stock,
    Trade,
)

from rlbridge.emulators.tws import (
    MAX_SERVER_VERSION,
    EmulatorError,
    TwsEmulator,
)
from rlbridge.emulators.tws.protocol import frame, split_frames

pytestmark = pytest.mark.usefixtures("ib_log")  # tests/conftest.py

T = TypeVar("T")
UTC = dt.UTC
NY = ZoneInfo("US/Eastern")
ACCOUNT = "DU1234567"


# -- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture
def emulator(tws_emulator: TwsEmulator) -> TwsEmulator:
    """rlbridge.testing's ``tws_emulator``, under a shorter name."""
    return tws_emulator


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    """Run a test coroutine in a fresh event loop, never longer than ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(emulator: TwsEmulator, client_id: int = 1, ib: IB | None = None) -> IB:
    ib = ib or IB()
    await ib.connectAsync(emulator.host, emulator.port, clientId=client_id, timeout=5)
    return ib


async def until(ib: IB, predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, re-checking after every packet ib_insync handles."""
    async def wait() -> None:
        while not predicate():
            await ib.updateEvent

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {timeout} s") from None


class Watch:
    """ib_insync's errorEvent and disconnectedEvent, collected."""

    def __init__(self, ib: IB) -> None:
        self.errors: list[tuple[int, int, str]] = []
        self.gone = asyncio.Event()
        ib.errorEvent += self._error
        ib.disconnectedEvent += self.gone.set

    def _error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        self.errors.append((req_id, code, text))

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.errors]

    async def disconnected(self) -> None:
        await asyncio.wait_for(self.gone.wait(), 5)


def values(ib: IB) -> dict[tuple[str, str], str]:
    return {(v.tag, v.currency): v.value for v in ib.accountValues() if not v.modelCode}


def spy() -> Stock:
    return Stock("SPY", "SMART", "USD")


def daily_rows() -> list[tuple[dt.date, float, float, float, float, float]]:
    days = [dt.date(2023, 12, 27), dt.date(2023, 12, 28), dt.date(2023, 12, 29),
            dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
    return [(d, 470.0 + i, 472.5 + i, 468.25 + i, 471.75 + i, 1_000_000.0 + i * 1_234)
            for i, d in enumerate(days)]


# -- connection ----------------------------------------------------------------------------

def test_connect_syncs_accounts_positions_values_and_ends_with_executions(emulator):
    emulator.set_position("SPY", 10, 400.0)
    emulator.set_price("SPY", 410.0)
    emulator.clock.set(dt.datetime(2024, 1, 8, 15, 0, 7, tzinfo=UTC))

    async def main() -> None:
        ib = await connect(emulator)
        try:
            assert ib.client.serverVersion() == MAX_SERVER_VERSION == 176
            assert ib.managedAccounts() == [ACCOUNT]
            [pos] = ib.positions()
            assert (pos.account, pos.contract.symbol, pos.position, pos.avgCost) == \
                (ACCOUNT, "SPY", 10.0, 400.0)
            assert pos.contract.conId == emulator.contract("SPY")["con_id"]
            got = values(ib)
            assert got[("NetLiquidation", "USD")] == "104100.00"
            assert got[("TotalCashValue", "USD")] == "100000.00"
            assert got[("GrossPositionValue", "USD")] == "4100.00"
            assert got[("CashBalance", "USD")] == "100000.00"
            assert got[("AccountCode", "")] == ACCOUNT
            [item] = ib.portfolio()
            assert (item.marketPrice, item.marketValue, item.unrealizedPNL) == \
                (410.0, 4100.0, 100.0)
            assert ib.openTrades() == [] and ib.fills() == []
            summary = {(v.tag, v.currency): v.value for v in await ib.accountSummaryAsync()}
            assert summary[("NetLiquidation", "USD")] == "104100.00"
            assert summary[("BuyingPower", "USD")] == "412300.00"  # 4 x (104100 - 4100 / 4)
            assert summary[("CashBalance", "BASE")] == summary[("CashBalance", "USD")] == \
                "100000.00"  # $LEDGER:ALL
            assert await ib.reqCurrentTimeAsync() == dt.datetime(2024, 1, 8, 15, 0, 7, tzinfo=UTC)
        finally:
            ib.disconnect()

    run(main())
    asked = [name for _, _, name, _ in emulator.messages("in")]
    for request in ("startApi", "reqPositions", "reqOpenOrders", "reqCompletedOrders",
                    "reqAccountUpdates", "reqAccountUpdatesMulti", "reqExecutions"):
        assert request in asked
    sent = emulator.messages("out")
    assert [m[3] for m in sent[:2]] == [["15", "1", ACCOUNT], ["9", "1", "1"]]
    [executions] = emulator.messages("in", "reqExecutions")
    [end] = emulator.messages("out", "execDetailsEnd")
    assert end[3] == ["55", "1", executions[3][2]]
    assert emulator.unhandled == []


def read_frames(sock: socket.socket, count: int) -> list[list[str]]:
    buffer = bytearray()
    frames: list[list[str]] = []
    while len(frames) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(frames)} of {count} frames: {frames}"
        buffer += chunk
        frames += split_frames(buffer)
    return frames


def raw_client(port: int, versions: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"API\0" + struct.pack(">I", len(versions)) + versions)
    return sock


def test_handshake_caps_the_version_and_refuses_a_client_id_in_use(emulator):
    with raw_client(emulator.port, b"v100..200") as first:
        [[version, conn_time]] = read_frames(first, 1)
        assert version == "176"
        assert re.fullmatch(r"\d{8} \d\d:\d\d:\d\d \w+", conn_time)
        first.sendall(frame(["71", "2", "7", ""]))
        frames = read_frames(first, 5)
        assert frames[0] == ["15", "1", ACCOUNT]
        assert frames[1] == ["9", "1", "1"]
        assert [f[:4] for f in frames[2:]] == [["4", "2", "-1", "2104"], ["4", "2", "-1", "2106"],
                                               ["4", "2", "-1", "2158"]]
        assert all(len(f) == 6 for f in frames[2:])  # advanced reject JSON from version 166
        emulator.wait_for_clients(1)
        with raw_client(emulator.port, b"v157..176") as second:
            read_frames(second, 1)
            second.sendall(frame(["71", "2", "7", ""]))
            [refused] = read_frames(second, 1)
            assert refused[:4] == ["4", "2", "-1", "326"]
            assert "client id is already in use" in refused[4]
            assert second.recv(100) == b""  # then closed
    with raw_client(emulator.port, b"v100..150") as old:
        [[version, _]] = read_frames(old, 1)
        assert version == "176" and old.recv(100) == b""  # no shared version: closed
    assert emulator.clients == []


@pytest.mark.parametrize("version", [157, 163, 166, 170, 176])
def test_every_pinned_version_round_trips_contracts_orders_and_fills(version):
    with TwsEmulator(server_version=version) as emulator:
        async def main() -> None:
            ib = await connect(emulator)
            watch = Watch(ib)
            try:
                assert ib.client.serverVersion() == version
                stock, fx = spy(), Forex("EURUSD")
                assert await ib.qualifyContractsAsync(stock, fx) == [stock, fx]
                [details] = await ib.reqContractDetailsAsync(stock)
                assert details.minSize == (1.0 if version >= 164 else 0.0)
                assert details.suggestedSizeIncrement == (100.0 if version >= 163 else 0.0)
                buy = ib.placeOrder(stock, LimitOrder("BUY", 5, 101.5, orderRef=f"v{version}"))
                rest = ib.placeOrder(stock, LimitOrder("BUY", 1, 90.0, orderRef="cancel-me"))
                await until(ib, lambda: buy.orderStatus.status == rest.orderStatus.status
                            == "Submitted", "orders acknowledged")
                emulator.fill(f"v{version}", price=101.25, commission=1.0)
                ib.cancelOrder(rest.order)
                await until(ib, lambda: buy.fills and buy.fills[0].commissionReport.execId
                            and rest.orderStatus.status == "Cancelled" and 202 in watch.codes(),
                            "fill and cancel")
                assert buy.fills[0].execution.price == 101.25
                assert buy.fills[0].commissionReport.commission == 1.0
                done = await ib.reqCompletedOrdersAsync(False)
                assert sorted((t.order.orderRef, t.orderStatus.status) for t in done) == \
                    [("cancel-me", "Cancelled"), (f"v{version}", "Filled")]
            finally:
                ib.disconnect()

        run(main())
        assert emulator.errors == []
        assert [o["order_ref"] for o in emulator.orders] == [f"v{version}", "cancel-me"]


def test_server_version_outside_the_pinned_range_is_refused():
    with pytest.raises(EmulatorError, match="157..176"):
        TwsEmulator(server_version=177)


# -- contracts and historical data ---------------------------------------------------------

def test_qualify_stock_and_forex_and_unknown_contract(emulator, ib_log):
    ib_log.append(r"Error 200, reqId \d+: No security definition")
    emulator.clock.set(dt.datetime(2024, 1, 8, 15, 0, tzinfo=UTC))  # a Monday

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            stock, fx, bogus = spy(), Forex("EURUSD"), Stock("NOPE", "SMART", "USD")
            assert await ib.qualifyContractsAsync(stock, fx, bogus) == [stock, fx]
            assert (stock.conId, stock.exchange, stock.primaryExchange, stock.localSymbol) == \
                (emulator.contract("SPY")["con_id"], "SMART", "ARCA", "SPY")
            assert (fx.conId, fx.symbol, fx.currency, fx.secType, fx.exchange,
                    fx.localSymbol) == (emulator.contract("EUR.USD")["con_id"], "EUR", "USD",
                                        "CASH", "IDEALPRO", "EUR.USD")
            assert 200 in watch.codes()
            [details] = await ib.reqContractDetailsAsync(Stock("SPY", "SMART", "USD"))
            assert (details.longName, details.minTick, details.stockType,
                    details.timeZoneId) == ("SPDR S&P 500 ETF TRUST", 0.01, "ETF", "US/Eastern")
            assert "ARCA" in details.validExchanges.split(",")
            first = details.liquidSessions()[0]
            assert (first.start, first.end) == (dt.datetime(2024, 1, 8, 9, 30, tzinfo=NY),
                                                dt.datetime(2024, 1, 8, 16, 0, tzinfo=NY))
            [fx_details] = await ib.reqContractDetailsAsync(Forex("EURUSD"))
            assert fx_details.minTick == 0.00005
        finally:
            ib.disconnect()

    run(main())


def test_daily_bars_come_back_exactly(emulator):
    rows = daily_rows()
    emulator.add_bars("SPY", [{"date": d, "open": o, "high": h, "low": lo, "close": c,
                               "volume": v, "vwap": c - 0.5, "trade_count": 100 + i}
                              for i, (d, o, h, lo, c, v) in enumerate(rows)])
    emulator.clock.set(dt.datetime(2024, 1, 3, 21, 0, tzinfo=UTC))

    async def main() -> None:
        ib = await connect(emulator)
        try:
            week = await ib.reqHistoricalDataAsync(spy(), "20240105 23:59:59 US/Eastern",
                                                   "1 W", "1 day", "TRADES", True)
            assert [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in week] == \
                rows[3:]
            assert [(b.average, b.barCount) for b in week] == \
                [(r[4] - 0.5, 103 + i) for i, r in enumerate(rows[3:])]
            now = await ib.reqHistoricalDataAsync(spy(), "", "2 D", "1 day", "TRADES", True)
            assert [b.date for b in now] == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
        finally:
            ib.disconnect()

    run(main())


def test_intraday_bars_in_both_date_formats_and_forex_midpoint(emulator, ib_log):
    ib_log.append(r"Error 162, reqId \d+: Historical Market Data Service error message:No")
    start = dt.datetime(2024, 1, 5, 14, 30, tzinfo=UTC)
    minutes = [(start + dt.timedelta(minutes=i), 470 + i / 4, 470.5 + i / 4, 469.5 + i / 4,
                470.25 + i / 4, 1000.0 + i) for i in range(5)]
    emulator.add_bars("SPY", minutes, bar_size="1 min")
    hours = [(dt.datetime(2024, 1, 5, 10 + i), 1.1 + i / 1000, 1.102 + i / 1000,
              1.099 + i / 1000, 1.101 + i / 1000, 0.0) for i in range(3)]
    emulator.add_bars("EUR.USD", hours, bar_size="1 hour")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            end = dt.datetime(2024, 1, 5, 14, 33, tzinfo=UTC)
            zoned = await ib.reqHistoricalDataAsync(spy(), end, "120 S", "1 min", "TRADES",
                                                    False)
            epoch = await ib.reqHistoricalDataAsync(spy(), end, "120 S", "1 min", "TRADES",
                                                    False, formatDate=2)
            expected = [(t, o, h, lo, c, v) for t, o, h, lo, c, v in minutes[1:3]]
            assert [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in zoned] == \
                expected
            assert getattr(zoned[0].date, "tzinfo", None) == NY  # TWS writes its own zone
            assert [(b.date, b.close) for b in epoch] == [(e[0], e[4]) for e in expected]
            assert getattr(epoch[0].date, "tzinfo", None) == UTC
            fx = Forex("EURUSD")
            mid = await ib.reqHistoricalDataAsync(fx, "20240105 13:00:00 UTC", "1 D",
                                                  "1 hour", "MIDPOINT", False, formatDate=2)
            assert [(b.date, b.open, b.close) for b in mid] == \
                [(r[0].replace(tzinfo=UTC), r[1], r[4]) for r in hours]
            trades = await ib.reqHistoricalDataAsync(fx, "", "1 D", "1 hour", "TRADES", False)
            assert len(trades) == 0 and 162 in watch.codes()
        finally:
            ib.disconnect()

    run(main())


def test_bad_historical_requests_get_ib_log(emulator, ib_log):
    ib_log += [r"Error 321, reqId \d+", r"Error 162, reqId \d+: .*HMDS query returned no data"]
    emulator.add_bars("SPY", daily_rows())

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            bad = await ib.reqHistoricalDataAsync(spy(), "", "5 X", "1 day", "TRADES", True)
            empty = await ib.reqHistoricalDataAsync(spy(), "20200101 00:00:00 UTC", "1 W",
                                                    "1 day", "TRADES", True)
            assert len(bad) == len(empty) == 0
            assert watch.codes() == [321, 162]
            assert "invalid duration '5 X'" in watch.errors[0][2]
        finally:
            ib.disconnect()

    run(main())


# -- orders and fills ----------------------------------------------------------------------

def test_market_limit_and_market_on_open_orders_keep_their_order_ref(emulator):
    async def main() -> None:
        ib = await connect(emulator)
        try:
            mkt = ib.placeOrder(spy(), MarketOrder("BUY", 10, orderRef="rb-mkt"))
            lmt = ib.placeOrder(spy(), LimitOrder("SELL", 3, 512.25, orderRef="rb-lmt",
                                                  tif="GTC"))
            moo = ib.placeOrder(spy(), MarketOrder("BUY", 7, orderRef="rb-moo", tif="OPG"))
            trades = [mkt, lmt, moo]
            await until(ib, lambda: all(t.orderStatus.status != "PendingSubmit"
                                        for t in trades), "acknowledgements")
            assert [t.orderStatus.status for t in trades] == \
                ["Submitted", "Submitted", "PreSubmitted"]
            assert all(t.order.permId > 0 and t.orderStatus.remaining == t.order.totalQuantity
                       for t in trades)
            listed = await ib.reqAllOpenOrdersAsync()
            assert sorted(t.order.orderRef for t in listed) == ["rb-lmt", "rb-mkt", "rb-moo"]
        finally:
            ib.disconnect()

    run(main())
    got = {o["order_ref"]: o for o in emulator.orders}
    assert [(got[r]["action"], got[r]["total_qty"], got[r]["order_type"], got[r]["tif"],
             got[r]["lmt_price"]) for r in ("rb-mkt", "rb-lmt", "rb-moo")] == \
        [("BUY", 10.0, "MKT", "DAY", None), ("SELL", 3.0, "LMT", "GTC", 512.25),
         ("BUY", 7.0, "MKT", "OPG", None)]
    assert emulator.submit_counts == {"rb-mkt": 1, "rb-lmt": 1, "rb-moo": 1}


def test_fills_carry_price_commission_and_move_positions_and_cash(emulator):
    async def main() -> None:
        ib = await connect(emulator)
        try:
            buy = ib.placeOrder(spy(), MarketOrder("BUY", 10, orderRef="r-buy"))
            await until(ib, lambda: buy.orderStatus.status == "Submitted", "ack")
            execution = emulator.fill("r-buy", price=470.25, commission=1.25)
            await until(ib, lambda: buy.fills and buy.fills[0].commissionReport.execId,
                        "fill with its commission")
            [fill] = buy.fills
            assert (fill.execution.execId, fill.execution.side, fill.execution.shares,
                    fill.execution.price, fill.execution.orderRef) == \
                (execution["exec_id"], "BOT", 10.0, 470.25, "r-buy")
            assert (fill.commissionReport.commission, fill.commissionReport.currency,
                    fill.commissionReport.realizedPNL) == (1.25, "USD", 0.0)
            assert (buy.orderStatus.status, buy.orderStatus.avgFillPrice) == ("Filled", 470.25)
            after_fill = [m[2] for m in emulator.messages("out")]
            after_fill = after_fill[after_fill.index("execDetails"):]
            assert after_fill[:4] == ["execDetails", "openOrder", "orderStatus",
                                      "commissionReport"]
            assert "position" in after_fill and "updatePortfolio" in after_fill
            await until(ib, lambda: values(ib)[("TotalCashValue", "USD")] == "95296.25",
                        "cash after the buy")
            [pos] = ib.positions()
            assert (pos.contract.symbol, pos.position, pos.avgCost) == ("SPY", 10.0, 470.375)

            sell = ib.placeOrder(spy(), MarketOrder("SELL", 10, orderRef="r-sell"))
            await until(ib, lambda: sell.orderStatus.status == "Submitted", "ack")
            emulator.fill("r-sell", price=480.0, commission=1.0)
            await until(ib, lambda: sell.fills and sell.fills[0].commissionReport.execId
                        and not ib.positions(), "closing fill")
            assert sell.fills[0].commissionReport.realizedPNL == 95.25
            await until(ib, lambda: values(ib)[("RealizedPnL", "USD")] == "95.25",
                        "realized P&L in the account")
            assert [(p.position, p.realizedPNL) for p in ib.portfolio()] == []  # flat: removed
            closing = [m[3] for m in emulator.messages("out", "updatePortfolio")][-1]
            assert closing[13:] == ["0", "480", "0", "0", "0", "95.25", ACCOUNT]
        finally:
            ib.disconnect()

    run(main())
    assert emulator.positions == {}
    assert emulator.cash == {"USD": 100_000 - 4702.5 - 1.25 + 4800 - 1.0}


def test_partial_fills_update_the_trade_and_position(emulator):
    async def main() -> None:
        ib = await connect(emulator)
        try:
            trade = ib.placeOrder(spy(), LimitOrder("BUY", 10, 100.0, orderRef="part"))
            await until(ib, lambda: trade.orderStatus.status == "Submitted", "ack")
            emulator.fill("part", 4, price=99.5, commission=1.0)
            await until(ib, lambda: trade.orderStatus.filled == 4, "first part")
            assert (trade.orderStatus.status, trade.orderStatus.remaining) == ("Submitted", 6.0)
            emulator.fill("part", 6, price=99.9, commission=1.0)
            await until(ib, lambda: trade.isDone(), "second part")
            assert trade.orderStatus.avgFillPrice == pytest.approx(99.74)
            assert [(f.execution.shares, f.execution.cumQty) for f in trade.fills] == \
                [(4.0, 4.0), (6.0, 10.0)]
            await until(ib, lambda: ib.positions() and ib.positions()[0].position == 10,
                        "position update")
        finally:
            ib.disconnect()

    run(main())
    with pytest.raises(EmulatorError, match="is Filled, not active"):
        emulator.fill("part", price=1.0)


def test_reject_201_in_three_ways(emulator, ib_log):
    ib_log.append(r"Error 201, reqId \d+: Order rejected - reason:")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            by_test = ib.placeOrder(spy(), MarketOrder("BUY", 1, orderRef="rj-test"))
            await until(ib, lambda: by_test.orderStatus.status == "Submitted", "ack")
            emulator.reject("rj-test", "insufficient margin")
            emulator.faults.add("placeOrder", reject="no shortable shares")
            by_fault = ib.placeOrder(spy(), MarketOrder("SELL", 1, orderRef="rj-fault"))
            emulator.faults.add("placeOrder", error=201,
                                text="Order rejected - reason:account frozen")
            refused = ib.placeOrder(spy(), MarketOrder("BUY", 1, orderRef="rj-refused"))
            trades = [by_test, by_fault, refused]
            await until(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in trades)
                        and len(watch.errors) == 3, "three rejections")
            assert watch.errors == [
                (by_test.order.orderId, 201, "Order rejected - reason:insufficient margin"),
                (by_fault.order.orderId, 201, "Order rejected - reason:no shortable shares"),
                (refused.order.orderId, 201, "Order rejected - reason:account frozen")]
        finally:
            ib.disconnect()

    run(main())
    assert [(o["order_ref"], o["status"]) for o in emulator.orders] == \
        [("rj-test", "Cancelled"), ("rj-fault", "Cancelled")]  # the refused one never existed
    inactive = emulator.orders_by_ref("rj-test")[0]["completed_status"]
    assert inactive == "Rejected - reason:insufficient margin"


def test_cancel_202_by_the_client_and_by_the_broker(emulator, ib_log):
    ib_log.append(r"Error 10148, reqId \d+: OrderId \d+ that needs to be cancelled")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            mine = ib.placeOrder(spy(), LimitOrder("BUY", 5, 90.0, orderRef="c-client"))
            theirs = ib.placeOrder(spy(), LimitOrder("BUY", 10, 90.0, orderRef="c-broker"))
            await until(ib, lambda: theirs.orderStatus.status == "Submitted", "ack")
            ib.cancelOrder(mine.order)
            await until(ib, lambda: mine.orderStatus.status == "Cancelled"
                        and 202 in watch.codes(), "client cancel")
            emulator.fill("c-broker", 3, price=89.9)
            emulator.cancel("c-broker", "end of day")
            await until(ib, lambda: theirs.orderStatus.status == "Cancelled", "broker cancel")
            assert (theirs.orderStatus.filled, len(theirs.fills)) == (3.0, 1)
            ib.client.cancelOrder(mine.order.orderId)  # again: not cancellable any more
            await until(ib, lambda: 10148 in watch.codes(), "second cancel refused")
            assert [e for e in watch.errors if e[1] == 202] == [
                (mine.order.orderId, 202, "Order Canceled - reason:"),
                (theirs.order.orderId, 202, "Order Canceled - reason:end of day")]
        finally:
            ib.disconnect()

    run(main())
    assert [o["status"] for o in emulator.orders] == ["Cancelled", "Cancelled"]


def test_placing_an_active_order_again_modifies_it(emulator, ib_log):
    ib_log.append(r"Error 103, reqId \d+: Duplicate order id")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            trade = ib.placeOrder(spy(), LimitOrder("BUY", 10, 450.0, orderRef="mod"))
            await until(ib, lambda: trade.orderStatus.status == "Submitted", "ack")
            trade.order.lmtPrice, trade.order.totalQuantity = 451.5, 12
            ib.placeOrder(trade.contract, trade.order)
            await until(ib, lambda: trade.orderStatus.remaining == 12, "modification")
            emulator.fill("mod", price=451.0)
            await until(ib, lambda: trade.isDone(), "fill")
            # ib_insync refuses this locally, so send it as a raw client would
            ib.client.placeOrder(trade.order.orderId, trade.contract, LimitOrder("BUY", 1, 1.0))
            await until(ib, lambda: 103 in watch.codes(), "a finished order's id refused")
        finally:
            ib.disconnect()

    run(main())
    [order] = emulator.orders
    assert (order["lmt_price"], order["total_qty"], order["modifications"], order["filled"]) == \
        (451.5, 12.0, 1, 12.0)


def test_forex_fill_moves_both_currencies(emulator):
    async def main() -> None:
        ib = await connect(emulator)
        try:
            trade = ib.placeOrder(Forex("EURUSD"), MarketOrder("BUY", 20_000, orderRef="fx"))
            await until(ib, lambda: trade.orderStatus.status == "Submitted", "ack")
            emulator.fill("fx", price=1.1, commission=2.0)
            await until(ib, lambda: values(ib).get(("CashBalance", "EUR")) == "20000.00",
                        "EUR balance")
            got = values(ib)
            assert (got[("CashBalance", "USD")], got[("ExchangeRate", "EUR")],
                    got[("NetLiquidation", "USD")]) == ("77998.00", "1.1", "99998.00")
            [pos] = ib.positions()
            assert (pos.contract.secType, pos.contract.localSymbol, pos.position) == \
                ("CASH", "EUR.USD", 20000.0)
        finally:
            ib.disconnect()

    run(main())
    assert emulator.cash == {"EUR": 20_000.0, "USD": 77_998.0}


def test_auto_fill_with_a_partial_fault_and_next_open(emulator):
    emulator.auto_fill = "last"
    emulator.set_price("SPY", 470.0)
    emulator.faults.add("placeOrder", partial=0.4, rest="open")

    async def main() -> None:
        ib = await connect(emulator)
        try:
            first = ib.placeOrder(spy(), MarketOrder("BUY", 10, orderRef="auto"))
            await until(ib, lambda: first.orderStatus.filled == 4, "partial auto-fill")
            assert first.orderStatus.status == "Submitted"
            emulator.fill("auto", price=471.0)
            await until(ib, lambda: first.isDone(), "rest filled by the test")
            assert first.orderStatus.avgFillPrice == pytest.approx(470.6)

            emulator.auto_fill = "next_open"
            emulator.clock.set(dt.datetime(2024, 1, 5, 15, 0, tzinfo=UTC))  # 10:00 New York
            moo = ib.placeOrder(spy(), MarketOrder("BUY", 5, orderRef="moo", tif="OPG"))
            await until(ib, lambda: moo.orderStatus.status == "PreSubmitted", "ack")
            emulator.add_bars("SPY", [(dt.date(2024, 1, 5), 469.0, 471, 468, 470, 1e6)])
            assert emulator.order("moo")["status"] == "PreSubmitted"  # that open was before
            emulator.add_bars("SPY", [(dt.date(2024, 1, 8), 472.5, 474, 471, 473, 1e6)])
            await until(ib, lambda: moo.isDone(), "filled at the next open")
            assert moo.fills[0].execution.price == 472.5
        finally:
            ib.disconnect()

    run(main())


def test_what_if_order_reports_margin_without_placing(emulator):
    emulator.set_price("SPY", 400.0)

    async def main() -> None:
        ib = await connect(emulator)
        try:
            state = await ib.whatIfOrderAsync(spy(), MarketOrder("BUY", 10))
            assert float(state.initMarginChange) == 1000.0
            assert state.commission == 1.0
        finally:
            ib.disconnect()

    run(main())
    assert emulator.orders == []


# -- faults --------------------------------------------------------------------------------

def test_disconnect_after_accept_then_reconnect_finds_everything(emulator, ib_log):
    ib_log.append(r"Peer closed connection")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        resting = ib.placeOrder(Stock("AAPL", "SMART", "USD"),
                                LimitOrder("BUY", 10, 180.0, orderRef="open-1"))
        await until(ib, lambda: resting.orderStatus.status == "Submitted", "ack")
        emulator.faults.add("placeOrder", disconnect="after_accept")
        lost = ib.placeOrder(spy(), MarketOrder("BUY", 10, orderRef="mid-1"))
        await watch.disconnected()
        assert lost.orderStatus.status == "PendingSubmit"  # the answer never came

        emulator.fill("mid-1", price=471.0, commission=1.0)  # while the client is away
        emulator.fill("open-1", 4, price=179.5, commission=1.0)

        await connect(emulator, ib=ib)
        try:
            [still_open] = ib.openTrades()
            assert (still_open.order.orderRef, still_open.orderStatus.status,
                    still_open.orderStatus.filled, still_open.orderStatus.remaining) == \
                ("open-1", "Submitted", 4.0, 6.0)
            done = await ib.reqCompletedOrdersAsync(False)
            [filled] = [t for t in done if t.order.orderRef == "mid-1"]
            assert (filled.orderStatus.status, filled.order.filledQuantity,
                    filled.order.totalQuantity) == ("Filled", 10.0, 10.0)
            fills = {f.execution.orderRef: f for f in ib.fills()}
            assert sorted(fills) == ["mid-1", "open-1"]
            assert (fills["mid-1"].execution.price, fills["mid-1"].commissionReport.commission,
                    fills["open-1"].execution.shares) == (471.0, 1.0, 4.0)
            assert sorted((p.contract.symbol, p.position) for p in ib.positions()) == \
                [("AAPL", 4.0), ("SPY", 10.0)]
            fresh = ib.placeOrder(spy(), MarketOrder("SELL", 1, orderRef="after"))
            await until(ib, lambda: fresh.orderStatus.status == "Submitted", "new order")
            assert fresh.order.orderId > lost.order.orderId
        finally:
            ib.disconnect()

    run(main())
    assert [len(emulator.orders_by_ref(r)) for r in ("open-1", "mid-1", "after")] == [1, 1, 1]
    assert emulator.connections_total == 2


def test_disconnect_between_open_order_and_order_status(emulator, ib_log):
    ib_log.append(r"Peer closed connection")
    emulator.faults.add("orderStatus", disconnect="before")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        trade = ib.placeOrder(spy(), LimitOrder("BUY", 2, 450.0, orderRef="half"))
        await watch.disconnected()
        assert trade.order.permId > 0  # openOrder arrived
        assert trade.orderStatus.status == "PendingSubmit"  # orderStatus did not
        await connect(emulator, ib=ib)
        try:
            [again] = ib.openTrades()
            assert (again.order.orderRef, again.order.permId, again.orderStatus.status) == \
                ("half", trade.order.permId, "Submitted")
        finally:
            ib.disconnect()

    run(main())


def test_fill_lost_on_the_wire_is_found_after_reconnect(emulator, ib_log):
    ib_log.append(r"Peer closed connection")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        trade = ib.placeOrder(spy(), MarketOrder("BUY", 3, orderRef="wire"))
        await until(ib, lambda: trade.orderStatus.status == "Submitted", "ack")
        emulator.faults.add("execDetails", disconnect="before")
        emulator.fill("wire", price=470.0, commission=1.0)
        await watch.disconnected()
        assert trade.fills == []
        await connect(emulator, ib=ib)
        try:
            [fill] = ib.fills()
            assert (fill.execution.orderRef, fill.execution.shares, fill.execution.price,
                    fill.commissionReport.commission) == ("wire", 3.0, 470.0, 1.0)
            [done] = await ib.reqCompletedOrdersAsync(False)
            assert (done.order.orderRef, done.orderStatus.status) == ("wire", "Filled")
        finally:
            ib.disconnect()

    run(main())


def test_request_lost_before_the_broker_leaves_nothing_to_find(emulator, ib_log):
    ib_log.append(r"Peer closed connection")
    emulator.faults.add("placeOrder", disconnect="before")

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        ib.placeOrder(spy(), MarketOrder("BUY", 1, orderRef="lost-1"))
        await watch.disconnected()
        await connect(emulator, ib=ib)
        try:
            assert ib.openTrades() == []
            assert await ib.reqCompletedOrdersAsync(False) == []
            retry = ib.placeOrder(spy(), MarketOrder("BUY", 1, orderRef="lost-1"))
            await until(ib, lambda: retry.orderStatus.status == "Submitted", "resubmission")
        finally:
            ib.disconnect()

    run(main())
    assert len(emulator.orders_by_ref("lost-1")) == 1


def test_connectivity_lost_and_restored_reach_the_error_event(emulator, ib_log):
    ib_log += [r"Error 1100, reqId -1: Connectivity between IB and Trader Workstation has "
                  r"been lost", r"Error 110[12], reqId -1: Connectivity .* restored"]

    async def main() -> None:
        ib = await connect(emulator)
        watch = Watch(ib)
        try:
            assert emulator.connectivity_lost() == 1
            await until(ib, lambda: 1100 in watch.codes(), "1100")
            emulator.connectivity_restored()
            emulator.connectivity_restored(data_lost=True)
            await until(ib, lambda: len(watch.errors) == 3, "1102 and 1101")
            assert watch.errors == [
                (-1, 1100, "Connectivity between IB and Trader Workstation has been lost."),
                (-1, 1102, "Connectivity between IB and Trader Workstation has been restored "
                           "- data maintained."),
                (-1, 1101, "Connectivity between IB and Trader Workstation has been restored "
                           "- data lost.")]
            assert ib.isConnected()
        finally:
            ib.disconnect()

    run(main())


def test_a_slow_answer_times_out_the_client_which_cancels(emulator):
    emulator.add_bars("SPY", daily_rows())
    emulator.faults.add("reqHistoricalData", delay=0.5)

    async def main() -> None:
        ib = await connect(emulator)
        try:
            slow = await ib.reqHistoricalDataAsync(spy(), "20240105 23:59:59 UTC", "1 W",
                                                   "1 day", "TRADES", True, timeout=0.1)
            assert len(slow) == 0
            fast = await ib.reqHistoricalDataAsync(spy(), "20240105 23:59:59 UTC", "1 W",
                                                   "1 day", "TRADES", True)
            assert len(fast) == 4
        finally:
            ib.disconnect()

    run(main())
    assert len(emulator.messages("in", "cancelHistoricalData")) == 1


def test_live_bars_reach_real_time_and_keep_up_to_date_subscribers(emulator):
    start = dt.datetime(2024, 1, 5, 15, 0, tzinfo=UTC)
    emulator.add_bars("SPY", [(start, 470, 471, 469, 470.5, 100.0)], bar_size="1 min")
    emulator.clock.set(start + dt.timedelta(minutes=1, seconds=5))

    async def main() -> None:
        ib = await connect(emulator)
        try:
            realtime = ib.reqRealTimeBars(spy(), 5, "TRADES", False)
            history = await ib.reqHistoricalDataAsync(spy(), "", "1 D", "1 min", "TRADES",
                                                      False, keepUpToDate=True)
            assert len(history) == 1
            await asyncio.to_thread(emulator.wait_until,
                                    lambda e: len(e.messages("in", "reqRealTimeBars")) == 1)
            emulator.push_bar("SPY", open=470.5, high=470.75, low=470.25, close=470.6,
                              volume=12, time=start + dt.timedelta(minutes=1))
            emulator.push_bar("SPY", open=470.5, high=471.0, low=470.0, close=470.8,
                              volume=60, time=start + dt.timedelta(minutes=1),
                              bar_size="1 min")
            await until(ib, lambda: len(realtime) == 1 and len(history) == 2, "live bars")
            bar = realtime[0]
            assert (bar.time, bar.open_, bar.high, bar.low, bar.close, bar.volume) == \
                (start + dt.timedelta(minutes=1), 470.5, 470.75, 470.25, 470.6, 12.0)
            assert (history[-1].date, history[-1].close, history[-1].volume) == \
                (start + dt.timedelta(minutes=1), 470.8, 60.0)
            ib.cancelRealTimeBars(realtime)
        finally:
            ib.disconnect()

    run(main())


def test_fault_plan_refuses_nonsense(emulator):
    with pytest.raises(EmulatorError, match="no message matches"):
        emulator.faults.add("placeOrdr", disconnect="before")
    with pytest.raises(EmulatorError, match="needs disconnect"):
        emulator.faults.add("orderStatus", delay=1.0)
    with pytest.raises(EmulatorError, match="faults of 'placeOrder'"):
        emulator.faults.add("cancelOrder", reject="no")
    with pytest.raises(EmulatorError, match="a fault needs"):
        emulator.faults.add("placeOrder")


def test_probabilistic_faults_replay_with_the_same_seed(ib_log):
    ib_log.append(r"Error 201, reqId \d+: Order rejected - reason:random")

    def fired(seed: int) -> list[int]:
        with TwsEmulator() as emulator:
            emulator.faults.seed(seed)
            emulator.faults.add("placeOrder", reject="random", times=None, probability=0.3)

            async def main() -> list[int]:
                ib = await connect(emulator)
                try:
                    trades: list[Trade] = [
                        ib.placeOrder(spy(), Order(action="BUY", totalQuantity=1,
                                                   orderType="MKT", orderRef=f"p{i}"))
                        for i in range(20)]
                    await until(ib, lambda: all(t.orderStatus.status != "PendingSubmit"
                                                for t in trades), "answers")
                    return [i for i, t in enumerate(trades)
                            if t.orderStatus.status == "Cancelled"]
                finally:
                    ib.disconnect()

            return run(main())

    first = fired(7)
    assert first == fired(7) and 0 < len(first) < 20

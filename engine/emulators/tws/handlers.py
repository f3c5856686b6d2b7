"""The requests the emulator answers, each handled as TWS handles it.

:meth:`Handlers.dispatch` applies the request faults (delay, dropped connection, error
answer), then calls the handler for the request; a handler that refuses a request raises
:class:`~.errors.RequestRefused` and the client gets IB's error for it.  Requests the
emulator does not know are kept in :attr:`TwsEmulator.unhandled` and get no answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from . import messages as msg
from .accounts import AccountHandlers
from .bars import bar_date, is_daily, normalize_bar_size, parse_end, stamp, window_start
from .contracts import ContractQuery, ContractSpec
from .errors import ProtocolError, RequestRefused, error_text
from .faults import Fault
from .orders import OrderRecord
from .protocol import INCOMING, Cursor
from .requests import (
    read_contract_details,
    read_executions,
    read_historical,
    read_place_order,
    read_real_time_bars,
)

if TYPE_CHECKING:
    from .emulator import TwsEmulator
    from .server import Session

Handler = Callable[["Session", list[str], "Fault | None"], None]
#: Where the request id sits in requests that have one (index into the fields).
REQ_ID_FIELD = {"placeOrder": 1, "cancelOrder": 2, "reqContractDetails": 2,
                "reqHistoricalData": 1, "reqExecutions": 2, "reqAccountSummary": 2,
                "reqAccountUpdatesMulti": 2, "reqRealTimeBars": 2, "reqMktData": 2}
FARM_MESSAGES = (2104, 2106, 2158)


class Handlers(AccountHandlers):
    """Answers requests on behalf of the emulated TWS."""

    def __init__(self, core: TwsEmulator) -> None:
        self.core = core
        self.table: dict[str, Handler] = {
            name: getattr(self, name) for name in INCOMING.values() if hasattr(self, name)}

    async def dispatch(self, session: Session, fields: list[str]) -> None:
        """Handle one request: faults first, then its handler."""
        try:
            name = INCOMING.get(int(fields[0]), "")
        except ValueError:
            raise ProtocolError(f"not a message id: {fields[0]!r}") from None
        self.core._log("in", session.client_id, name or fields[0], fields)
        if not name or (not session.ready and name != "startApi"):
            self.core._unhandled.append((session.client_id, list(fields)))
            return
        fault = self.core.faults.take(name, session.client_id, outgoing=False)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.disconnect == "before":
                session.close()
                return
            if fault.error is not None:
                req_id = _req_id(name, fields)
                session.send("error", msg.error(session.version, req_id, fault.error,
                                                fault.text or error_text(fault.error)))
                return
            session.muted = fault.disconnect == "after_accept"
        handler = self.table.get(name)
        try:
            if handler is None:
                self.core._unhandled.append((session.client_id, list(fields)))
            else:
                handler(session, fields, fault)
        except RequestRefused as exc:
            session.send("error", msg.error(session.version, exc.req_id, exc.code, exc.text))
        except ProtocolError as exc:
            self.core._errors.append(f"{name} from client {session.client_id}: {exc}")
            session.send("error", msg.error(session.version, _req_id(name, fields), 320,
                                            f"{error_text(320)} {exc}"))
        finally:
            if fault is not None and fault.disconnect in ("after_accept", "after"):
                session.close()

    # -- connection ----------------------------------------------------------------------

    def startApi(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        cur = Cursor(fields, start=2)
        client_id = cur.integer()
        core = self.core
        if any(s.client_id == client_id and s is not session for s in core._hub.ready()):
            session.send("error", msg.error(session.version, -1, 326, error_text(326)))
            session.close()
            return
        session.client_id = client_id
        session.ready = True
        core._notify()
        session.send("managedAccounts", msg.managed_accounts([core.account]))
        session.send("nextValidId", msg.next_valid_id(core._state.next_order_id(client_id)))
        if core.farm_messages:
            for code in FARM_MESSAGES:
                session.send("error", msg.error(session.version, -1, code, error_text(code)))

    def reqIds(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        session.send("nextValidId", msg.next_valid_id(
            self.core._state.next_order_id(session.client_id)))

    def reqManagedAccts(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        session.send("managedAccounts", msg.managed_accounts([self.core.account]))

    def reqCurrentTime(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        session.send("currentTime", msg.current_time(int(self.core.clock.now().timestamp())))

    def reqMarketDataType(self, session: Session, fields: list[str],
                          fault: Fault | None) -> None:
        """Accepted; bars carry no market data type."""

    def reqAutoOpenOrders(self, session: Session, fields: list[str],
                          fault: Fault | None) -> None:
        """Accepted; orders placed in TWS's window are not emulated."""

    def cancelMktData(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        """Accepted; there is no quote stream to stop."""

    def reqMktData(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        raise RequestRefused(354, "Requested market data is not subscribed. (The emulator "
                             "streams bars only: reqRealTimeBars or keepUpToDate.)",
                             _req_id("reqMktData", fields))

    # -- orders --------------------------------------------------------------------------

    def _resolve(self, query: ContractQuery, req_id: int) -> ContractSpec:
        found = self.core._contracts.match(query)
        if not found:
            raise RequestRefused(200, error_text(200), req_id)
        if len(found) > 1:
            raise RequestRefused(200, f"The contract description specified for "
                                 f"{query.symbol} is ambiguous.", req_id)
        return found[0]

    def placeOrder(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        ticket = read_place_order(fields, session.version)
        spec = self._resolve(ticket.contract, ticket.order_id)
        state = self.core._state
        if ticket.what_if:
            self._what_if(session, ticket.order_id, spec, ticket)
            return
        order = state.place(session.client_id, ticket, spec)
        if fault is not None and fault.reject is not None:
            state.reject(order, fault.reject)
            return
        if fault is not None and fault.partial is not None:
            state.partials[order.perm_id] = (fault.partial, fault.rest)
        state.run_auto_fills(order)

    def _what_if(self, session: Session, order_id: int, spec: ContractSpec, ticket) -> None:  # type: ignore[no-untyped-def]
        ledger = self.core._ledger
        price = ticket.lmt_price or ledger.mark(spec)
        value = ticket.total_qty * price
        margin = value * Decimal("0.25") if spec.sec_type == "STK" else value * Decimal("0.03")
        equity = next((Decimal(v) for t, v, _c in ledger.values() if t == "EquityWithLoanValue"),
                      Decimal(0))
        before = next((Decimal(v) for t, v, _c in ledger.values() if t == "InitMarginReq"),
                      Decimal(0))
        texts = tuple(str(x.quantize(Decimal("0.01"))) for x in (
            before, before, equity, margin, margin, Decimal(0), before + margin,
            before + margin, equity))
        commission = self.core._state.commission(spec, ticket.total_qty, price)
        order = OrderRecord(
            seq=0, client_id=session.client_id, order_id=order_id, perm_id=0, contract=spec,
            action=ticket.action, total_qty=ticket.total_qty, order_type=ticket.order_type,
            lmt_price=ticket.lmt_price, aux_price=ticket.aux_price, tif=ticket.tif,
            account=self.core.account, order_ref=ticket.order_ref, outside_rth=False,
            oca_group="", parent_id=0, good_after_time="", good_till_date="",
            submitted_at=self.core.clock.now(), status="PreSubmitted")
        session.send("openOrder", msg.open_order(session.version, order, what_if=True,
                                                 margin=texts, commission=str(commission)))

    def cancelOrder(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        cur = Cursor(fields, start=2)
        order_id = cur.integer()
        if session.version >= 169:
            cur.skip(1)  # manualCancelOrderTime
        cur.finish()
        self.core._state.cancel_request(session.client_id, order_id)

    def reqGlobalCancel(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        self.core._state.cancel_all()

    def _send_open(self, session: Session, orders: list[OrderRecord]) -> None:
        for order in sorted(orders, key=lambda o: o.seq):
            session.send("openOrder", msg.open_order(session.version, order))
            session.send("orderStatus", msg.order_status(order))
        session.send("openOrderEnd", msg.open_order_end())

    def reqOpenOrders(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        self._send_open(session, [o for o in self.core._state.orders.values()
                                  if o.active and o.client_id == session.client_id])

    def reqAllOpenOrders(self, session: Session, fields: list[str],
                         fault: Fault | None) -> None:
        self._send_open(session, [o for o in self.core._state.orders.values() if o.active])

    def reqCompletedOrders(self, session: Session, fields: list[str],
                           fault: Fault | None) -> None:
        done = sorted((o for o in self.core._state.orders.values() if o.done),
                      key=lambda o: (o.completed_at or o.submitted_at, o.seq))
        for order in done:
            when = stamp(order.completed_at or order.submitted_at, self.core.zone)
            session.send("completedOrder", msg.completed_order(session.version, order, when))
        session.send("completedOrdersEnd", msg.completed_orders_end())

    def reqExecutions(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        query = read_executions(fields)
        since = None
        if query.time:
            try:
                since = parse_end(query.time, self.core.clock.now(), self.core.zone)
            except ValueError as exc:
                raise RequestRefused(321, f"Error validating request: {exc}",
                                     query.req_id) from None
        side = {"BUY": "BOT", "SELL": "SLD"}.get(query.side.upper(), query.side.upper())
        for execution in self.core._state.executions:
            order = execution.order
            if (query.client_id and order.client_id != query.client_id) \
                    or (query.account and order.account != query.account) \
                    or (since is not None and execution.time < since) \
                    or (query.symbol and order.contract.symbol != query.symbol.upper()) \
                    or (query.sec_type and order.contract.sec_type != query.sec_type.upper()) \
                    or (query.exchange and execution.exchange != query.exchange.upper()) \
                    or (side and execution.side != side):
                continue
            when = stamp(execution.time, self.core.zone)
            session.send("execDetails", msg.exec_details(query.req_id, execution,
                                                         order.account, when))
            session.send("commissionReport", msg.commission_report(execution))
        session.send("execDetailsEnd", msg.exec_details_end(query.req_id))

    # -- contracts and market data -------------------------------------------------------

    def reqContractDetails(self, session: Session, fields: list[str],
                           fault: Fault | None) -> None:
        req_id, query = read_contract_details(fields, session.version)
        found = self.core._contracts.match(query)
        if not found:
            raise RequestRefused(200, error_text(200), req_id)
        today = self.core.clock.now().astimezone(self.core.zone).date()
        for spec in found:
            session.send("contractDetails",
                         msg.contract_details(session.version, req_id, spec, today))
        session.send("contractDetailsEnd", msg.contract_details_end(req_id))

    def reqHistoricalData(self, session: Session, fields: list[str],
                          fault: Fault | None) -> None:
        req = read_historical(fields)
        rid, zone = req.req_id, self.core.zone
        spec = self._resolve(req.contract, rid)
        try:
            size = normalize_bar_size(req.bar_size)
            end = parse_end(req.end, self.core.clock.now(), zone)
            start = window_start(end, req.duration)
        except ValueError as exc:
            raise RequestRefused(321, f"{error_text(321)} {exc}", rid) from None
        if spec.sec_type == "CASH" and req.what_to_show == "TRADES":
            raise RequestRefused(162, "Historical Market Data Service error message:No "
                                 f"historical market data for {spec.symbol}/CASH@FXSUBPB "
                                 "TRADES; forex has MIDPOINT, BID and ASK", rid)
        if req.keep_up_to_date and req.end:
            raise RequestRefused(321, f"{error_text(321)} End date not supported with live "
                                 "updates", rid)
        daily = is_daily(size)
        bars = self.core._bars.window(spec.key, size, start, end, zone)
        if not bars and not req.keep_up_to_date:
            raise RequestRefused(162, f"{error_text(162)} for {spec.key} {size} "
                                 f"{req.duration} ending {stamp(end, zone)}", rid)
        rows = [(bar_date(b, daily, req.format_date, zone), b.open, b.high, b.low, b.close,
                 b.volume, b.average, b.bar_count) for b in bars]
        session.send("historicalData", msg.historical_data(
            rid, stamp(start, zone), stamp(end, zone), rows))
        if req.keep_up_to_date:
            session.history_subs[rid] = (spec.key, size, req.format_date)

    def cancelHistoricalData(self, session: Session, fields: list[str],
                             fault: Fault | None) -> None:
        session.history_subs.pop(Cursor(fields, start=2).integer(), None)

    def reqRealTimeBars(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        req = read_real_time_bars(fields)
        spec = self._resolve(req.contract, req.req_id)
        if req.bar_size != 5:
            raise RequestRefused(321, f"{error_text(321)} real-time bars are 5 seconds",
                                 req.req_id)
        session.realtime_subs[req.req_id] = spec.key

    def cancelRealTimeBars(self, session: Session, fields: list[str],
                           fault: Fault | None) -> None:
        session.realtime_subs.pop(Cursor(fields, start=2).integer(), None)

    def publish_bar(self, key: str, bar_size: str, when: dt.datetime, values: tuple[
            float, float, float, float, float, float, int]) -> None:
        """A new bar to the keepUpToDate and real-time-bar subscribers of ``key``."""
        o, h, low, c, v, wap, count = values
        daily = is_daily(bar_size)
        for session in self.core._hub.ready():
            for req_id, (sub_key, size, fmt_date) in sorted(session.history_subs.items()):
                if sub_key == key and size == bar_size:
                    if daily:
                        date = f"{when.astimezone(self.core.zone):%Y%m%d}"
                    elif fmt_date == 2:
                        date = str(int(when.timestamp()))
                    else:
                        date = stamp(when, self.core.zone)
                    session.send("historicalDataUpdate", msg.historical_data_update(
                        req_id, date, count, o, h, low, c, wap, v))
            if bar_size == "5 secs":
                for req_id, sub_key in sorted(session.realtime_subs.items()):
                    if sub_key == key:
                        session.send("realtimeBar", msg.realtime_bar(
                            req_id, int(when.timestamp()), o, h, low, c, v, wap, count))


def _req_id(name: str, fields: list[str]) -> int:
    index = REQ_ID_FIELD.get(name)
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1

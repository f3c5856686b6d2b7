"""Outgoing messages: the fields of each, in TWS's order, at the negotiated server version.

Each builder returns the message's fields (message id first), ready for
:func:`~.protocol.frame`.  Layouts follow the client's decoder at server versions
:data:`~.protocol.MIN_SERVER_VERSION` .. :data:`~.protocol.MAX_SERVER_VERSION`; the fields
that come and go with the version are marked where they are added.  Unset doubles and
integers are written the way TWS writes them (``1.7976931348623157E308``, ``2147483647``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .contracts import ContractSpec
from .orders import ExecutionRecord, OrderRecord
from .protocol import OUTGOING, fmt

UNSET_DOUBLE = "1.7976931348623157E308"
UNSET_INT = "2147483647"
Fields = list[str]


def _msg(name: str, *values: object) -> Fields:
    return [str(OUTGOING[name]), *(fmt(v) for v in values)]


def contract_fields(spec: ContractSpec, exchange: str) -> list[object]:
    """conId, symbol, secType, lastTrade, strike, right, multiplier, exchange, currency,
    localSymbol, tradingClass: the contract as most messages carry it."""
    return [spec.con_id, spec.symbol, spec.sec_type, "", "0", "", "", exchange, spec.currency,
            spec.local_symbol, spec.trading_class]


def home_exchange(spec: ContractSpec) -> str:
    """The exchange TWS names in positions: the listing exchange, IDEALPRO for forex."""
    return spec.primary_exchange or spec.exchange


def error(version: int, req_id: int, code: int, text: str) -> Fields:
    """``error``: reqId, code, text (and the advanced reject JSON from version 166)."""
    fields = _msg("error", 2, req_id, code, text)
    if version >= 166:
        fields.append("")
    return fields


def managed_accounts(accounts: list[str]) -> Fields:
    """``managedAccounts``: the account codes, comma-separated."""
    return _msg("managedAccounts", 1, ",".join(accounts))


def next_valid_id(order_id: int) -> Fields:
    """``nextValidId``: the next order id the client may use."""
    return _msg("nextValidId", 1, order_id)


def current_time(epoch: int) -> Fields:
    """``currentTime``: seconds since the epoch."""
    return _msg("currentTime", 1, epoch)


def position(account: str, spec: ContractSpec, qty: Decimal, avg_cost: Decimal) -> Fields:
    """``position`` (version 3): exactly the 16 fields the client unpacks."""
    return _msg("position", 3, account, *contract_fields(spec, home_exchange(spec)), qty,
                avg_cost)


def position_end() -> Fields:
    """``positionEnd``."""
    return _msg("positionEnd", 1)


def portfolio(account: str, spec: ContractSpec, qty: Decimal, price: Decimal,
              value: Decimal, avg_cost: Decimal, unrealized: Decimal,
              realized: Decimal) -> Fields:
    """``updatePortfolio`` (version 8): the contract with its primary exchange, 20 fields."""
    fields = contract_fields(spec, home_exchange(spec))
    return _msg("updatePortfolio", 8, *fields, qty, price, value, avg_cost, unrealized,
                realized, account)


def account_value(tag: str, value: str, currency: str, account: str) -> Fields:
    """``updateAccountValue``."""
    return _msg("updateAccountValue", 2, tag, value, currency, account)


def account_time(moment: dt.datetime) -> Fields:
    """``updateAccountTime``: ``HH:MM``."""
    return _msg("updateAccountTime", 1, f"{moment:%H:%M}")


def account_download_end(account: str) -> Fields:
    """``accountDownloadEnd``."""
    return _msg("accountDownloadEnd", 1, account)


def account_update_multi(req_id: int, account: str, tag: str, value: str,
                         currency: str) -> Fields:
    """``accountUpdateMulti`` (model code empty)."""
    return _msg("accountUpdateMulti", 1, req_id, account, "", tag, value, currency)


def account_update_multi_end(req_id: int) -> Fields:
    """``accountUpdateMultiEnd``."""
    return _msg("accountUpdateMultiEnd", 1, req_id)


def account_summary(req_id: int, account: str, tag: str, value: str,
                    currency: str) -> Fields:
    """``accountSummary``."""
    return _msg("accountSummary", 1, req_id, account, tag, value, currency)


def account_summary_end(req_id: int) -> Fields:
    """``accountSummaryEnd``."""
    return _msg("accountSummaryEnd", 1, req_id)


def order_status(order: OrderRecord) -> Fields:
    """``orderStatus`` (no version field since server version 131): 12 fields."""
    return _msg("orderStatus", order.order_id, order.status, order.filled, order.remaining,
                order.avg_fill_price, order.perm_id, order.parent_id, order.last_fill_price,
                order.client_id, order.why_held, 0)


def _order_common(order: OrderRecord) -> list[object]:
    return [order.action, order.total_qty, order.order_type,
            order.lmt_price if order.lmt_price is not None else UNSET_DOUBLE,
            order.aux_price if order.aux_price is not None else UNSET_DOUBLE,
            order.tif, order.oca_group, order.account, "O", 0, order.order_ref]


def open_order(version: int, order: OrderRecord, *, what_if: bool = False,
               margin: tuple[str, ...] = ("",) * 9, commission: str = UNSET_DOUBLE
               ) -> Fields:
    """``openOrder`` (no version field): the order, its contract and its state."""
    fields: list[object] = [order.order_id, *contract_fields(order.contract,
                                                              order.contract.exchange)]
    fields += _order_common(order)
    fields += [order.client_id, order.perm_id, order.outside_rth, False, 0,
               order.good_after_time, "",  # hidden, discretionaryAmt, goodAfterTime, shares
               "", "", "", "", "", order.good_till_date, "",  # fa*, modelCode, GTD, rule80A
               UNSET_DOUBLE, "", 0, "", -1, 0,  # percentOffset .. exemptCode, auctionStrategy
               UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
               0, False, False, False, UNSET_INT, 0,  # displaySize .. minQty, ocaType
               False, False, UNSET_DOUBLE, order.parent_id, 0,  # eTradeOnly .. triggerMethod
               UNSET_DOUBLE, UNSET_INT, "", UNSET_DOUBLE]  # volatility .. deltaNeutralAuxPrice
    fields += [False, UNSET_INT, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_INT, "",
               0, 0, 0,  # combo legs, order combo legs, smart combo routing params
               UNSET_INT, UNSET_INT, UNSET_DOUBLE,  # scale fields
               "",  # hedgeType
               False, "", "", False, False,  # optOutSmartRouting .. delta-neutral contract
               "",  # algoStrategy
               False, what_if, order.status, *margin, commission, UNSET_DOUBLE, UNSET_DOUBLE,
               order.contract.currency if what_if else "", "", False, False,
               0,  # conditions
               "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
               UNSET_DOUBLE, 0, "", "", "",  # adjusted* .. soft dollar tier
               UNSET_DOUBLE, False, False, False, False]  # cashQty .. usePriceMgmtAlgo
    if version >= 158:
        fields.append(UNSET_INT)  # duration
    if version >= 160:
        fields.append(UNSET_INT)  # postToAts
    if version >= 162:
        fields.append(False)  # autoCancelParent
    if version >= 170:
        fields += [UNSET_INT, UNSET_INT, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
    return _msg("openOrder", *fields)


def open_order_end() -> Fields:
    """``openOrderEnd``."""
    return _msg("openOrderEnd", 1)


def completed_order(version: int, order: OrderRecord, zone_stamp: str) -> Fields:
    """``completedOrder``: a finished order (no order id or client id; permId, orderRef)."""
    fields: list[object] = contract_fields(order.contract, order.contract.exchange)
    fields += _order_common(order)
    fields += [order.perm_id, order.outside_rth, False, 0, order.good_after_time,
               "", "", "", "", "", order.good_till_date, "", UNSET_DOUBLE, "", 0, "", -1,
               UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
               0, False, False, UNSET_INT, 0, 0,  # displaySize .. triggerMethod
               UNSET_DOUBLE, UNSET_INT, "", UNSET_DOUBLE,  # volatility .. deltaNeutralAuxPrice
               False, UNSET_INT, UNSET_DOUBLE, UNSET_DOUBLE, "",
               0, 0, 0, UNSET_INT, UNSET_INT, UNSET_DOUBLE, "",
               "", "", False, False,  # clearingAccount .. delta-neutral contract
               "", False, order.status, False, False,  # algoStrategy .. randomizePrice
               0,  # conditions
               UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, False, False, "", order.filled, 0,
               False, "", False, False, UNSET_INT, zone_stamp, order.completed_status]
    if version >= 170:
        fields += [UNSET_INT, UNSET_INT, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
    return _msg("completedOrder", *fields)


def completed_orders_end() -> Fields:
    """``completedOrdersEnd`` (no version field)."""
    return _msg("completedOrdersEnd")


def exec_details(req_id: int, execution: ExecutionRecord, account: str,
                 zone_stamp: str) -> Fields:
    """``execDetails`` (no version field below 178): exactly 31 fields."""
    order = execution.order
    return _msg("execDetails", req_id, order.order_id,
                *contract_fields(order.contract, execution.exchange), execution.exec_id,
                zone_stamp, account, execution.exchange, execution.side, execution.shares,
                execution.price, order.perm_id, order.client_id, 0, execution.cum_qty,
                execution.avg_price, order.order_ref, "", "", "", execution.liquidity)


def exec_details_end(req_id: int) -> Fields:
    """``execDetailsEnd``: the end marker of reqExecutions."""
    return _msg("execDetailsEnd", 1, req_id)


def commission_report(execution: ExecutionRecord) -> Fields:
    """``commissionReport``: exactly 8 fields; realized P&L unset for an opening fill."""
    realized = execution.realized_pnl
    return _msg("commissionReport", 1, execution.exec_id, execution.commission,
                execution.commission_currency,
                UNSET_DOUBLE if realized is None else realized.quantize(Decimal("0.000001")),
                UNSET_DOUBLE, 0)


def contract_details(version: int, req_id: int, spec: ContractSpec, today: dt.date) -> Fields:
    """``contractDetails``: version 8 with mdSizeMultiplier below 164, size rules from 164."""
    head: list[object] = [8] if version < 164 else []
    exchange = spec.exchange
    market = spec.trading_class if spec.sec_type == "CASH" else spec.symbol
    fields: list[object] = [*head, req_id, spec.symbol, spec.sec_type, "", 0, "", exchange,
                            spec.currency, spec.local_symbol, market, spec.trading_class,
                            spec.con_id, spec.min_tick]
    if version < 164:
        fields.append(1)  # mdSizeMultiplier
    fields += ["", spec.order_types, ",".join(spec.valid_exchanges), 1, 0, spec.long_name,
               spec.primary_exchange, "", "", "", "", spec.time_zone,
               spec.hours(today, liquid=False), spec.hours(today, liquid=True), "", "",
               0,  # secIdList
               1, "", "", "26" if spec.sec_type == "STK" else "239", "", spec.stock_type]
    size_rules: list[object] = ["1", "1", "100"] if spec.sec_type == "STK" \
        else ["1", "1", "20000"]
    if version == 163:
        fields.append(size_rules[2])
    elif version >= 164:
        fields += size_rules
    return _msg("contractDetails", *fields)


def contract_details_end(req_id: int) -> Fields:
    """``contractDetailsEnd``."""
    return _msg("contractDetailsEnd", 1, req_id)


def historical_data(req_id: int, start: str, end: str,
                    rows: list[tuple[str, float, float, float, float, float, float, int]]
                    ) -> Fields:
    """``historicalData``: the window's edges, the bar count, then 8 fields a bar."""
    fields: list[object] = [req_id, start, end, len(rows)]
    for row in rows:
        fields += list(row)
    return _msg("historicalData", *fields)


def historical_data_update(req_id: int, date: str, bar_count: int, o: float, h: float,
                           low: float, c: float, average: float, volume: float) -> Fields:
    """``historicalDataUpdate``: note the order open, close, high, low."""
    return _msg("historicalDataUpdate", req_id, bar_count, date, o, c, h, low, average, volume)


def realtime_bar(req_id: int, epoch: int, o: float, h: float, low: float, c: float,
                 volume: float, wap: float, count: int) -> Fields:
    """``realtimeBar`` (version 3)."""
    return _msg("realtimeBar", 3, req_id, epoch, o, h, low, c, volume, wap, count)

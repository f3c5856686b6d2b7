"""Incoming requests: their fields read in the order the client writes them.

Each reader walks a message with a :class:`~.protocol.Cursor` and checks that no field is
left over, so a layout that does not match the negotiated server version is reported (as a
protocol error in :attr:`TwsEmulator.errors`) instead of being half understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .contracts import ContractQuery
from .errors import ProtocolError
from .protocol import Cursor

#: Fields after the type of each order condition (price, time, margin, execution, volume,
#: percent change), as the client writes them.
_CONDITION_FIELDS = {1: 6, 3: 3, 4: 3, 5: 4, 6: 5, 7: 5}
_UNSET = Decimal("1.7976931348623157e308")


def read_contract(cur: Cursor) -> ContractQuery:
    """The 12 contract fields most requests carry."""
    return ContractQuery(
        con_id=cur.integer(), symbol=cur.text(), sec_type=cur.text(), last_trade=cur.text(),
        strike=cur.number(), right=cur.text(), multiplier=cur.text(), exchange=cur.text(),
        primary_exchange=cur.text(), currency=cur.text(), local_symbol=cur.text(),
        trading_class=cur.text())


@dataclass
class OrderTicket:
    """What the emulator keeps of a ``placeOrder`` request."""

    order_id: int
    contract: ContractQuery
    action: str
    total_qty: Decimal
    order_type: str
    lmt_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    good_after_time: str
    good_till_date: str
    what_if: bool
    cash_qty: Decimal | None
    algo_strategy: str
    conditions: int
    combo: bool


def read_place_order(fields: list[str], version: int) -> OrderTicket:
    """Read a ``placeOrder`` message as written at server ``version``.

    Raises:
        ProtocolError: the layout does not match.
    """
    cur = Cursor(fields)
    order_id = cur.integer()
    contract = read_contract(cur)
    cur.skip(2)  # secIdType, secId
    action, qty, order_type = cur.text(), cur.number(), cur.text()
    lmt, aux, tif = cur.number(), cur.number(), cur.text()
    oca_group, account = cur.text(), cur.text()
    cur.skip(2)  # openClose, origin
    order_ref, transmit, parent_id = cur.text(), cur.flag(), cur.integer()
    cur.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = cur.flag()
    cur.skip(1)  # hidden
    combo = contract.sec_type == "BAG"
    if combo:
        cur.skip(8 * cur.integer())  # combo legs
        cur.skip(cur.integer())  # order combo leg prices
        cur.skip(2 * cur.integer())  # smart combo routing params
    cur.skip(2)  # deprecated shares allocation, discretionaryAmt
    good_after_time, good_till_date = cur.text(), cur.text()
    cur.skip(26)  # faGroup .. volatilityType
    if cur.text():  # deltaNeutralOrderType
        cur.skip(1 + 8)
    else:
        cur.skip(1)  # deltaNeutralAuxPrice
    cur.skip(6)  # continuousUpdate .. scaleSubsLevelSize
    increment = cur.number()
    if increment is not None and 0 < increment < _UNSET:
        cur.skip(7)  # scale adjustments
    cur.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if cur.text():  # hedgeType
        cur.skip(1)
    cur.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if cur.flag():  # delta-neutral contract
        cur.skip(3)
    algo = cur.text()
    if algo:
        cur.skip(2 * cur.integer())
    cur.skip(1)  # algoId
    what_if = cur.flag()
    cur.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type == "PEG BENCH":
        cur.skip(5)
    conditions = cur.integer()
    for _ in range(conditions):
        kind = cur.integer()
        if kind not in _CONDITION_FIELDS:
            raise ProtocolError(f"unknown order condition type {kind}")
        cur.skip(_CONDITION_FIELDS[kind])
    if conditions:
        cur.skip(2)  # conditionsIgnoreRth, conditionsCancelOrder
    cur.skip(10)  # adjustedOrderType .. softDollarTier value
    cash_qty = cur.number()
    cur.skip(8)  # mifid2 fields .. usePriceMgmtAlgo
    for since in (158, 160, 162, 166, 169):  # duration, postToAts, autoCancelParent,
        if version >= since:                 # advancedErrorOverride, manualOrderTime
            cur.skip(1)
    if version >= 170:
        if contract.exchange == "IBKRATS":
            cur.skip(1)  # minTradeQty
        if order_type == "PEG BEST":
            cur.skip(1)
            if cur.text() in ("Infinite", "Infinity"):
                cur.skip(2)
        elif order_type == "PEG MID":
            cur.skip(2)
    cur.finish()
    if qty is None:
        raise ProtocolError("placeOrder without a total quantity")
    return OrderTicket(
        order_id=order_id, contract=contract, action=action.upper(), total_qty=qty,
        order_type=order_type.upper(), lmt_price=lmt, aux_price=aux, tif=tif.upper(),
        oca_group=oca_group, account=account, order_ref=order_ref, transmit=transmit,
        parent_id=parent_id, outside_rth=outside_rth, good_after_time=good_after_time,
        good_till_date=good_till_date, what_if=what_if, cash_qty=cash_qty,
        algo_strategy=algo, conditions=conditions, combo=combo)


@dataclass
class HistoricalRequest:
    """A ``reqHistoricalData`` request."""

    req_id: int
    contract: ContractQuery
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


def read_historical(fields: list[str]) -> HistoricalRequest:
    """Read ``reqHistoricalData`` (no version field at these server versions)."""
    cur = Cursor(fields)
    req_id = cur.integer()
    contract = read_contract(cur)
    cur.skip(1)  # includeExpired
    end, bar_size, duration = cur.text(), cur.text(), cur.text()
    use_rth, what, fmt_date = cur.flag(), cur.text(), cur.integer(1)
    if contract.sec_type == "BAG":
        cur.skip(4 * cur.integer())
    keep = cur.flag()
    cur.skip(1)  # chartOptions
    cur.finish()
    return HistoricalRequest(req_id, contract, end.strip(), bar_size.strip(),
                             duration.strip(), use_rth, what.upper(), fmt_date, keep)


def read_contract_details(fields: list[str], version: int) -> tuple[int, ContractQuery]:
    """Read ``reqContractDetails``: ``(req_id, contract)``."""
    cur = Cursor(fields, start=2)  # message id, version 8
    req_id = cur.integer()
    contract = read_contract(cur)
    cur.skip(3)  # includeExpired, secIdType, secId
    if version >= 176:
        cur.skip(1)  # issuerId
    cur.finish()
    return req_id, contract


@dataclass
class ExecutionQuery:
    """The filter of a ``reqExecutions`` request."""

    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


def read_executions(fields: list[str]) -> ExecutionQuery:
    """Read ``reqExecutions`` (version 3)."""
    cur = Cursor(fields, start=2)
    query = ExecutionQuery(cur.integer(), cur.integer(), cur.text(), cur.text(), cur.text(),
                           cur.text(), cur.text(), cur.text())
    cur.finish()
    return query


@dataclass
class RealTimeBarsRequest:
    """A ``reqRealTimeBars`` request."""

    req_id: int
    contract: ContractQuery
    bar_size: int
    what_to_show: str


def read_real_time_bars(fields: list[str]) -> RealTimeBarsRequest:
    """Read ``reqRealTimeBars`` (version 3)."""
    cur = Cursor(fields, start=2)
    req_id = cur.integer()
    contract = read_contract(cur)
    size, what = cur.integer(5), cur.text()
    cur.skip(2)  # useRTH, options
    cur.finish()
    return RealTimeBarsRequest(req_id, contract, size, what.upper())

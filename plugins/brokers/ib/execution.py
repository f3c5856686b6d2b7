"""``IBBroker``: the Broker protocol on ib_insync, against TWS or IB Gateway.

IB keeps no unique client order id, so rlbridge's client order id travels as the order's
``orderRef`` and uniqueness is rlbridge's job: :meth:`IBBroker.submit` first looks the
reference up among the open orders of every client id, the completed orders and the
executions it knows (synchronised with TWS by a request barrier, and in full again after each
reconnection), and raises :class:`~rlbridge.errors.DuplicateOrderError` when IB has one.  An
order whose acknowledgement is lost (a dropped connection, a timeout, IB's error 1100) raises
:class:`~rlbridge.errors.TransientBrokerError`; the live runner then looks it up by its
reference, which reconnects first and finds it if TWS took it.  IB's errors about an order
become its state: 201 ``rejected`` with IB's reason, 202 ``canceled``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from rlbridge.errors import BrokerError, DuplicateOrderError
from rlbridge.interfaces import Account, BrokerOrder

from . import contracts
from .bars import LiveBars, run_interval
from .config import IBConfig, is_paper_account
from .connection import Connection, acquire, release
from .orders import broker_order, ib_order, latest

if TYPE_CHECKING:
    import pandas as pd

    from rlbridge.interfaces import Order

log = logging.getLogger("rlbridge.plugins.brokers.ib")


class IBBroker:
    """Interactive Brokers through TWS or IB Gateway (paper by default).

    Args:
        config: the ``[broker]`` options (:class:`IBConfig`).
    """

    Config = IBConfig

    def __init__(self, config: IBConfig | None = None) -> None:
        self.config = config if config is not None else IBConfig()
        self.paper = self.config.paper
        self._connection: Connection | None = None
        self._symbols = contracts.SymbolMap()
        self._account = self.config.account or ""
        self._session: Any = None
        self._live_bars: LiveBars | None = None
        self._idle = threading.Event()  # daily bars: nothing streams, the wait just waits

    def __repr__(self) -> str:
        return (f"IBBroker(paper={self.paper}, address={self.config.address!r}, "
                f"client_id={self.config.client_id})")

    # ------------------------------------------------------------------ lifecycle
    @property
    def connection(self) -> Connection:
        """The shared connection to TWS (taken on first use)."""
        if self._connection is None:
            c = self.config
            self._connection = acquire(c.host, c.port, c.client_id, c.timeout)
        return self._connection

    def connect(self, session: Any) -> None:
        """Connect, check the account against ``account`` and ``paper``; learn the run's
        symbols (positions map back to their spelling).

        Raises:
            BrokerError: the account is not managed by this login, several are and none is
                chosen, or it is a real-money account with ``paper = true`` (or the reverse).
            TransientBrokerError: TWS cannot be reached.
        """
        if session is not None:
            self._symbols = contracts.SymbolMap(session.bars.symbols)
            self._session = session

        async def accounts() -> list[str]:
            return list(self.connection.ib.managedAccounts())

        managed = self.connection.request("connecting", accounts)
        self._account = self._choose(managed)

    def _choose(self, managed: list[str]) -> str:
        wanted = self.config.account
        where = f"TWS at {self.config.address}"
        if wanted is not None and wanted not in managed:
            raise BrokerError(f"account {wanted} is not managed by the login of {where}; it "
                              f"manages {', '.join(managed) or 'no account'}")
        if wanted is None and len(managed) != 1:
            raise BrokerError(f"the login of {where} manages several accounts "
                              f"({', '.join(managed)}): set [broker] account to one of them")
        account = wanted or managed[0]
        if self.paper and not is_paper_account(account):
            raise BrokerError(f"account {account} at {where} is a real-money account but paper "
                              "= true: log in to the paper account, or set paper = false (and "
                              "pass --live-money) to trade real money")
        if not self.paper and is_paper_account(account):
            raise BrokerError(f"paper = false but account {account} at {where} is a paper "
                              "account: set paper = true")
        return account

    def close(self) -> None:
        """Cancel the live bars; give the connection back (the last user disconnects)."""
        self._idle.set()
        if self._live_bars is not None:
            self._live_bars.close()
            self._live_bars = None
        if self._connection is not None:
            release(self._connection)
            self._connection = None

    def market_time(self) -> pd.Timestamp:
        """Now, by TWS's clock (read once, then advanced with the local monotonic clock).

        The live runner decides by this clock, so a machine whose clock drifts still sends
        market-on-open orders before the open.
        """
        import time

        import pandas as pd

        clock = self.connection.clock()
        if clock is None:
            self.connection.request("reading TWS's clock", self._noop)
            clock = self.connection.clock()
        assert clock is not None
        started, stamp = clock
        return pd.Timestamp(stamp).tz_convert("UTC") + pd.Timedelta(
            seconds=time.monotonic() - started)

    @staticmethod
    async def _noop() -> None:
        return None

    # ------------------------------------------------------------------ account
    def account(self) -> Account:
        """Cash (``TotalCashValue``) and equity (``NetLiquidation``) in the base currency."""
        ib = self.connection.ib

        async def read() -> dict[tuple[str, str], str]:
            values = ib.accountValues(self._account)
            if not any(v.tag == "NetLiquidation" for v in values):  # not followed: ask
                values = await ib.accountSummaryAsync(self._account)
            return {(v.tag, v.currency): v.value for v in values
                    if not getattr(v, "modelCode", "")}

        values = self.connection.request("reading the account", read)
        base = next((c for (t, c) in values if t == "NetLiquidation" and c not in ("", "BASE")),
                    None)
        if base is None:
            raise BrokerError(f"TWS at {self.config.address} reports no NetLiquidation for "
                              f"account {self._account}")
        cash = values.get(("TotalCashValue", base))
        if cash is None:
            raise BrokerError(f"TWS at {self.config.address} reports no TotalCashValue for "
                              f"account {self._account}")
        return Account(float(cash), float(values[("NetLiquidation", base)]), base)

    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol (forex pairs in units of the base currency)."""
        ib = self.connection.ib

        async def read() -> list[Any]:
            return list(ib.positions(self._account))

        held = self.connection.request("reading the positions", read)
        out: dict[str, float] = {}
        for position in held:
            if position.position:
                name = self._symbols.symbol(position.contract)
                out[name] = out.get(name, 0.0) + float(position.position)
        return out

    # ------------------------------------------------------------------ orders
    def submit(self, order: Order) -> BrokerOrder:
        """Send ``order`` with its client order id as orderRef; IB's view once acknowledged.

        Raises:
            DuplicateOrderError: IB has an order with this reference already.
            TransientBrokerError: the acknowledgement was lost (dropped connection, timeout,
                IB's error 1100): look the order up before sending it again.
            BrokerError: rlbridge cannot express the order for IB.
        """
        ticket = ib_order(order, self._account or None)
        contract = contracts.contract(order.symbol)
        cid = str(order.client_order_id)
        connection = self.connection

        async def place() -> BrokerOrder:
            if self._trades(cid) or self._fills(cid):
                raise DuplicateOrderError(f"IB already has an order with orderRef {cid}")
            trade = connection.ib.placeOrder(contract, ticket)
            await connection.until(lambda: _acknowledged(trade), f"IB to acknowledge {cid}")
            return self._view(cid, order.symbol) or broker_order(trade, [], order.symbol)

        return connection.request(f"submitting {cid}", place)

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this orderRef (open, completed, or known by its executions), or None
        when IB has none."""
        async def find() -> BrokerOrder | None:
            return self._view(client_order_id, None)

        return self.connection.request(f"looking up {client_order_id}", find)

    def cancel(self, client_order_id: str) -> None:
        """Cancel the order if it is still open; nothing happens for a final or unknown one."""
        connection = self.connection

        async def cancel() -> None:
            trade = latest(self._trades(client_order_id))
            if trade is None or trade.isDone() or trade.orderStatus.status == "Inactive":
                return
            connection.ib.cancelOrder(trade.order)

        connection.request(f"canceling {client_order_id}", cancel)

    def wait_for_update(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an order update or a fill (the live runner's
        fill wait).

        Returns:
            True when one arrived.
        """
        return self.connection.wait_for_update(timeout)

    # ------------------------------------------------------------------ live bars
    def wait_for_bar(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the next bar of the run to close and be stored.

        The first call subscribes to TWS's real-time bars of the run's symbols; they are built
        into bars of the run's interval and written to the run's store at the interval its
        ``[data]`` feed reads (see :mod:`.bars`).  A dropped connection is reconnected and
        subscribed again by the next call, and the bars that closed meanwhile are read from
        TWS's history.  On daily bars nothing streams: the call waits.

        Returns:
            True once a new complete bar is in the store; False on timeout.

        Raises:
            ConfigError: the run's interval is not a multiple of 5 seconds.
            BrokerError: TWS refused the subscription.
        """
        if self._live_bars is None:
            session = self._session
            interval = (run_interval(session.config, session.bars)
                        if session is not None else None)
            if interval is None:
                self._idle.wait(max(0.0, timeout))
                return False
            options = dict(getattr(session.config.data, "options", None) or {})
            self._live_bars = LiveBars(
                self.connection, session.bars.symbols, interval[0], interval[1],
                session.journal.store, what_to_show=options.get("what_to_show"),
                use_rth=bool(options.get("use_rth", True)),
                since=int(session.bars.index[-1].timestamp()) if len(session.bars) else None)
        return self._live_bars.wait(timeout)

    # ------------------------------------------------------------------ on the loop thread
    def _trades(self, cid: str) -> list[Any]:
        """The trades with orderRef ``cid`` that TWS has (after a barrier, an order TWS
        never acknowledged is one it never got: it does not count)."""
        return [t for t in self.connection.ib.trades() if t.order.orderRef == cid
                and (t.order.permId or t.orderStatus.status != "PendingSubmit")]

    def _fills(self, cid: str, perm_id: int | None = None) -> list[Any]:
        return [f for f in self.connection.ib.fills()
                if (perm_id and f.execution.permId == perm_id)
                or (not perm_id and f.execution.orderRef == cid)]

    def _view(self, cid: str, symbol: str | None) -> BrokerOrder | None:
        connection = self.connection
        trades = self._trades(cid)
        if len({t.order.permId for t in trades}) > 1:
            log.warning("IB has %d orders with orderRef %s: reporting the latest", len(trades),
                        cid)
        trade = latest(trades)
        fills = self._fills(cid, trade.order.permId if trade is not None else None)
        if trade is None and not fills:
            return None
        contract = trade.contract if trade is not None else fills[0].contract
        name = symbol or self._symbols.symbol(contract)
        perm = trade.order.permId if trade is not None else fills[0].execution.permId
        return broker_order(trade, fills, name, connection.reasons.get(cid),
                            connection.completed_status.get(perm, ""))


def _acknowledged(trade: Any) -> bool:
    """TWS has answered a new order: its openOrder (a permId), a status past PendingSubmit,
    or an error ending it."""
    return bool(trade.order.permId) or trade.orderStatus.status != "PendingSubmit" \
        or trade.isDone()

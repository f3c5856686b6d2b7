"""Requests about the account: positions, account updates (single and multi), summary.

TWS answers each with the current values and an end marker, then keeps the connection
subscribed: after a fill it sends the changed position and the account values again
(:meth:`~.server.Hub.portfolio_changed`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import messages as msg
from .contracts import ContractSpec
from .errors import RequestRefused
from .faults import Fault
from .ledger import LEDGER_TAGS
from .protocol import Cursor

if TYPE_CHECKING:
    from .emulator import TwsEmulator
    from .server import Session


class AccountHandlers:
    """The account requests of :class:`~.handlers.Handlers`."""

    core: TwsEmulator

    def position_message(self, spec: ContractSpec) -> list[str]:
        """The ``position`` message of one instrument (0 when flat)."""
        pos = self.core._ledger.positions.get(spec.con_id)
        qty, avg = (pos.qty, pos.avg_cost) if pos else (Decimal(0), Decimal(0))
        return msg.position(self.core.account, spec, qty, avg)

    def reqPositions(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        session.positions_sub = True
        for pos in self.core._ledger.open_positions():
            session.send("position", self.position_message(pos.contract))
        session.send("positionEnd", msg.position_end())

    def cancelPositions(self, session: Session, fields: list[str], fault: Fault | None) -> None:
        session.positions_sub = False

    def send_account_updates(self, session: Session, contracts: list[ContractSpec], *,
                             end: bool) -> None:
        """Account values, the portfolio of ``contracts``, the time (and the end marker)."""
        ledger, account = self.core._ledger, self.core.account
        for tag, value, currency in ledger.values():
            session.send("updateAccountValue", msg.account_value(tag, value, currency, account))
        for spec in contracts:
            pos = ledger.positions.get(spec.con_id)
            qty = pos.qty if pos else Decimal(0)
            price = ledger.mark(spec)
            session.send("updatePortfolio", msg.portfolio(
                account, spec, qty, price, qty * price, pos.avg_cost if pos else Decimal(0),
                ledger.unrealized(pos) if pos else Decimal(0),
                pos.realized if pos else Decimal(0)))
        session.send("updateAccountTime", msg.account_time(
            self.core.clock.now().astimezone(self.core.zone)))
        if end:
            session.send("accountDownloadEnd", msg.account_download_end(account))

    def reqAccountUpdates(self, session: Session, fields: list[str],
                          fault: Fault | None) -> None:
        cur = Cursor(fields, start=2)
        subscribe, account = cur.flag(), cur.text()
        if not subscribe:
            session.account_sub = None
            return
        if account and account != self.core.account:
            raise RequestRefused(321, f"Error validating request: unknown account {account}")
        session.account_sub = self.core.account
        contracts = [p.contract for p in self.core._ledger.open_positions()]
        self.send_account_updates(session, contracts, end=True)

    def send_account_multi(self, session: Session, req_id: int, *, end: bool) -> None:
        """Account values as ``accountUpdateMulti`` (and the end marker)."""
        for tag, value, currency in self.core._ledger.values():
            session.send("accountUpdateMulti", msg.account_update_multi(
                req_id, self.core.account, tag, value, currency))
        if end:
            session.send("accountUpdateMultiEnd", msg.account_update_multi_end(req_id))

    def reqAccountUpdatesMulti(self, session: Session, fields: list[str],
                               fault: Fault | None) -> None:
        cur = Cursor(fields, start=2)
        req_id, account = cur.integer(), cur.text()
        if account and account != self.core.account:
            raise RequestRefused(321, f"Error validating request: unknown account {account}",
                                 req_id)
        session.multi_subs.add(req_id)
        self.send_account_multi(session, req_id, end=True)

    def cancelAccountUpdatesMulti(self, session: Session, fields: list[str],
                                  fault: Fault | None) -> None:
        session.multi_subs.discard(Cursor(fields, start=2).integer())

    def send_account_summary(self, session: Session, req_id: int, tags: str, *,
                             end: bool) -> None:
        """The requested account summary tags (and the end marker)."""
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        ledger_ccys = {t.partition(":")[2] or "BASE" for t in wanted if t.startswith("$LEDGER")}
        for tag, value, currency in self.core._ledger.values():
            if tag in LEDGER_TAGS:
                if not ("ALL" in ledger_ccys or currency in ledger_ccys):
                    continue
            elif tag not in wanted:
                continue
            session.send("accountSummary", msg.account_summary(
                req_id, self.core.account, tag, value, currency))
        if end:
            session.send("accountSummaryEnd", msg.account_summary_end(req_id))

    def reqAccountSummary(self, session: Session, fields: list[str],
                          fault: Fault | None) -> None:
        cur = Cursor(fields, start=2)
        req_id, _group, tags = cur.integer(), cur.text(), cur.text()
        session.summary_subs[req_id] = tags
        self.send_account_summary(session, req_id, tags, end=True)

    def cancelAccountSummary(self, session: Session, fields: list[str],
                             fault: Fault | None) -> None:
        session.summary_subs.pop(Cursor(fields, start=2).integer(), None)

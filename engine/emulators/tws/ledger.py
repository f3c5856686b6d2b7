"""The account: cash by currency, positions with IB's average cost, and account values.

Money is kept in :class:`~decimal.Decimal`.  As at IB, a position's average cost includes the
commissions paid to open it, and realized P&L is net of commissions.  A stock trade moves
cash in the stock's currency; a forex trade (``EUR.USD``) moves both currencies (the
commission is paid in the quote currency) and is also listed as a position on the pair, as
TWS lists it.  Values in the base currency use the last price of the pair that converts a
currency to it (``EUR.USD`` for EUR, ``USD.JPY`` for JPY); a balance with no such price counts
as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .contracts import ContractSpec

_ZERO = Decimal(0)
_CENT = Decimal("0.01")
#: Initial and maintenance margin on stock positions (Reg T, long and short alike).
MARGIN_RATE = Decimal("0.25")
#: Buying power of a margin account: four times the available funds.
LEVERAGE = Decimal(4)

#: Account values given per currency (and for BASE), as TWS sends them.
LEDGER_TAGS = ("CashBalance", "TotalCashBalance", "NetLiquidationByCurrency",
               "StockMarketValue", "UnrealizedPnL", "RealizedPnL", "ExchangeRate")


@dataclass
class PositionRecord:
    """A position: signed quantity and signed cost basis (commissions included)."""

    contract: ContractSpec
    qty: Decimal = _ZERO
    cost: Decimal = _ZERO
    realized: Decimal = _ZERO

    @property
    def avg_cost(self) -> Decimal:
        """Cost per unit, commissions included (0 when flat)."""
        return self.cost / self.qty if self.qty else _ZERO


class Ledger:
    """Cash, positions, marks and realized P&L of one account."""

    def __init__(self, account: str, cash: Decimal, base_currency: str = "USD") -> None:
        self.account = account
        self.base = base_currency
        self.cash: dict[str, Decimal] = {base_currency: cash}
        self.positions: dict[int, PositionRecord] = {}
        self.marks: dict[int, Decimal] = {}
        self.realized: dict[str, Decimal] = {}
        self._pairs: dict[str, ContractSpec] = {}

    # -- changes -------------------------------------------------------------------------

    def apply_fill(self, contract: ContractSpec, buy: bool, qty: Decimal, price: Decimal,
                   commission: Decimal) -> Decimal | None:
        """Book a fill; returns the realized P&L it closed (None if it only opened)."""
        signed = qty if buy else -qty
        quote = contract.currency
        self.cash[quote] = self.cash.get(quote, _ZERO) - signed * price - commission
        if contract.sec_type == "CASH":
            self._pairs[contract.local_symbol] = contract
            self.cash[contract.symbol] = self.cash.get(contract.symbol, _ZERO) + signed
        self.marks[contract.con_id] = price
        pos = self.positions.setdefault(contract.con_id, PositionRecord(contract))
        realized: Decimal | None = None
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            pos.cost += signed * price + commission
            pos.qty += signed
        else:
            closing = min(abs(signed), abs(pos.qty))
            direction = Decimal(1) if pos.qty > 0 else Decimal(-1)
            closing_fee = commission * closing / abs(signed)
            avg = pos.avg_cost
            realized = (price - avg) * closing * direction - closing_fee
            pos.cost -= avg * closing * direction
            pos.qty -= closing * direction
            rest = abs(signed) - closing
            if rest:
                pos.qty = -direction * rest
                pos.cost = -direction * rest * price + (commission - closing_fee)
            pos.realized += realized
            self.realized[quote] = self.realized.get(quote, _ZERO) + realized
        if pos.qty == 0:
            pos.cost = _ZERO
        return realized

    def set_position(self, contract: ContractSpec, qty: Decimal, avg_cost: Decimal) -> None:
        """Give the account a position without a trade (cash untouched)."""
        if contract.sec_type == "CASH":
            self._pairs[contract.local_symbol] = contract
        old = self.positions.get(contract.con_id)
        self.positions[contract.con_id] = PositionRecord(contract, qty, qty * avg_cost,
                                                         old.realized if old else _ZERO)
        self.marks.setdefault(contract.con_id, avg_cost)

    def set_mark(self, contract: ContractSpec, price: Decimal) -> None:
        """The last price of an instrument (market values, FX conversion)."""
        if contract.sec_type == "CASH":
            self._pairs[contract.local_symbol] = contract
        self.marks[contract.con_id] = price

    # -- reading -------------------------------------------------------------------------

    def mark(self, contract: ContractSpec) -> Decimal:
        """The instrument's last price, else its average cost."""
        price = self.marks.get(contract.con_id)
        if price is None:
            pos = self.positions.get(contract.con_id)
            return pos.avg_cost if pos else _ZERO
        return price

    def rate(self, currency: str) -> Decimal | None:
        """Units of the base currency per unit of ``currency`` (None when unknown)."""
        if currency == self.base:
            return Decimal(1)
        direct = self._pairs.get(f"{currency}.{self.base}")
        if direct is not None and direct.con_id in self.marks:
            return self.marks[direct.con_id]
        inverse = self._pairs.get(f"{self.base}.{currency}")
        if inverse is not None and self.marks.get(inverse.con_id):
            return Decimal(1) / self.marks[inverse.con_id]
        return None

    def open_positions(self) -> list[PositionRecord]:
        """Positions that are not flat, by contract key."""
        return sorted((p for p in self.positions.values() if p.qty),
                      key=lambda p: p.contract.key)

    def unrealized(self, pos: PositionRecord) -> Decimal:
        """Unrealized P&L of a position, in its currency."""
        return pos.qty * self.mark(pos.contract) - pos.cost

    def in_base(self, amount: Decimal, currency: str) -> Decimal:
        """``amount`` of ``currency`` in the base currency (0 when no rate is known)."""
        rate = self.rate(currency)
        return amount * rate if rate is not None else _ZERO

    def values(self) -> list[tuple[str, str, str]]:
        """Every account value as ``(tag, value, currency)``, as TWS reports them."""
        currencies = sorted(set(self.cash) | {p.contract.currency
                                              for p in self.open_positions()})
        stock_value = {c: _ZERO for c in currencies}
        unrealized = {c: _ZERO for c in currencies}
        gross = _ZERO
        for pos in self.open_positions():
            ccy = pos.contract.currency
            unrealized[ccy] += self.unrealized(pos)
            if pos.contract.sec_type != "CASH":
                value = pos.qty * self.mark(pos.contract)
                stock_value[ccy] += value
                gross += abs(self.in_base(value, ccy))
        cash_base = sum((self.in_base(self.cash.get(c, _ZERO), c) for c in currencies), _ZERO)
        stocks_base = sum((self.in_base(stock_value[c], c) for c in currencies), _ZERO)
        net_liq = cash_base + stocks_base
        margin = gross * MARGIN_RATE
        available = net_liq - margin
        base = self.base
        out = [("AccountCode", self.account, ""), ("AccountType", "INDIVIDUAL", ""),
               ("AccountReady", "true", "")]
        for tag, amount in (("NetLiquidation", net_liq), ("TotalCashValue", cash_base),
                            ("SettledCash", cash_base), ("EquityWithLoanValue", net_liq),
                            ("GrossPositionValue", gross), ("InitMarginReq", margin),
                            ("MaintMarginReq", margin), ("AvailableFunds", available),
                            ("ExcessLiquidity", available),
                            ("BuyingPower", available * LEVERAGE)):
            out.append((tag, money(amount), base))
        for ccy in currencies:
            cash = self.cash.get(ccy, _ZERO)
            rate = self.rate(ccy)
            realized = self.realized.get(ccy, _ZERO)
            out += [("CashBalance", money(cash), ccy), ("TotalCashBalance", money(cash), ccy),
                    ("NetLiquidationByCurrency", money(cash + stock_value[ccy]), ccy),
                    ("StockMarketValue", money(stock_value[ccy]), ccy),
                    ("UnrealizedPnL", money(unrealized[ccy]), ccy),
                    ("RealizedPnL", money(realized), ccy)]
            if rate is not None:
                out.append(("ExchangeRate", _plain(rate), ccy))
        unreal_base = sum((self.in_base(unrealized[c], c) for c in currencies), _ZERO)
        real_base = sum((self.in_base(v, c) for c, v in self.realized.items()), _ZERO)
        out += [("CashBalance", money(cash_base), "BASE"),
                ("TotalCashBalance", money(cash_base), "BASE"),
                ("NetLiquidationByCurrency", money(net_liq), "BASE"),
                ("StockMarketValue", money(stocks_base), "BASE"),
                ("UnrealizedPnL", money(unreal_base), "BASE"),
                ("RealizedPnL", money(real_base), "BASE"), ("ExchangeRate", "1.00", "BASE")]
        return out


def money(value: Decimal) -> str:
    """An amount as TWS writes account values: two decimals."""
    return str(value.quantize(_CENT))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.00"

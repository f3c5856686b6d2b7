"""The instruments the emulator knows: US stocks and ETFs on SMART, forex pairs on IDEALPRO.

Each instrument is a :class:`ContractSpec` with a contract id (``conId``) that is stable
across runs (derived from the instrument's key, not IB's real ids).  Instruments are keyed
``"SPY"`` for a stock and ``"EUR.USD"`` for a forex pair (IB's local symbol).  A request's
contract matches the way TWS matches it: by ``conId`` when one is given, otherwise by the
fields that are set (symbol, secType, currency, exchange, primary exchange, local symbol,
trading class); empty fields match anything.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from decimal import Decimal

from .errors import EmulatorError

STOCK_EXCHANGES = ("SMART", "AMEX", "NYSE", "ARCA", "BATS", "IEX", "ISLAND", "NASDAQ")
STOCK_ORDER_TYPES = "ACTIVETIM,AD,ALERT,ALLOC,DAY,GAT,GTC,GTD,IOC,LMT,LOC,MIT,MKT,MOC,MTL,OPG," \
                    "REL,STP,STPLMT,TRAIL,WHATIF"
FOREX_ORDER_TYPES = "ACTIVETIM,AD,ALERT,ALLOC,DAY,GAT,GTC,GTD,IOC,LMT,MKT,STP,STPLMT,WHATIF"

_DEFAULT_STOCKS = (
    ("SPY", "ARCA", "ETF", "SPDR S&P 500 ETF TRUST"),
    ("AGG", "ARCA", "ETF", "ISHARES CORE U.S. AGGREGATE"),
    ("XLK", "ARCA", "ETF", "TECHNOLOGY SELECT SECT SPDR"),
    ("QQQ", "NASDAQ", "ETF", "INVESCO QQQ TRUST SERIES 1"),
    ("IWM", "ARCA", "ETF", "ISHARES RUSSELL 2000 ETF"),
    ("TLT", "NASDAQ", "ETF", "ISHARES 20+ YEAR TREASURY BO"),
    ("GLD", "ARCA", "ETF", "SPDR GOLD SHARES"),
    ("AAPL", "NASDAQ", "COMMON", "APPLE INC"),
    ("MSFT", "NASDAQ", "COMMON", "MICROSOFT CORP"),
)
_DEFAULT_PAIRS = ("EUR.USD", "GBP.USD", "USD.JPY", "USD.CHF", "AUD.USD", "USD.CAD")


@dataclass(frozen=True)
class ContractSpec:
    """One instrument as the emulator describes it in contract details and orders."""

    con_id: int
    symbol: str
    sec_type: str
    currency: str
    exchange: str
    primary_exchange: str
    local_symbol: str
    trading_class: str
    long_name: str
    min_tick: Decimal
    stock_type: str = ""
    time_zone: str = "US/Eastern"

    @property
    def key(self) -> str:
        """``"SPY"`` for a stock, ``"EUR.USD"`` for a forex pair."""
        return self.local_symbol if self.sec_type == "CASH" else self.symbol

    @property
    def valid_exchanges(self) -> tuple[str, ...]:
        """The exchanges a request may name for this instrument."""
        if self.sec_type == "CASH":
            return ("IDEALPRO",)
        return STOCK_EXCHANGES

    @property
    def order_types(self) -> str:
        """The order types listed in the contract details."""
        return FOREX_ORDER_TYPES if self.sec_type == "CASH" else STOCK_ORDER_TYPES

    def hours(self, today: dt.date, liquid: bool) -> str:
        """TWS's ``tradingHours`` / ``liquidHours`` string for a week from ``today``."""
        parts = []
        for offset in range(7):
            day = today + dt.timedelta(days=offset)
            ymd = day.strftime("%Y%m%d")
            if day.weekday() >= 5:
                parts.append(f"{ymd}:CLOSED")
            elif self.sec_type == "CASH":
                prev = (day - dt.timedelta(days=1)).strftime("%Y%m%d")
                parts.append(f"{prev}:1715-{ymd}:1700")
            elif liquid:
                parts.append(f"{ymd}:0930-{ymd}:1600")
            else:
                parts.append(f"{ymd}:0400-{ymd}:2000")
        return ";".join(parts)


@dataclass
class ContractQuery:
    """The contract fields of a request, as the client sent them."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade: str = ""
    strike: Decimal | None = None
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""

    def describe(self) -> str:
        """A short text naming the contract, for error messages."""
        if self.con_id:
            return f"conId {self.con_id}"
        return " ".join(p for p in (self.symbol, self.sec_type, self.exchange,
                                    self.currency) if p) or "an empty contract"


def stock(symbol: str, primary_exchange: str = "ARCA", *, currency: str = "USD",
          stock_type: str = "COMMON", long_name: str = "", con_id: int | None = None
          ) -> ContractSpec:
    """A US stock or ETF routed through SMART."""
    symbol = symbol.upper()
    return ContractSpec(
        con_id=con_id or _con_id("STK", symbol, currency), symbol=symbol, sec_type="STK",
        currency=currency, exchange="SMART", primary_exchange=primary_exchange,
        local_symbol=symbol, trading_class=symbol,
        long_name=long_name or symbol, min_tick=Decimal("0.01"), stock_type=stock_type)


def forex(pair: str, *, con_id: int | None = None) -> ContractSpec:
    """A forex pair on IDEALPRO, from ``"EUR.USD"`` (or ``"EURUSD"``)."""
    text = pair.upper().replace("/", ".")
    if "." not in text and len(text) == 6:
        text = f"{text[:3]}.{text[3:]}"
    base, _, quote = text.partition(".")
    if len(base) != 3 or len(quote) != 3:
        raise EmulatorError(f"a forex pair looks like 'EUR.USD', got {pair!r}")
    return ContractSpec(
        con_id=con_id or _con_id("CASH", text, quote), symbol=base, sec_type="CASH",
        currency=quote, exchange="IDEALPRO", primary_exchange="", local_symbol=text,
        trading_class=text, long_name=f"{base} / {quote}",
        min_tick=Decimal("0.005") if quote == "JPY" else Decimal("0.00005"))


def _con_id(sec_type: str, key: str, currency: str) -> int:
    return 100_000 + zlib.crc32(f"{sec_type}:{key}:{currency}".encode()) % 900_000_000


class ContractBook:
    """The instruments the emulator knows, with the default US ETFs, stocks and FX majors."""

    def __init__(self, defaults: bool = True) -> None:
        self._by_id: dict[int, ContractSpec] = {}
        self._by_key: dict[str, ContractSpec] = {}
        if defaults:
            for symbol, primary, kind, name in _DEFAULT_STOCKS:
                self.add(stock(symbol, primary, stock_type=kind, long_name=name))
            for pair in _DEFAULT_PAIRS:
                self.add(forex(pair))

    def add(self, spec: ContractSpec) -> ContractSpec:
        """Add (or replace, by key) an instrument; returns it.

        Raises:
            EmulatorError: its conId belongs to another instrument.
        """
        other = self._by_id.get(spec.con_id)
        if other is not None and other.key != spec.key:
            raise EmulatorError(f"conId {spec.con_id} is taken by {other.key}")
        old = self._by_key.pop(spec.key, None)
        if old is not None:
            self._by_id.pop(old.con_id, None)
        self._by_id[spec.con_id] = spec
        self._by_key[spec.key] = spec
        return spec

    def get(self, key: str) -> ContractSpec:
        """The instrument keyed ``"SPY"`` or ``"EUR.USD"``.

        Raises:
            EmulatorError: unknown.
        """
        spec = self.find(key)
        if spec is None:
            raise EmulatorError(f"unknown instrument {key!r}; add it with add_contract()")
        return spec

    def find(self, key: str) -> ContractSpec | None:
        """The instrument keyed ``key``, or None."""
        text = key.upper().replace("/", ".")
        return self._by_key.get(text)

    def ensure(self, key: str) -> ContractSpec:
        """The instrument keyed ``key``, added as a SMART stock or IDEALPRO pair if unknown."""
        spec = self.find(key)
        if spec is None:
            spec = self.add(forex(key) if "." in key or "/" in key else stock(key))
        return spec

    def match(self, query: ContractQuery) -> list[ContractSpec]:
        """Every instrument the request's contract describes."""
        if query.con_id:
            spec = self._by_id.get(query.con_id)
            return [spec] if spec is not None and _fits(spec, query, by_id=True) else []
        if not query.symbol and not query.local_symbol:
            return []
        return [spec for spec in self._by_key.values() if _fits(spec, query, by_id=False)]

    def all(self) -> list[ContractSpec]:
        """Every instrument, by key."""
        return [self._by_key[k] for k in sorted(self._by_key)]


def _fits(spec: ContractSpec, query: ContractQuery, *, by_id: bool) -> bool:
    if query.exchange and query.exchange not in spec.valid_exchanges:
        return False
    if by_id:
        return True
    checks = ((query.symbol, spec.symbol), (query.sec_type, spec.sec_type),
              (query.currency, spec.currency), (query.local_symbol, spec.local_symbol),
              (query.trading_class, spec.trading_class))
    if any(want and want.upper() != have for want, have in checks):
        return False
    if query.primary_exchange and spec.sec_type == "STK" \
            and query.primary_exchange not in (spec.primary_exchange, "SMART"):
        return False
    # no derivatives here
    return not (query.last_trade or query.right or (query.strike or 0) != 0)

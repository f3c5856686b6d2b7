"""rlbridge symbols as IB contracts, and IB contracts back as the run's symbols.

* A US stock or ETF (``SPY``, ``BRK.B``) is a ``STK`` routed through ``SMART`` in USD; a class
  suffix after a dot or a slash becomes IB's space (``BRK B``).
* A forex pair is a ``CASH`` contract on ``IDEALPRO``, written ``EUR.USD`` (IB's local
  symbol), ``EUR/USD`` or ``EURUSD`` (six letters, both halves ISO currency codes IDEALPRO
  trades).  Quantities are units of the base currency (EUR in EUR.USD).

Positions come back from IB under a contract key (``SPY``, ``EUR.USD``); :class:`SymbolMap`
turns it into the run's own spelling of the symbol.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rlbridge.errors import BrokerError

#: currencies IDEALPRO quotes against each other
CURRENCIES = frozenset({"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK",
                        "DKK", "HKD", "SGD", "MXN", "CNH", "ZAR", "PLN", "CZK", "HUF", "ILS",
                        "TRY", "KRW", "RUB"})
_PAIR = re.compile(r"^([A-Z]{3})[./]?([A-Z]{3})$")
_STOCK = re.compile(r"^[A-Z0-9]+(?:[ ./][A-Z0-9]+)?$")


def forex_pair(symbol: str) -> tuple[str, str] | None:
    """``("EUR", "USD")`` for ``EUR.USD``, ``EUR/USD`` or ``EURUSD``; None for anything else."""
    match = _PAIR.match(symbol.strip().upper())
    if match is None or match.group(1) == match.group(2):
        return None
    base, quote = match.groups()
    if base in CURRENCIES and quote in CURRENCIES:
        return base, quote
    return None


def key(symbol: str) -> str:
    """The contract key of an rlbridge symbol: ``EUR.USD`` for a pair, ``BRK B`` for a class
    share, the upper-case ticker otherwise."""
    pair = forex_pair(symbol)
    if pair is not None:
        return f"{pair[0]}.{pair[1]}"
    text = symbol.strip().upper()
    return re.sub(r"[./]", " ", text)


def contract(symbol: str) -> Any:
    """The ib_insync contract of an rlbridge symbol (see the module).

    Raises:
        BrokerError: the symbol is neither a ticker nor a forex pair.
    """
    from ib_insync import Forex, Stock

    pair = forex_pair(symbol)
    if pair is not None:
        return Forex(pair[0] + pair[1], exchange="IDEALPRO")
    ticker = key(symbol)
    if not _STOCK.match(ticker):
        raise BrokerError(f"{symbol!r} is not a US stock or ETF ticker nor a forex pair "
                          "(EUR.USD): the ib broker trades those")
    return Stock(ticker, "SMART", "USD")


def contract_key(contract: Any) -> str:
    """The key of an IB contract: ``EUR.USD`` for forex, the symbol otherwise."""
    if contract.secType == "CASH":
        if contract.localSymbol:
            return str(contract.localSymbol)
        return f"{contract.symbol}.{contract.currency}"
    return str(contract.symbol)


class SymbolMap:
    """Contract keys back to the run's spelling of its symbols (``EURUSD`` stays ``EURUSD``)."""

    def __init__(self, symbols: Iterable[str] = ()) -> None:
        self._names = {key(s): s for s in symbols}

    def symbol(self, contract: Any) -> str:
        """The run's symbol for ``contract`` (its key when the run does not trade it)."""
        found = contract_key(contract)
        return self._names.get(found, found)

"""An emulator of Alpaca's trading and market-data APIs, for tests of rlbridge and its plugins.

:class:`AlpacaEmulator` serves, on 127.0.0.1 and ports chosen by the OS:

* the trading REST API: account, clock, positions (list, get, close one, close all), orders
  (submit market and limit orders by qty or notional, list, get by id or client order id,
  cancel one or all), assets;
* the market-data REST API: stock bars (multi-symbol and per symbol) and crypto bars with
  pagination, latest bars;
* the trade-updates websocket stream (JSON) and the market-data stream (msgpack or JSON).

The real alpaca-py clients talk to it unchanged (``url_override``).  Executions are in the
test's hands (:meth:`AlpacaEmulator.fill`, ``reject``, ``cancel``, or ``auto_fill_price``), and
faults are injected on demand through :attr:`AlpacaEmulator.faults`
(:class:`~rlbridge.emulators.alpaca.faults.FaultPlan`)::

    with AlpacaEmulator() as emulator:
        emulator.faults.add("POST /v2/orders", status=504, after_accept=True)
        client = TradingClient(emulator.key_id, emulator.secret_key,
                               url_override=emulator.trading_url)
        ...

The ``alpaca_emulator`` fixture of :mod:`rlbridge.testing` starts one per test.
"""

from __future__ import annotations

from .emulator import AlpacaEmulator
from .faults import Fault, FaultPlan
from .rest import RequestRecord
from .wire import EmulatorError, EmulatorTimeout

__all__ = ["AlpacaEmulator", "EmulatorError", "EmulatorTimeout", "Fault", "FaultPlan",
           "RequestRecord"]

"""An emulator of the TWS API (TWS / IB Gateway), for tests of rlbridge and its plugins.

:class:`TwsEmulator` speaks the real API socket protocol on 127.0.0.1 (a port chosen by the
OS) at server versions :data:`MIN_SERVER_VERSION` .. :data:`MAX_SERVER_VERSION` (157..176,
the range ib_insync 0.9.x offers; it negotiates the highest version both sides speak, never
above its cap).  The real ``ib_insync.IB`` connects and trades against it unchanged:

* handshake, startApi, managed accounts, next valid id (and TWS's farm-status notices);
* what ``IB.connectAsync`` asks next: positions, open orders, completed orders, account
  updates (single and multi), executions with their end marker;
* account summary, current time, contract details (SMART stocks and ETFs, IDEALPRO forex),
  historical bars (daily and intraday, ``keepUpToDate``), 5-second real-time bars;
* placeOrder (market, limit, market-on-open as ``MKT`` + ``OPG``, MOC/LOC, modifications,
  what-if) answered by openOrder / orderStatus, fills by execDetails / orderStatus /
  commissionReport; cancelOrder, global cancel; IB's error messages and codes.

Executions are in the test's hands (:meth:`TwsEmulator.fill`, ``reject``, ``cancel``, or
``auto_fill``), and faults are injected on demand through :attr:`TwsEmulator.faults`
(:class:`~rlbridge.emulators.tws.faults.FaultPlan`) and :meth:`TwsEmulator.disconnect`,
:meth:`~TwsEmulator.connectivity_lost` (1100) and :meth:`~TwsEmulator.connectivity_restored`
(1102)::

    with TwsEmulator() as emulator:
        emulator.faults.add("placeOrder", disconnect="after_accept")
        ib = IB()
        await ib.connectAsync(emulator.host, emulator.port, clientId=1)
        ...

The ``tws_emulator`` fixture of :mod:`rlbridge.testing` starts one per test.
"""

from __future__ import annotations

from .contracts import ContractSpec
from .emulator import TwsEmulator
from .errors import EmulatorError, EmulatorTimeout, ProtocolError
from .faults import Fault, FaultPlan
from .protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION

__all__ = ["MAX_SERVER_VERSION", "MIN_SERVER_VERSION", "ContractSpec", "EmulatorError",
           "EmulatorTimeout", "Fault", "FaultPlan", "ProtocolError", "TwsEmulator"]

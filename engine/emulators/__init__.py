"""Loopback emulators of broker wire protocols, for tests.

rlbridge's broker plugins are tested by pointing the broker's own SDK at an emulator that
speaks the broker's protocol over real sockets on 127.0.0.1.  Plugin authors get the same
emulators (and pytest fixtures built on them in :mod:`rlbridge.testing`):

* :class:`~rlbridge.emulators.alpaca.AlpacaEmulator`: Alpaca's trading and market-data REST
  APIs and its trade-update and market-data websocket streams, with fault injection;
* :class:`~rlbridge.emulators.tws.TwsEmulator`: the TWS API socket protocol (server versions
  157..176) that Interactive Brokers' TWS and IB Gateway speak, with fault injection.

Importing this package is cheap; each emulator imports its server dependencies (websockets,
msgpack) when it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .alpaca import AlpacaEmulator
    from .tws import TwsEmulator

__all__ = ["AlpacaEmulator", "TwsEmulator"]


def __getattr__(name: str) -> Any:
    if name == "AlpacaEmulator":
        from .alpaca import AlpacaEmulator

        return AlpacaEmulator
    if name == "TwsEmulator":
        from .tws import TwsEmulator

        return TwsEmulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The ``alpaca`` broker: Alpaca's paper (default) or live account through alpaca-py.

```toml
[broker]
name = "alpaca"
paper = true                    # false trades real money, with rlbridge live --live-money
```

The keys come from ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` only.  The package:
:mod:`.config` (options, keys), :mod:`.connection` (clients, errors), :mod:`.execution`
(account, positions, orders), :mod:`.stream` (trade updates), :mod:`.bars` (live minute bars,
the live loop's clock).  Importing this package does not import alpaca-py; the broker does
when it is built.
"""

from __future__ import annotations

from typing import Any

from rlbridge.hookspecs import hookimpl

from .config import AlpacaConfig
from .execution import AlpacaBroker, order_state, to_broker_order

__all__ = ["AlpacaBroker", "AlpacaConfig", "order_state", "to_broker_order"]


@hookimpl
def register_brokers(register: Any) -> None:
    register("alpaca", AlpacaBroker,
             description="Alpaca through alpaca-py: paper by default, real money with "
                         "paper = false and --live-money; keys from APCA_API_KEY_ID / "
                         "APCA_API_SECRET_KEY")

"""The ``ib`` broker: Interactive Brokers through TWS or IB Gateway, with ib_insync.

```toml
[broker]
name = "ib"
host = "127.0.0.1"
port = 4002            # IB Gateway paper (live 4001); TWS paper 7497 (live 7496)
client_id = 1
paper = true           # false trades real money, with rlbridge live --live-money
```

The package: :mod:`.config` (options, ports), :mod:`.connection` (one ib_insync client on its
own event-loop thread, shared with the ``ib`` feed), :mod:`.contracts` (SMART stocks and ETFs,
IDEALPRO forex), :mod:`.orders` (order kinds and order states), :mod:`.bars` (live bars:
5-second real-time bars built into the run's interval and written to its store, which wake
``rlbridge live``), :mod:`.execution` (the broker).  Importing this package does not import
ib_insync; the broker does when it first connects.
"""

from __future__ import annotations

from typing import Any

from rlbridge.hookspecs import hookimpl

from .config import LIVE_PORTS, PAPER_PORTS, IBConfig
from .execution import IBBroker

__all__ = ["LIVE_PORTS", "PAPER_PORTS", "IBBroker", "IBConfig"]


@hookimpl
def register_brokers(register: Any) -> None:
    register("ib", IBBroker,
             description="Interactive Brokers through TWS or IB Gateway (ib_insync): paper by "
                         "default (IB Gateway 4002, TWS 7497), real money with paper = false "
                         "and --live-money")

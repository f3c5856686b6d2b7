"""Options of the ``ib`` broker (``[broker]`` keys) and the ports of TWS and IB Gateway.

TWS and IB Gateway listen for API clients on a port that says which account they are logged
in to: IB Gateway 4002 (paper) and 4001 (live), TWS 7497 (paper) and 7496 (live).  ``paper``
must agree with a known port, so the real-money guard cannot be bypassed by a port number;
any other port (a custom setting, a tunnel, the test emulator) is accepted with either mode,
and the account itself is checked once connected (paper accounts start with ``D``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlbridge.errors import ConfigError

#: the default API ports of the paper logins, and what listens on them
PAPER_PORTS = {4002: "IB Gateway's paper", 7497: "TWS's paper"}
#: the default API ports of the real-money logins
LIVE_PORTS = {4001: "IB Gateway's live (real-money)", 7496: "TWS's live (real-money)"}


@dataclass(frozen=True)
class IBConfig:
    """Options of the ``ib`` broker (``[broker]`` keys beside ``name``).

    Attributes:
        host: where TWS or IB Gateway runs.
        port: its API port: IB Gateway 4002 (paper, the default) or 4001 (live), TWS 7497
            (paper) or 7496 (live).
        client_id: the API client id; one connection per id at a time, so a second process
            on the same TWS needs another id.  Keep it the same across restarts: an order is
            always found again by its order reference, whatever the id, but only the client
            that placed an order may cancel it.
        account: the account to trade; required when the login manages several accounts.
        paper: trade a paper account (the default); false trades real money and also needs
            ``rlbridge live --live-money``.
        timeout: seconds to wait for TWS to connect, to acknowledge an order or to answer a
            request; past it the outcome is unknown and the order is looked up by its order
            reference.
    """

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 1
    account: str | None = None
    paper: bool = True
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ConfigError("expected a host name or address, got an empty string",
                              key="host")
        if not 0 < self.port < 65536:
            raise ConfigError(f"expected a port number 1..65535, got {self.port!r}", key="port")
        if self.client_id < 0:
            raise ConfigError(f"must be 0 or more, got {self.client_id!r}", key="client_id")
        if self.account is not None and not self.account.strip():
            raise ConfigError("expected an account code such as 'DU1234567', or leave the key "
                              "out", key="account")
        if not self.timeout > 0:
            raise ConfigError(f"must be more than 0 seconds, got {self.timeout!r}", key="timeout")
        if self.paper and self.port in LIVE_PORTS:
            raise ConfigError(f"port {self.port} is {LIVE_PORTS[self.port]} port but paper = "
                              "true: set paper = false (and pass --live-money) to trade real "
                              "money, or use a paper port (IB Gateway 4002, TWS 7497)",
                              key="paper")
        if not self.paper and self.port in PAPER_PORTS:
            raise ConfigError(f"paper = false but port {self.port} is {PAPER_PORTS[self.port]} "
                              "port: set paper = true, or use a live port (IB Gateway 4001, "
                              "TWS 7496)", key="paper")

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"


def is_paper_account(code: str) -> bool:
    """Whether an IB account code is a paper account (``DU...``, ``DF...``)."""
    return code.upper().startswith("D")

"""Errors of the TWS emulator, and the IB error codes and texts it sends."""

from __future__ import annotations

from ...errors import RLBridgeError


class EmulatorError(RLBridgeError):
    """A test drove the emulator wrongly: an unknown order, a fill larger than the order, ..."""


class EmulatorTimeout(EmulatorError, TimeoutError):
    """A wait on the emulator ran out of time."""


class ProtocolError(EmulatorError):
    """A client sent bytes that are not the TWS API protocol at the negotiated version."""


class RequestRefused(Exception):
    """Raised inside a request handler: answer the request with this IB error."""

    def __init__(self, code: int, text: str, req_id: int = -1) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.req_id = req_id


#: The texts TWS sends with the error codes the emulator uses.
ERROR_TEXTS: dict[int, str] = {
    103: "Duplicate order id",
    135: "Can't find order with id =",
    162: "Historical Market Data Service error message:HMDS query returned no data",
    200: "No security definition has been found for the request",
    201: "Order rejected - reason:",
    202: "Order Canceled - reason:",
    320: "Error reading request. Unable to parse data.",
    321: "Error validating request.",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    366: "No historical data query found for ticker id:",
    387: "Unsupported order type for this exchange and security type.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10148: "OrderId that needs to be cancelled cannot be cancelled, state:",
}


def error_text(code: int, detail: str = "") -> str:
    """TWS's text for ``code``, with ``detail`` appended (IB appends reasons and ids)."""
    base = ERROR_TEXTS.get(code, "")
    if not detail:
        return base or f"error {code}"
    if not base:
        return detail
    joiner = "" if base.endswith((":", "=")) else " "
    return f"{base}{joiner}{detail}"

"""Faults injected on demand: dropped connections, IB errors, rejections, partial fills, delays.

A fault names a message: a request the client sends (``"placeOrder"``, ``"cancelOrder"``,
``"reqHistoricalData"``, ``"startApi"``, ...) or a message the emulator sends
(``"openOrder"``, ``"orderStatus"``, ``"execDetails"``, ``"commissionReport"``, ...), with
shell-style wildcards, and fires a counted number of times::

    emulator.faults.add("placeOrder", disconnect="after_accept")   # order kept, answer lost
    emulator.faults.add("orderStatus", disconnect="before")        # openOrder arrives, then drop
    emulator.faults.add("placeOrder", reject="insufficient margin")  # error 201, Cancelled
    emulator.faults.add("reqHistoricalData", error=162, text="pacing violation")
    emulator.faults.add("reqPositions", delay=0.5)                 # a slow answer
    emulator.faults.add("placeOrder", partial=0.4, rest="open")    # with auto_fill

What each field does:

* ``disconnect``: close the connection.  On a request: ``"before"`` (the request is lost: it
  never reaches the broker), ``"after_accept"`` (the broker handles it, an order is accepted
  and maybe auto-filled, but nothing is sent back), ``"after"`` (handled and answered, then
  closed).  On an outgoing message: ``"before"`` (that message and the rest are lost) or
  ``"after"`` (it is delivered, then the connection closes).  The broker's state moves on
  as an exchange's would: a reconnecting client finds its orders and executions.
* ``delay``: hold a request this many seconds before handling it (the connection's later
  requests wait behind it, as TWS answers in order).
* ``error`` (with ``text``): answer a request with this IB error code instead of handling it
  (a ``placeOrder`` answered with 201 creates no order).
* ``reject`` (``placeOrder``): accept the order, then reject it: error 201 with this reason
  and status ``Cancelled``.
* ``partial`` (``placeOrder``, with ``auto_fill``): fill this fraction first, then deal with
  the rest as ``rest`` says: ``"fill"`` (default), ``"cancel"`` (error 202) or ``"open"``.

``skip`` lets that many matching messages through first; ``times`` is how often the fault
fires (None: until removed); ``probability`` makes each match fire only with that chance,
drawn from the plan's seeded generator (:meth:`FaultPlan.seed`); ``client_id`` limits the
fault to one API client.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..faults import FaultQueue
from .errors import EmulatorError
from .protocol import INCOMING, OUTGOING

REQUEST_POINTS = ("before", "after_accept", "after")
MESSAGE_POINTS = ("before", "after")
_REQUESTS = frozenset(INCOMING.values())
_MESSAGES = frozenset(OUTGOING)


@dataclass
class Fault:
    """One injected fault; see the module documentation for the fields."""

    message: str
    disconnect: str | None = None
    delay: float = 0.0
    error: int | None = None
    text: str | None = None
    reject: str | None = None
    partial: float | None = None
    rest: str = "fill"
    times: int | None = 1
    skip: int = 0
    probability: float = 1.0
    client_id: int | None = None
    fired: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    @property
    def exhausted(self) -> bool:
        """True once the fault has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    @property
    def outgoing(self) -> bool:
        """True when the fault is on messages the emulator sends."""
        return any(fnmatch.fnmatchcase(name, self.message) for name in _MESSAGES) and \
            not any(fnmatch.fnmatchcase(name, self.message) for name in _REQUESTS)


class FaultPlan(FaultQueue[Fault]):
    """The faults waiting to fire, in the order they were added (thread-safe).

    ``history`` holds ``(message, client_id, fault)`` for every fault fired, oldest first.
    """

    def add(self, message: str, *, disconnect: str | None = None, delay: float = 0.0,
            error: int | None = None, text: str | None = None, reject: str | None = None,
            partial: float | None = None, rest: str = "fill", times: int | None = 1,
            skip: int = 0, probability: float = 1.0, client_id: int | None = None) -> Fault:
        """Add a fault; it fires on the next matching message.

        Args:
            message: a request name (``"placeOrder"``) or an outgoing message name
                (``"orderStatus"``), shell-style wildcards allowed.
            disconnect: where to close the connection (see the module documentation).
            delay: seconds to hold a request before handling it.
            error: an IB error code to answer a request with instead of handling it.
            text: the error's text (default: TWS's text for the code).
            reject: accept the order, then reject it with this reason (``placeOrder``).
            partial: fraction (0 < p < 1) the auto-fill fills first (``placeOrder``).
            rest: after ``partial``: ``"fill"``, ``"cancel"`` or ``"open"``.
            times: how many times the fault fires; None for every match.
            skip: matching messages let through before the first firing.
            probability: the chance that a match fires (seeded, see :meth:`seed`).
            client_id: only messages of this API client id match.

        Returns:
            The fault; its ``fired`` attribute counts firings.

        Raises:
            EmulatorError: the combination makes no sense.
        """
        fault = Fault(message=message.strip(), disconnect=disconnect, delay=float(delay),
                      error=error, text=text, reject=reject, partial=partial, rest=rest,
                      times=times, skip=skip, probability=probability, client_id=client_id)
        _validate(fault)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, message: str, client_id: int, *, outgoing: bool) -> Fault | None:
        """The fault that fires for this message, if any (its counters are updated)."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or fault.outgoing != outgoing \
                        or not fnmatch.fnmatchcase(message, fault.message) \
                        or (fault.client_id is not None and fault.client_id != client_id):
                    continue
                if self._fires(fault, message, client_id):
                    return fault
        return None


def _validate(fault: Fault) -> None:
    names = [n for n in (_REQUESTS | _MESSAGES) if fnmatch.fnmatchcase(n, fault.message)]
    if not names:
        raise EmulatorError(f"no message matches {fault.message!r}; requests: "
                            f"{', '.join(sorted(_REQUESTS))}; messages: "
                            f"{', '.join(sorted(_MESSAGES))}")
    if fault.outgoing:
        if fault.disconnect not in MESSAGE_POINTS:
            raise EmulatorError(f"a fault on the outgoing message {fault.message!r} needs "
                                f"disconnect= one of {MESSAGE_POINTS}")
        if fault.delay or fault.error is not None or fault.reject or fault.partial:
            raise EmulatorError("outgoing messages only take disconnect=")
    elif fault.disconnect is not None and fault.disconnect not in REQUEST_POINTS:
        raise EmulatorError(f"disconnect on a request is one of {REQUEST_POINTS}")
    order_only = fault.reject is not None or fault.partial is not None
    if order_only and not fnmatch.fnmatchcase("placeOrder", fault.message):
        raise EmulatorError("reject= and partial= are faults of 'placeOrder'")
    if fault.partial is not None and not 0 < fault.partial < 1:
        raise EmulatorError("partial must be a fraction between 0 and 1")
    if fault.rest not in ("fill", "cancel", "open"):
        raise EmulatorError("rest must be 'fill', 'cancel' or 'open'")
    if fault.delay < 0:
        raise EmulatorError("delay must be >= 0 seconds")
    if not 0 < fault.probability <= 1:
        raise EmulatorError("probability must be in (0, 1]")
    if fault.times is not None and fault.times < 1:
        raise EmulatorError("times must be >= 1 or None")
    if fault.disconnect is None and not fault.delay and fault.error is None \
            and not order_only:
        raise EmulatorError("a fault needs disconnect=, delay=, error=, reject= or partial=")

"""Faults injected on demand: error statuses, held responses, dropped streams, bad executions.

A fault matches requests by ``"METHOD /path"`` (shell-style wildcards: ``"GET /v2/orders/*"``,
``"* *"``) or a stream by ``"STREAM trade_updates"`` / ``"STREAM market_data"``, and fires a
counted number of times::

    emulator.faults.add("POST /v2/orders", status=504, after_accept=True)   # once
    emulator.faults.add("GET /v2/account", status=429, times=2)             # twice
    emulator.faults.add("POST /v2/orders", hold=1.0)                        # a timeout
    emulator.faults.add("STREAM trade_updates", drop=True, skip=1)          # 2nd event lost

What each field does:

* ``status`` (with optional ``code``/``message``): answer with this error.  Before the request
  is handled by default, so nothing happens (no order is created); with
  ``after_accept=True`` the request is handled first and its response replaced, so the order
  exists although the client sees an error (Alpaca's 504 after accepting an order).
  A 429 carries ``Retry-After`` (``retry_after`` seconds, default 1).
* ``hold``: keep the response back this many seconds, longer than the client's timeout.  Before
  handling by default (the request reaches the broker late, after the client gave up); after
  handling with ``after_accept=True`` (the order exists, the answer is lost).
* ``reject`` (``POST /v2/orders``): accept the order, then reject it with this reason.
* ``partial`` (``POST /v2/orders``): when the order is auto-filled, fill this fraction first
  (a ``partial_fill`` event), then deal with the rest as ``rest`` says: ``"fill"`` (default),
  ``"cancel"`` or ``"open"`` (left for the test to fill).
* ``drop`` (streams): abort the stream's connections instead of delivering the next message;
  that message is lost, as it is when a real connection drops.  Messages sent while no client
  is connected do not count.

``skip`` lets that many matching requests (or stream messages) through first; ``times`` is how
often the fault fires (None: until removed); ``probability`` makes each match fire only with
that chance, drawn from the plan's seeded generator (:meth:`FaultPlan.seed`), for runs with
random faults that replay exactly::

    emulator.faults.seed(7)
    emulator.faults.add("POST /v2/orders", status=504, after_accept=True, times=None,
                        probability=0.05)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..faults import FaultQueue
from .wire import EmulatorError

STREAMS = ("trade_updates", "market_data")


@dataclass
class Fault:
    """One injected fault; see the module documentation for the fields."""

    route: str
    status: int | None = None
    code: int | None = None
    message: str | None = None
    after_accept: bool = False
    hold: float = 0.0
    retry_after: float | None = None
    reject: str | None = None
    partial: float | None = None
    rest: str = "fill"
    drop: bool = False
    times: int | None = 1
    skip: int = 0
    probability: float = 1.0
    fired: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    @property
    def exhausted(self) -> bool:
        """True once the fault has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        """True when this fault's route matches ``method`` and ``path`` (query excluded)."""
        want_method, _, want_path = self.route.partition(" ")
        return (fnmatch.fnmatchcase(method.upper(), want_method.upper())
                and fnmatch.fnmatchcase(path, want_path or "*"))


class FaultPlan(FaultQueue[Fault]):
    """The faults waiting to fire, in the order they were added (thread-safe).

    ``history`` holds ``(method, path, fault)`` for every fault fired, oldest first.
    """

    def add(self, route: str, *, status: int | None = None, code: int | None = None,
            message: str | None = None, after_accept: bool = False, hold: float = 0.0,
            retry_after: float | None = None, reject: str | None = None,
            partial: float | None = None, rest: str = "fill", drop: bool = False,
            times: int | None = 1, skip: int = 0, probability: float = 1.0) -> Fault:
        """Add a fault; it fires on the next matching request or stream message.

        Args:
            route: ``"METHOD /path"`` with shell-style wildcards, or ``"STREAM trade_updates"``
                / ``"STREAM market_data"``.
            status: the HTTP status to answer with (400-599).
            code: Alpaca's error code in the body (default: derived from ``status``).
            message: the error message in the body (default: the usual text for ``status``).
            after_accept: handle the request first, then apply ``status``/``hold``.
            hold: seconds to hold the response back.
            retry_after: ``Retry-After`` seconds of a 429 (default 1).
            reject: accept the order, then reject it with this reason.
            partial: fraction (0 < p < 1) of the order the auto-fill fills first.
            rest: after ``partial``: ``"fill"``, ``"cancel"`` or ``"open"``.
            drop: abort the stream's connections instead of sending the next message.
            times: how many times the fault fires; None for every match.
            skip: matching requests or messages let through before the first firing.
            probability: the chance that a match fires (seeded, see :meth:`seed`).

        Returns:
            The fault; its ``fired`` attribute counts firings.

        Raises:
            EmulatorError: the combination makes no sense.
        """
        fault = Fault(route=route.strip(), status=status, code=code, message=message,
                      after_accept=after_accept, hold=float(hold), retry_after=retry_after,
                      reject=reject, partial=partial, rest=rest, drop=drop, times=times,
                      skip=skip, probability=probability)
        _validate(fault)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that fires for this request, if any (its counters are updated)."""
        stream = method == "STREAM"
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or fault.route.startswith("STREAM ") != stream \
                        or not fault.matches(method, path):
                    continue
                if self._fires(fault, method, path):
                    return fault
        return None

    def take_stream(self, stream: str) -> Fault | None:
        """The drop fault that fires for the next message of ``stream``, if any."""
        return self.take("STREAM", stream)


def _validate(fault: Fault) -> None:
    method, _, target = fault.route.partition(" ")
    if not method or not target:
        raise EmulatorError(
            f"a fault route is 'METHOD /path' or 'STREAM name', got {fault.route!r}")
    if method.upper() == "STREAM":
        if target not in STREAMS:
            raise EmulatorError(f"unknown stream {target!r}; streams: {', '.join(STREAMS)}")
        if not fault.drop:
            raise EmulatorError("a stream fault needs drop=True")
        fault.route = f"STREAM {target}"
        return
    if fault.drop:
        raise EmulatorError("drop=True is for stream faults ('STREAM trade_updates')")
    if fault.status is not None and not 400 <= fault.status <= 599:
        raise EmulatorError(f"a fault status must be 400-599, got {fault.status}")
    if fault.hold < 0:
        raise EmulatorError("hold must be >= 0 seconds")
    if fault.partial is not None and not 0 < fault.partial < 1:
        raise EmulatorError("partial must be a fraction between 0 and 1")
    if fault.rest not in ("fill", "cancel", "open"):
        raise EmulatorError("rest must be 'fill', 'cancel' or 'open'")
    if not 0 < fault.probability <= 1:
        raise EmulatorError("probability must be in (0, 1]")
    if fault.times is not None and fault.times < 1:
        raise EmulatorError("times must be >= 1 or None")
    if fault.status is None and fault.hold == 0 and fault.reject is None \
            and fault.partial is None:
        raise EmulatorError("a fault needs status=, hold=, reject= or partial=")

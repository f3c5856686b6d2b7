"""One ib_insync client per TWS connection, on its own event-loop thread, shared like a store.

ib_insync is asyncio code, and rlbridge's live runner is synchronous (and may itself run inside
a notebook's event loop), so each connection owns a daemon thread running an event loop; every
request is a coroutine handed to that loop (:meth:`Connection.request`) and the caller waits for
its result.  The ``ib`` broker and the ``ib`` feed of one process get the same connection for
the same ``host:port`` and client id (:func:`acquire`), the way a backtrader store is shared.

What a request does first (:meth:`Connection._prepare`):

* **connect** when the socket is down (the first call, or the call after a dropped
  connection): ib_insync synchronises positions, open and completed orders, account values and
  executions, and the connection also asks for the open orders of every client id, so an order
  placed before a restart is found whatever client id placed it;
* a **barrier** (``reqCurrentTime``): TWS answers requests in order, so everything it sent before
  (fills, status changes, errors) has been handled when the answer arrives.  A read right after
  a fill sees it;
* the **outage** check: between IB's error 1100 (TWS lost its connection to IB) and 1101/1102
  (restored) every request raises :class:`~rlbridge.errors.TransientBrokerError`.

Errors become rlbridge's: a refused or dropped connection, a timeout or an outage is a
``TransientBrokerError`` (the outcome of an order is unknown: it is looked up by its order
reference before anything is sent again); an IB error answering a request is a ``BrokerError``
with IB's code and text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rlbridge.errors import BrokerError, TransientBrokerError

T = TypeVar("T")
log = logging.getLogger("rlbridge.plugins.brokers.ib")

#: IB's codes for "the order is gone": rejected, and cancelled by IB
REJECTED, CANCELLED = 201, 202
LOST, RESTORED_DATA_LOST, RESTORED = 1100, 1101, 1102
CLIENT_ID_IN_USE = 326


class Connection:
    """An ``ib_insync.IB`` on a private event loop, with rlbridge's error handling.

    Args:
        host: where TWS or IB Gateway runs.
        port: its API port.
        client_id: the API client id.
        timeout: seconds for connecting and for each request.
    """

    def __init__(self, host: str, port: int, client_id: int, timeout: float) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.timeout = timeout
        self.users = 0
        #: the text of IB's error 1100 while TWS has lost IB, else None
        self.outage: str | None = None
        #: orderRef -> (code, text) of the last IB error about that order
        self.reasons: dict[str, tuple[int, str]] = {}
        #: permId -> the completed status TWS reports for a finished order
        self.completed_status: dict[int, str] = {}
        self._resync = False
        self._refused: tuple[int, str] | None = None
        self._changed = threading.Condition()
        self._updates = 0
        self._seen = 0
        self._clock: tuple[float, Any] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"rlbridge-ib-{host}:{port}-{client_id}")
        self._thread.start()
        self.ib: Any = self._submit(self._create(), what="starting the IB client")

    def __repr__(self) -> str:
        return f"<ib Connection {self.address} client {self.client_id}>"

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ the loop thread
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)  # ib_insync looks the loop up through the policy
        self._loop.run_forever()

    async def _create(self) -> Any:
        from ib_insync import IB

        ib = IB()
        ib.RaiseRequestErrors = True  # a refused request raises instead of returning nothing
        self._pulse = asyncio.Event()
        # ib_insync keys some requests by name (one "currentTime", one "openOrders" at a
        # time): connecting and the barrier are serialised
        self._preparing = asyncio.Lock()
        ib.updateEvent += self._pulse.set
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        for event in (ib.orderStatusEvent, ib.execDetailsEvent, ib.commissionReportEvent):
            event += self._on_update
        wrapper = ib.wrapper
        original = wrapper.completedOrder

        def completed(contract: Any, order: Any, state: Any) -> None:
            # ib_insync keeps only the status of a completed order; its text ("Rejected -
            # reason:...") is what tells a rejection from a cancel after a restart
            self.completed_status[order.permId] = str(state.completedStatus or "")
            original(contract, order, state)

        wrapper.completedOrder = completed
        return ib

    def _submit(self, coro: Awaitable[T], *, what: str, wait: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("an ib Connection cannot be called from its own event loop")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(wait if wait is not None else 3 * self.timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransientBrokerError(f"no answer from TWS at {self.address} while {what}; "
                                       "the outcome is unknown") from None

    def _on_update(self, *args: Any) -> None:
        with self._changed:
            self._updates += 1
            self._changed.notify_all()

    def _on_disconnected(self) -> None:
        self._pulse.set()
        self._on_update()

    def _on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        if code == LOST:
            self.outage = text
        elif code in (RESTORED, RESTORED_DATA_LOST):
            self.outage = None
            self._resync = self._resync or code == RESTORED_DATA_LOST
        elif code == CLIENT_ID_IN_USE:
            self._refused = (code, text)
        elif req_id > 0 and not 2100 <= code < 2200:
            trade = self.ib.wrapper.trades.get((self.ib.wrapper.clientId, req_id))
            if trade is not None and trade.order.orderRef:
                self.reasons[trade.order.orderRef] = (code, text)
        self._pulse.set()
        self._on_update()

    # ------------------------------------------------------------------ requests
    def request(self, what: str, body: Callable[[], Awaitable[T]], *,
                barrier: bool = True) -> T:
        """Run ``body()`` on the loop once connected, synchronised and outside an outage.

        Args:
            what: the request, for messages: ``"submitting rlb-...-SPY"``.
            body: makes the coroutine to run (on the loop thread; it may use :attr:`ib`).
            barrier: first wait until TWS has answered everything sent before.

        Raises:
            TransientBrokerError: no connection, a dropped one, a timeout or IB's outage.
            BrokerError: IB refused the request.
        """
        return self._submit(self._guarded(what, body, barrier), what=what)

    def call(self, what: str, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body()`` on the loop as things are: no connecting, barrier or outage check
        (cleaning up, such as canceling subscriptions on a connection that may be gone).

        Raises:
            TransientBrokerError: no answer within the timeout.
        """
        return self._submit(body(), what=what, wait=self.timeout)

    async def _guarded(self, what: str, body: Callable[[], Awaitable[T]], barrier: bool) -> T:
        from ib_insync import RequestError

        try:
            await self._prepare(what, barrier)
            return await body()
        except RequestError as exc:
            if exc.code in (LOST, RESTORED_DATA_LOST, RESTORED):
                raise TransientBrokerError(f"TWS at {self.address} answered {exc.code} while "
                                           f"{what}: {exc.message}") from None
            raise BrokerError(f"IB refused {what}: error {exc.code}: {exc.message}") from None
        except TimeoutError:  # before OSError, its base class
            raise TransientBrokerError(f"no answer from TWS at {self.address} within "
                                       f"{self.timeout} s while {what}; the outcome is "
                                       "unknown") from None
        except (ConnectionError, OSError) as exc:
            raise TransientBrokerError(f"the connection to TWS at {self.address} dropped while "
                                       f"{what} ({exc or type(exc).__name__}); the outcome is "
                                       "unknown: reconnecting on the next call") from None

    async def _prepare(self, what: str, barrier: bool) -> None:
        async with self._preparing:
            if not self.ib.isConnected():
                await self._connect(what)
            elif self._resync:  # 1101: TWS says the data of this session was lost
                self._resync = False
                await self._sync_orders()
            if barrier:
                await self._barrier()
        if self.outage is not None:
            raise TransientBrokerError(f"TWS at {self.address} has lost its connection to IB "
                                       f"(error 1100: {self.outage}) while {what}: nothing is "
                                       "sent until it is restored (1102)")

    async def _connect(self, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = 0.05
        while True:
            self._refused = None
            try:
                # the account is checked by the broker, not subscribed blindly: ib_insync
                # follows the values of a single-account login; several are read on demand
                await self.ib.connectAsync(self.host, self.port, clientId=self.client_id,
                                           timeout=self.timeout)
                break
            except ConnectionRefusedError:
                raise TransientBrokerError(
                    f"nothing listens at {self.address} ({what}): start TWS or IB Gateway "
                    "with the API enabled (Configure > Settings > API), or check [broker] "
                    "host and port") from None
            except (ConnectionError, OSError, TimeoutError) as exc:
                left = deadline - loop.time()
                if self._refused is not None and left > pause:
                    # the previous connection of this client id is still closing at TWS
                    await asyncio.sleep(pause)
                    pause *= 2
                    continue
                if self._refused is not None:
                    raise TransientBrokerError(
                        f"TWS at {self.address} refused client id {self.client_id}: "
                        f"{self._refused[1]} (another process uses it: set [broker] "
                        "client_id)") from None
                raise TransientBrokerError(
                    f"cannot connect to TWS at {self.address} ({what}): "
                    f"{exc or type(exc).__name__}") from None
        self.outage = None
        self._resync = False
        log.info("connected to TWS at %s as client %s", self.address, self.client_id)
        await self._sync_orders(connected=True)

    async def _sync_orders(self, connected: bool = False) -> None:
        """Open orders of every client id (a restart may use another id), and after 1101 the
        completed orders and executions ib_insync already asks for on connect."""
        await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), self.timeout)
        if not connected:
            await asyncio.wait_for(self.ib.reqCompletedOrdersAsync(False), self.timeout)
            await asyncio.wait_for(self.ib.reqExecutionsAsync(), self.timeout)
            await asyncio.wait_for(self.ib.reqPositionsAsync(), self.timeout)

    async def server_time(self) -> Any:
        """TWS's time (``reqCurrentTime``), which is also the barrier of :meth:`request`."""
        async with self._preparing:
            return await self._barrier()

    async def _barrier(self) -> Any:
        stamp = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.timeout)
        self._clock = (time.monotonic(), stamp)
        return stamp

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait on the loop until ``predicate()`` holds, re-checking after each message.

        Raises:
            ConnectionError: the connection dropped first.
            TimeoutError: not within the timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            self._pulse.clear()
            if predicate():
                return
            if not self.ib.isConnected():
                raise ConnectionError(f"the connection closed while waiting for {what}")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pulse.wait(), left)

    def clock(self) -> tuple[float, Any] | None:
        """``(monotonic time, TWS time)`` of the last barrier, if any."""
        return self._clock

    def wait_for_update(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an order update, a fill, an error or a drop.

        Returns:
            True when one arrived that no earlier call returned for.
        """
        with self._changed:
            arrived = self._changed.wait_for(lambda: self._updates > self._seen,
                                             max(0.0, timeout))
            self._seen = self._updates
            return bool(arrived)

    # ------------------------------------------------------------------ shutting down
    def shutdown(self) -> None:
        """Disconnect and stop the loop thread."""
        async def stop() -> None:
            self.ib.disconnect()

        with contextlib.suppress(BrokerError, RuntimeError):  # already gone: nothing to close
            self._submit(stop(), what="disconnecting", wait=self.timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self.timeout)
        if not self._thread.is_alive():
            self._loop.close()


_OPEN: dict[tuple[str, int, int], Connection] = {}
_LOCK = threading.Lock()


def acquire(host: str, port: int, client_id: int, timeout: float) -> Connection:
    """The process's connection to ``host:port`` as ``client_id`` (made on first use).

    The broker and the feed of one run share it; each :func:`acquire` needs a
    :func:`release`.  Nothing is sent until the first request connects.
    """
    key = (host, port, client_id)
    with _LOCK:
        connection = _OPEN.get(key)
        if connection is None:
            connection = _OPEN[key] = Connection(host, port, client_id, timeout)
        connection.users += 1
        return connection


def release(connection: Connection) -> None:
    """Give a connection back; the last user's release disconnects it."""
    with _LOCK:
        connection.users -= 1
        if connection.users > 0:
            return
        key = (connection.host, connection.port, connection.client_id)
        if _OPEN.get(key) is connection:
            del _OPEN[key]
    connection.shutdown()

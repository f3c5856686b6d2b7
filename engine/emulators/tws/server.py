"""The socket side: an asyncio server in its own thread, one session per API connection.

:class:`ServerThread` runs the event loop everything of the emulator runs on; the test's
calls are marshalled onto it with :meth:`ServerThread.call`.  A :class:`Session` does the
handshake, reads frames and hands each request to the handlers; :class:`Hub` knows the
sessions and turns the broker's news into messages for the connections concerned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import struct
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import messages as msg
from .bars import stamp
from .contracts import ContractSpec
from .errors import EmulatorError, EmulatorTimeout, ProtocolError
from .protocol import HANDSHAKE_PREFIX, MAX_FRAME, frame, negotiate, parse_version_range

if TYPE_CHECKING:
    from .emulator import TwsEmulator
    from .orders import ExecutionRecord, OrderRecord

T = TypeVar("T")
_HEADER = struct.Struct(">I")


class Session:
    """One API connection: handshake, then requests in order, with outgoing-message faults."""

    def __init__(self, core: TwsEmulator, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.core = core
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.version = 0
        self.ready = False
        self.closed = False
        self.muted = False
        self.positions_sub = False
        self.account_sub: str | None = None
        self.multi_subs: set[int] = set()
        self.summary_subs: dict[int, str] = {}
        self.history_subs: dict[int, tuple[str, str, int]] = {}
        self.realtime_subs: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<Session client {self.client_id} v{self.version}>"

    async def run(self) -> None:
        """Serve the connection until it closes."""
        try:
            if await self._handshake():
                while not self.closed:
                    fields = await self._read_frame()
                    if not fields:
                        continue
                    await self.core._handlers.dispatch(self, fields)
                    self.core._notify()  # wakes TwsEmulator.wait_until
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except ProtocolError as exc:
            self.core._errors.append(f"protocol error from client {self.client_id}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the emulator: the test must fail, not hang
            self.core._errors.append(traceback.format_exc())
        finally:
            self.close()

    async def _handshake(self) -> bool:
        prefix = await self.reader.readexactly(len(HANDSHAKE_PREFIX))
        if prefix != HANDSHAKE_PREFIX:
            raise ProtocolError(f"a connection must open with b'API\\0', got {prefix!r}")
        fields = await self._read_frame()
        low, high, _options = parse_version_range(fields[0] if fields else "")
        version = negotiate(low, high, self.core.server_version)
        now = self.core.clock.now().astimezone(self.core.zone)
        conn_time = f"{now:%Y%m%d %H:%M:%S} {now:%Z}"
        if version is None:  # TWS answers with its own version; the client gives up
            self._write([str(self.core.server_version), conn_time])
            self.close()
            return False
        self.version = version
        self._write([str(version), conn_time])
        return True

    async def _read_frame(self) -> list[str]:
        (size,) = _HEADER.unpack(await self.reader.readexactly(_HEADER.size))
        if size > MAX_FRAME:
            raise ProtocolError(f"frame of {size} bytes is larger than {MAX_FRAME}")
        body = await self.reader.readexactly(size)
        fields = body.decode(errors="backslashreplace").split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        return fields

    def send(self, name: str, fields: list[str]) -> None:
        """Send one message, unless the connection is closed or muted; apply its faults."""
        if self.closed or self.muted:
            return
        fault = self.core.faults.take(name, self.client_id, outgoing=True)
        if fault is not None and fault.disconnect == "before":
            self.close()
            return
        self._write(fields)
        self.core._log("out", self.client_id, name, fields)
        if fault is not None:
            self.close()

    def _write(self, fields: list[str]) -> None:
        self.writer.write(frame(fields))

    def close(self) -> None:
        """Close the connection (what was written is still delivered)."""
        if self.closed:
            return
        self.closed = True
        self.ready = False
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            self.writer.close()
        self.core._hub.remove(self)


class Hub:
    """The connected sessions, and the broker's news turned into their messages."""

    def __init__(self, core: TwsEmulator) -> None:
        self.core = core
        self.sessions: list[Session] = []
        self.connections_total = 0

    def add(self, session: Session) -> None:
        """Register a new connection."""
        self.sessions.append(session)

    def remove(self, session: Session) -> None:
        """Forget a closed connection."""
        if session in self.sessions:
            self.sessions.remove(session)
        self.core._notify()

    def ready(self) -> list[Session]:
        """Connections past startApi and still open."""
        return [s for s in self.sessions if s.ready and not s.closed]

    def for_client(self, client_id: int) -> list[Session]:
        """The open connections of an API client id (at most one, as TWS allows)."""
        return [s for s in self.ready() if s.client_id == client_id]

    # -- the broker's news (state.Notifier) ----------------------------------------------

    def order_update(self, order: OrderRecord, *, open_order: bool) -> None:
        """openOrder (when asked) and orderStatus to the order's owner."""
        for session in self.for_client(order.client_id):
            if open_order:
                session.send("openOrder", msg.open_order(session.version, order))
            session.send("orderStatus", msg.order_status(order))

    def execution(self, execution: ExecutionRecord) -> None:
        """execDetails, then the order's new state, then the commission report."""
        order = execution.order
        when = stamp(execution.time, self.core.zone)
        for session in self.for_client(order.client_id):
            session.send("execDetails", msg.exec_details(-1, execution, order.account, when))
            if order.done:
                session.send("openOrder", msg.open_order(session.version, order))
            session.send("orderStatus", msg.order_status(order))
            session.send("commissionReport", msg.commission_report(execution))

    def order_error(self, order: OrderRecord, code: int, text: str) -> None:
        """An error whose reqId is the order id, to the order's owner."""
        for session in self.for_client(order.client_id):
            session.send("error", msg.error(session.version, order.order_id, code, text))

    def portfolio_changed(self, contracts: list[ContractSpec]) -> None:
        """Positions and account values to the connections subscribed to them."""
        for session in self.ready():
            if session.positions_sub:
                for spec in contracts:
                    session.send("position", self.core._handlers.position_message(spec))
            if session.account_sub is not None:
                self.core._handlers.send_account_updates(session, contracts, end=False)
            for req_id in sorted(session.multi_subs):
                self.core._handlers.send_account_multi(session, req_id, end=False)
            for req_id, tags in sorted(session.summary_subs.items()):
                self.core._handlers.send_account_summary(session, req_id, tags, end=False)

    def broadcast_error(self, code: int, text: str, req_id: int = -1,
                        client_id: int | None = None) -> int:
        """An error to every ready connection (or one client's); returns how many got it."""
        sessions = self.ready() if client_id is None else self.for_client(client_id)
        for session in sessions:
            session.send("error", msg.error(session.version, req_id, code, text))
        return len(sessions)


class ServerThread:
    """The emulator's event loop and listening socket, in a daemon thread."""

    def __init__(self, core: TwsEmulator, host: str) -> None:
        self.core = core
        self.host = host
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        """Start the loop and bind a port chosen by the OS."""
        self.thread = threading.Thread(target=self._run, name="tws-emulator", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise EmulatorTimeout("the TWS emulator did not start within 10 s")
        if self._failure is not None:
            raise EmulatorError(f"the TWS emulator failed to start: {self._failure!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 (reported to start())
            self._failure = exc
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for session in list(self.core._hub.sessions):
                session.close()
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        session = Session(self.core, reader, writer)
        self.core._hub.add(session)
        self.core._hub.connections_total += 1
        await session.run()

    @property
    def running(self) -> bool:
        """True while the loop thread serves."""
        return self.thread is not None and self.thread.is_alive() and self.loop is not None

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Run ``fn(*args)`` on the loop thread and return its result (or raise its error)."""
        if not self.running or threading.current_thread() is self.thread:
            return fn(*args)
        assert self.loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise EmulatorTimeout(f"the emulator did not answer within {timeout} s") from None

    def stop(self) -> None:
        """Close every connection and the port, end the loop, join the thread."""
        if self.loop is not None and self._stop is not None and self.running:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self.thread is not None:
            self.thread.join(10)
        self.thread = None
        self.loop = None


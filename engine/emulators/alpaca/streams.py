"""The websocket side of the emulator: the trade-updates and market-data streams.

One websockets server, on its own event loop in a background thread, serves both streams on
one loopback port, told apart by path as Alpaca's hosts tell them apart:

* ``/stream``: trade updates, JSON in binary frames (as Alpaca's paper endpoint sends them):
  ``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` is answered with an
  ``authorization`` message, ``{"action": "listen", "data": {"streams": ["trade_updates"]}}``
  with ``listening``; then every order event arrives as ``{"stream": "trade_updates",
  "data": {"event", "order", ...}}``.
* ``/v2/<feed>`` (stocks) and ``/v1beta3/crypto/<loc>`` (crypto): market data, msgpack when
  the client sends ``Content-Type: application/msgpack`` (alpaca-py does), JSON otherwise:
  ``connected`` on connect, ``auth`` -> ``authenticated``, ``subscribe`` -> ``subscription``,
  then bars ``{"T": "b", "S", "o", "h", "l", "c", "v", "n", "vw", "t"}`` with ``t`` a msgpack
  Timestamp (an RFC 3339 string in JSON).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .faults import FaultPlan
from .wire import EmulatorError, EmulatorTimeout, bar_stamp

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds",
            "corrections", "cancelErrors")


@dataclass(eq=False)
class _Client:
    connection: Any
    stream: str
    binary: bool = False  # msgpack (market data) or JSON in binary frames (trade updates)
    authenticated: bool = False
    ready: bool = False
    subscriptions: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class StreamHub:
    """Both websocket streams, served from a background thread."""

    def __init__(self, host: str, key_id: str, secret_key: str, faults: FaultPlan) -> None:
        self.host = host
        self.faults = faults
        self._key_id = key_id.encode()
        self._secret = secret_key.encode()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._clients: dict[str, set[_Client]] = {"trade_updates": set(), "market_data": set()}
        self._changed = threading.Condition()
        self.ready_total: Counter[str] = Counter()
        """Connections that became ready (authenticated and listening/subscribed), ever."""
        self.port = 0

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server thread; returns once the port is bound."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(self._open())
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                self._loop = None
                loop.close()
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="alpaca-emulator-streams", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            raise EmulatorError(f"the stream server did not start: {failure[:1]}")

    async def _open(self) -> Any:
        import logging

        from websockets.asyncio.server import serve

        # websockets logs every frame at DEBUG, the authentication frame (with the secret)
        # included: the emulator's server logs nothing below INFO
        quiet = logging.getLogger("rlbridge.emulators.alpaca.websockets")
        quiet.setLevel(logging.INFO)
        return await serve(self._handle, self.host, 0, ping_interval=None, logger=quiet)

    def stop(self) -> None:
        """Close every connection and the server; join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            self._server.close()
            await self._server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)

    def url(self, path: str) -> str:
        """``ws://host:port<path>``."""
        return f"ws://{self.host}:{self.port}{path}"

    # -- thread-safe API -----------------------------------------------------------------

    def publish_trade_update(self, data: dict[str, Any]) -> None:
        """Send a trade-update event to every listening client (any thread)."""
        self._call_soon(self._deliver, "trade_updates", None,
                        {"stream": "trade_updates", "data": data})

    def publish_bar(self, symbol: str, bar: dict[str, Any]) -> None:
        """Send a bar to every client subscribed to ``symbol``'s bars (any thread)."""
        self._call_soon(self._deliver, "market_data", symbol, bar)

    def drop(self, stream: str | None = None) -> int:
        """Abort every connection of ``stream`` (both streams when None); returns how many."""
        if self._loop is None:
            return 0

        async def abort() -> int:
            return self._abort([s for s in self._clients if stream in (None, s)])

        return asyncio.run_coroutine_threadsafe(abort(), self._loop).result(timeout=5)

    def ready_count(self, stream: str) -> int:
        """Connections of ``stream`` ready now."""
        with self._changed:
            return sum(client.ready for client in self._clients[stream])

    def wait_ready(self, stream: str, count: int, total: int | None, timeout: float) -> None:
        """Wait for ``count`` ready connections now and ``total`` ever (see the emulator)."""
        def done() -> bool:
            now = sum(client.ready for client in self._clients[stream])
            return now >= count and (total is None or self.ready_total[stream] >= total)

        with self._changed:
            if not self._changed.wait_for(done, timeout):
                raise EmulatorTimeout(
                    f"{stream}: {sum(c.ready for c in self._clients[stream])} ready "
                    f"connection(s), {self.ready_total[stream]} ever, after {timeout} s; "
                    f"waited for {count} now" + (f" and {total} ever" if total else ""))

    # -- on the loop ---------------------------------------------------------------------

    def _call_soon(self, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(*args)

    def _deliver(self, stream: str, symbol: str | None, message: dict[str, Any]) -> None:
        clients = [c for c in self._clients[stream] if c.ready and (
            symbol is None or {symbol, "*"} & c.subscriptions["bars"])]
        if not clients:
            return
        if self.faults.take_stream(stream) is not None:
            self._abort([stream])  # the message is lost with the connection
            return
        for client in clients:
            if client.stream == "market_data":
                client.queue.put_nowait([message])  # data messages travel in arrays
            else:
                client.queue.put_nowait(message)

    def _abort(self, streams: list[str]) -> int:
        dropped = 0
        for stream in streams:
            for client in list(self._clients[stream]):
                client.connection.transport.abort()
                self._forget(client)
                dropped += 1
        return dropped

    def _set_ready(self, client: _Client, ready: bool) -> None:
        with self._changed:
            if ready and not client.ready:
                self.ready_total[client.stream] += 1
            client.ready = ready
            self._changed.notify_all()

    def _forget(self, client: _Client) -> None:
        with self._changed:
            client.ready = False
            self._clients[client.stream].discard(client)
            self._changed.notify_all()

    def _keys_ok(self, key: Any, secret: Any) -> bool:
        if not isinstance(key, str) or not isinstance(secret, str):
            return False
        return hmac.compare_digest(key.encode(), self._key_id) & \
            hmac.compare_digest(secret.encode(), self._secret)

    async def _handle(self, connection: Any) -> None:
        path = connection.request.path.split("?")[0]
        if path == "/stream":
            client = _Client(connection, "trade_updates", binary=True)
            talk = self._trade_updates
        elif path.startswith(("/v2/", "/v1beta3/crypto/")):
            content_type = connection.request.headers.get("Content-Type", "")
            client = _Client(connection, "market_data", binary="msgpack" in content_type)
            talk = self._market_data
        else:
            await connection.close(1008, "unknown stream path")
            return
        with self._changed:
            self._clients[client.stream].add(client)
        writer = asyncio.ensure_future(self._write(client))
        try:
            await talk(client)
        except Exception:  # noqa: BLE001  (a dropped or closed connection ends the talk)
            pass
        finally:
            self._forget(client)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write(self, client: _Client) -> None:
        while True:
            await self._send(client, await client.queue.get())

    async def _send(self, client: _Client, message: Any) -> None:
        await client.connection.send(self._encode(client, message))

    def _encode(self, client: _Client, message: Any) -> bytes | str:
        if client.stream == "trade_updates":
            return json.dumps(message).encode()
        if not client.binary:
            return json.dumps(message, default=_json_time)
        import msgpack

        return msgpack.packb(message, default=_msgpack_time)

    def _decode(self, client: _Client, raw: bytes | str) -> Any:
        if client.binary and client.stream == "market_data" and isinstance(raw, bytes):
            import msgpack

            return msgpack.unpackb(raw)
        return json.loads(raw)

    async def _trade_updates(self, client: _Client) -> None:
        async for raw in client.connection:
            message = self._decode(client, raw)
            action, data = message.get("action"), message.get("data") or {}
            if action in ("authenticate", "auth"):
                client.authenticated = self._keys_ok(data.get("key_id"), data.get("secret_key"))
                status = "authorized" if client.authenticated else "unauthorized"
                await self._send(client, {"stream": "authorization",
                                          "data": {"action": "authenticate", "status": status}})
                if not client.authenticated:
                    await client.connection.close(1008, "unauthorized")
                    return
            elif action == "listen" and client.authenticated:
                streams = [s for s in data.get("streams") or [] if s == "trade_updates"]
                await self._send(client, {"stream": "listening", "data": {"streams": streams}})
                self._set_ready(client, bool(streams))
            else:
                await self._send(client, {"stream": "error", "data": {
                    "error_message": "unknown action or not authenticated"}})

    async def _market_data(self, client: _Client) -> None:
        await self._send(client, [{"T": "success", "msg": "connected"}])
        async for raw in client.connection:
            message = self._decode(client, raw)
            action = message.get("action") if isinstance(message, dict) else None
            if action == "auth":
                if not self._keys_ok(message.get("key"), message.get("secret")):
                    await self._send(client, [{"T": "error", "code": 402, "msg": "auth failed"}])
                    await client.connection.close(1008, "auth failed")
                    return
                client.authenticated = True
                await self._send(client, [{"T": "success", "msg": "authenticated"}])
            elif not client.authenticated:
                await self._send(client, [{"T": "error", "code": 401, "msg": "not authenticated"}])
            elif action in ("subscribe", "unsubscribe"):
                for channel in CHANNELS:
                    symbols = set(message.get(channel) or [])
                    if action == "subscribe":
                        client.subscriptions[channel] |= symbols
                    else:
                        client.subscriptions[channel] -= symbols
                await self._send(client, [{"T": "subscription", **{
                    c: sorted(client.subscriptions[c]) for c in CHANNELS}}])
                self._set_ready(client, any(client.subscriptions.values()))
            else:
                await self._send(client, [{"T": "error", "code": 400, "msg": "invalid syntax"}])

def bar_message(symbol: str, t: dt.datetime, o: float, h: float, low: float, c: float,
                v: float, n: int | None, vw: float | None) -> dict[str, Any]:
    """A market-data bar message (``t`` stays a datetime until it is encoded)."""
    return {"T": "b", "S": symbol, "o": o, "h": h, "l": low, "c": c, "v": v, "t": t,
            "n": n, "vw": vw}


def _msgpack_time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        import msgpack

        return msgpack.Timestamp.from_datetime(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _json_time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return bar_stamp(value)
    raise TypeError(f"cannot encode {type(value).__name__}")

"""The HTTP side of the emulator: stdlib ``ThreadingHTTPServer``s for the two REST APIs.

One server answers the trading API (``trading_url``), another the market-data API
(``data_url``), each on its own loopback port, each request in its own thread.  For every
request the emulator checks the key headers (``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``;
401 with Alpaca's body when they are missing or wrong, 403 for wrong keys on the data API),
applies a pending fault, runs the handler, and logs ``(method, path, status)`` in
:attr:`RestApp.requests`: never a header, so never a key.  Every error answer is JSON with
``code`` and ``message``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .faults import Fault, FaultPlan
from .routes import Request, Routes
from .wire import ApiError

_DEFAULT_ERRORS = {
    400: (40010000, "bad request"), 401: (40110000, "request is not authorized"),
    403: (40310000, "forbidden"), 404: (40410000, "not found"),
    422: (42210000, "unprocessable entity"), 429: (42910000, "rate limit exceeded"),
    500: (50010000, "internal server error"), 502: (50210000, "bad gateway"),
    503: (50310000, "service unavailable"), 504: (50410000, "gateway timeout"),
}


@dataclass
class RequestRecord:
    """One request as the emulator logged it (no headers: keys are never kept)."""

    api: str
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    body: Any = None
    fault: Fault | None = field(default=None, repr=False)

    @property
    def client_order_id(self) -> str | None:
        """The ``client_order_id`` of an order submission, else None."""
        if isinstance(self.body, dict):
            value = self.body.get("client_order_id")
            return value if isinstance(value, str) else None
        return None


class RestApp:
    """Authentication, faults, routing and the request log of both REST APIs."""

    def __init__(self, routes: Routes, faults: FaultPlan, key_id: str, secret_key: str,
                 stopping: threading.Event) -> None:
        self.faults = faults
        self.tables = {api: routes.table(api) for api in ("trading", "data")}
        self._key_id = key_id.encode()
        self._secret = secret_key.encode()
        self._stopping = stopping
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []
        self._busy = threading.Condition()
        self._in_flight = 0

    def handle(self, api: str, method: str, target: str, headers: Any,
               raw_body: bytes) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: ``(status, JSON body or None, extra headers)``."""
        split = urlsplit(target)
        path = unquote(split.path)
        record = RequestRecord(api, method, path, dict(parse_qsl(split.query)))
        with self._busy:
            self._in_flight += 1
        try:
            status, body, extra = self._answer(api, method, path, headers, raw_body, record)
        finally:
            with self._busy:
                self._in_flight -= 1
                self._busy.notify_all()
        record.status = status
        self.requests.append(record)
        return status, body, extra

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled (held ones included); False on timeout."""
        with self._busy:
            return self._busy.wait_for(lambda: self._in_flight == 0, timeout)

    def _answer(self, api: str, method: str, path: str, headers: Any, raw_body: bytes,
                record: RequestRecord) -> tuple[int, Any, dict[str, str]]:
        try:
            if raw_body:
                try:
                    record.body = json.loads(raw_body)
                except ValueError:
                    raise ApiError(400, 40010000, "request body format is invalid") from None
            self._authenticate(api, path, headers)
            handler, params = self._route(api, method, path)
            fault = record.fault = self.faults.take(method, path)
            if fault is not None and not fault.after_accept:
                self._stopping.wait(fault.hold)
                if fault.status is not None:
                    return _fault_answer(fault)
            status, body = handler(Request(record.query, record.body, params, fault))
            if fault is not None and fault.after_accept:
                self._stopping.wait(fault.hold)
                if fault.status is not None:
                    return _fault_answer(fault)
            return status, body, {}
        except ApiError as exc:
            return exc.status, exc.body(), exc.headers
        except Exception:  # a bug, or a test driving the emulator wrongly: keep it visible
            self.errors.append(traceback.format_exc())
            return 500, {"code": 50010000, "message": "internal server error"}, {}

    def _authenticate(self, api: str, path: str, headers: Any) -> None:
        key, secret = headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
        if api == "data" and path.startswith("/v1beta3/crypto/") and key is None \
                and secret is None:
            return  # crypto market data needs no keys
        if key is None or secret is None:
            raise ApiError(401, 40110000, "request is not authorized")
        good = hmac.compare_digest(key.encode(), self._key_id) & \
            hmac.compare_digest(secret.encode(), self._secret)
        if not good:
            if api == "data":
                raise ApiError(403, 40310000, "forbidden")
            raise ApiError(401, 40110000, "request is not authorized")

    def _route(self, api: str, method: str, path: str) -> tuple[Any, dict[str, str]]:
        allowed = False
        for want, pattern, handler in self.tables[api]:
            match = pattern.match(path)
            if match:
                if want == method:
                    return handler, match.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, 40510000, "method not allowed")
        raise ApiError(404, 40410000, "endpoint not found")


def _fault_answer(fault: Fault) -> tuple[int, Any, dict[str, str]]:
    assert fault.status is not None
    code, message = _DEFAULT_ERRORS.get(fault.status, (fault.status * 100000, "error"))
    headers = {}
    if fault.status == 429:
        headers["Retry-After"] = f"{fault.retry_after if fault.retry_after is not None else 1:g}"
    return (fault.status, {"code": fault.code if fault.code is not None else code,
                           "message": fault.message or message}, headers)


class RestServer(ThreadingHTTPServer):
    """A threading HTTP server for one API that can close its keep-alive connections."""

    daemon_threads = True

    def __init__(self, host: str, app: RestApp, api: str) -> None:
        self.app = app
        self.api = api
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"alpaca-emulator-{api}", daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port`` of this server."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        """Stop accepting, end every open connection, close the socket."""
        self.shutdown()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RestServer

    def setup(self) -> None:
        super().setup()
        # an answer's headers and body go out in two writes: without TCP_NODELAY the body
        # waits for the client's delayed ACK (about 40 ms a request on Linux)
        import socket

        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the emulator keeps its own request log."""

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body, extra = self.server.app.handle(self.server.api, method, self.path,
                                                     self.headers, raw)
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a held answer)
            self.close_connection = True

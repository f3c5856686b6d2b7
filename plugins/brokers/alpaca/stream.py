"""Trade updates from Alpaca's websocket stream, in their own thread, as a wake-up signal.

alpaca-py's ``TradingStream.run()`` owns an event loop and cannot run inside another one, so it
runs in a daemon thread.  Each update bumps a counter under a condition; the live runner, while
it waits for fills (:meth:`~rlbridge.plugins.brokers.alpaca.AlpacaBroker.wait_for_update`),
wakes as soon as one arrives instead of sleeping out its polling interval.  The stream is never
the source of truth: a dropped connection loses updates (the SDK reconnects), and the runner
reads every order back through the REST API anyway, so a lost update costs time, never a fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Credentials


#: alpaca-py's own websocket settings (passing any replaces all of them)
_SDK_SOCKET = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024}


def quiet_logger() -> logging.Logger:
    """The websocket connection's logger: warnings and errors only, whatever the root level."""
    logger = logging.getLogger("rlbridge.plugins.brokers.alpaca.websocket")
    logger.setLevel(logging.INFO)
    return logger


class _Stopping(logging.Filter):
    """Drops what alpaca-py logs from a stream thread rlbridge is stopping (closing the socket
    under it makes the SDK warn of a websocket error it would reconnect after)."""

    threads: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName not in self.threads


_STOPPING = _Stopping()
logging.getLogger("alpaca.trading.stream").addFilter(_STOPPING)


class TradeUpdates:
    """A running trade-updates stream and the count of updates received."""

    def __init__(self, url: str, keys: Credentials) -> None:
        from alpaca.trading.stream import TradingStream

        # websockets logs every frame at DEBUG, the authentication frame (the keys) included,
        # abridged but not hidden: the connection logs through a logger that never debugs
        self._stream = TradingStream(keys.key_id, keys.secret_key, url_override=url,
                                     websocket_params={**_SDK_SOCKET, "logger": quiet_logger()})
        self._stream.subscribe_trade_updates(self._on_update)
        self._changed = threading.Condition()
        self.received = 0
        self._seen = 0
        self._thread = threading.Thread(target=self._stream.run, daemon=True,
                                        name=f"rlbridge-alpaca-trades-{id(self):x}")

    def start(self) -> TradeUpdates:
        """Connect in the background (the SDK authenticates and listens)."""
        self._thread.start()
        return self

    async def _on_update(self, update: Any) -> None:
        with self._changed:
            self.received += 1
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until an update arrives that :meth:`wait` has not returned for yet.

        Returns:
            True when an update arrived (perhaps before the call), False on timeout.
        """
        with self._changed:
            arrived = self._changed.wait_for(lambda: self.received > self._seen,
                                             max(0.0, timeout))
            self._seen = self.received
            return bool(arrived)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the stream and join its thread (promptly: the socket is closed under it)."""
        stream = self._stream
        deadline = time.monotonic() + timeout
        while stream._loop is None and self._thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread is still starting its event loop
        loop = stream._loop
        _Stopping.threads.add(self._thread.name)
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError, asyncio.CancelledError):
                stream.stop()  # sets the stop flag and event
                # the SDK checks the flag only between receives; closing the socket ends the
                # pending receive at once instead of after its 5 s wait
                asyncio.run_coroutine_threadsafe(stream.close(), loop)
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            _Stopping.threads.discard(self._thread.name)

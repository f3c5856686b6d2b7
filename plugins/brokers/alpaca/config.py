"""Options of the ``alpaca`` broker (``[broker]`` keys) and its API keys (environment only).

Endpoints left unset are Alpaca's own, for the mode ``paper`` chooses: paper trading at
``https://paper-api.alpaca.markets``, real money at ``https://api.alpaca.markets``.  Setting an
endpoint is how tests point the real SDK at the loopback emulator of :mod:`rlbridge.testing`.
A ``paper`` setting that contradicts the trading endpoint (``paper = true`` with Alpaca's live
endpoint, or the reverse) is refused, so the real-money guard cannot be bypassed by a URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from rlbridge.errors import ConfigError

#: the environment variables the keys are read from (never a config file)
KEY_ID_VARIABLE = "APCA_API_KEY_ID"
SECRET_VARIABLE = "APCA_API_SECRET_KEY"

PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
LIVE_TRADING_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
PAPER_TRADE_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_TRADE_STREAM_URL = "wss://api.alpaca.markets/stream"
DATA_STREAM_BASE = "wss://stream.data.alpaca.markets/v2"
CRYPTO_DATA_STREAM_URL = "wss://stream.data.alpaca.markets/v1beta3/crypto/us"

_LIVE_HOST = "api.alpaca.markets"
_PAPER_HOST = "paper-api.alpaca.markets"


@dataclass(frozen=True)
class AlpacaConfig:
    """Options of the ``alpaca`` broker (``[broker]`` keys beside ``name``).

    Attributes:
        paper: trade the paper account (the default); false trades real money and also needs
            ``rlbridge live --live-money``.
        trading_url: base URL of the trading API; unset: Alpaca's, for ``paper``.
        data_url: base URL of the market-data API; unset: Alpaca's.
        trade_stream_url: websocket URL of the trade-updates stream; unset: Alpaca's, for
            ``paper``.
        data_stream_url: websocket URL of the stock market-data stream; unset: Alpaca's, for
            ``feed``.  ``rlbridge live`` on 1-minute bars stores the streamed bars where
            ``[data]`` reads them and decides as each bar closes.
        crypto_data_stream_url: websocket URL of the crypto market-data stream (symbols with
            a slash, ``BTC/USD``); unset: Alpaca's.
        feed: the stock data feed: ``iex`` (free) or ``sip`` (every US exchange; a paid plan).
        timeout: seconds to wait for an answer of the REST API before the outcome counts as
            unknown (the order is then looked up by its client order id).
        retries: how often a request answered 429 or 504 is tried (alpaca-py retries them),
            and how often a read (account, positions, an order) is tried after a 5xx, a
            timeout or a dropped connection.
        retry_wait: seconds between those tries.
        stream: follow fills through the trade-updates stream while a cycle waits for them
            (``rlbridge live --follow``); polling the orders stays the source of truth.
    """

    paper: bool = True
    trading_url: str | None = None
    data_url: str | None = None
    trade_stream_url: str | None = None
    data_stream_url: str | None = None
    crypto_data_stream_url: str | None = None
    feed: Literal["iex", "sip"] = "iex"
    timeout: float = 10.0
    retries: int = 3
    retry_wait: float = 3.0
    stream: bool = True

    def __post_init__(self) -> None:
        for key, schemes in (("trading_url", ("http", "https")), ("data_url", ("http", "https")),
                             ("trade_stream_url", ("ws", "wss")),
                             ("data_stream_url", ("ws", "wss")),
                             ("crypto_data_stream_url", ("ws", "wss"))):
            value = getattr(self, key)
            if value is not None:
                parts = urlsplit(value)
                if parts.scheme not in schemes or not parts.netloc:
                    raise ConfigError(f"expected a {' or '.join(schemes)} URL such as "
                                      f"{schemes[-1]}://host:port, got {value!r}", key=key)
        if not self.timeout > 0:
            raise ConfigError(f"must be more than 0 seconds, got {self.timeout!r}", key="timeout")
        if self.retries < 1:
            raise ConfigError(f"must be 1 or more, got {self.retries!r}", key="retries")
        if not self.retry_wait > 0:
            raise ConfigError(f"must be more than 0 seconds, got {self.retry_wait!r}",
                              key="retry_wait")
        host = urlsplit(self.trading_url).hostname if self.trading_url else None
        if self.paper and host == _LIVE_HOST:
            raise ConfigError(f"trading_url is Alpaca's real-money endpoint ({self.trading_url}) "
                              "but paper = true: set paper = false (and pass --live-money) to "
                              "trade real money, or use the paper endpoint", key="paper")
        if not self.paper and host == _PAPER_HOST:
            raise ConfigError(f"paper = false but trading_url is Alpaca's paper endpoint "
                              f"({self.trading_url}): set paper = true", key="paper")

    @property
    def trading(self) -> str:
        """The trading API's base URL in use."""
        return self.trading_url or (PAPER_TRADING_URL if self.paper else LIVE_TRADING_URL)

    @property
    def data(self) -> str:
        """The market-data API's base URL in use."""
        return self.data_url or DATA_URL

    @property
    def trade_stream(self) -> str:
        """The trade-updates websocket URL in use."""
        return self.trade_stream_url or (PAPER_TRADE_STREAM_URL if self.paper
                                         else LIVE_TRADE_STREAM_URL)

    @property
    def data_stream(self) -> str:
        """The stock market-data websocket URL in use."""
        return self.data_stream_url or f"{DATA_STREAM_BASE}/{self.feed}"

    @property
    def crypto_data_stream(self) -> str:
        """The crypto market-data websocket URL in use."""
        return self.crypto_data_stream_url or CRYPTO_DATA_STREAM_URL


@dataclass(frozen=True, repr=False)
class Credentials:
    """The API key pair, read from the environment; its repr never shows them."""

    key_id: str
    secret_key: str

    def __repr__(self) -> str:
        return "Credentials(***)"

    def scrub(self, text: str) -> str:
        """``text`` with either key replaced by ``***`` (a last line of defence for messages)."""
        for value in (self.secret_key, self.key_id):
            if value:
                text = text.replace(value, "***")
        return text


def credentials(who: str = "the alpaca broker") -> Credentials:
    """The keys from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``.

    Args:
        who: named in the error message.

    Raises:
        ConfigError: a variable is unset or empty; the message names the variable, never a
            value.
    """
    key_id = os.environ.get(KEY_ID_VARIABLE, "").strip()
    secret = os.environ.get(SECRET_VARIABLE, "").strip()
    for variable, value in ((KEY_ID_VARIABLE, key_id), (SECRET_VARIABLE, secret)):
        if not value:
            raise ConfigError(f"{variable} is not set: {who} reads its API keys from the "
                              f"environment variables {KEY_ID_VARIABLE} and {SECRET_VARIABLE}, "
                              "never from a config file")
    return Credentials(key_id, secret)


def optional_credentials(who: str) -> Credentials | None:
    """:func:`credentials`, or None when neither variable is set (crypto data needs none)."""
    if not os.environ.get(KEY_ID_VARIABLE, "").strip() \
            and not os.environ.get(SECRET_VARIABLE, "").strip():
        return None
    return credentials(who)

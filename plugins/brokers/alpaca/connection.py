"""alpaca-py clients set up for rlbridge, and their errors turned into rlbridge's.

alpaca-py sets no HTTP timeout, so a held answer would hang a live cycle: every client made
here has a ``requests`` adapter that applies ``timeout`` to each request.  Its own retries
(429 and 504, ``retries`` times, ``retry_wait`` apart) are tuned from the config.

Error translation (:func:`translate`), the one place an SDK error becomes an rlbridge error:

* 422 "client_order_id must be unique": :class:`~rlbridge.errors.DuplicateOrderError`;
* 429, any 5xx, a timeout, a refused or dropped connection:
  :class:`~rlbridge.errors.TransientBrokerError` (the outcome is unknown);
* any other 4xx: :class:`~rlbridge.errors.BrokerError` with Alpaca's message.

Messages never hold a key: they are built from the status and Alpaca's ``message`` only, the
SDK's exception is not chained (it holds the request, headers included), and any key value
that would still appear is replaced by ``***``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rlbridge.errors import BrokerError, DuplicateOrderError, TransientBrokerError

if TYPE_CHECKING:
    from .config import AlpacaConfig, Credentials

T = TypeVar("T")


def with_timeout(client: Any, seconds: float) -> Any:
    """Make every request of an alpaca-py REST ``client`` give up after ``seconds``."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs["timeout"] = seconds
            return super().send(request, **kwargs)

    session = client._session  # alpaca-py keeps one requests.Session per client
    for prefix in ("http://", "https://"):
        session.mount(prefix, TimeoutAdapter())
    return client


def tune_retries(client: Any, config: AlpacaConfig) -> Any:
    """Apply ``retries`` and ``retry_wait`` to the SDK's own retry of 429 and 504 answers."""
    # TradingClient does not pass these to RESTClient.__init__; the attributes are the ones
    # RESTClient reads in _request.
    client._retry = int(config.retries)
    client._retry_wait = float(config.retry_wait)
    return client


def environment_once(client: Any, url: str) -> Any:
    """Read the proxy and CA-bundle environment once, for ``url``, instead of per request.

    ``requests`` looks through every environment variable for proxies, and for a ``.netrc``
    file, before each request: about half a millisecond each time, most of the SDK's own
    time per order.  The session gets the same proxies (``no_proxy`` applied) and CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) now and stops looking (Alpaca authenticates
    with headers, never ``.netrc``).
    """
    import os

    from requests.utils import get_environ_proxies

    session = client._session
    session.proxies.update(get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return client


def trading_client(config: AlpacaConfig, keys: Credentials) -> Any:
    """A ``TradingClient`` on ``config.trading`` with the timeout, retries and environment
    set."""
    from alpaca.trading.client import TradingClient

    client = TradingClient(keys.key_id, keys.secret_key, paper=config.paper,
                           url_override=config.trading)
    return environment_once(tune_retries(with_timeout(client, config.timeout), config),
                            config.trading)


def translate(exc: BaseException, what: str, keys: Credentials | None = None) -> BrokerError:
    """The rlbridge error for an exception raised by alpaca-py during ``what``.

    Args:
        exc: what the SDK (or ``requests`` under it) raised.
        what: the request, for the message: ``"submitting rlb-...-SPY"``.
        keys: scrubbed from the message when given.

    Returns:
        The error to raise (``raise translate(exc, ...) from None``).
    """
    import requests
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        status = exc.status_code
        message = alpaca_message(exc)
        if status == 422 and "client_order_id" in message and "unique" in message:
            error: BrokerError = DuplicateOrderError(f"Alpaca already has this client order id "
                                                     f"({what}): {message}")
        elif status is None or status == 429 or status >= 500:
            error = TransientBrokerError(f"Alpaca answered {status or 'nothing'} while {what}: "
                                         f"{message}; the outcome is unknown")
        elif status == 401 or (status == 403 and _about_keys(message)):
            error = BrokerError(f"Alpaca refused the API keys ({status}) while {what}: "
                                f"{message}; check APCA_API_KEY_ID and APCA_API_SECRET_KEY "
                                "(paper and live accounts have different keys)")
        else:
            error = BrokerError(f"Alpaca refused {what} ({status}): {message}")
    elif isinstance(exc, requests.exceptions.Timeout):
        error = TransientBrokerError(f"no answer from Alpaca within the timeout while {what}; "
                                     "the outcome is unknown")
    elif isinstance(exc, requests.exceptions.RequestException):
        error = TransientBrokerError(f"the connection to Alpaca failed while {what} "
                                     f"({type(exc).__name__}); the outcome is unknown")
    elif isinstance(exc, ValueError):  # pydantic's ValidationError: a payload the SDK rejects
        error = BrokerError(f"Alpaca answered something alpaca-py cannot read while {what}: "
                            f"{str(exc).splitlines()[0]}")
    else:
        raise exc
    if keys is not None:
        error.args = (keys.scrub(str(error.args[0])),)
    return error


def _about_keys(message: str) -> bool:
    """A 403 refuses the keys (the data API's answer to wrong keys), not an order (a 403
    "insufficient balance" is about the account)."""
    text = message.lower()
    return text in ("forbidden", "forbidden.") or "authoriz" in text or "api key" in text


def alpaca_message(exc: Any) -> str:
    """Alpaca's ``message`` of an ``APIError``, or the start of the body when it is not JSON."""
    try:
        return str(exc.message)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        text = str(exc).strip().replace("\n", " ")
        return text[:200] or "no message"


def call(what: str, func: Callable[[], T], keys: Credentials | None = None) -> T:
    """``func()`` with alpaca-py's errors translated (see :func:`translate`)."""
    try:
        return func()
    except Exception as exc:  # noqa: BLE001  (translate re-raises what it does not know)
        raise translate(exc, what, keys) from None


def read(what: str, func: Callable[[], T], config: AlpacaConfig,
         keys: Credentials | None = None, sleep: Callable[[float], None] = time.sleep) -> T:
    """An idempotent request, tried ``config.retries`` times while its outcome is unknown.

    Raises:
        TransientBrokerError: still unknown after the last try.
        BrokerError: a definite refusal (not retried).
    """
    for attempt in range(config.retries):
        try:
            return call(what, func, keys)
        except TransientBrokerError:
            if attempt == config.retries - 1:
                raise
            sleep(config.retry_wait)
    raise AssertionError("unreachable")

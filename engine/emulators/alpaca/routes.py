"""The REST endpoints: what each path of Alpaca's trading and market-data APIs answers.

Each handler takes the request (query parameters, JSON body, path parameters) and returns
``(status, body)``; errors are raised as :class:`~rlbridge.emulators.alpaca.wire.ApiError`.
The transport, authentication and faults live in :mod:`rlbridge.emulators.alpaca.rest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .bars import BarBook, normalize_timeframe
from .clock import MarketClock
from .faults import Fault
from .orders import CLOSED_STATUSES, OPEN_STATUSES
from .state import TradingState
from .wire import ApiError, asset_id, dec, is_crypto, num, parse_time, position_symbol

Result = tuple[int, Any]
_CRYPTO_SYMBOL = re.compile(r"^[A-Z]+/[A-Z]+$")


@dataclass
class Request:
    """What a handler sees of a request."""

    query: dict[str, str]
    body: Any
    params: dict[str, str]
    fault: Fault | None = None


class Routes:
    """The handlers of both APIs, bound to the emulator's state."""

    def __init__(self, state: TradingState, bars: BarBook, clock: MarketClock,
                 max_page_size: int) -> None:
        self.state = state
        self.bars = bars
        self.clock = clock
        self.max_page_size = max_page_size

    def table(self, api: str) -> list[tuple[str, re.Pattern[str], Callable[[Request], Result]]]:
        """``(method, path pattern, handler)`` of ``api`` (``"trading"`` or ``"data"``)."""
        rows: list[tuple[str, str, Callable[[Request], Result]]]
        if api == "trading":
            rows = [
                ("GET", r"/v2/account", self.account),
                ("GET", r"/v2/clock", lambda r: (200, self.clock.snapshot())),
                ("GET", r"/v2/positions", self.positions),
                ("DELETE", r"/v2/positions", self.close_all_positions),
                ("GET", r"/v2/positions/(?P<symbol>[^/]+)", self.position),
                ("DELETE", r"/v2/positions/(?P<symbol>[^/]+)", self.close_position),
                ("POST", r"/v2/orders", self.submit_order),
                ("GET", r"/v2/orders", self.list_orders),
                ("DELETE", r"/v2/orders", self.cancel_orders),
                ("GET", r"/v2/orders:by_client_order_id", self.order_by_client_id),
                ("GET", r"/v2/orders/(?P<order_id>[^/]+)", self.order),
                ("DELETE", r"/v2/orders/(?P<order_id>[^/]+)", self.cancel_order),
                ("GET", r"/v2/assets/(?P<symbol>.+)", self.asset),
            ]
        else:
            rows = [
                ("GET", r"/v2/stocks/bars", lambda r: self.bars_page(r, crypto=False)),
                ("GET", r"/v2/stocks/bars/latest", lambda r: self.latest(r, crypto=False)),
                ("GET", r"/v2/stocks/(?P<symbol>[^/]+)/bars", self.symbol_bars),
                ("GET", r"/v1beta3/crypto/(?P<loc>[^/]+)/bars",
                 lambda r: self.bars_page(r, crypto=True)),
                ("GET", r"/v1beta3/crypto/(?P<loc>[^/]+)/latest/bars",
                 lambda r: self.latest(r, crypto=True)),
            ]
        return [(method, re.compile(pattern + "$"), handler) for method, pattern, handler in rows]

    # -- trading -------------------------------------------------------------------------

    def account(self, request: Request) -> Result:
        """``GET /v2/account``."""
        return 200, self.state.account_json()

    def positions(self, request: Request) -> Result:
        """``GET /v2/positions``: every open position, by symbol."""
        with self.state.lock:
            held = sorted(self.state.positions.values(), key=lambda p: p.symbol)
            return 200, [self.state.position_json(p) for p in held]

    def position(self, request: Request) -> Result:
        """``GET /v2/positions/{symbol_or_asset_id}``; 404 when there is none."""
        with self.state.lock:
            return 200, self.state.position_json(self._held(request.params["symbol"]))

    def close_position(self, request: Request) -> Result:
        """``DELETE /v2/positions/{symbol}`` (``qty`` or ``percentage``): a closing order."""
        with self.state.lock:
            held = self._held(request.params["symbol"])
            qty = abs(held.qty)
            if request.query.get("qty"):
                qty = min(qty, dec(request.query["qty"], "qty"))
            elif request.query.get("percentage"):
                share = dec(request.query["percentage"], "percentage") / 100
                qty = (qty * share).quantize(Decimal("1e-9"))
            return 200, self._closing_order(held.symbol, held.qty, qty, held.crypto)

    def close_all_positions(self, request: Request) -> Result:
        """``DELETE /v2/positions`` (``cancel_orders``): 207 with one closing order each."""
        with self.state.lock:
            if request.query.get("cancel_orders", "").lower() == "true":
                for order in list(self.state.orders.values()):
                    if order.is_open:
                        self.state.cancel(order.id)
            out = []
            for held in sorted(self.state.positions.values(), key=lambda p: p.symbol):
                body = self._closing_order(held.symbol, held.qty, abs(held.qty), held.crypto)
                out.append({"symbol": held.symbol, "status": 200, "body": body})
            return 207, out

    def submit_order(self, request: Request) -> Result:
        """``POST /v2/orders``."""
        order_fault = request.fault if request.fault and (
            request.fault.reject is not None or request.fault.partial is not None) else None
        return 200, self.state.submit(request.body, order_fault)

    def list_orders(self, request: Request) -> Result:
        """``GET /v2/orders``: ``status``, ``limit``, ``after``/``until`` (exclusive),
        ``direction``, ``symbols``, ``side``."""
        query = request.query
        status = query.get("status", "open").lower()
        wanted = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES,
                  "all": OPEN_STATUSES | CLOSED_STATUSES}.get(status)
        if wanted is None:
            raise ApiError(422, 40010001, f"invalid status: {status!r}")
        limit = _int(query.get("limit"), 50, "limit", 500)
        after = parse_time(query["after"], "after") if query.get("after") else None
        until = parse_time(query["until"], "until") if query.get("until") else None
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        side = query.get("side")
        with self.state.lock:
            chosen = [o for o in self.state.orders.values()
                      if o.status in wanted
                      and (after is None or o.submitted_at > after)
                      and (until is None or o.submitted_at < until)
                      and (not symbols or o.symbol in symbols)
                      and (not side or o.side == side)]
            chosen.sort(key=lambda o: (o.submitted_at, o.seq),
                        reverse=query.get("direction", "desc") != "asc")
            return 200, [o.to_json() for o in chosen[:limit]]

    def order(self, request: Request) -> Result:
        """``GET /v2/orders/{order_id}``."""
        return 200, self.state.order_by_id(request.params["order_id"]).to_json()

    def order_by_client_id(self, request: Request) -> Result:
        """``GET /v2/orders:by_client_order_id?client_order_id=...``."""
        client_id = request.query.get("client_order_id")
        if not client_id:
            raise ApiError(422, 40010001, "client_order_id is required")
        return 200, self.state.order_by_client_id(client_id).to_json()

    def cancel_order(self, request: Request) -> Result:
        """``DELETE /v2/orders/{order_id}``: 204, or 422 when it is no longer open."""
        self.state.cancel(request.params["order_id"], api=True)
        return 204, None

    def cancel_orders(self, request: Request) -> Result:
        """``DELETE /v2/orders``: 207 with one entry per canceled order."""
        with self.state.lock:
            out = []
            for order in sorted(self.state.orders.values(), key=lambda o: o.seq):
                if order.is_open:
                    self.state.cancel(order.id)
                    out.append({"id": order.id, "status": 200, "body": order.to_json()})
            return 207, out

    def asset(self, request: Request) -> Result:
        """``GET /v2/assets/{symbol}``: every symbol is an active, tradable asset."""
        symbol = request.params["symbol"].upper()
        crypto = is_crypto(symbol)
        return 200, {
            "id": asset_id(symbol), "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": symbol, "name": symbol,
            "status": "active", "tradable": True, "marginable": not crypto,
            "shortable": not crypto, "easy_to_borrow": not crypto, "fractionable": True,
            "attributes": [],
        }

    # -- market data ---------------------------------------------------------------------

    def bars_page(self, request: Request, *, crypto: bool) -> Result:
        """``GET /v2/stocks/bars`` and ``GET /v1beta3/crypto/{loc}/bars``: one page."""
        symbols = _symbols(request.query, crypto)
        bars, token = self._query(request.query, symbols)
        return 200, {"bars": bars, "next_page_token": token}

    def symbol_bars(self, request: Request) -> Result:
        """``GET /v2/stocks/{symbol}/bars``: one page of one symbol."""
        symbol = request.params["symbol"].upper()
        bars, token = self._query(request.query, [symbol])
        return 200, {"bars": bars.get(symbol, []), "symbol": symbol, "next_page_token": token}

    def latest(self, request: Request, *, crypto: bool) -> Result:
        """``GET .../bars/latest``: the last bar at or before now (1Min, else 1Hour, 1Day)."""
        now, out = self.clock.now(), {}
        for symbol in _symbols(request.query, crypto):
            for timeframe in ("1Min", "1Hour", "1Day"):
                past = [b for b in self.bars.series(symbol, timeframe) if b.t <= now]
                if past:
                    out[symbol] = past[-1].to_json()
                    break
        return 200, {"bars": out}

    # -- helpers -------------------------------------------------------------------------

    def _held(self, symbol: str) -> Any:
        held = self.state.positions.get(position_symbol(symbol.upper()))
        if held is None:  # by asset id
            held = next((p for p in self.state.positions.values()
                         if asset_id(p.symbol) == symbol.lower()), None)
        if held is None:
            raise ApiError(404, 40410000, "position does not exist")
        return held

    def _closing_order(self, symbol: str, held: Decimal, qty: Decimal,
                       crypto: bool) -> dict[str, Any]:
        traded = _pair(symbol) if crypto else symbol
        body = {"symbol": traded, "qty": num(qty), "side": "sell" if held > 0 else "buy",
                "type": "market", "time_in_force": "gtc" if crypto else "day"}
        return self.state.submit(body)

    def _query(self, query: dict[str, str], symbols: list[str]) -> tuple[dict[str, Any], Any]:
        if not query.get("timeframe"):
            raise ApiError(400, 40010001, "timeframe is required")
        timeframe = normalize_timeframe(query["timeframe"])
        start = parse_time(query["start"], "start") if query.get("start") else None
        end = parse_time(query["end"], "end") if query.get("end") else self.clock.now()
        limit = _int(query.get("limit"), 1000, "limit", 10_000)
        sort = query.get("sort", "asc")
        if sort not in ("asc", "desc"):
            raise ApiError(400, 40010001, f"invalid sort: {sort!r}")
        return self.bars.query(symbols, timeframe, start=start, end=end,
                               limit=min(limit, self.max_page_size),
                               page_token=query.get("page_token") or None,
                               descending=sort == "desc")


def _symbols(query: dict[str, str], crypto: bool) -> list[str]:
    symbols = [s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()]
    if not symbols:
        raise ApiError(400, 40010001, "symbols is required")
    for symbol in symbols:
        if crypto and not _CRYPTO_SYMBOL.match(symbol):
            raise ApiError(400, 40010001,
                           f"invalid symbol: {symbol} does not match ^[A-Z]+/[A-Z]+$")
    return symbols


def _int(text: str | None, default: int, what: str, most: int) -> int:
    if text in (None, ""):
        return default
    try:
        value = int(str(text))
    except ValueError:
        raise ApiError(422, 40010001, f"invalid {what}: {text!r}") from None
    if not 1 <= value <= most:
        raise ApiError(422, 40010001, f"{what} must be between 1 and {most}")
    return value


def _pair(position_symbol: str) -> str:
    """``BTCUSD`` -> ``BTC/USD`` (crypto positions are listed without the slash)."""
    for quote in ("USDT", "USDC", "USD", "BTC"):
        if position_symbol.endswith(quote) and len(position_symbol) > len(quote):
            return f"{position_symbol[:-len(quote)]}/{quote}"
    return position_symbol

"""Gymnasium environments on the reference market model (DESIGN.md section 6).

``PortfolioEnv`` is one portfolio over one date range:

* **observation**: ``{"features": float32 [window, N, F], "weights": float32 [N+1]}``, the
  last ``window`` rows of features precomputed once for the whole series (one contiguous block
  copied per step: gymnasium wants fresh arrays) and the current weights at the decision
  bar's close, cash last;
* **action**: mapped to target weights by :mod:`rlbridge.actions` (``softmax`` long-only scores
  by default, ``long_short`` with a gross cap, or ``discrete`` buy/hold/sell per asset);
* **step**: the orders that reach those weights fill at the next bar's open through the cost
  model, exactly as in :mod:`rlbridge.market` (the same functions do the arithmetic), and the
  portfolio is marked at that bar's close;
* **reward**: ``log(value[t+1] / value[t])`` net of costs, minus the optional drawdown and
  turnover penalties.  With no penalties the sum of rewards is the log growth of the equity
  curve the ``native`` engine reports for the same decisions.

A step does a fixed amount of numpy work on ``[N]`` arrays: its cost does not depend on the
length of the data.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from .actions import ActionMapping, make_action_mapping
from .errors import ConfigError, DataError
from .interfaces import CostContext
from .market import MIN_ORDER_VALUE, Portfolio, ones, size_to_weights
from .market import portfolio_weights as _portfolio_weights

if TYPE_CHECKING:
    from .interfaces import Bars, CostModel

#: the reward when the portfolio's value reaches zero or below: the episode ends there
BANKRUPT_REWARD = -10.0

_abs = np.abs


class PortfolioEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A portfolio of ``N`` assets traded once per bar.

    Args:
        bars: the bars the features were computed from (same index and symbols).
        features: ``[T, N, F]`` precomputed, causal, normalised features (float32 preferred).
        cost_model: prices every fill (see :class:`~rlbridge.interfaces.CostModel`).
        window: feature rows in one observation.
        start, end: the bar indices of the first decision and of the last bar an episode may
            reach (fills need a bar after each decision); default: the whole series, starting
            at the first bar with ``window`` rows of finite features.
        cash: starting cash (matters for fixed costs such as per-order minimums).
        actions: ``"softmax"``, ``"long_short"`` or ``"discrete"``.
        gross_cap: the largest sum of absolute weights for ``long_short``.
        trade_step: the weight a ``discrete`` buy or sell moves.
        rebalance_band: leave alone an asset whose order would be worth less than this
            fraction of the portfolio value (:func:`rlbridge.market.size_to_weights`).
        drawdown_penalty: subtracted per step times the drawdown from the episode's peak.
        turnover_penalty: subtracted per step times traded value over portfolio value.
        random_start: start each episode at a random bar (seeded by ``reset(seed=...)``).
        episode_length: steps per episode (default: until ``end``).
        fractional: trade fractional shares (integer shares when False).
        fill_at: ``"open"`` (default) or ``"close"`` of the bar after the decision.
        feature_names: names of the ``F`` features, kept for checks when a policy is reused.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        bars: Bars,
        features: np.ndarray,
        cost_model: CostModel,
        *,
        window: int = 60,
        start: int | None = None,
        end: int | None = None,
        cash: float = 100_000.0,
        actions: str = "softmax",
        gross_cap: float = 1.0,
        trade_step: float = 0.1,
        rebalance_band: float = 0.0,
        drawdown_penalty: float = 0.0,
        turnover_penalty: float = 0.0,
        random_start: bool = False,
        episode_length: int | None = None,
        fractional: bool = True,
        fill_at: str = "open",
        feature_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        if features.ndim != 3 or features.shape[:2] != (len(bars), len(bars.symbols)):
            raise DataError(f"features must have shape [T={len(bars)}, N={len(bars.symbols)}, F], "
                            f"got {features.shape}")
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}", key="features.window")
        if fill_at not in ("open", "close"):
            raise ConfigError(f"fill_at must be 'open' or 'close', got {fill_at!r}",
                              key="env.fill_at")
        self.bars = bars
        self.symbols = bars.symbols
        self.features = features.astype(np.float32, copy=False)
        self.feature_names = tuple(feature_names) if feature_names is not None else tuple(
            f"f{i}" for i in range(features.shape[2]))
        self.window = window
        self.cost_model = cost_model
        self.initial_cash = float(cash)
        self.fractional = fractional
        self.fill_at = fill_at
        self.drawdown_penalty = float(drawdown_penalty)
        self.turnover_penalty = float(turnover_penalty)
        self.rebalance_band = float(rebalance_band)
        self.random_start = random_start
        self.episode_length = episode_length
        self.mapping: ActionMapping = make_action_mapping(
            actions, len(self.symbols), gross_cap=gross_cap, trade_step=trade_step)
        self.first, self.last = self._range(start, end)

        n, f = len(self.symbols), features.shape[2]
        self.observation_space = gym.spaces.Dict({  # type: ignore[assignment]
            "features": gym.spaces.Box(-np.inf, np.inf, (window, n, f), np.float32),
            "weights": gym.spaces.Box(-np.inf, np.inf, (n + 1,), np.float32),
        })
        self.action_space = self.mapping.space
        self._close = bars.close
        self._reference = bars.open if fill_at == "open" else bars.close
        self._context = CostContext(bars)
        self._ones = ones(len(self.symbols))
        self.portfolio = Portfolio(self.symbols, cash)
        self.t = self.first
        self._stop = self.last
        self._value = self.initial_cash
        self._peak = self.initial_cash

    # ------------------------------------------------------------------ setup
    def _range(self, start: int | None, end: int | None) -> tuple[int, int]:
        finite = np.asarray(np.isfinite(self.features).all(axis=(1, 2)))
        if not finite.any():
            raise DataError("no bar has finite values for every feature")
        warm = int(np.argmax(finite))  # features may be NaN only during their warm-up
        if not finite[warm:].all():
            from .data import format_stamp

            bad = warm + int(np.argmin(finite[warm:]))
            raise DataError(f"features are NaN or infinite at {format_stamp(self.bars.index[bad])}"
                            f", after their warm-up ended at {format_stamp(self.bars.index[warm])}")
        first = max(warm + self.window - 1, 0 if start is None else start)
        last = len(self.bars) - 1 if end is None else min(end, len(self.bars) - 1)
        if last - first < 1:
            raise DataError(
                f"the environment needs two bars after the {self.window}-bar window and the "
                f"features' warm-up ({warm} bars): bars {first}..{last} of {len(self.bars)} "
                f"leave {max(last - first + 1, 0)}")
        return first, last

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        length = self.episode_length
        latest = self.last - 1 if length is None else max(self.first, self.last - length)
        if self.random_start and latest > self.first:
            self.t = int(self.np_random.integers(self.first, latest + 1))
        else:
            self.t = self.first
        self._stop = self.last if length is None else min(self.t + length, self.last)
        self.portfolio = Portfolio(self.symbols, self.initial_cash)
        self._value = self._peak = self.initial_cash
        return (self._observation(self.portfolio.weights(self._close[self.t])),
                {"t": self.t, "value": self._value, "traded": 0.0, "commission": 0.0})

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool,
                                                dict[str, Any]]:
        # the hot path: the arithmetic is rlbridge.market's (size_to_weights, execute,
        # Portfolio.apply/value/weights), inlined only where a call would cost time
        t = self.t
        portfolio = self.portfolio
        close = self._close[t]
        value = self._value
        mapping = self.mapping
        target = mapping(action, portfolio.weights(close, value) if mapping.needs_current else None)
        quantity = size_to_weights(target[:-1], value, close, portfolio.positions,
                                   fractional=self.fractional, min_order_value=MIN_ORDER_VALUE,
                                   band=self.rebalance_band, cash=portfolio.cash)
        context = self._context
        context.t = t
        nxt = t + 1
        cost_model = self.cost_model  # rlbridge.market.execute, inlined
        price = cost_model.fill_price(self._reference[nxt], quantity, context)
        commission = cost_model.commission(price, quantity, context)
        portfolio.apply(quantity, price, commission)
        new_close = self._close[nxt]
        new_value = float(portfolio.cash + portfolio.positions.dot(new_close))  # .value()
        self.t = nxt
        self._value = new_value
        traded = float(_abs(quantity).dot(price))
        info = {"t": nxt, "value": new_value, "traded": traded,
                "commission": float(commission.dot(self._ones))}
        if not new_value > 0.0 or new_value == math.inf:
            return (self._observation(np.zeros(len(self.symbols) + 1)), BANKRUPT_REWARD, True,
                    False, info)
        reward = math.log(new_value / value)
        if self.turnover_penalty:
            reward -= self.turnover_penalty * traded / value
        if self.drawdown_penalty:
            self._peak = max(self._peak, new_value)
            reward -= self.drawdown_penalty * (1.0 - new_value / self._peak)
        # the same float64 arithmetic as every BarContext's weights, then float32
        weights = _portfolio_weights(portfolio.positions, portfolio.cash, new_close, new_value)
        obs = {"features": self.features[nxt - self.window + 1:nxt + 1].copy(),
               "weights": weights.astype(np.float32)}
        return obs, reward, False, nxt >= self._stop, info

    # ------------------------------------------------------------------ helpers
    def _observation(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        t = self.t
        # a copy of one fixed-size window (gymnasium requires fresh data per call); its cost
        # depends on window x N x F, never on the length of the data
        return {"features": self.features[t - self.window + 1:t + 1].copy(),
                "weights": weights.astype(np.float32, copy=False)}

    @property
    def value(self) -> float:
        """Portfolio value at the current bar's close."""
        return self._value

    def action_masks(self) -> np.ndarray:
        """The actions that change something now (discrete mapping; for ``maskable_ppo``)."""
        return self.mapping.masks(self.portfolio.weights(self._close[self.t], self._value))

    def describe(self) -> dict[str, Any]:
        """What a policy trained here depends on (saved with it, checked when it is reused)."""
        return {"symbols": list(self.symbols), "feature_names": list(self.feature_names),
                "window": self.window, "actions": self.mapping.name,
                "rebalance_band": self.rebalance_band,
                "action_shape": list(self.action_space.shape or ()),
                "n_features": int(self.features.shape[2])}

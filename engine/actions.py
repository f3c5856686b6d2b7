"""Action mappings: from a policy's raw action to target weights ``[N+1]`` (cash last).

Every mapping checks its input: a NaN or infinite action, or one of the wrong shape, is an
:class:`ActionError` naming the problem, never a silent trade.

* ``softmax`` (default): ``N+1`` scores in ``[-1, 1]``; weights = softmax(scores x
  :data:`SOFTMAX_SCALE`), long-only and fully allocated (cash is the last score);
* ``long_short``: ``N`` weights in ``[-1, 1]``; scaled down when their absolute sum exceeds
  ``gross_cap``; cash = 1 - sum(weights);
* ``discrete``: one of sell / hold / buy (0 / 1 / 2) per asset; a buy adds ``trade_step`` to
  the asset's current weight, a sell removes it (never below 0); when the assets would exceed
  100 %, they are scaled to fit.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import ConfigError, RLBridgeError
from .market import ones

_ONE = np.float64(1.0)  # numpy scalars: ufuncs with Python floats convert them on every call
_MINUS_ONE = np.float64(-1.0)

#: softmax temperature: scores in [-1, 1] times this can express weights from ~0 to ~1
SOFTMAX_SCALE = 5.0
_SCALE = np.float64(SOFTMAX_SCALE)

ACTIONS = ("softmax", "long_short", "discrete")


class ActionError(RLBridgeError):
    """A policy produced an action that cannot be traded (NaN, infinite, wrong shape)."""


class ActionMapping:
    """Base class: ``mapping(action, current_weights) -> target weights [N+1]``."""

    name = ""
    #: whether the mapping reads the current weights (only ``discrete`` does)
    needs_current = False

    def __init__(self, n_assets: int, space: gym.Space[Any]) -> None:
        self.n = n_assets
        self.space = space
        self._unit = ones(int(np.prod(space.shape or (1,))))
        assert space.shape is not None
        self.shape: tuple[int, ...] = space.shape

    def check(self, action: Any, batch: int | None = None) -> np.ndarray:
        """The action as a new float64 array of the right shape; raises on NaN, inf, shape.

        ``batch``: the number of environments when the actions of several come at once
        (shape ``(batch, *shape)``).
        """
        a = np.array(action, dtype=np.float64)
        shape = self.shape if batch is None else (batch, *self.shape)
        if a.shape != shape:
            if a.size == int(np.prod(shape)):
                a = a.reshape(shape)  # (1, n) from a batched predict is fine
            else:
                raise ActionError(f"{self.name} action must have shape {shape}, got {a.shape}")
        flat = a.ravel()
        # one dot product finds NaN and inf (they propagate); only then look closer, since a
        # sum of huge finite values may overflow too
        if not math.isfinite(flat.dot(self._unit if flat.size == self._unit.size
                                      else ones(flat.size))) and not np.isfinite(flat).all():
            bad = np.flatnonzero(~np.isfinite(flat))
            raise ActionError(f"{self.name} action has NaN or infinite values at "
                              f"{bad.tolist()}: {a.tolist()}")
        return a

    def __call__(self, action: Any, current: np.ndarray | None,
                 batch: int | None = None) -> np.ndarray:
        """Target weights ``[..., N+1]`` (cash last); ``current`` weights are ``[..., N+1]``."""
        raise NotImplementedError

    def masks(self, current: np.ndarray) -> np.ndarray:
        """Which actions change something from ``current`` weights (``maskable_ppo``).

        Only the discrete mapping has a finite set of actions to mask.
        """
        raise ConfigError(f"action masks exist for the discrete mapping only, not {self.name}",
                          key="env.actions")


class Softmax(ActionMapping):
    name = "softmax"

    def __init__(self, n_assets: int) -> None:
        super().__init__(n_assets, gym.spaces.Box(-1.0, 1.0, (n_assets + 1,), np.float32))
        self._ones = np.ones(n_assets + 1)

    def __call__(self, action: Any, current: np.ndarray | None,
                 batch: int | None = None) -> np.ndarray:
        z = self.check(action, batch)
        np.minimum(z, _ONE, out=z)
        np.maximum(z, _MINUS_ONE, out=z)
        z *= _SCALE  # |z| <= SOFTMAX_SCALE: exp cannot overflow, no max shift needed
        np.exp(z, out=z)
        total = z.dot(self._ones)  # a sum along the last axis, faster than z.sum on short rows
        if z.ndim == 1:
            z /= total
        else:
            z /= total[:, None]
        return z


class LongShort(ActionMapping):
    name = "long_short"

    def __init__(self, n_assets: int, gross_cap: float) -> None:
        super().__init__(n_assets, gym.spaces.Box(-1.0, 1.0, (n_assets,), np.float32))
        self.gross_cap = gross_cap

    def __call__(self, action: Any, current: np.ndarray | None,
                 batch: int | None = None) -> np.ndarray:
        w = np.clip(self.check(action, batch), -1.0, 1.0)
        gross = np.abs(w).sum(axis=-1, keepdims=True)
        w *= self.gross_cap / np.maximum(gross, self.gross_cap)  # scale down only above the cap
        return _with_cash(w)


class Discrete(ActionMapping):
    name = "discrete"
    needs_current = True

    def __init__(self, n_assets: int, trade_step: float) -> None:
        super().__init__(n_assets, gym.spaces.MultiDiscrete([3] * n_assets))
        self.trade_step = trade_step

    def check(self, action: Any, batch: int | None = None) -> np.ndarray:
        a = super().check(action, batch)
        if ((a != 0) & (a != 1) & (a != 2)).any():
            raise ActionError(f"discrete actions are 0 (sell), 1 (hold) or 2 (buy), got "
                              f"{a.tolist()}")
        return a

    def __call__(self, action: Any, current: np.ndarray | None,
                 batch: int | None = None) -> np.ndarray:
        assert current is not None  # needs_current: the environment passes the weights
        step = (self.check(action, batch) - 1.0) * self.trade_step
        w = np.maximum(current[..., :-1] + step, 0.0)
        w /= np.maximum(w.sum(axis=-1, keepdims=True), 1.0)  # assets fit in 100 %
        return _with_cash(w)

    def masks(self, current: np.ndarray) -> np.ndarray:
        """``[..., 3N]`` booleans, sell / hold / buy for each asset in turn.

        Selling an asset not held changes nothing (weights never go below 0), so it is
        masked; hold and buy are always allowed (a buy when fully invested shifts weight
        from the other assets).
        """
        held = current[..., :-1] > 0.0
        out = np.ones((*held.shape, 3), dtype=bool)
        out[..., 0] = held
        return out.reshape(*held.shape[:-1], 3 * self.n)


def _with_cash(w: np.ndarray) -> np.ndarray:
    """``[..., N+1]``: the asset weights and, last, the cash that is left."""
    out = np.empty((*w.shape[:-1], w.shape[-1] + 1))
    out[..., :-1] = w
    out[..., -1] = 1.0 - w.sum(axis=-1)
    return out


def make_action_mapping(name: str, n_assets: int, *, gross_cap: float = 1.0,
                        trade_step: float = 0.1) -> ActionMapping:
    """The mapping called ``name`` for ``n_assets`` assets."""
    if name == "softmax":
        return Softmax(n_assets)
    if name == "long_short":
        return LongShort(n_assets, gross_cap)
    if name == "discrete":
        return Discrete(n_assets, trade_step)
    raise ConfigError(f"unknown action mapping {name!r}; valid: {', '.join(ACTIONS)}",
                      key="env.actions")

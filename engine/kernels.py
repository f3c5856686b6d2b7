"""The vectorised environment's step as one compiled loop (numba), for the built-in parts.

:class:`~rlbridge.vec_env.PortfolioVecEnv` steps 64 copies at once.  In numpy that is some fifty
array operations on ``[64, N]`` arrays per step, each paying Python's and numpy's call overhead;
here it is one compiled pass over copies and assets doing the same arithmetic: the action mapping
(:mod:`rlbridge.actions`), sizing (:func:`rlbridge.market.size_to_weights`), fill prices and
commissions of the cost model, the ledger, the reward and its penalties.

It applies when every part of the run's cost model describes itself to the kernel
(:func:`cost_program`: the built-in ``percent``, ``per_share``, ``spread``,
``volatility_slippage``, ``zero`` and ``composite`` of those do); a third-party cost model keeps
the numpy path, which stays the reference.  The two paths agree to rounding (tests compare
them); the single environment and the ``native`` engine, which must agree bit for bit, both
stay on numpy.

numba compiles the loop on first use (a few seconds, then cached on disk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .interfaces import CostContext, CostModel

#: kinds of price-impact parts, applied to the fill price in order
SPREAD, VOLATILITY = 0, 1
#: kinds of commission parts, summed on the final fill price
PERCENT, PER_SHARE = 0, 1
#: action mappings
SOFTMAX, LONG_SHORT, DISCRETE = 0, 1, 2
MAPPINGS = {"softmax": SOFTMAX, "long_short": LONG_SHORT, "discrete": DISCRETE}


@dataclass(frozen=True)
class CostProgram:
    """A cost model as arrays the kernel reads.

    Attributes:
        price_kinds: ``[P]`` kind of each price-impact part, in order.
        price_params: ``[P, 3]``: spread ``(fraction, -, -)``; volatility ``(floor, cap, -)``.
        price_tables: ``[P, T, N]``: the per-bar scale of a volatility part (zeros otherwise).
        commission_kinds: ``[C]`` kind of each commission part.
        commission_params: ``[C, 3]``: percent ``(rate, -, -)``; per share ``(per_share,
            minimum, maximum_percent)``.
    """

    price_kinds: np.ndarray
    price_params: np.ndarray
    price_tables: np.ndarray
    commission_kinds: np.ndarray
    commission_params: np.ndarray


def cost_program(model: CostModel, context: CostContext) -> CostProgram | None:
    """The kernel's form of ``model``, or None when a part cannot describe itself."""
    parts = _flatten(model)
    if parts is None:
        return None
    prices: list[tuple[int, tuple[float, ...], Any]] = []
    commissions: list[tuple[int, tuple[float, ...], Any]] = []
    for part in parts:
        described = part.kernel_parts(context)  # [(role, kind, params, table or None)]
        for role, kind, params, table in described:
            (prices if role == "price" else commissions).append((kind, params, table))
    t, n = context.bars.close.shape
    tables = np.zeros((max(len(prices), 1), t, n))
    for i, (_, _, table) in enumerate(prices):
        if table is not None:
            tables[i] = table
    return CostProgram(
        np.array([k for k, _, _ in prices], dtype=np.int64),
        np.array([_three(p) for _, p, _ in prices], dtype=np.float64).reshape(-1, 3),
        tables,
        np.array([k for k, _, _ in commissions], dtype=np.int64),
        np.array([_three(p) for _, p, _ in commissions], dtype=np.float64).reshape(-1, 3))


def _three(params: tuple[float, ...]) -> tuple[float, float, float]:
    padded = (*params, 0.0, 0.0, 0.0)
    return (float(padded[0]), float(padded[1]), float(padded[2]))


def _flatten(model: Any) -> list[Any] | None:
    parts = getattr(model, "parts", None)
    if parts is not None:
        flat: list[Any] = []
        for part in parts:
            inner = _flatten(part)
            if inner is None:
                return None
            flat += inner
        return flat
    return [model] if hasattr(model, "kernel_parts") else None


def compile_step() -> Any:
    """The compiled step (numba is imported, and the loop compiled, on first call)."""
    global _STEP
    if _STEP is None:
        import numba

        _STEP = numba.njit(cache=True, nogil=True)(_step)
    return _STEP


_STEP: Any = None
_ROWS: Any = None


def compile_rows() -> Any:
    """The compiled ring update of :meth:`PortfolioVecEnv._advance` (see :func:`_rows`)."""
    global _ROWS
    if _ROWS is None:
        import numba

        _ROWS = numba.njit(cache=True, nogil=True)(_rows)
    return _ROWS


def _rows(ring: np.ndarray, features: np.ndarray, t: np.ndarray, fresh: np.ndarray,
          step: int, backs: np.ndarray, width: int) -> None:
    """Write each fresh copy's newest rows (``t - back``) at their slots and slots + width.

    ``ring`` is ``[2W, K, M]`` and ``features`` ``[T, M]`` (the ``N x F`` of a bar flattened):
    flat inner loops the compiler turns into straight copies.
    """
    size = features.shape[1]
    for b in range(backs.shape[0]):
        slot = (step - backs[b]) % width
        for k in range(t.shape[0]):
            if not fresh[k]:
                continue
            row = t[k] - backs[b]
            for j in range(size):
                value = features[row, j]
                ring[slot, k, j] = value
                ring[slot + width, k, j] = value


def _step(actions: np.ndarray, mapping: int, scale: float, gross_cap: float, trade_step: float,
          t: np.ndarray, positions: np.ndarray, cash: np.ndarray, value: np.ndarray,
          peak: np.ndarray, close: np.ndarray, reference: np.ndarray, fractional: bool,
          min_order_value: float, price_kinds: np.ndarray, price_params: np.ndarray,
          price_tables: np.ndarray, commission_kinds: np.ndarray,
          commission_params: np.ndarray, turnover_penalty: float, drawdown_penalty: float,
          bankrupt_reward: float, reward: np.ndarray, new_value: np.ndarray) -> None:
    """One step of every copy (the arithmetic of :meth:`PortfolioVecEnv.step_wait`)."""
    copies, assets = positions.shape
    weights = np.empty(assets + 1)
    for k in range(copies):
        tk = t[k]
        v = value[k]
        # ---- action -> target weights of the assets (cash is what is left)
        if mapping == 0:  # softmax of clipped scores
            total = 0.0
            for i in range(assets + 1):
                z = min(max(actions[k, i], -1.0), 1.0) * scale
                weights[i] = math.exp(z)
                total += weights[i]
            for i in range(assets + 1):
                weights[i] /= total
        elif mapping == 1:  # long/short, scaled down above the gross cap
            gross = 0.0
            for i in range(assets):
                weights[i] = min(max(actions[k, i], -1.0), 1.0)
                gross += abs(weights[i])
            shrink = gross_cap / max(gross, gross_cap)
            for i in range(assets):
                weights[i] *= shrink
        else:  # discrete: sell / hold / buy a step of weight from the current weights
            held = 0.0
            for i in range(assets):
                now = positions[k, i] * close[tk, i] / v
                weights[i] = max(now + (actions[k, i] - 1.0) * trade_step, 0.0)
                held += weights[i]
            if held > 1.0:
                for i in range(assets):
                    weights[i] /= held
        # ---- orders, fills and costs
        paid = 0.0
        traded = 0.0
        for i in range(assets):
            price_now = close[tk, i]
            target = weights[i] * (v / price_now)
            if not fractional:
                target = math.trunc(target)
            q = target - positions[k, i]
            if abs(q) * price_now < min_order_value or q == 0.0:
                continue
            side = 1.0 if q > 0.0 else -1.0
            price = reference[tk + 1, i]
            for j in range(price_kinds.shape[0]):
                if price_kinds[j] == 0:
                    fraction = price_params[j, 0]
                else:
                    fraction = math.sqrt(abs(q)) * price_tables[j, tk, i] + price_params[j, 0]
                    fraction = min(fraction, price_params[j, 1])
                price = price * (1.0 + side * fraction)
            commission = 0.0
            for j in range(commission_kinds.shape[0]):
                if commission_kinds[j] == 0:
                    commission += abs(q) * price * commission_params[j, 0]
                else:
                    fee = max(abs(q) * commission_params[j, 0], commission_params[j, 1])
                    commission += min(fee, abs(q) * price * commission_params[j, 2])
            positions[k, i] += q
            paid += q * price + commission
            traded += abs(q) * price
        cash[k] -= paid
        # ---- the close of the fill bar, the reward
        nv = cash[k]
        for i in range(assets):
            nv += positions[k, i] * close[tk + 1, i]
        new_value[k] = nv
        if not nv > 0.0:
            reward[k] = bankrupt_reward
            continue
        r = math.log(nv / v)
        if turnover_penalty != 0.0:
            r -= turnover_penalty * traded / v
        if drawdown_penalty != 0.0:
            peak[k] = max(peak[k], nv)
            r -= drawdown_penalty * (1.0 - nv / peak[k])
        reward[k] = r

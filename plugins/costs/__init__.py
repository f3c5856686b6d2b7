"""The built-in cost models, one plugin module each.

Every module here registers one model with ``register_cost_models`` and stays cheap to import:
numpy is imported by the model's constructor and methods, never at module level.  The hot
helpers the models share (applying a signed slippage, per-run tables) live in
:mod:`rlbridge.costs`; this package holds what a config check needs without numpy: the names
of the built-ins and the range check their options use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from rlbridge.errors import ConfigError

#: built-in cost model name -> ``module:Class`` of its factory (the parts a ``composite`` may
#: name without a path)
BUILTIN_COST_MODELS: Mapping[str, str] = MappingProxyType({
    "composite": "rlbridge.plugins.costs.composite:CompositeCost",
    "per_share": "rlbridge.plugins.costs.per_share:PerShareCost",
    "percent": "rlbridge.plugins.costs.percent:PercentCost",
    "spread": "rlbridge.plugins.costs.spread:SpreadCost",
    "volatility_slippage": "rlbridge.plugins.costs.volatility_slippage:VolatilitySlippageCost",
    "zero": "rlbridge.plugins.costs.zero:ZeroCost",
})


def check_range(key: str, value: float, low: float, high: float, *, closed: str = "left",
                hint: str = "") -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``value`` lies in the interval.

    Args:
        key: the option's name (the config location is added by whoever builds the options).
        value: the option's value; NaN is always out of range.
        low, high: the bounds (``math.inf`` for none).
        closed: which bounds belong to the interval: ``"left"``, ``"right"``, ``"both"`` or
            ``"neither"``.
        hint: what the value means, shown in parentheses after the interval.
    """
    left = closed in ("left", "both")
    right = closed in ("right", "both")
    above = value >= low if left else value > low
    below = value <= high if right else value < high
    if above and below:
        return
    if math.isinf(high) and high > 0:
        interval = f"{'>=' if left else '>'} {_num(low)}"
    else:
        interval = f"in {'[' if left else '('}{_num(low)}, {_num(high)}{']' if right else ')'}"
    hint = f" ({hint})" if hint else ""
    raise ConfigError(f"must be {interval}{hint}, got {value!r}", key=key)


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"

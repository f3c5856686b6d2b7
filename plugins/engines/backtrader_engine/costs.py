"""Which cost models backtrader's own commission and slippage settings reproduce.

backtrader has a percentage commission (``commission * |size| * price``) and a percentage
slippage (``price * (1 ± perc)``).  With slippage applied at the open, matched and allowed
outside the bar's range, they are the ``percent`` and ``spread`` cost models.  A model they do
not cover (``per_share`` with its minimum and cap, ``volatility_slippage``, third-party models)
is evaluated by the engine's broker instead, for every fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """backtrader settings equal to a cost model.

    Attributes:
        rate: percentage commission as a fraction of traded value (0.001 = 0.1%).
        slip: percentage slippage as a fraction of the reference price.
    """

    rate: float = 0.0
    slip: float = 0.0


def backtrader_settings(model: Any) -> Settings | None:
    """The :class:`Settings` equal to ``model``, or None when backtrader has no equivalent.

    ``percent``, ``spread`` and ``zero`` map, and a ``composite`` of at most one ``percent``
    and one ``spread`` (plus any ``zero``).  The class must be the built-in itself: a subclass
    may change what it charges, so it goes through the cost model.
    """
    from rlbridge.plugins.costs.composite import CompositeCost
    from rlbridge.plugins.costs.percent import PercentCost
    from rlbridge.plugins.costs.spread import SpreadCost
    from rlbridge.plugins.costs.zero import ZeroCost

    parts = model.parts if type(model) is CompositeCost else (model,)
    rate: float | None = None
    slip: float | None = None
    for part in parts:
        kind = type(part)
        if kind is PercentCost and rate is None:
            rate = float(part.config.rate)
        elif kind is SpreadCost and slip is None:
            slip = float(part.config.bps) / 1e4  # the model's own fraction, to the bit
        elif kind is not ZeroCost:
            return None
    return Settings(rate=rate or 0.0, slip=slip or 0.0)

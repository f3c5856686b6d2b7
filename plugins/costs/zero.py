"""The ``zero`` cost model: no commission, no slippage (tests and idealised runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import CostContext


class ZeroCost:
    """Every fill at the reference price, free of charge."""

    price_impact = False
    charges_commission = False

    @dataclass(frozen=True)
    class Config:
        """The ``zero`` cost model has no options."""

    def __init__(self, config: ZeroCost.Config | None = None) -> None:
        import numpy as np

        self.config = config if config is not None else ZeroCost.Config()
        self._zeros = np.zeros

    def __repr__(self) -> str:
        return "ZeroCost()"

    def describe(self) -> str:
        """``zero: no costs``."""
        return "zero: no costs"

    def kernel_parts(self, context: CostContext) -> list[tuple[str, int, tuple[float, ...], Any]]:
        """Nothing, for the vectorised environment's compiled step (:mod:`rlbridge.kernels`)."""
        return []

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """The reference price itself."""
        return price

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """A new array of zeros."""
        return self._zeros(price.shape)


@hookimpl
def register_cost_models(register: Any) -> None:
    register("zero", ZeroCost, description="no commission and no slippage (idealised runs)")

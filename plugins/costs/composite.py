"""The ``composite`` cost model: several cost models applied to the same fills.

::

    [costs]
    model = "composite"
    parts = [{ model = "spread", bps = 2 }, { model = "per_share", minimum = 0.35 }]

Fill prices compose in order (each part's ``fill_price`` gets the previous part's output);
the commissions of all parts add up, each computed on the final fill price.  A part names a
built-in model (``percent``, ``per_share``, ``spread``, ``volatility_slippage``, ``zero``,
``composite``) or a ``module:Class`` path, with that model's options beside ``model``.
Checking a config imports no user code: a ``module:Class`` part is imported when the model is
built.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError, PluginError
from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.costs import BUILTIN_COST_MODELS

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import CostContext, CostModel


class CompositeCost:
    """The parts' price impacts in order, and the sum of their commissions."""

    @dataclass(frozen=True)
    class Config:
        """Options of the ``composite`` cost model.

        Attributes:
            parts: one table per part: ``model`` (a built-in name or ``module:Class``) and
                that model's options.
        """

        parts: tuple[Mapping[str, Any], ...] = dataclasses.field(
            metadata={"type": "a list of tables, each with model = \"...\" and its options"})

        def __post_init__(self) -> None:
            if not self.parts:
                raise ConfigError('needs at least one part, e.g. parts = [{ model = "spread" }]',
                                  key="parts")
            for i, spec in enumerate(self.parts):
                _part_name(i, spec)
                if not _is_path(spec["model"]):
                    _part_options(i, spec)  # built-ins: check their options now

    def __init__(self, config: CompositeCost.Config) -> None:
        from rlbridge.costs import relocate, zeros
        from rlbridge.interfaces import CostModel

        self.config = config
        parts: list[Any] = []
        for i, spec in enumerate(config.parts):
            factory, options = _part_options(i, spec)
            try:
                part = factory(options)
            except ConfigError as exc:  # a nested composite's part
                raise relocate(exc, f"parts[{i}]") from None
            except PluginError as exc:
                if not str(exc).startswith("parts["):
                    raise
                raise PluginError(f"parts[{i}].{exc}") from None
            if not isinstance(part, CostModel):
                raise PluginError(f"parts[{i}]: cost model {spec['model']!r} built an object "
                                  f"of type {type(part).__name__}, which has no fill_price "
                                  "and commission methods")
            parts.append(part)
        self.parts: tuple[CostModel, ...] = tuple(parts)
        self._impact = tuple(p for p in parts if getattr(p, "price_impact", True))
        self._charging = tuple(p for p in parts if getattr(p, "charges_commission", True))
        self.price_impact = bool(self._impact)
        self.charges_commission = bool(self._charging)
        self._zeros = zeros

    def __repr__(self) -> str:
        return f"CompositeCost({', '.join(map(repr, self.parts))})"

    def describe(self) -> str:
        """The parts' descriptions joined by `` + ``."""
        from rlbridge.costs import describe_costs

        return " + ".join(describe_costs(p) for p in self.parts)

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """Each part's ``fill_price`` applied to the previous part's output, in order."""
        for part in self._impact:
            price = part.fill_price(price, quantity, context)
        return price

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """The sum of the parts' commissions, each on the final fill ``price``."""
        charging = self._charging
        if not charging:
            return self._zeros(price)
        total = charging[0].commission(price, quantity, context)
        for part in charging[1:]:
            total = total + part.commission(price, quantity, context)
        return total


def _is_path(name: str) -> bool:
    return ":" in name


def _part_name(i: int, spec: Mapping[str, Any]) -> str:
    """The part's ``model``, checked: a built-in name or a well-formed ``module:Class``."""
    key = f"parts[{i}].model"
    if "model" not in spec:
        raise ConfigError("missing required key 'model' (the part's cost model)", key=key)
    name = spec["model"]
    if not isinstance(name, str):
        raise ConfigError(f"expected a string, got {name!r}", key=key)
    if _is_path(name):
        module, _, attr = name.partition(":")
        if not module or not attr:
            raise ConfigError(f"expected 'module:Class', got {name!r}", key=key)
        return name
    if name not in BUILTIN_COST_MODELS:
        close = difflib.get_close_matches(name, list(BUILTIN_COST_MODELS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown cost model {name!r}{hint}; valid part names: "
                          f"{', '.join(sorted(BUILTIN_COST_MODELS))}, or a 'module:Class' path",
                          key=key)
    return name


def _part_options(i: int, spec: Mapping[str, Any]) -> tuple[Any, Any]:
    """The part's factory and its options (its ``Config`` when it declares one)."""
    import types

    from rlbridge.options import build

    name = _part_name(i, spec)
    factory = _load(i, BUILTIN_COST_MODELS.get(name, name))
    options = {k: v for k, v in spec.items() if k != "model"}
    cls = getattr(factory, "Config", None)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return factory, build(cls, options, key=f"parts[{i}]")
    return factory, types.MappingProxyType(options)


def _load(i: int, spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # user code may fail to import in any way: report it, located
        raise PluginError(f"parts[{i}]: cannot load cost model {spec!r}: "
                          f"{type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise PluginError(f"parts[{i}]: cost model {spec!r} is not callable")
    return obj


@hookimpl
def register_cost_models(register: Any) -> None:
    register("composite", CompositeCost,
             description="several cost models at once: prices compose in order, "
                         "commissions add up")

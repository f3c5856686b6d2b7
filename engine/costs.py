"""Cost models on the host side: build the config's model, describe it, and the shared helpers.

A cost model (:class:`~rlbridge.interfaces.CostModel`) prices the fills of one decision for
all assets at once.  The simulator calls ``fill_price`` first and passes its result to
``commission``; both take and return ``[N]`` float64 arrays.  The RL environment calls them on
every step, so the built-ins are a handful of numpy operations on arrays of ``N`` entries: no
Python loop over assets, no pandas, no temporary that can be avoided.

Two optional class attributes let :class:`~rlbridge.plugins.costs.composite.CompositeCost`
skip the work a part does not do (both default to True when absent):

* ``price_impact = False``: ``fill_price`` returns its ``price`` argument unchanged;
* ``charges_commission = False``: ``commission`` is zero everywhere.

A model may return its ``price`` argument itself (no copy) from ``fill_price``: callers treat
every returned array as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, PluginError
from .interfaces import CostContext, CostModel

if TYPE_CHECKING:
    from .config import CostsConfig
    from .interfaces import Bars
    from .manager import RLBridgePluginManager


def create_cost_model(
    costs: CostsConfig | None,
    pm: RLBridgePluginManager | None = None,
    *,
    path: object = None,
) -> CostModel:
    """Build the cost model a config's ``[costs]`` table names.

    Args:
        costs: the config's ``costs`` table (``model`` and its ``options``); None means no
            costs at all (the ``zero`` model).
        pm: the plugin manager whose ``costs`` registry holds the model; by default
            ``make_plugin_manager(warn=False)``.
        path: the config file, named in error messages.

    Raises:
        UnknownNameError: ``costs.model`` is not registered (the message lists the valid names).
        ConfigError: an option is unknown, mistyped or out of range, located as
            ``[costs.<key>]``.
        PluginError: a ``module:Class`` model cannot be imported, or builds something that is
            not a cost model.
    """
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    registry = pm.registries["costs"]
    name, options = ("zero", {}) if costs is None else (costs.model, costs.options)
    try:
        model = registry.create(name, options, where="costs", path=path)
    except ConfigError as exc:
        if exc.path is not None or (exc.key or "").startswith("costs"):
            raise
        # raised by the model's constructor (a composite's part), not by its options
        raise relocate(exc, "costs", path) from None
    except PluginError as exc:
        if not str(exc).startswith("parts["):
            raise
        raise PluginError(f"costs.{exc}") from None  # a composite's part, located
    if not isinstance(model, CostModel):
        raise PluginError(f"costs: cost model {name!r} built an object of type "
                          f"{type(model).__name__}, which has no fill_price and commission "
                          "methods")
    return model


def describe_costs(model: object) -> str:
    """One line saying what ``model`` charges, for reports and the CLI.

    Uses the model's own ``describe()`` when it has one (every built-in does), else its
    class name.
    """
    describe = getattr(model, "describe", None)
    if callable(describe):
        return str(describe())
    return type(model).__name__


def relocate(exc: ConfigError, prefix: str, path: object = None) -> ConfigError:
    """``exc`` with its key moved under ``prefix``: ``[rate]`` becomes ``[costs.parts[0].rate]``."""
    where = f"[{exc.key}]" if exc.key else ""
    text = str(exc.args[0]) if exc.args else ""
    message = text[len(where) + 2:] if where and text.startswith(f"{where}: ") else text
    key = ".".join(part for part in (prefix, exc.key) if part) or None
    return ConfigError(message, path=path if path is not None else exc.path, key=key)


# ---------------------------------------------------------------------- hot helpers
_ONE = np.float64(1.0)  # a numpy scalar: ufuncs convert a Python float on every call

def apply_slippage(price: np.ndarray, quantity: np.ndarray, fraction: Any) -> np.ndarray:
    """``price * (1 + sign(quantity) * fraction)``: buys pay more, sells receive less.

    Args:
        price: ``[N]`` reference prices.
        quantity: ``[N]`` signed shares; where 0 the result is exactly ``price``.
        fraction: the non-negative slippage as a fraction of price, a number or ``[N]``.

    Returns:
        A new ``[N]`` array.
    """
    out = np.sign(quantity) * fraction  # a new float array, whatever quantity's dtype
    out += _ONE
    out *= price
    return out


def per_run_table(context: CostContext, key: Hashable,
                  compute: Callable[[Bars], np.ndarray]) -> np.ndarray:
    """A ``[T, N]`` table computed once per run from ``context.bars`` and kept on the context.

    A model reads row ``context.t`` of it on each call.  ``compute`` must be causal row by row:
    row ``t`` may use bars ``0..t`` only (the causality tests perturb later bars).

    Args:
        context: the run's cost context (one per simulator or environment).
        key: names the table among the context's cached ones; include every model option
            the table depends on.
        compute: builds the table from the run's bars.
    """
    return context.cached(key, compute)


def zeros(price: np.ndarray) -> np.ndarray:
    """A new ``[N]`` array of zero commissions shaped like ``price``."""
    return np.zeros(price.shape)

"""rlbridge: train a reinforcement-learning trading agent once, run it everywhere.

The public API, one import away::

    import rlbridge

    @rlbridge.hookimpl
    def register_strategies(register):
        register("my_rule", MyRule)

    config = rlbridge.load_config("agent.toml")
    bars = rlbridge.load_bars(config)

Importing this package is cheap: everything that needs numpy, pandas or SQLAlchemy is imported
on first use of the name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    DataError,
    DuplicateNameError,
    PluginError,
    RLBridgeError,
    StoreError,
    UnknownNameError,
)
from .hookspecs import hookimpl, hookspec
from .interfaces import FIELDS, BarContext, Bars, Fill, Order, Strategy

__version__ = "0.1.0"

# name -> module that defines it, imported on first attribute access
_LAZY = {
    "make_plugin_manager": "rlbridge.manager",
    "Registries": "rlbridge.registry",
    "load_config": "rlbridge.config",
    "config_from_mapping": "rlbridge.config",
    "Config": "rlbridge.config",
    "Store": "rlbridge.store",
    "open_store": "rlbridge.store",
    "load_bars": "rlbridge.data",
    "align": "rlbridge.data",
    "train": "rlbridge.training",
    "make_env": "rlbridge.training",
    "backtest": "rlbridge.backtesting",
}

__all__ = [
    "FIELDS",
    "BarContext",
    "Bars",
    "Config",
    "ConfigError",
    "DataError",
    "DuplicateNameError",
    "Fill",
    "Order",
    "PluginError",
    "RLBridgeError",
    "Registries",
    "Store",
    "StoreError",
    "Strategy",
    "UnknownNameError",
    "__version__",
    "align",
    "config_from_mapping",
    "hookimpl",
    "hookspec",
    "load_bars",
    "load_config",
    "make_env",
    "make_plugin_manager",
    "backtest",
    "train",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .backtesting import backtest
    from .config import Config, config_from_mapping, load_config
    from .data import align, load_bars
    from .manager import make_plugin_manager
    from .registry import Registries
    from .store import Store, open_store
    from .training import make_env, train

"""Reading a config mapping into :class:`~rlbridge.config.Config`: every check, and every
message naming the file, the dotted key and the valid choices.

:func:`rlbridge.config.load_config` and :func:`rlbridge.config.config_from_mapping` are the
entry points; this module is what they run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import (
    TABLES,
    BacktestConfig,
    Config,
    DataConfig,
    EnvConfig,
    FeaturesConfig,
    RiskConfig,
    StoreConfig,
    TrainConfig,
    TransformSpec,
    _Table,
    _unknown,
)
from .errors import ConfigError, UnknownNameError
from .options import build
from .registry import KINDS

if TYPE_CHECKING:
    from .manager import RLBridgePluginManager
    from .registry import Registry


class Loader:
    """Checks one mapping; knows the file (for messages and relative paths) and the registries."""

    def __init__(self, shown: str | None, path: Path | None,
                 pm: RLBridgePluginManager | None) -> None:
        self.shown = shown
        self.path = path
        self._pm = pm

    def error(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.shown, key=key)

    def registry(self, kind: str) -> Registry[Any]:
        if self._pm is None:
            from .manager import make_plugin_manager

            self._pm = make_plugin_manager(warn=False)
        return self._pm.registries[kind]

    # ------------------------------------------------------------------ tables
    def config(self, mapping: Mapping[str, Any]) -> Config:
        if not isinstance(mapping, Mapping):
            raise self.error(f"expected a table of tables, got {mapping!r}")
        tables: dict[str, Any] = {}
        for name, value in mapping.items():
            if name not in TABLES:
                raise self.error(_unknown("table", name, list(TABLES)), key=name)
            if not isinstance(value, Mapping):
                raise self.error(f"expected a table ([{name}]), got {value!r}", key=name)
            if name == "features":
                tables[name] = self.features(value)
            elif TABLES[name].name_key:
                tables[name] = self.plugin_table(name, TABLES[name], value)
            else:
                tables[name] = build(TABLES[name].cls, value, path=self.shown, key=name)
        for name, table in tables.items():
            self.check_values(name, table)
        if isinstance(tables.get("store"), StoreConfig) and tables["store"].url is not None:
            url = self.store_url(tables["store"].url)
            tables["store"] = StoreConfig(url=url)
        return Config(path=self.path, **tables)

    def plugin_table(self, name: str, spec: _Table, raw: Mapping[str, Any]) -> Any:
        core_keys = [f.name for f in dataclasses.fields(spec.cls) if f.name != spec.rest]
        core = {k: v for k, v in raw.items() if k in core_keys}
        extra = {k: v for k, v in raw.items() if k not in core_keys}
        try:
            table: Any = build(spec.cls, core, path=self.shown, key=name)
        except ConfigError as exc:
            self.raise_typo(name, extra, core_keys)  # 'modle' explains a missing 'model'
            raise exc from None
        assert spec.name_key and spec.kind and spec.rest
        plugin = getattr(table, spec.name_key)
        options = self.plugin_options(spec.kind, plugin, extra, core_keys,
                                      table=name, name_key=f"{name}.{spec.name_key}")
        return dataclasses.replace(table, **{spec.rest: options})

    def features(self, raw: Mapping[str, Any]) -> FeaturesConfig:
        core = {k: v for k, v in raw.items() if k != "transforms"}
        table = build(FeaturesConfig, core, path=self.shown, key="features")
        items = raw.get("transforms", [])
        if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
            raise self.error(f"expected a list of names or tables, got {items!r}",
                             key="features.transforms")
        specs = []
        for i, item in enumerate(items):
            key = f"features.transforms[{i}]"
            if isinstance(item, TransformSpec):  # from Python: check it like a table
                item = {"name": item.name, **item.options}
            if isinstance(item, str):
                name, extra, name_key = item, {}, key
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                name = item["name"]
                extra = {k: v for k, v in item.items() if k != "name"}
                name_key = f"{key}.name"
            elif isinstance(item, Mapping):
                self.raise_typo(key, {k: v for k, v in item.items() if k != "name"}, ["name"])
                got = f"got {item['name']!r}" if "name" in item else "it has none"
                raise self.error(f"a transform table needs a 'name' string; {got}",
                                 key=f"{key}.name")
            else:
                raise self.error(
                    f"expected a transform name or a table with a 'name' key, got {item!r}",
                    key=key)
            options = self.plugin_options("features", name, extra, ["name"],
                                          table=key, name_key=name_key)
            specs.append(TransformSpec(name, options))
        return dataclasses.replace(table, transforms=tuple(specs))

    # ------------------------------------------------------------------ plugins
    def plugin_options(self, kind: str, name: str, extra: Mapping[str, Any],
                       core_keys: list[str], *, table: str, name_key: str) -> Mapping[str, Any]:
        """Check ``name`` against its registry and ``extra`` against the plugin's options."""
        where = f"{self.shown}: [{name_key}]" if self.shown else f"[{name_key}]"
        if ":" in name:
            module, _, attr = name.partition(":")
            if not module or not attr:
                raise self.error(f"expected 'module:Class', got {name!r}", key=name_key)
            entry = None  # imported only when used: checking a config runs no user code
        else:
            registry = self.registry(kind)
            try:
                entry = registry.info(name, where=where)
            except UnknownNameError as exc:
                exc.path, exc.key = self.shown, name_key  # type: ignore[attr-defined]
                raise
        cls = entry.options if entry is not None else None
        if cls is None:
            # the plugin takes any key: only a near miss of a table key is surely a typo
            self.raise_typo(table, extra, core_keys, plugin=(kind, name))
            return types.MappingProxyType(dict(extra))
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        # an option named like a table key (a feed's own `start`) cannot be set from the table
        settable = [f for f in fields if f not in core_keys]
        foreign = self.foreign_options(kind, entry.name if entry else name, core_keys)
        for key in extra:
            if key not in fields and key not in foreign:
                raise self.error(_unknown("key", key, core_keys + settable, core_keys, settable,
                                          plugin=(entry.name if entry else name, kind)),
                                 key=f"{table}.{key}")
        own = {k: v for k, v in extra.items() if k in fields}
        built: Any = build(cls, own, path=self.shown, key=table)
        # keep what the file says (the plugin's own normalisation, e.g. "none" -> None, must
        # survive to_dict()), but with relative paths made absolute: relative to the file
        return types.MappingProxyType({
            k: getattr(built, k) if k in own and isinstance(getattr(built, k), Path) else v
            for k, v in extra.items()
        })

    def foreign_options(self, kind: str, name: str, core_keys: list[str]) -> set[str]:
        """Keys of other plugins of ``kind`` that may sit beside ``name``'s own options.

        Only brokers: one ``[broker]`` table keeps each broker's endpoints, and ``name`` (or
        ``rlbridge live --broker``) picks the broker; the others' keys are kept, unchecked,
        and the broker chosen at run time takes the keys it declares.
        """
        if kind != "brokers":
            return set()
        registry = self.registry(kind)
        keys: set[str] = set()
        for other in registry.names():
            info = registry.info(other)
            if info.name != name and info.options is not None:
                keys |= {f.name for f in dataclasses.fields(info.options) if f.init}
        return keys - set(core_keys)

    def raise_typo(self, table: str, extra: Mapping[str, Any], core_keys: list[str],
                   plugin: tuple[str, str] | None = None) -> None:
        """Raise for a key of ``extra`` that is a near miss of a table key (``strat``)."""
        for key in extra:
            close = difflib.get_close_matches(key, core_keys, n=1, cutoff=0.8)
            if close:
                tail = (f", and any option {KINDS[plugin[0]][1]} {plugin[1]!r} takes"
                        if plugin else "")
                raise self.error(
                    f"unknown key {key!r} (did you mean {close[0]!r}?); "
                    f"valid keys: {', '.join(core_keys)}{tail}",
                    key=f"{table}.{key}")

    # ------------------------------------------------------------------ values
    def check_values(self, name: str, table: Any) -> None:
        start, end = getattr(table, "start", None), getattr(table, "end", None)
        if start is not None and end is not None and start > end:
            raise self.error(f"{name}.start ({start}) is after {name}.end ({end})",
                             key=f"{name}.start")
        if isinstance(table, DataConfig) and table.symbols is not None:
            if not table.symbols:
                raise self.error("empty list; leave the key out to use every symbol of the feed",
                                 key="data.symbols")
            for i, symbol in enumerate(table.symbols):
                if not symbol.strip():
                    raise self.error("empty symbol", key=f"data.symbols[{i}]")
                if symbol in table.symbols[:i]:
                    raise self.error(f"{symbol!r} is listed twice", key=f"data.symbols[{i}]")
        positive = {
            FeaturesConfig: ("window",),
            EnvConfig: ("gross_cap", "trade_step", "episode_length"),
            TrainConfig: ("timesteps", "threads", "checkpoint_every", "n_envs"),
            BacktestConfig: ("cash",),
            RiskConfig: ("max_position_weight", "max_gross_exposure", "max_order_notional",
                         "max_orders_per_bar", "max_daily_loss", "max_drawdown"),
        }.get(type(table), ())
        for key in positive:
            value = getattr(table, key)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise self.error(f"must be a positive number, got {value!r}", key=f"{name}.{key}")
        if isinstance(table, RiskConfig):
            for key in ("max_daily_loss", "max_drawdown"):
                value = getattr(table, key)
                if value is not None and value > 1:
                    raise self.error(
                        f"is a fraction of portfolio value (0.1 = 10%), at most 1; got {value!r}",
                        key=f"risk.{key}")
        if isinstance(table, EnvConfig):
            for key in ("drawdown_penalty", "turnover_penalty", "rebalance_band"):
                value = getattr(table, key)
                if not (value >= 0 and math.isfinite(value)):
                    raise self.error(f"must be zero or positive, got {value!r}", key=f"env.{key}")
            if table.rebalance_band >= 1:
                raise self.error(f"is a fraction of the portfolio value (0.02 = 2%), below 1; "
                                 f"got {table.rebalance_band!r}", key="env.rebalance_band")
            if table.episode_length is not None and table.episode_length < 2:
                raise self.error(f"an episode needs at least 2 steps, got {table.episode_length}",
                                 key="env.episode_length")
        if isinstance(table, TrainConfig) and table.seed is not None \
                and not 0 <= table.seed < 2**32:
            raise self.error(f"must be between 0 and 2**32 - 1, got {table.seed}", key="train.seed")
        if isinstance(table, BacktestConfig) and table.benchmark is not None \
                and not table.benchmark.strip():
            raise self.error("empty symbol; leave the key out for no benchmark",
                             key="backtest.benchmark")

    def store_url(self, url: str) -> str:
        """Check the URL; make a relative SQLite file relative to the config file's folder."""
        if "://" not in url:
            raise self.error(
                f"expected an SQLAlchemy URL such as 'sqlite:///rlbridge.db' or "
                f"'postgresql://host/db', got {url!r}", key="store.url")
        found = re.fullmatch(r"(sqlite(?:\+\w+)?):///([^?]*)(\?.*)?", url)
        if found is None or self.path is None:
            return url
        scheme, file, query = found[1], found[2], found[3] or ""
        if not file or file.startswith((":memory:", "file:")) or Path(file).is_absolute():
            return url
        return f"{scheme}:///{(self.path.parent / file).as_posix()}{query}"

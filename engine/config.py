"""One TOML file per agent, read into frozen dataclasses.

Each table of the file becomes one dataclass (``[data]`` is :class:`DataConfig`, ...).  A table
that names a plugin (``feed``, ``model``, ``algo``, ``name``, ``engine``) keeps every other key as
that plugin's options, beside the name, and those options are checked against the plugin's own
``Config`` dataclass when it declares one.  Every mistake (syntax, unknown table or key, wrong
type, unknown plugin name, start after end) is a :class:`~rlbridge.errors.ConfigError` or an
:class:`~rlbridge.errors.UnknownNameError` whose message names the file, the dotted key and the
valid choices, with the closest match::

    agent.toml: [data.date_fromat]: unknown key 'date_fromat' (did you mean 'date_format'?); ...

``docs/config.md`` is the reference of every key; ``tests/test_docs_config.py`` keeps it in step
with the dataclasses below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import math
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, UnknownNameError
from .options import build
from .registry import KINDS

if TYPE_CHECKING:
    from .manager import RLBridgePluginManager
    from .registry import Registry


def _no_options() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which feed reads the bars, for which symbols and dates."""

    feed: str = "csv"
    symbols: tuple[str, ...] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class TransformSpec:
    """One entry of ``[features] transforms``: a transform name and its options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class FeaturesConfig:
    """``[features]``: the observation window and the feature transforms, in order."""

    window: int = 60
    transforms: tuple[TransformSpec, ...] = field(
        default=(), metadata={"type": "a list of names or tables"})


@dataclass(frozen=True)
class EnvConfig:
    """``[env]``: how the training environment turns actions into trades and rewards."""

    actions: Literal["softmax", "long_short", "discrete"] = "softmax"
    gross_cap: float = 1.0
    trade_step: float = 0.1
    rebalance_band: float = 0.0
    drawdown_penalty: float = 0.0
    turnover_penalty: float = 0.0
    random_start: bool = False
    episode_length: int | None = None
    fractional: bool = True
    fill_at: Literal["open", "close"] = "open"


@dataclass(frozen=True)
class CostsConfig:
    """``[costs]``: the cost model and its options."""

    model: str
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class PolicyConfig:
    """``[policy]``: the RL algorithm and its hyperparameters."""

    algo: str
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """``[train]``: the in-sample period and the training budget."""

    start: dt.date | None = None
    end: dt.date | None = None
    timesteps: int
    seed: int | None = None
    threads: int = 1
    checkpoint_every: int | None = None
    n_envs: int = 1
    output: Path | None = None


@dataclass(frozen=True)
class StrategyConfig:
    """``[strategy]``: the strategy and its parameters (``ctx.params``)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class BacktestConfig:
    """``[backtest]``: the engine, starting cash, out-of-sample period and benchmark."""

    engine: str = "native"
    cash: float = 100_000.0
    start: dt.date | None = None
    end: dt.date | None = None
    benchmark: str | None = None
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class WalkforwardConfig:
    """``[walkforward]``: folds of a train window followed by a test window.

    Lengths are calendar periods: a number and a unit, ``Y`` (years), ``M`` (months), ``W``
    (weeks) or ``D`` (days), as in ``"5Y"`` or ``"6M"``.
    """

    train: str = "5Y"
    test: str = "1Y"
    step: str | None = None
    gap: str = "0D"
    mode: Literal["rolling", "expanding"] = "rolling"
    start: dt.date | None = None
    end: dt.date | None = None

    def __post_init__(self) -> None:
        from .walkforward import parse_period

        for key in ("train", "test", "step", "gap"):
            value = getattr(self, key)
            if value is not None:
                parse_period(value, key=key, allow_zero=key == "gap")


@dataclass(frozen=True)
class BrokerConfig:
    """``[broker]``: where live orders go, and the broker's endpoints."""

    name: str = "sim"
    options: Mapping[str, Any] = field(default_factory=_no_options)


@dataclass(frozen=True)
class RiskConfig:
    """``[risk]``: pre-trade limits and the kill switch, identical in every engine and live.

    Every key is unset (no check) by default.  The limits are applied by the built-in
    ``check_order`` plugin (:mod:`rlbridge.plugins.risk.limits`); ``max_daily_loss`` and
    ``max_drawdown`` by the kill switch (:func:`rlbridge.risk.guard`).  ``calendar`` (unset:
    ``XNYS``, see :attr:`session_calendar`) gives the regular sessions of ``trading_hours`` and
    the sessions of ``max_daily_loss`` on intraday bars.
    """

    max_position_weight: float | None = None
    max_gross_exposure: float | None = None
    max_order_notional: float | None = None
    max_orders_per_bar: int | None = None
    max_daily_loss: float | None = None
    max_drawdown: float | None = None
    trading_hours: bool | None = None
    calendar: str | None = None

    def __post_init__(self) -> None:
        name = self.calendar
        if name is None or name == "XNYS":  # the default needs no exchange_calendars import
            return
        if name.strip().lower() in ("", "none"):
            raise ConfigError("the risk checks need an exchange calendar (XNYS, XLON, 24/7, ...) "
                              "for trading hours and sessions; leave the key out for XNYS",
                              key="calendar")
        from .data import calendar_names

        names = calendar_names()
        if name not in names:
            close = difflib.get_close_matches(name.upper(), names, n=5, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise ConfigError(f"unknown exchange calendar {name!r}{hint} (any "
                              "exchange_calendars name such as XNYS, XNAS, XLON, 24/7)",
                              key="calendar")

    @property
    def session_calendar(self) -> str:
        """The exchange calendar the risk checks use: ``calendar``, or ``XNYS`` when unset."""
        return self.calendar or "XNYS"


#: the kinds of run (:data:`rlbridge.runs.KINDS`; not imported here: it loads SQLAlchemy)
_RUN_KINDS = ("train", "backtest", "walkforward", "live")


@dataclass(frozen=True)
class NotifyConfig:
    """``[notify]``: the e-mail summary of each run (:mod:`rlbridge.plugins.notify.email`).

    No mail is sent while ``email_to`` is empty.  The SMTP password is never in the file: it is
    read from the environment variable ``password_env`` names when a mail is sent, and a
    ``password`` key is an error that says so (the field exists only to give that message).
    """

    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    starttls: bool = True
    ssl: bool = False
    password_env: str = "RLBRIDGE_SMTP_PASSWORD"
    timeout: float = 10.0
    on: tuple[str, ...] = ("live",)
    subject: str = "[rlbridge]"
    password: str | None = field(default=None, repr=False, compare=False,
                                 metadata={"type": "never (an error)"})

    def __post_init__(self) -> None:
        if self.password is not None:  # never echo the value: it is a password
            raise ConfigError("the SMTP password is never written in the config file: put it "
                              f"in the environment variable {self.password_env} (its name is "
                              "[notify] password_env)", key="password")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.password_env):
            raise ConfigError("must be the name of an environment variable (letters, digits "
                              "and _), not the password itself", key="password_env")
        for i, address in enumerate(self.email_to):
            if not _is_address(address):
                raise ConfigError(f"expected an e-mail address, got {address!r}",
                                  key=f"email_to[{i}]")
        if self.email_from is not None and not _is_address(self.email_from):
            raise ConfigError(f"expected an e-mail address, got {self.email_from!r}",
                              key="email_from")
        if not 0 < self.smtp_port < 65536:
            raise ConfigError(f"must be a TCP port, 1 to 65535, got {self.smtp_port}",
                              key="smtp_port")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigError(f"must be a positive number of seconds, got {self.timeout!r}",
                              key="timeout")
        for i, kind in enumerate(self.on):
            if kind not in _RUN_KINDS:
                raise ConfigError(_unknown("run kind", kind, list(_RUN_KINDS)), key=f"on[{i}]")
        if self.email_to:
            for key in ("smtp_host", "email_from"):
                if not getattr(self, key):
                    raise ConfigError(f"needed to send the summary to {', '.join(self.email_to)}",
                                      key=key)


def _is_address(text: str) -> bool:
    """A plain ``user@domain`` address (no display name, no spaces or commas)."""
    return re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", text) is not None


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: the SQLAlchemy URL of the store."""

    url: str | None = None


@dataclass(frozen=True)
class _Table:
    cls: type
    name_key: str | None = None  # the key naming a plugin
    kind: str | None = None  # its registry
    rest: str | None = None  # the field that keeps the other keys


TABLES: Mapping[str, _Table] = types.MappingProxyType({
    "data": _Table(DataConfig, "feed", "feeds", "options"),
    "features": _Table(FeaturesConfig),
    "env": _Table(EnvConfig),
    "costs": _Table(CostsConfig, "model", "costs", "options"),
    "policy": _Table(PolicyConfig, "algo", "policies", "options"),
    "train": _Table(TrainConfig),
    "strategy": _Table(StrategyConfig, "name", "strategies", "params"),
    "backtest": _Table(BacktestConfig, "engine", "engines", "options"),
    "walkforward": _Table(WalkforwardConfig),
    "broker": _Table(BrokerConfig, "name", "brokers", "options"),
    "risk": _Table(RiskConfig),
    "notify": _Table(NotifyConfig),
    "store": _Table(StoreConfig),
})
"""Every table a config file may hold, in the order they are documented and written."""


@dataclass(frozen=True)
class Config:
    """One agent's configuration.  Build it with :func:`load_config` or :func:`config_from_mapping`.

    A table absent from the file is ``None``, except ``risk`` and ``store``, which default to
    empty instances (no limits; the store chosen by ``--db`` / ``RLBRIDGE_DB`` / the default).
    """

    path: Path | None = None
    data: DataConfig | None = None
    features: FeaturesConfig | None = None
    env: EnvConfig | None = None
    costs: CostsConfig | None = None
    policy: PolicyConfig | None = None
    train: TrainConfig | None = None
    strategy: StrategyConfig | None = None
    backtest: BacktestConfig | None = None
    walkforward: WalkforwardConfig | None = None
    broker: BrokerConfig | None = None
    risk: RiskConfig = field(default_factory=RiskConfig)
    notify: NotifyConfig | None = None
    store: StoreConfig = field(default_factory=StoreConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON data, every default filled in.

        Tables absent from the file and keys whose value is unset (``None``) are left out, so
        the result has the file's shape: ``config_from_mapping(config.to_dict())`` gives an
        equal config.  Dates are ``YYYY-MM-DD`` strings; paths are absolute.
        """
        return {name: _plain(table, as_json=True) for name, table in self._tables()}

    def dump(self) -> str:
        """The configuration as TOML text, every default filled in (``rlbridge config show``).

        Loading the text back gives an equal config.
        """
        lines = [f"# rlbridge config{f' read from {self.path}' if self.path else ''}"]
        for name, table in self._tables():
            lines += ["", f"[{name}]"]
            for key, value in _plain(table, as_json=False).items():
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.dump()

    def _tables(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in TABLES if getattr(self, name) is not None]


def require(config: Config, what: str, *tables: str) -> None:
    """Raise :class:`ConfigError` naming the first of ``tables`` the config lacks.

    ``what`` opens the message: ``require(config, "a backtest needs", "data")`` gives
    ``a backtest needs a [data] table``.
    """
    for table in tables:
        if getattr(config, table) is None:
            raise ConfigError(f"{what} a [{table}] table", path=config.path, key=table)


def load_config(path: str | Path, pm: RLBridgePluginManager | None = None) -> Config:
    """Read and check the TOML config file at ``path``.

    Args:
        path: the file.  Relative paths inside it (plugin options typed as paths, a SQLite
            store URL) are relative to the file's folder.
        pm: the plugin manager whose registries hold the plugin names; by default a new
            ``make_plugin_manager(warn=False)``.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid TOML (the message gives
            line and column), or holds an unknown table or key, a wrong type or a bad value.
        UnknownNameError: a plugin name is not registered (the message names file and key).
    """
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such config file", path=shown) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a config file", path=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", path=shown) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"line {line}: not UTF-8 text (TOML files are UTF-8)",
                          path=shown) from None
    try:
        mapping = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(str(exc), text), path=shown) from None
    return _Loader(shown, Path(path).resolve(), pm).config(mapping)


def config_from_mapping(mapping: Mapping[str, Any], *, path: str | Path | None = None,
                        pm: RLBridgePluginManager | None = None) -> Config:
    """Check a mapping shaped like a config file (for notebooks and tests).

    Args:
        mapping: ``{"data": {"feed": "csv", ...}, ...}``, as ``tomllib`` would return it;
            dates may be ``datetime.date`` objects or ``YYYY-MM-DD`` strings.
        path: where relative paths are relative to (its folder), and the file named in errors.
        pm: as for :func:`load_config`.

    Raises:
        ConfigError, UnknownNameError: as for :func:`load_config`.
    """
    shown = None if path is None else str(path)
    return _Loader(shown, None if path is None else Path(path).resolve(), pm).config(mapping)


def _syntax_message(message: str, text: str) -> str:
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found:
        line, column = int(found[1]), int(found[2])
        what = message[: found.start()]
        source = text.splitlines()[line - 1].strip() if line <= len(text.splitlines()) else ""
        shown = f": {source}" if source else ""
        return f"line {line}, column {column}: invalid TOML: {what}{shown}"
    found = re.search(r"\s*\(at end of document\)$", message)
    if found:
        lines = max(1, len(text.splitlines()))
        return f"line {lines} (end of file): invalid TOML: {message[: found.start()]}"
    return f"invalid TOML: {message}"


class _Loader:
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


def _unknown(what: str, bad: str, valid: list[str], core: list[str] | None = None,
             options: list[str] | None = None, plugin: tuple[str, str] | None = None) -> str:
    close = difflib.get_close_matches(bad, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if plugin is None:
        return f"unknown {what} {bad!r}{hint}; valid {what}s: {', '.join(valid)}"
    name, kind = plugin
    return (f"unknown {what} {bad!r}{hint}; valid {what}s: {', '.join(core or [])}, "
            f"and the options of {KINDS[kind][1]} {name!r}: {', '.join(options or []) or '(none)'}")


# ---------------------------------------------------------------------- writing
def _plain(value: Any, *, as_json: bool) -> Any:
    """``value`` as TOML-shaped data: tables as dicts with plugin options beside the name."""
    if isinstance(value, TransformSpec):
        if not value.options:
            return value.name
        return {"name": value.name, **_plain(value.options, as_json=as_json)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        rest: Mapping[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if isinstance(item, Mapping) and f.name in ("options", "params"):
                rest = item
            elif item is not None:
                out[f.name] = _plain(item, as_json=as_json)
        out.update(_plain(rest, as_json=as_json))
        return out
    if isinstance(value, Mapping):
        return {str(k): _plain(v, as_json=as_json) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v, as_json=as_json) for v in value]
    if isinstance(value, Path):
        return str(value)
    if as_json and isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"cannot write {value!r} as TOML")

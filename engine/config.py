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

from .errors import ConfigError
from .registry import KINDS

if TYPE_CHECKING:
    from .manager import RLBridgePluginManager


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
    from .config_loader import Loader

    return Loader(shown, Path(path).resolve(), pm).config(mapping)


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
    from .config_loader import Loader

    shown = None if path is None else str(path)
    return Loader(shown, None if path is None else Path(path).resolve(), pm).config(mapping)


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

"""Name -> factory registries, one per plugin kind, built from a plugin manager.

Plugins register *factories*, never instances, so loading a plugin is cheap and construction
(with its heavy imports) happens only when a run asks for that name.  Each registry is read-only
once built; it knows which plugin registered each name, refuses duplicates naming both plugins,
lists the valid names (and the closest one) for an unknown name, and accepts a ``module:Class``
import path wherever a name is accepted.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import DuplicateNameError, PluginError, RLBridgeError, UnknownNameError

if TYPE_CHECKING:
    from .manager import RLBridgePluginManager

T = TypeVar("T")

#: kind (as the CLI spells it) -> (registration hook, singular noun used in messages)
KINDS: Mapping[str, tuple[str, str]] = types.MappingProxyType(
    {
        "feeds": ("register_feeds", "feed"),
        "features": ("register_features", "feature"),
        "policies": ("register_policies", "policy"),
        "costs": ("register_cost_models", "cost model"),
        "brokers": ("register_brokers", "broker"),
        "engines": ("register_engines", "engine"),
        "strategies": ("register_strategies", "strategy"),
    }
)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name."""

    name: str
    factory: Callable[..., T]
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def options(self) -> type | None:
        """The frozen dataclass of the factory's options (its ``Config`` attribute), if any."""
        cfg = getattr(self.factory, "Config", None)
        return cfg if isinstance(cfg, type) and dataclasses.is_dataclass(cfg) else None


class Registry(Generic[T]):
    """The named factories of one plugin kind."""

    def __init__(self, kind: str, noun: str) -> None:
        self.kind = kind
        self.noun = noun
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._frozen = False

    # ------------------------------------------------------------------ building
    def add(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        plugin: str,
        description: str = "",
        aliases: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Register ``factory`` under ``name`` (and ``aliases``) on behalf of ``plugin``."""
        if self._frozen:
            raise RLBridgeError(f"the {self.kind} registry is read-only once built")
        if not isinstance(name, str) or not name or ":" in name:
            raise PluginError(f"plugin {plugin!r} registered an invalid {self.noun} name {name!r}")
        if not callable(factory):
            raise PluginError(
                f"plugin {plugin!r} registered {self.noun} {name!r} with a non-callable factory"
            )
        aliases = tuple(aliases)
        for key in (name, *aliases):
            owner = self._owner(key)
            if owner is not None:
                raise DuplicateNameError(self.noun, key, owner, plugin)
        self._entries[name] = Entry(name, factory, plugin, description, aliases)
        for alias in aliases:
            self._aliases[alias] = name

    def _owner(self, key: str) -> str | None:
        if key in self._entries:
            return self._entries[key].plugin
        if key in self._aliases:
            return self._entries[self._aliases[key]].plugin
        return None

    def freeze(self) -> None:
        self._frozen = True

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """The registered names (not aliases), sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def info(self, name: str, *, where: str = "") -> Entry[T]:
        """The entry for ``name``, an alias, or a ``module:Class`` path.

        Raises:
            UnknownNameError: listing the valid names and the closest match.
            PluginError: when a ``module:Class`` path cannot be imported.
        """
        if name in self._entries:
            return self._entries[name]
        if name in self._aliases:
            return self._entries[self._aliases[name]]
        if isinstance(name, str) and ":" in name:
            return Entry(name, self._import(name, where), plugin=name.partition(":")[0])
        valid = list(self._entries) + list(self._aliases)
        raise UnknownNameError(self.noun, str(name), valid, where=where)

    def get(self, name: str, *, where: str = "") -> Callable[..., T]:
        """The factory for ``name``."""
        return self.info(name, where=where).factory

    def create(self, name: str, options: Mapping[str, Any] | None = None, *, where: str = "",
               path: object = None) -> T:
        """Build the thing registered as ``name``.

        ``options`` are the plugin-specific keys (the config table minus the name key).  When
        the factory declares a ``Config`` dataclass they are checked and converted into it, so
        an unknown or mistyped key is a :class:`~rlbridge.errors.ConfigError` naming ``path``
        and ``where``; otherwise the factory receives them as a read-only mapping.
        """
        from .options import build

        entry = self.info(name, where=where)
        cls = entry.options
        config: Any = (
            build(cls, options, path=path, key=where) if cls is not None
            else types.MappingProxyType(dict(options or {}))
        )
        return entry.factory(config)

    def _import(self, spec: str, where: str) -> Callable[..., T]:
        module_name, _, attr = spec.partition(":")
        prefix = f"{where}: " if where else ""
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # any import-time failure of user code is reported, not raised raw
            raise PluginError(
                f"{prefix}cannot load {self.noun} {spec!r}: {type(exc).__name__}: {exc}"
            ) from None
        if not callable(obj):
            raise PluginError(f"{prefix}{self.noun} {spec!r} is not callable")
        return obj


class Registries:
    """All registries of one plugin manager.  Build with :meth:`from_manager`."""

    def __init__(self, registries: Mapping[str, Registry[Any]]) -> None:
        self._by_kind = dict(registries)

    def __getitem__(self, kind: str) -> Registry[Any]:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise UnknownNameError("plugin kind", kind, KINDS) from None

    def __getattr__(self, kind: str) -> Registry[Any]:
        if kind.startswith("_"):
            raise AttributeError(kind)
        try:
            return self._by_kind[kind]
        except KeyError:
            raise AttributeError(kind) from None

    def kinds(self) -> list[str]:
        return list(self._by_kind)

    @classmethod
    def from_manager(cls, pm: RLBridgePluginManager) -> Registries:
        """Call every registration hook of ``pm`` once per plugin, recording who registered what.

        Each implementation is called on its own with a ``register`` bound to its plugin name,
        so duplicates can name both plugins.  A plugin whose registration hook raises is
        reported as a load failure and its registrations are discarded, unless the manager is
        strict, in which case the error propagates.
        """
        registries: dict[str, Registry[Any]] = {}
        for kind, (hook_name, noun) in KINDS.items():
            registry: Registry[Any] = Registry(kind, noun)
            hook = getattr(pm.hook, hook_name)
            # get_hookimpls() is in registration order: a duplicate blames the later plugin
            for impl in hook.get_hookimpls():
                staged: list[tuple[str, Any, dict[str, Any]]] = []

                def register(name: str, factory: Any, *, description: str = "",
                             aliases: tuple[str, ...] | list[str] = (),
                             _staged: list[Any] = staged) -> None:
                    extra = {"description": description, "aliases": aliases}
                    _staged.append((name, factory, extra))

                try:
                    kwargs = {"register": register} if "register" in impl.argnames else {}
                    impl.function(**kwargs)
                except Exception as exc:
                    pm.record_failure(impl.plugin_name, exc, stage=hook_name)
                    continue
                try:
                    for name, factory, extra in staged:
                        registry.add(name, factory, plugin=impl.plugin_name, **extra)
                except DuplicateNameError:
                    raise
                except PluginError as exc:
                    pm.record_failure(impl.plugin_name, exc, stage=hook_name)
            registry.freeze()
            registries[kind] = registry
        return cls(registries)

"""Build the plugin manager: built-ins, then entry points, then ``--plugin`` modules.

A plugin that fails to import or register is reported on stderr, kept for ``rlbridge plugins``
and skipped; it never stops rlbridge from starting, unless strict mode is on
(``--strict-plugins`` or ``RLBRIDGE_STRICT_PLUGINS=1``), where the first failure is raised.

Environment variables:

* ``RLBRIDGE_DISABLE_PLUGINS=a,b``: block plugins by name (entry point name, or a built-in's
  dotted module name).
* ``RLBRIDGE_LOAD_PLUGINS=a,b``: load only these entry points (by entry point or distribution
  name); an empty value loads none.
* ``RLBRIDGE_STRICT_PLUGINS=1``: raise on the first plugin failure.
* ``RLBRIDGE_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import PluginError

if TYPE_CHECKING:
    from .registry import Registries

PROJECT = "rlbridge"
ENTRY_POINT_GROUP = "rlbridge"


@dataclass(frozen=True)
class PluginSource:
    """Where a loaded plugin came from."""

    name: str
    origin: str  # "builtin", "entry point" or "--plugin"
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and why."""

    name: str
    origin: str
    stage: str
    error: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        dist = f" from {self.distribution} {self.version}" if self.distribution else ""
        return f"plugin {self.name!r} ({self.origin}{dist}) failed at {self.stage}: {self.error}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _describe(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RLBridgePluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers where each plugin came from and what failed."""

    def __init__(self, *, strict: bool = False, warn: bool = True) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.strict = strict
        self.warn = warn
        self.sources: dict[str, PluginSource] = {}
        self.failures: list[PluginFailure] = []
        self._registries: Registries | None = None

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin`` (pluggy's ``register``) and drop the cached registries."""
        self._registries = None
        return super().register(plugin, name)

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        """Unregister a plugin (pluggy's ``unregister``) and drop the cached registries."""
        self._registries = None
        return super().unregister(plugin, name)

    def source(self, name: str) -> PluginSource:
        """Where plugin ``name`` came from (``registered`` after a bare ``register``)."""
        return self.sources.get(name) or PluginSource(name, "registered")

    # ------------------------------------------------------------------ bookkeeping
    def record_failure(self, name: str, exc: BaseException, *, stage: str,
                       source: PluginSource | None = None) -> None:
        """Keep (and report) a failure; raise it instead in strict mode.

        A plugin that fails after part of its registration is unregistered, so nothing half
        loaded stays behind.
        """
        source = source or self.sources.get(name) or PluginSource(name, "unknown")
        failure = PluginFailure(name, source.origin, stage, _describe(exc),
                                source.distribution, source.version)
        if self.has_plugin(name):
            self.unregister(name=name)
        self.sources.pop(name, None)
        self.failures.append(failure)
        self._registries = None
        if self.strict:
            raise PluginError(f"{failure} (strict plugin loading is on)") from exc
        if self.warn:
            print(f"rlbridge: warning: {failure}; skipped", file=sys.stderr)

    def add_plugin(self, plugin: Any, source: PluginSource) -> None:
        """Register ``plugin`` under ``source.name``, recording a failure if pluggy refuses it."""
        if self.is_blocked(source.name) or self.has_plugin(source.name):
            return
        try:
            self.register(plugin, name=source.name)
        except Exception as exc:
            self.record_failure(source.name, exc, stage="register", source=source)
            return
        self.sources[source.name] = source
        self._registries = None

    def drop_unknown_hooks(self) -> None:
        """Unregister plugins that implement a hook rlbridge does not define (a misspelling)."""
        for hook_name in list(vars(self.hook)):
            caller = getattr(self.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.opts.get("optionalhook"):
                    continue
                exc = PluginError(f"implements unknown hook {hook_name!r}")
                self.record_failure(impl.plugin_name, exc, stage="validate")
        self.check_pending()

    @property
    def registries(self) -> Registries:
        """The registries of every plugin kind, built on first use and cached on this manager."""
        from .registry import Registries

        while self._registries is None:
            failures = len(self.failures)
            registries = Registries.from_manager(self)
            # a plugin that failed half-way was unregistered: build again without it
            if len(self.failures) == failures:
                self._registries = registries
        return self._registries

    # ------------------------------------------------------------------ loading
    def load_builtins(self) -> None:
        from rlbridge.plugins import BUILTIN_PLUGINS

        for dotted in BUILTIN_PLUGINS:
            self.load_module(dotted, PluginSource(dotted, "builtin"))

    def load_module(self, spec: str, source: PluginSource) -> None:
        """Import ``spec`` (a dotted module or a ``.py`` path) and register it."""
        if self.is_blocked(source.name) or self.has_plugin(source.name):
            return
        try:
            module = _import_module_or_path(spec)
        except Exception as exc:
            self.record_failure(source.name, exc, stage="import", source=source)
            return
        self.add_plugin(module, source)

    def load_entrypoints(self, only: Iterable[str] | None = None) -> None:
        """Register every ``rlbridge`` entry point, each on its own so one failure stops none."""
        wanted = None if only is None else set(only)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else None
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            source = PluginSource(ep.name, "entry point", dist_name,
                                  dist.version if dist is not None else None)
            try:
                plugin = ep.load()
            except Exception as exc:
                self.record_failure(ep.name, exc, stage="import", source=source)
                continue
            self.add_plugin(plugin, source)


def _import_module_or_path(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no plugin file {spec}")
        module_name = f"rlbridge_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    return importlib.import_module(spec)


def make_plugin_manager(
    *,
    builtins: bool = True,
    entrypoints: bool = True,
    plugins: Iterable[str] = (),
    strict: bool | None = None,
    disabled: Iterable[str] | None = None,
    warn: bool = True,
) -> RLBridgePluginManager:
    """Create a plugin manager with every hook of :mod:`rlbridge.hookspecs`.

    Registration order: built-ins (``rlbridge.plugins.BUILTIN_PLUGINS``), then entry points of
    group ``rlbridge``, then ``plugins`` (module names or ``.py`` paths, as given with
    ``--plugin``).  Nothing depends on that order: pluggy calls implementations last-in,
    first-out, and every rlbridge hook gives the same answer in any order.

    Args:
        builtins: register the built-in plugins.
        entrypoints: register installed entry points (``RLBRIDGE_LOAD_PLUGINS`` narrows them).
        plugins: extra modules to register, as with ``--plugin``.
        strict: raise on the first failure; defaults to ``RLBRIDGE_STRICT_PLUGINS``.
        disabled: plugin names to block; defaults to ``RLBRIDGE_DISABLE_PLUGINS``.
        warn: print each failure to stderr.

    Raises:
        PluginError: only in strict mode, for the first plugin that fails.
    """
    if strict is None:
        strict = _env_flag("RLBRIDGE_STRICT_PLUGINS")
    pm = RLBridgePluginManager(strict=strict, warn=warn)
    if disabled is None:
        disabled = _env_list("RLBRIDGE_DISABLE_PLUGINS") or []
    for name in disabled:
        pm.set_blocked(name)
    if _env_flag("RLBRIDGE_TRACE_PLUGINS"):
        _trace(pm)
    if builtins:
        pm.load_builtins()
    if entrypoints:
        pm.load_entrypoints(_env_list("RLBRIDGE_LOAD_PLUGINS"))
    for spec in plugins:
        pm.load_module(spec, PluginSource(spec, "--plugin"))
    pm.drop_unknown_hooks()
    return pm


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(impl.plugin_name for impl in impls)
        print(f"rlbridge: trace: {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: Sequence[Any],
              kwargs: Mapping[str, Any]) -> None:
        return None

    pm.add_hookcall_monitoring(before, after)

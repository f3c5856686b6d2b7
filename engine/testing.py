"""pytest fixtures and helpers for rlbridge plugin authors.

rlbridge installs this module as a ``pytest11`` plugin, so any project with rlbridge installed
gets these fixtures without a conftest:

* ``rlbridge_pm``: a fresh plugin manager per test with the built-ins only (no installed entry
  points) and strict loading, so a test registers exactly the plugins it wants and a broken one
  fails the test instead of vanishing: ``register_plugin(rlbridge_pm, my_plugin)``.
* ``rlbridge_db_url``: the SQLAlchemy URL of a new SQLite file in ``tmp_path``.
* ``rlbridge_store``: a :class:`~rlbridge.store.Store` on that file, empty, closed after the test.
* ``sample_bars``: SPY, AGG and XLK from the bundled sample data, 2019-01-02 .. 2020-12-31
  (505 sessions, adjusted), as read-only :class:`~rlbridge.Bars` shared by the whole session.
* ``rlbridge_cli``: runs the ``rlbridge`` command line in-process with the plugins of
  ``rlbridge_pm`` against ``rlbridge_store``: ``result = rlbridge_cli("list", "feeds")``.

and one helper, :func:`register_plugin`, which registers a plugin the way rlbridge loads one
(recorded for ``rlbridge plugins``, misspelt hooks refused, registration hooks run at once).

Importing this module is cheap (pytest imports it at start-up in every project that has
rlbridge installed); numpy, pandas and SQLAlchemy are imported inside the fixtures.  Disable it
with ``pytest -p no:rlbridge``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from click.testing import Result

    from .interfaces import Bars
    from .manager import RLBridgePluginManager
    from .store import Store

__all__ = [
    "SAMPLE_END",
    "SAMPLE_START",
    "SAMPLE_SYMBOLS",
    "register_plugin",
    "rlbridge_cli",
    "rlbridge_db_url",
    "rlbridge_pm",
    "rlbridge_store",
    "sample_bars",
]

#: What ``sample_bars`` holds: these symbols, from the first session on or after
#: ``SAMPLE_START`` to the last on or before ``SAMPLE_END``.
SAMPLE_SYMBOLS: tuple[str, ...] = ("SPY", "AGG", "XLK")
SAMPLE_START = "2019-01-01"
SAMPLE_END = "2020-12-31"


def register_plugin(pm: RLBridgePluginManager, plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` on ``pm`` as rlbridge registers a loaded plugin, failing loudly.

    Unlike a bare ``pm.register(plugin)``, the plugin is recorded with origin ``"test"`` (so
    ``rlbridge plugins`` lists it), a misspelt hook name is refused, and every registration
    hook runs at once, so a hook that raises or a name registered twice fails here, in the
    test, instead of leaving the plugin silently missing.  On failure ``pm`` is left as it was.

    Args:
        pm: the plugin manager, usually the ``rlbridge_pm`` fixture.
        plugin: a module, class or instance with ``@rlbridge.hookimpl`` functions.
        name: the plugin name; defaults to the module's ``__name__`` or the class name.

    Returns:
        The name the plugin is registered under.

    Raises:
        PluginError: the name is taken or blocked, pluggy refuses the plugin, it implements a
            hook rlbridge does not define, or one of its registration hooks raises.
        DuplicateNameError: it registers a name another plugin already registered.
    """
    from .errors import PluginError
    from .manager import PluginSource

    if name is None:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
    if pm.has_plugin(name) or pm.is_blocked(name):
        raise PluginError(f"a plugin named {name!r} is already registered or blocked; "
                          "pass another name=")
    strict = pm.strict
    pm.strict = True  # a failure raises instead of being recorded and skipped
    try:
        pm.add_plugin(plugin, PluginSource(name, "test"))
        pm.drop_unknown_hooks()
        pm.registries  # noqa: B018  (runs every registration hook now)
    except BaseException:
        if pm.has_plugin(name):
            pm.unregister(name=name)
        pm.sources.pop(name, None)
        raise
    finally:
        pm.strict = strict
    return name


@pytest.fixture
def rlbridge_pm() -> RLBridgePluginManager:
    """A fresh plugin manager: built-ins only, strict, whatever the shell sets.

    No installed entry point is loaded (a test sees the plugins it registers and nothing
    else), ``RLBRIDGE_DISABLE_PLUGINS``, ``RLBRIDGE_LOAD_PLUGINS`` and
    ``RLBRIDGE_STRICT_PLUGINS`` are ignored, and loading is strict: a plugin that fails raises
    :class:`~rlbridge.errors.PluginError` in the test.  Set ``rlbridge_pm.strict = False``
    to test how failures are reported instead.
    """
    from .manager import make_plugin_manager

    return make_plugin_manager(builtins=True, entrypoints=False, strict=True, disabled=(),
                               warn=False)


@pytest.fixture
def rlbridge_db_url(tmp_path: Path) -> str:
    """``sqlite:///<tmp_path>/rlbridge.db``: the store of ``rlbridge_store`` and ``rlbridge_cli``.

    Pass it to a subprocess as ``RLBRIDGE_DB`` or ``--db`` to share the test's store.
    """
    return f"sqlite:///{(tmp_path / 'rlbridge.db').as_posix()}"


@pytest.fixture
def rlbridge_store(rlbridge_db_url: str) -> Iterator[Store]:
    """An empty store on a new SQLite file in ``tmp_path``, closed after the test."""
    from .store import open_store

    store = open_store(rlbridge_db_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def sample_bars() -> Bars:
    """SPY, AGG and XLK from the bundled sample data, 2019-01-02 .. 2020-12-31 (adjusted).

    505 sessions x 3 symbols; values are read-only, so one panel serves the whole session.
    """
    from . import sample_data

    return sample_data.load(list(SAMPLE_SYMBOLS), start=SAMPLE_START, end=SAMPLE_END)


@pytest.fixture
def rlbridge_cli(rlbridge_pm: RLBridgePluginManager, rlbridge_store: Store,
                 rlbridge_db_url: str) -> Callable[..., Result]:
    """Run the command line in-process: ``rlbridge_cli("data", "show", "--json")``.

    Each call builds the CLI from ``rlbridge_pm`` (so plugins registered on it add their
    commands and names) and runs it with ``--db`` set to ``rlbridge_store``'s file.
    ``RLBRIDGE_*`` variables of the calling shell are hidden from the command; pass
    ``env={...}`` to set some.  Arguments may be strings or paths.

    Returns a click ``Result``: ``exit_code`` (0, or 2 for an rlbridge error), ``stdout``,
    ``stderr`` and ``output`` (both, as a terminal shows them).  An exception that is not an
    rlbridge error propagates into the test with its traceback.
    """
    from click.testing import CliRunner

    from .cli import build_cli

    def invoke(*args: str | os.PathLike[str], input: str | None = None,
               env: Mapping[str, str | None] | None = None) -> Result:
        environment: dict[str, str | None] = {
            key: None for key in os.environ if key.startswith("RLBRIDGE_")
        }
        environment.update(env or {})
        cli = build_cli(rlbridge_pm)
        argv = ["--db", rlbridge_db_url, *(os.fspath(arg) for arg in args)]
        return CliRunner().invoke(cli, argv, input=input, env=environment,
                                  catch_exceptions=False)

    return invoke

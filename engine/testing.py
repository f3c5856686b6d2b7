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
* ``alpaca_emulator``: an emulator of Alpaca's REST API and its two websocket streams on
  127.0.0.1 (:class:`rlbridge.emulators.alpaca.AlpacaEmulator`), with faults on demand, for
  driving the real alpaca-py clients (and the ``alpaca`` broker) in tests.
* ``tws_emulator``: an emulator of the TWS API socket protocol on 127.0.0.1
  (:class:`rlbridge.emulators.tws.TwsEmulator`), for driving the real ``ib_insync.IB``.

and three helpers: :func:`register_plugin`, which registers a plugin the way rlbridge loads one
(recorded for ``rlbridge plugins``, misspelt hooks refused, registration hooks run at once),
:func:`assert_causal`, the causality check every feature transform must pass (DESIGN.md
section 3): ``assert_causal(MyTransform(), sample_bars)``, and :func:`random_walk_bars`, bars
of any size for tests and benchmarks.

Importing this module is cheap (pytest imports it at start-up in every project that has
rlbridge installed); numpy, pandas and SQLAlchemy are imported inside the fixtures.  Disable it
with ``pytest -p no:rlbridge``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np
    from click.testing import Result

    from .emulators.alpaca import AlpacaEmulator
    from .emulators.tws import TwsEmulator
    from .interfaces import Bars, FeatureTransform
    from .manager import RLBridgePluginManager
    from .store import Store

__all__ = [
    "alpaca_emulator",
    "SAMPLE_END",
    "SAMPLE_START",
    "SAMPLE_SYMBOLS",
    "assert_causal",
    "random_walk_bars",
    "register_plugin",
    "rlbridge_cli",
    "rlbridge_db_url",
    "rlbridge_pm",
    "rlbridge_store",
    "sample_bars",
    "tws_emulator",
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


def assert_causal(transform: FeatureTransform, bars: Bars, *,
                  cuts: Sequence[int] | None = None, seed: int = 0,
                  truncate: bool = True) -> None:
    """Assert that ``transform`` is causal on ``bars``: the value at bar t uses bars 0..t only.

    For each cut point t, every bar after t is multiplied by random positive factors (opens,
    highs, lows and closes by factors between 0.6 and 1.6, highs and lows then widened to
    contain the open and close; volumes by factors between 0.3 and 3), the features are
    recomputed, and rows 0..t must be unchanged, to the bit (NaN equals NaN).  With
    ``truncate`` (the default), the features of bars 0..t alone must also equal rows 0..t:
    what a live run computes on the history so far is what a backtest computed.

    Args:
        transform: anything with ``feature_names`` and ``compute(bars) -> [T, N, F]`` (a
            transform, or a :class:`~rlbridge.features.FeaturePipeline`).
        bars: the bars to check on, at least 2 rows; a few hundred real bars are plenty.
        cuts: the rows t to cut after; by default the rows around the transform's
            ``lookback`` and six rows spread over the series.
        seed: seed of the random factors.
        truncate: also compare with the features of the truncated bars.

    Raises:
        AssertionError: naming the transform, the feature, the symbol and the first row
            that changed, and the cut that changed it.
    """
    import numpy as np

    from .interfaces import Bars

    name = getattr(transform, "name", type(transform).__name__)
    names = tuple(transform.feature_names)
    total = len(bars)
    if total < 2:
        raise AssertionError(f"assert_causal needs at least 2 bars, got {total}")
    base = np.asarray(transform.compute(bars), dtype=np.float64)
    expected = (total, len(bars.symbols), len(names))
    if base.shape != expected:
        raise AssertionError(f"transform {name!r} returned shape {base.shape}; expected "
                             f"[T, N, F] = {expected}")
    if cuts is None:
        lookback = int(getattr(transform, "lookback", 0))
        spread = np.linspace(0, total - 2, 6).astype(int).tolist()
        cuts = [lookback - 1, lookback, lookback + 1, *spread]
    cuts = sorted({int(c) for c in cuts if 0 <= int(c) <= total - 2})
    if not cuts:
        raise AssertionError(f"no cut point inside the {total} bars (0 .. {total - 2})")
    rng = np.random.default_rng(seed)
    for cut in cuts:
        changed = Bars(bars.index, bars.symbols, _perturb_after(bars.values, cut, rng))
        _compare(name, names, bars, base, transform.compute(changed), cut,
                 f"every bar after row {cut} was changed")
        if truncate:
            head = Bars(bars.index[:cut + 1], bars.symbols, bars.values[:cut + 1])
            _compare(name, names, bars, base, transform.compute(head), cut,
                     f"it was computed on rows 0..{cut} alone")


def random_walk_bars(days: int, symbols: int | Sequence[str] = 3, *, seed: int = 0,
                     index: Sequence[object] | None = None, start: str = "2019-01-01",
                     price: float = 50.0, volatility: float = 0.02) -> Bars:
    """Bars of geometric random walks: consistent open, high, low and close, random volumes.

    Args:
        days: the number of bars.
        symbols: the symbols, or how many (``S00``, ``S01``, ...).
        seed: the random generator's seed (the same seed gives the same bars).
        index: the timestamps (``days`` of them); business days from ``start`` by default.
        start: the first business day when ``index`` is not given.
        price: the price the walks start near.
        volatility: the standard deviation of the daily log close returns.
    """
    import numpy as np
    import pandas as pd

    from .interfaces import Bars

    names = (tuple(f"S{i:02d}" for i in range(symbols)) if isinstance(symbols, int)
             else tuple(symbols))
    rng = np.random.default_rng(seed)
    shape = (days, len(names))
    close = price * np.exp(rng.normal(0.0002, volatility, size=shape).cumsum(axis=0))
    open_ = close * np.exp(rng.normal(0, volatility / 5, size=shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, volatility / 5, size=shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, volatility / 5, size=shape)))
    volume = rng.integers(100_000, 5_000_000, size=shape).astype(float)
    stamps = pd.bdate_range(start, periods=days) if index is None else pd.DatetimeIndex(index)
    return Bars(stamps, names, np.stack([open_, high, low, close, volume], axis=2))


def _perturb_after(values: np.ndarray, cut: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``[T, N, 5]`` bars with every bar after ``cut`` scaled by random factors."""
    import numpy as np

    out = np.array(values, dtype=np.float64)
    tail = out[cut + 1:]
    factors = np.exp(rng.uniform(np.log(0.6), np.log(1.6), size=tail.shape[:2] + (4,)))
    o, h, lo, c = (tail[..., i] * factors[..., i] for i in range(4))
    tail[..., 0] = o
    tail[..., 1] = np.maximum(h, np.maximum(o, c))
    tail[..., 2] = np.minimum(lo, np.minimum(o, c))
    tail[..., 3] = c
    tail[..., 4] *= np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=tail.shape[:2]))
    return out


def _compare(name: str, names: tuple[str, ...], bars: Bars, base: np.ndarray, other: object,
             cut: int, how: str) -> None:
    import numpy as np

    from .features import _when

    got = np.asarray(other, dtype=np.float64)
    if got.ndim != 3 or got.shape[1:] != base.shape[1:] or len(got) <= cut:
        raise AssertionError(f"transform {name!r} returned shape {got.shape} when {how}; "
                             f"expected [T, N, F] with F = {base.shape[2]}")
    was, now = base[:cut + 1], got[:cut + 1]
    same = (was == now) | (np.isnan(was) & np.isnan(now))
    if same.all():
        return
    row, asset, feature = np.argwhere(~same)[0]
    raise AssertionError(
        f"transform {name!r} is not causal: feature {names[feature]!r} for "
        f"{bars.symbols[asset]} at row {row} ({_when(bars, row)}) changed from "
        f"{was[row, asset, feature]!r} to {now[row, asset, feature]!r} when {how}; "
        f"the value at a bar may only use that bar and earlier ones")


@pytest.fixture
def alpaca_emulator() -> Iterator[AlpacaEmulator]:
    """An Alpaca emulator on 127.0.0.1, started for the test and stopped after it.

    Point the real alpaca-py clients at ``alpaca_emulator.trading_url``, ``data_url``,
    ``trade_stream_url`` and ``data_stream_url`` with ``alpaca_emulator.key_id`` /
    ``alpaca_emulator.secret_key``.  Nothing global is set: a test that runs rlbridge's
    ``alpaca`` broker sets ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` itself
    (``monkeypatch.setenv``).  A request that failed inside the emulator fails the test.
    """
    from .emulators.alpaca import AlpacaEmulator

    with AlpacaEmulator() as emulator:
        yield emulator
    assert not emulator.errors, emulator.errors[0]


@pytest.fixture
def tws_emulator() -> Iterator[TwsEmulator]:
    """A TWS API emulator on 127.0.0.1 (server versions 157..176), started for the test and
    stopped after it.

    Connect the real client with ``await IB().connectAsync(tws_emulator.host,
    tws_emulator.port, clientId=1)`` (inside a running loop use ``connectAsync``, never
    ``connect``).  The test fills, rejects and cancels orders (``tws_emulator.fill(...)``)
    and injects faults through ``tws_emulator.faults``.  A protocol error or a failure inside
    the emulator fails the test.
    """
    from .emulators.tws import TwsEmulator

    with TwsEmulator() as emulator:
        yield emulator
    assert not emulator.errors, emulator.errors[0]

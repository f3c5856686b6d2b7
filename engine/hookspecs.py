"""Every hook rlbridge defines.  Nothing else lives here.

Hooks are synchronous and always called by keyword, so an implementation may accept any subset of
a hook's arguments.  Arguments may be added in later versions but never renamed or removed.
Hook order is never part of the contract: every hook gives the same result whatever order its
implementations run in.

``docs/plugin_hooks.md`` lists each hook with its exact signature; ``tests/test_hooks.py`` fails
when the two drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from .interfaces import Fill, Order

hookspec = pluggy.HookspecMarker("rlbridge")
hookimpl = pluggy.HookimplMarker("rlbridge")


class Registrar(Protocol):
    """The ``register`` callable handed to every ``register_*`` hook."""

    def __call__(
        self,
        name: str,
        factory: Any,
        *,
        description: str = "",
        aliases: tuple[str, ...] | list[str] = (),
    ) -> None: ...


@hookspec
def register_feeds(register: Registrar) -> None:
    """Add named data feed factories (``csv``, ``sql``, ``alpaca``, ``ib``, ...).

    Called once per plugin manager, the first time a registry is needed.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the feed's options (the ``[data]`` table minus the core keys; a frozen
            dataclass when the factory has a ``Config`` dataclass attribute) and returns an
            object with ``load(symbols=None, start=None, end=None) -> Bars``.  Registering a
            name twice, by any plugins, is an error.
    """


@hookspec
def register_features(register: Registrar) -> None:
    """Add named feature transform factories (``log_return``, ``volatility``, ``rsi``, ...).

    Called once per plugin manager, the first time a registry is needed.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the transform's options (its table in ``[features] transforms``) and returns
            a causal :class:`~rlbridge.interfaces.FeatureTransform`.
    """


@hookspec
def register_policies(register: Registrar) -> None:
    """Add named policy factories (stable-baselines3 / sb3-contrib algorithms, rule baselines).

    Called once per plugin manager, the first time a registry is needed.  Heavy imports
    (torch, stable_baselines3) belong inside the factory, never at module level.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the ``[policy]`` table minus ``algo`` (the hyperparameters).
    """


@hookspec
def register_cost_models(register: Registrar) -> None:
    """Add named cost model factories (``percent``, ``per_share``, ``spread``, ...).

    Called once per plugin manager, the first time a registry is needed.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the ``[costs]`` table minus ``model`` and returns a
            :class:`~rlbridge.interfaces.CostModel`.
    """


@hookspec
def register_brokers(register: Registrar) -> None:
    """Add named broker factories (``sim``, ``alpaca``, ``ib``).

    Called once per plugin manager, the first time a registry is needed.  Secrets come from
    the environment inside the factory, never from its options.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the ``[broker]`` table minus ``name``.
    """


@hookspec
def register_engines(register: Registrar) -> None:
    """Add named backtest engine factories (``native``, ``backtrader``, ``zipline``).

    Called once per plugin manager, the first time a registry is needed.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            takes the engine's options and returns a :class:`~rlbridge.interfaces.Engine`.
    """


@hookspec
def register_strategies(register: Registrar) -> None:
    """Add named strategy factories (``rl_allocation``, ``buy_and_hold``, ...).

    Called once per plugin manager, the first time a registry is needed.

    Args:
        register: ``register(name, factory, *, description="", aliases=())``.  ``factory``
            is usually a :class:`~rlbridge.Strategy` subclass; it takes the ``[strategy]``
            table minus ``name``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``rlbridge`` command line.

    Called once, when the CLI is built and before it parses arguments, so the module that
    implements it must import only click at module level (``rlbridge --help`` stays fast).

    Args:
        cli: the top-level ``rlbridge`` click group; call ``cli.add_command(...)``.
    """


@hookspec(firstresult=True)
def check_order(order: Order, context: Any) -> str | None:
    """Pre-trade risk check for one order, identical in every engine and live.

    Called for every order before it reaches the simulator, the engine's broker or the live
    broker.  Stops at the first non-None result.

    Args:
        order: the order about to be sent.
        context: the ``BarContext`` of the bar that decided the order, plus the run's risk
            settings as ``context.risk``.

    Returns:
        None to let the order through, or a short reason (recorded with the rejection).
    """


@hookspec
def before_run(run: Any) -> None:
    """Observe the start of a run (train, backtest, walk-forward fold, live session).

    Called after the run is recorded in the store and before its first bar.

    Args:
        run: the run record: ``id``, ``kind``, ``config``.
    """


@hookspec
def after_fill(run: Any, fill: Fill) -> None:
    """Observe one fill, in backtests and live alike.

    Called after the fill is applied to the portfolio and recorded.

    Args:
        run: the run record.
        fill: the fill.
    """


@hookspec
def after_run(run: Any, result: Any) -> None:
    """Observe the end of a run that completed.

    Called once, after the run's result is stored.

    Args:
        run: the run record.
        result: the run's result (equity, fills, metrics, final value).
    """


@hookspec
def on_run_error(run: Any, error: BaseException) -> None:
    """Observe a run that failed.

    Called once, after what the run recorded so far is kept and the run is marked failed.

    Args:
        run: the run record.
        error: the exception that stopped the run.
    """

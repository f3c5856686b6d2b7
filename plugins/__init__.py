"""The built-in plugins.  They register through the same hooks as third-party plugins.

Each module listed here is a plugin: module-level ``@hookimpl`` functions, cheap to import
(heavy imports live inside the factories they register).
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "rlbridge.plugins.feeds.csv",
    "rlbridge.plugins.feeds.sql",
    "rlbridge.plugins.feeds.sample",
    "rlbridge.plugins.feeds.alpaca",
    "rlbridge.plugins.feeds.ib",
    "rlbridge.plugins.costs.percent",
    "rlbridge.plugins.costs.per_share",
    "rlbridge.plugins.costs.spread",
    "rlbridge.plugins.costs.volatility_slippage",
    "rlbridge.plugins.costs.zero",
    "rlbridge.plugins.costs.composite",
    "rlbridge.plugins.features.returns",
    "rlbridge.plugins.features.rolling",
    "rlbridge.plugins.features.oscillators",
    "rlbridge.plugins.features.market",
    "rlbridge.plugins.policies.sb3",
    "rlbridge.plugins.engines.native",
    "rlbridge.plugins.engines.zipline_engine",
    "rlbridge.plugins.engines.backtrader_engine",
    "rlbridge.plugins.risk.limits",
    "rlbridge.strategies.baselines",
    "rlbridge.strategies.rl_allocation",
    "rlbridge.plugins.commands.config",
    "rlbridge.plugins.commands.data",
    "rlbridge.plugins.commands.demo",
    "rlbridge.plugins.commands.run",
    "rlbridge.plugins.commands.report",
    "rlbridge.plugins.commands.runs",
    "rlbridge.plugins.commands.walkforward",
    "rlbridge.plugins.commands.signals",
    "rlbridge.plugins.commands.live",
    "rlbridge.plugins.brokers.sim",
    "rlbridge.plugins.brokers.alpaca",
    "rlbridge.plugins.brokers.ib",
    "rlbridge.plugins.notify.email",
)

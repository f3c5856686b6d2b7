"""The built-in plugins.  They register through the same hooks as third-party plugins.

Each module listed here is a plugin: module-level ``@hookimpl`` functions, cheap to import
(heavy imports live inside the factories they register).
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "rlbridge.plugins.feeds.csv",
    "rlbridge.plugins.feeds.sql",
    "rlbridge.plugins.feeds.sample",
    "rlbridge.plugins.commands.config",
    "rlbridge.plugins.commands.data",
    "rlbridge.plugins.commands.demo",
)

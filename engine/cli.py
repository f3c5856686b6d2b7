"""The ``rlbridge`` command line.

``main()`` builds a plugin manager (built-ins, entry points, ``--plugin`` modules), builds the click
group with :func:`build_cli`, lets every plugin add commands through ``register_commands``, and
runs.  Any :class:`~rlbridge.errors.RLBridgeError` becomes a short message on stderr and exit
code 2, with no traceback.

Only click, pluggy and the stdlib are imported here: ``rlbridge --help`` must stay fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import RLBridgeError
from .manager import RLBridgePluginManager, make_plugin_manager
from .registry import KINDS

if TYPE_CHECKING:
    from .store import Store

F = TypeVar("F", bound=Callable[..., Any])


class CLIError(click.ClickException):
    """A failed command: message on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


@dataclass
class App:
    """What every command gets through :data:`pass_app`: the plugin manager and global options."""

    pm: RLBridgePluginManager
    db: str | None = None
    _stores: dict[str | None, Store] = field(default_factory=dict)

    @property
    def registries(self) -> Any:
        return self.pm.registries

    def store(self, config: Any = None) -> Store:
        """The store for this command: ``--db``, then ``RLBRIDGE_DB``, then ``[store] url``, then
        ``./rlbridge.db``."""
        from .store import open_store

        url = self.db
        key = url if url is not None else repr(getattr(config, "path", None))
        if key not in self._stores:
            self._stores[key] = open_store(url, config=config)
        return self._stores[key]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


pass_app = click.make_pass_decorator(App)


def cli_errors(func: F) -> F:
    """Turn rlbridge errors raised by ``func`` into exit code 2 with a one-line message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RLBridgeError as exc:
            raise CLIError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


class RLBridgeGroup(click.Group):
    """A click group whose commands report rlbridge errors without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RLBridgeError as exc:
            raise CLIError(str(exc)) from None


def echo_json(payload: Any) -> None:
    """Print one JSON object (dates and paths as strings, NaN and infinities as null)."""
    click.echo(json.dumps(_finite(payload), indent=2, default=str, sort_keys=False,
                          allow_nan=False))


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plugin_rows(
    pm: RLBridgePluginManager, show_all: bool, hook: str | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        source = pm.source(name)
        if source.origin == "builtin" and not show_all:
            continue
        hooks = sorted(
            caller.name for caller in (pm.get_hookcallers(plugin) or []) if caller.has_spec()
        )
        if hook and hook not in hooks:
            continue
        rows.append({
            "name": name,
            "origin": source.origin,
            "distribution": source.distribution,
            "version": source.version,
            "hooks": hooks,
            "status": "ok",
        })
    for failure in pm.failures:
        if hook:
            continue
        rows.append({
            "name": failure.name,
            "origin": failure.origin,
            "distribution": failure.distribution,
            "version": failure.version,
            "hooks": [],
            "status": f"failed at {failure.stage}: {failure.error}",
        })
    return rows


def build_cli(pm: RLBridgePluginManager | None = None) -> click.Group:
    """Create the ``rlbridge`` click group for ``pm`` and let plugins add their commands."""
    pm = pm if pm is not None else make_plugin_manager()

    @click.group(cls=RLBridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="rlbridge", prog_name="rlbridge")
    @click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
                  help="Load a plugin module (dotted name or .py file); repeatable.")
    @click.option("--strict-plugins", is_flag=True,
                  help="Fail when any plugin fails to load (also RLBRIDGE_STRICT_PLUGINS=1).")
    @click.option("--db", metavar="URL", default=None,
                  help="Store URL (any SQLAlchemy URL); default RLBRIDGE_DB, then [store] url, "
                       "then sqlite:///rlbridge.db.")
    @click.pass_context
    def cli(
        ctx: click.Context, plugins: tuple[str, ...], strict_plugins: bool, db: str | None
    ) -> None:
        """rlbridge: train an RL trading agent once; backtest it and trade it live, unchanged.

        Every feed, feature, policy, cost model, broker, engine and strategy is a plugin:
        `rlbridge plugins` shows what is loaded, `rlbridge list KIND` what each kind offers.
        """
        # --plugin and --strict-plugins were applied by main() before the group was built,
        # so that plugin commands exist when click parses the command line.
        app = App(pm, db=db)
        ctx.obj = app
        ctx.call_on_close(app.close)

    @cli.command("plugins")
    @click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
    @click.option("--hook", metavar="NAME", help="Only plugins implementing this hook.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_app
    def plugins_cmd(app: App, show_all: bool, hook: str | None, as_json: bool) -> None:
        """List loaded plugins, their hooks, and plugins that failed to load."""
        problem = None
        try:
            app.pm.registries  # noqa: B018 - runs every registration hook, so failures show
        except RLBridgeError as exc:  # e.g. two plugins claim one name: still list the plugins
            problem = str(exc)
        rows = _plugin_rows(app.pm, show_all, hook)
        if problem:
            click.echo(f"rlbridge: warning: {problem}", err=True)
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo("No third-party plugins loaded (use --all to include the built-ins).")
            return
        for row in rows:
            version = f" {row['version']}" if row["version"] else ""
            dist = f" [{row['distribution']}{version}]" if row["distribution"] else ""
            click.echo(f"{row['name']}{dist} ({row['origin']}): {row['status']}")
            if row["hooks"]:
                click.echo(f"    hooks: {', '.join(row['hooks'])}")

    @cli.command("list")
    @click.argument("kind", type=click.Choice(list(KINDS)), metavar="KIND")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_app
    def list_cmd(app: App, kind: str, as_json: bool) -> None:
        """List what one plugin KIND offers: feeds, features, policies, costs, brokers,
        engines or strategies."""
        registry = app.registries[kind]
        rows = [
            {"name": e.name, "aliases": list(e.aliases), "plugin": e.plugin,
             "description": e.description}
            for e in registry.entries()
        ]
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo(f"No {kind} registered.")
            return
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            aliases = f" (aliases: {', '.join(r['aliases'])})" if r["aliases"] else ""
            click.echo(f"{r['name']:<{width}}  {r['description']}{aliases}  [{r['plugin']}]")

    pm.hook.register_commands(cli=cli)
    return cli


def _early_options(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Find ``--plugin`` and ``--strict-plugins`` before click parses (they shape the CLI)."""
    plugins: list[str] = []
    strict = False
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg == "--plugin" and i + 1 < len(args):
            plugins.append(args[i + 1])
            i += 1
        elif arg.startswith("--plugin="):
            plugins.append(arg.split("=", 1)[1])
        elif arg == "--strict-plugins":
            strict = True
        elif arg == "--db":
            i += 1  # skip its value
        elif not arg.startswith("-"):
            break  # the subcommand: group options come before it
        i += 1
    return plugins, strict


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    plugins, strict = _early_options(args)
    try:
        pm = make_plugin_manager(plugins=plugins, strict=strict or None)
        cli = build_cli(pm)
    except RLBridgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    cli.main(args=args, prog_name="rlbridge", complete_var="_RLBRIDGE_COMPLETE")


if __name__ == "__main__":  # pragma: no cover
    main()

"""Built-in plugin: ``rlbridge config check|show``.

``check`` loads a config file with the command line's plugin manager (so plugins added with
``--plugin`` or installed entry points count) and reports either ``ok`` with a one-line summary
per table, or the first mistake with its file and key, exit code 2.  ``show`` prints the config
with every default filled in, as TOML that loads back to the same config.

Cheap to import: only click and the CLI helpers at module level.
"""

from __future__ import annotations

import re
from typing import Any

import click

from rlbridge.cli import App, CLIError, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _mask(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _public(config: Any) -> dict[str, Any]:
    """``config.to_dict()`` with any password in the store URL masked (terminals, CI logs)."""
    data: dict[str, Any] = config.to_dict()
    if data.get("store", {}).get("url"):
        data["store"]["url"] = _mask(data["store"]["url"])
    return data


def summary(config: Any) -> list[str]:
    """One line per table of ``config``: ``data: feed=csv, symbols=[SPY, AGG], ...``."""
    lines = []
    for name, table in _public(config).items():
        if name == "risk" and not table:
            lines.append("risk: no limits")
        elif name == "store" and not table:
            lines.append("store: not set (--db, then RLBRIDGE_DB, then sqlite:///rlbridge.db)")
        else:
            lines.append(f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in table.items()))
    return lines


def _load(app: App, path: str, as_json: bool) -> Any:
    from rlbridge.config import load_config
    from rlbridge.errors import RLBridgeError

    try:
        return load_config(path, app.pm)
    except RLBridgeError as exc:
        if as_json:
            echo_json({"ok": False, "path": path, "key": getattr(exc, "key", None),
                       "error": str(exc)})
        raise CLIError(str(exc)) from None


@click.group("config")
def config_group() -> None:
    """Check and show agent config files (TOML; see docs/config.md)."""


@config_group.command("check")
@click.argument("path", metavar="CONFIG")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"ok", "path", "config"} or '
                   '{"ok", "path", "key", "error"}.')
@pass_app
def check(app: App, path: str, as_json: bool) -> None:
    """Load CONFIG and check every table, key, type and plugin name.

    Prints "ok: CONFIG" and a summary, or the first mistake (file, key, valid choices) and
    exits with code 2.
    """
    config = _load(app, path, as_json)
    if as_json:
        echo_json({"ok": True, "path": path, "config": _public(config)})
        return
    click.echo(f"ok: {path}")
    for line in summary(config):
        click.echo(f"  {line}")


@config_group.command("show")
@click.argument("path", metavar="CONFIG")
@click.option("--json", "as_json", is_flag=True, help="Print the config as one JSON object.")
@pass_app
def show(app: App, path: str, as_json: bool) -> None:
    """Print CONFIG with every default filled in (TOML, or JSON with --json).

    A password in the store URL is shown as ***.
    """
    config = _load(app, path, as_json=False)
    if as_json:
        echo_json(_public(config))
        return
    text = config.dump()
    if config.store.url:
        text = text.replace(config.store.url, _mask(config.store.url))
    click.echo(text, nl=False)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(config_group)

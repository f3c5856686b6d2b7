"""``rlbridge live CONFIG``: trade the strategy on the configured broker.

Only click and the CLI helpers are imported at module level; the strategy stack and the broker
SDK load when the command runs.
"""

from __future__ import annotations

from typing import Any

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


@click.command("live")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--broker", metavar="NAME", help="Override [broker] name: sim, alpaca, ...")
@click.option("--once", is_flag=True, help="Run one decision cycle on the latest bar, then exit.")
@click.option("--dry-run", is_flag=True, help="Compute and record the orders; send nothing.")
@click.option("--live-money", is_flag=True,
              help="Confirm trading real money (the broker must also be set to paper = false).")
@click.option("--reset-halt", is_flag=True,
              help="Clear a halt of the [risk] kill switch kept from an earlier run.")
@click.option("--follow", "follow_seconds", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="Seconds each cycle waits for its orders' fills.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def live_cmd(app: App, config_path: str, broker: str | None, once: bool, dry_run: bool,
             live_money: bool, reset_halt: bool, follow_seconds: float, as_json: bool) -> None:
    """Trade CONFIG's strategy on [broker] (paper by default), one cycle per bar.

    Every order is journaled in the store before it is sent, with a client order id made from
    the deployment, the bar and the symbol, and the journal is reconciled with the broker on each
    cycle: a restart never sends an order twice. On the sim broker the recorded bars are the
    clock: without --once the [backtest] period is replayed.
    """
    from rlbridge.config import load_config
    from rlbridge.live import live

    config = load_config(config_path, pm=app.pm)
    store = app.store(config)
    shown: list[dict[str, Any]] = []

    def report(cycle: Any) -> None:
        shown.append(cycle.to_json())
        if not as_json and (once or cycle.orders or cycle.fills):
            row = shown[-1]
            click.echo(f"{row['bar']}: {len(row['orders'])} order(s), {row['sent']} sent, "
                       f"{row['fills']} fill(s), {len(row['rejections'])} rejected"
                       + (" (dry run: nothing sent)" if dry_run else ""))

    live(config, broker, app.pm, store=store, once=once, dry_run=dry_run,
         live_money=live_money, follow_seconds=follow_seconds, on_cycle=report,
         reset_halt=reset_halt, freeze_gc=True)
    if as_json:
        echo_json({"cycles": shown})
    else:
        click.echo(f"{len(shown)} cycle(s); journal in {store.url}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(live_cmd)

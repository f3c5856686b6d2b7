"""``rlbridge signals CONFIG --out FILE``: the strategy's target weights, session by session.

Only click and the CLI helpers are imported at module level; the strategy stack loads when the
command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


@click.command("signals")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", metavar="FILE", type=click.Path(dir_okay=False),
              required=True, help="The .csv or .parquet file to write or append to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def signals_cmd(app: App, config_path: str, out_path: str, as_json: bool) -> None:
    """Write CONFIG's target weights per session (date, symbol, weight, as_of) to FILE.

    The strategy is replayed over [backtest] start .. end; the last row is for the session
    after the latest bar. Run daily: only sessions FILE does not hold yet are appended.
    """
    from rlbridge.config import load_config
    from rlbridge.data import load_bars
    from rlbridge.signals import signals, write_signals

    config = load_config(config_path, pm=app.pm)
    store = app.store(config)
    frame = signals(config, app.pm, bars=load_bars(config, app.pm, store_url=store.full_url))
    added = write_signals(frame, Path(out_path))
    last = frame["date"].max() if len(frame) else None
    shown = "none" if last is None else str(last.date())
    if as_json:
        echo_json({"path": out_path, "rows_added": added, "rows": len(frame),
                   "next_session": shown})
        return
    click.echo(f"{added} row(s) added to {out_path}; latest signals are for {shown}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(signals_cmd)

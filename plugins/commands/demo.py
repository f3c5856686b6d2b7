"""``rlbridge demo``: the main job on the bundled sample data, from a fresh checkout.

Today it ingests the 12 sample ETFs into the store, shows what the store holds, reads the
bars back through the ``sql`` feed for the project's in-sample and out-of-sample periods, and
lists the plugins of every kind.  Training and backtesting join it as they land.
"""

from __future__ import annotations

from typing import Any

import click

from rlbridge.cli import App, cli_errors, pass_app
from rlbridge.hookspecs import hookimpl


def _period_table(bars: Any) -> list[tuple[str, float, float]]:
    """(symbol, total return, annualised volatility) of buy-and-hold over ``bars``."""
    import numpy as np

    close = bars.close
    log_returns = np.diff(np.log(close), axis=0)
    total = close[-1] / close[0] - 1.0
    vol = log_returns.std(axis=0, ddof=1) * np.sqrt(252.0)
    return [(s, float(t), float(v)) for s, t, v in zip(bars.symbols, total, vol, strict=True)]


@click.command("demo")
@click.option("--symbols", default="SPY,AGG,XLK,XLE,XLF,XLV", show_default=True,
              metavar="A,B,...", help="Sample symbols to read back for the period table.")
@click.pass_context
@pass_app
@cli_errors
def demo_cmd(app: App, ctx: click.Context, symbols: str) -> None:
    """Run the demo on the bundled sample ETFs (2005-2020): ingest, inspect, read back."""
    from rlbridge import sample_data
    from rlbridge.data import load_bars
    from rlbridge.plugins.commands.data import ingest_cmd, show_cmd
    from rlbridge.registry import KINDS

    click.secho("1. Ingest the bundled sample into the store", bold=True)
    ctx.invoke(ingest_cmd, feed="sample")

    click.secho("\n2. What the store holds, checked against the NYSE calendar", bold=True)
    ctx.invoke(show_cmd)

    wanted = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    store = app.store()
    click.secho("\n3. Read back through the sql feed: buy-and-hold per period", bold=True)
    for label, (start, end) in (("in-sample", sample_data.IN_SAMPLE),
                                ("out-of-sample", sample_data.OUT_OF_SAMPLE)):
        bars = load_bars(_sql_config(wanted), app.pm, start=start, end=end,
                         store_url=store.engine.url.render_as_string(hide_password=False))
        click.echo(f"{label} {start} .. {end}: {len(bars)} sessions x {len(bars.symbols)} symbols "
                   f"(data hash {bars.digest()[:12]})")
        for symbol, total, vol in _period_table(bars):
            click.echo(f"  {symbol:<4}  total return {total:+8.1%}   annual volatility {vol:6.1%}")

    click.secho("\n4. Plugins, by kind (rlbridge list KIND)", bold=True)
    for kind in KINDS:
        names = app.registries[kind].names()
        click.echo(f"  {kind:<10} {', '.join(names) if names else '(none yet)'}")
    click.echo(f"\nThe store is {store.url}; explore it with `rlbridge data show`.")


def _sql_config(symbols: tuple[str, ...]) -> Any:
    from rlbridge.config import config_from_mapping

    return config_from_mapping({"data": {"feed": "sql", "symbols": list(symbols)}})


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(demo_cmd)

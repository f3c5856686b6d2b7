"""``rlbridge demo``: the main job on the bundled sample data, from a fresh checkout.

1. ingest the 12 sample ETFs into the store and check them against the NYSE calendar;
2. train a small PPO agent on 11 of them (XLC starts in 2018) over the in-sample years
   2008-2018, reading the bars back from the store;
3. backtest it out of sample, 2019-01-01 .. 2020-09-30, on the native engine, beside
   buy-and-hold SPY and a monthly-rebalanced equal weight, and print the comparison;
4. run the same agent, trading whole shares, in the native, backtrader and zipline engines and
   show that they make the same fills and end on the same value;
5. write the agent's report (an HTML page with its plots) and say where everything is stored.

The same agent as a config file: ``examples/etf_ppo.toml``.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import click

from rlbridge.cli import App, cli_errors, pass_app
from rlbridge.hookspecs import hookimpl

#: the demo agent; ``examples/etf_ppo.toml`` holds the same tables (a test keeps them equal)
AGENT: dict[str, Any] = {
    "data": {"feed": "sql", "start": "2007-01-01", "end": "2020-09-30",
             "symbols": ["SPY", "AGG", "XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV",
                         "XLY"]},
    "features": {"window": 20, "transforms": [
        {"name": "log_return", "fields": ["close"]}, {"name": "volatility", "window": 20},
        {"name": "sma_ratio", "windows": [10, 50]}, {"name": "rsi", "window": 14},
        {"name": "market_volatility", "window": 20}]},
    "env": {"random_start": True, "episode_length": 252, "rebalance_band": 0.05,
            "turnover_penalty": 0.2},
    "costs": {"model": "percent", "rate": 0.001},
    "policy": {"algo": "ppo", "learning_rate": 0.0003, "n_steps": 512, "batch_size": 256,
               "n_epochs": 5, "net_arch": [64, 64]},
    "train": {"start": "2008-01-01", "end": "2018-12-31", "timesteps": 40_000, "seed": 7,
              "n_envs": 4},
    "strategy": {"name": "rl_allocation", "model": "set by the demo after training"},
    "backtest": {"engine": "native", "cash": 100_000, "start": "2019-01-01", "end": "2020-09-30",
                 "benchmark": "SPY", "fractional": True},
}


def _config(app: App, **tables: dict[str, Any]) -> Any:
    from rlbridge.config import config_from_mapping

    mapping = copy.deepcopy(AGENT)
    mapping.update(tables)
    return config_from_mapping(mapping, pm=app.pm)


@click.command("demo")
@click.option("--timesteps", type=click.IntRange(min=1000), default=None,
              help=f"Training steps (default {AGENT['train']['timesteps']:,}).")
@click.pass_context
@pass_app
@cli_errors
def demo_cmd(app: App, ctx: click.Context, timesteps: int | None) -> None:
    """Run the demo on the bundled sample ETFs: ingest, train PPO, backtest against baselines."""
    from pathlib import Path

    from rlbridge.backtesting import backtest
    from rlbridge.metrics import format_table
    from rlbridge.plugins.commands.data import ingest_cmd
    from rlbridge.training import train

    started = time.perf_counter()
    click.secho("1. Ingest the bundled sample into the store", bold=True)
    ctx.invoke(ingest_cmd, feed="sample")
    store = app.store()

    budget = timesteps or AGENT["train"]["timesteps"]
    click.secho(f"\n2. Train PPO on {len(AGENT['data']['symbols'])} ETFs, "
                f"{AGENT['train']['start']} .. {AGENT['train']['end']} ({budget:,} steps)",
                bold=True)
    train_table = {**AGENT["train"], "timesteps": budget, "output": str(Path.cwd() / "models")}
    trained = train(_config(app, train=train_table), app.pm, store=store,
                    progress=sys.stdout.isatty())
    click.echo(f"   {trained.timesteps:,} steps in {trained.seconds:.1f} s; policy "
               f"{trained.path}")

    start, end = AGENT["backtest"]["start"], AGENT["backtest"]["end"]
    click.secho(f"\n3. Backtest out of sample, {start} .. {end}, native engine", bold=True)
    contenders: dict[str, dict[str, Any]] = {
        "PPO agent": {"name": "rl_allocation", "model": str(trained.path)},
        "Buy & hold SPY": {"name": "buy_and_hold", "symbol": "SPY"},
        "Equal weight": {"name": "equal_weight", "rebalance": 21},
    }
    table, runs = {}, {}
    for label, strategy in contenders.items():
        result = backtest(_config(app, strategy=strategy), pm=app.pm, store=store)
        table[label] = {k: v for k, v in result.metrics.items()
                        if k in ("total_return", "annual_return", "annual_volatility", "sharpe",
                                 "sortino", "max_drawdown", "turnover", "costs_paid",
                                 "final_value")}
        runs[label] = result.run_id
    click.echo(format_table(table))

    click.secho("\n4. The same agent in three engines (whole shares)", bold=True)
    agent = contenders["PPO agent"]
    whole = {**AGENT["backtest"], "fractional": False}
    engines = {}
    for engine in ("native", "backtrader", "zipline"):
        engines[engine] = backtest(_config(app, strategy=agent, backtest=whole), engine,
                                   app.pm, store=store)
    reference = engines["native"]
    for engine, result in engines.items():
        same = _same_fills(result.fills, reference.fills)
        gap = float(abs(result.equity.to_numpy() - reference.equity.to_numpy()).max())
        click.echo(f"   {engine:<10} final value {result.final_value:>13,.2f}   "
                   f"{len(result.fills):>5} fills   "
                   + ("the reference" if engine == "native" else
                      f"fills {'identical' if same else 'DIFFERENT'}, equity within "
                      f"{gap:.1e}"))

    click.secho("\n5. Where it is", bold=True)
    from rlbridge.report import load_run_report, write_report

    report = write_report(load_run_report(store, runs["PPO agent"]),
                          Path("reports") / runs["PPO agent"])
    click.echo(f"   report of the agent: {report.html}")
    click.echo(f"   store: {store.url}")
    click.echo(f"   training run {trained.run_id}, model {trained.model_id}: {trained.path}")
    for label, run_id in runs.items():
        click.echo(f"   backtest run {run_id}: {label}")
    click.echo(f"\nDone in {time.perf_counter() - started:.0f} s.")


def _same_fills(ours: list[Any], theirs: list[Any]) -> bool:
    """Fill for fill: the same bar, symbol, quantity and price (to a cent)."""
    return len(ours) == len(theirs) and all(
        (a.time, a.symbol, a.quantity) == (b.time, b.symbol, b.quantity)
        and abs(a.price - b.price) < 0.005 for a, b in zip(ours, theirs, strict=True))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(demo_cmd)

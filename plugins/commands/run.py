"""``rlbridge train`` and ``rlbridge backtest``: the learning half and its out-of-sample test.

Only click and the CLI helpers are imported at module level; torch, stable-baselines3 and the
engines load when a command runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


@click.command("train")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--resume", metavar="CHECKPOINT", type=click.Path(exists=True, dir_okay=False),
              help="Continue from a checkpoint or saved policy up to [train] timesteps.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def train_cmd(app: App, config_path: str, resume: str | None, as_json: bool) -> None:
    """Train CONFIG's policy on its [train] period and record the model in the store."""
    from rlbridge.config import load_config
    from rlbridge.training import train

    config = load_config(config_path, pm=app.pm)
    store = app.store(config)
    result = train(config, app.pm, store=store, progress=sys.stdout.isatty() and not as_json,
                   resume=resume)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"Trained {result.algo} for {result.timesteps:,} steps in {result.seconds:.1f} s.")
    click.echo(f"Policy: {result.path}")
    click.echo(f"Model {result.model_id}, run {result.run_id}, in {store.url}")


@click.command("backtest")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--engine", metavar="NAME", help="Override [backtest] engine: native, ...")
@click.option("--report", "report_dir", metavar="DIR", type=click.Path(),
              help="Also write the run's report (HTML page and PNG plots) into DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def backtest_cmd(app: App, config_path: str, engine: str | None, report_dir: str | None,
                 as_json: bool) -> None:
    """Run CONFIG's strategy over [backtest] start .. end and record the run."""
    from rlbridge.backtesting import backtest
    from rlbridge.config import load_config
    from rlbridge.metrics import format_table

    config = load_config(config_path, pm=app.pm)
    store = app.store(config)
    result = backtest(config, engine, app.pm, store=store)
    files = None
    if report_dir is not None:
        from rlbridge.report import write_report

        files = write_report(result, report_dir)
    if as_json:
        payload = result.to_json()
        if files is not None:
            payload["report"] = files.to_json()
        echo_json(payload)
        return
    span = f"{result.equity.index[0].date()} .. {result.equity.index[-1].date()}"
    click.echo(f"{result.strategy} on {result.engine}, {span}: final value "
               f"{result.final_value:,.2f} ({len(result.fills)} fills)")
    table = {result.strategy: _shown(result.metrics)}
    if result.benchmark_symbol is not None:
        table[f"{result.benchmark_symbol} (benchmark)"] = _shown(result.benchmark_metrics)
    click.echo(format_table(table))
    for rejection in result.rejections[:5]:
        click.echo(f"rejected: {rejection.order.symbol} {rejection.order.quantity:+g}: "
                   f"{rejection.reason}")
    click.echo(f"Run {result.run_id} in {store.url}")
    if files is not None:
        click.echo(f"Report: {files.html}")


def _shown(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("total_return", "annual_return", "annual_volatility", "sharpe", "sortino",
            "max_drawdown", "turnover", "costs_paid")
    return {k: metrics[k] for k in keys if k in metrics}


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(train_cmd)
    cli.add_command(backtest_cmd)

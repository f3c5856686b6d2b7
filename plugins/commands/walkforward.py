"""``rlbridge walkforward CONFIG``: train and test fold after fold, out of sample.

Only click and the CLI helpers are imported at module level; the training and engine stacks
load when the command runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


@click.command("walkforward")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--engine", metavar="NAME", help="Override [backtest] engine: native, ...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def walkforward_cmd(app: App, config_path: str, engine: str | None, as_json: bool) -> None:
    """Walk CONFIG forward: train on each fold's window, test on the next, chain the tests.

    The folds come from the [walkforward] table (train, test, step, gap, rolling or
    expanding). Every fold's training and backtest are recorded, and so is the chained
    out-of-sample equity.
    """
    from rlbridge.config import load_config
    from rlbridge.metrics import format_table
    from rlbridge.walkforward import walkforward

    config = load_config(config_path, pm=app.pm)
    store = app.store(config)
    with _progress(enabled=sys.stderr.isatty() and not as_json) as on_fold:
        result = walkforward(config, engine, app.pm, store=store, on_fold=on_fold)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(_fold_table(result.folds))
    span = f"{result.equity.index[0].date()} .. {result.equity.index[-1].date()}"
    click.echo(f"\nOut of sample, {len(result.folds)} folds chained, {span}, on {result.engine}: "
               f"final value {float(result.equity.iloc[-1]):,.2f}")
    click.echo(format_table({"walk-forward": result.metrics}))
    click.echo(f"Run {result.run_id} in {store.url}")


def _fold_table(folds: list[Any]) -> str:
    header = f"{'fold':>4}  {'train':<23}  {'test':<23}  {'return':>8}  {'sharpe':>7}  " \
             f"{'max dd':>7}  {'final value':>13}"
    lines = [header]
    for fold in folds:
        row = fold.row()
        lines.append(
            f"{row['fold']:>4}  {' .. '.join(row['train']):<23}  {' .. '.join(row['test']):<23}  "
            f"{_pct(row['total_return']):>8}  {_num(row['sharpe']):>7}  "
            f"{_pct(row['max_drawdown']):>7}  {row['final_value']:>13,.2f}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


class _progress:
    """A rich progress line per fold phase on a terminal; nothing otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.progress = Progress(transient=True, console=None)
        self.progress.start()
        self.task = self.progress.add_task("walk-forward", total=None)
        return self.update

    def update(self, fold: Any, phase: str) -> None:
        span = " .. ".join(fold.describe()["train" if phase == "train" else "test"])
        verb = "training on" if phase == "train" else "testing on"
        self.progress.update(self.task, description=f"fold {fold.number}: {verb} {span}")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(walkforward_cmd)

"""``rlbridge report RUN``: a recorded run's report (HTML page and PNG plots), from the store.

Only click and the CLI helpers are imported at module level; matplotlib, pandas and the store
load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl


@click.command("report")
@click.argument("run_id", metavar="RUN")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(),
              help="The folder to write (default: reports/RUN).")
@click.option("--fills", "fills_shown", type=click.IntRange(min=0), default=20,
              show_default=True, help="How many of the last fills the page lists.")
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
@pass_app
@cli_errors
def report_cmd(app: App, run_id: str, out_dir: str | None, fills_shown: int,
               as_json: bool) -> None:
    """Write the report of the recorded run RUN: an HTML page and its PNG plots.

    The page is self-contained (plots embedded, nothing loaded from the network): equity
    against the benchmark, drawdown, weights over time, rolling Sharpe, monthly returns, the
    metrics beside the benchmark's and the last fills.
    """
    from rlbridge.report import load_run_report, write_report

    store = app.store()
    report = load_run_report(store, run_id)
    files = write_report(report, Path(out_dir) if out_dir else Path("reports") / run_id,
                         fills_shown=fills_shown)
    if as_json:
        echo_json({"run_id": run_id, **files.to_json()})
        return
    click.echo(f"Report of run {run_id} ({report.strategy} on {report.engine}): {files.html}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(report_cmd)

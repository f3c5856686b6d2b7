"""``rlbridge runs list|show``, ``rlbridge compare`` and ``rlbridge export``: browse the store.

* ``runs list``: the recorded runs, newest first, one line each.
* ``runs show RUN``: one run: its config, metrics, orders and fills, error, model.
* ``compare RUN [RUN ...] [--baseline B]``: runs side by side over their common dates, and
  each run's Sharpe difference over a baseline with its bootstrap confidence interval and
  p-value.
* ``export RUN --format pyfolio``: returns, positions and transactions files for pyfolio.

Only click and the CLI helpers are imported at module level; pandas, the store and the
bootstrap load when a command runs.
"""

from __future__ import annotations

import json
from typing import Any

import click

from rlbridge.cli import App, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl

_KINDS = ("train", "backtest", "walkforward", "live")  # rlbridge.runs.KINDS, without the import
_STATUSES = ("running", "completed", "failed")


@click.group("runs")
def runs_group() -> None:
    """Browse the runs recorded in the store: `runs list`, `runs show RUN`."""


@runs_group.command("list")
@click.option("--kind", type=click.Choice(_KINDS), help="Only runs of this kind.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@cli_errors
def list_cmd(app: App, kind: str | None, status: str | None, limit: int,
             as_json: bool) -> None:
    """List the recorded runs, newest first: id, kind, status, strategy, engine, span,
    final value and start time."""
    from rlbridge.runs import equity_spans, list_runs

    store = app.store()
    records = list_runs(store, kind, limit, status=status)
    spans = equity_spans(store, records)
    rows = [_summary(record, spans.get(record.id)) for record in records]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        wanted = ", ".join(f"{k} {v}" for k, v in (("kind", kind), ("status", status)) if v)
        click.echo(f"No runs{f' ({wanted})' if wanted else ''} in the store {store.url}.")
        return
    header = ("ID", "KIND", "STATUS", "STRATEGY", "ENGINE", "SPAN", "FINAL VALUE", "STARTED")
    lines = [header] + [(
        r["run_id"], r["kind"], r["status"], r["strategy"] or r["algo"] or "-",
        r["engine"] or "-",
        f"{r['start']} .. {r['end']}" if r["start"] else "-",
        f"{r['final_value']:,.2f}" if r["final_value"] is not None else "-",
        r["started_at"][:19].replace("T", " ")) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [c.rjust(w) if i == 6 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        click.echo("  ".join(cells).rstrip())


@runs_group.command("show")
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def show_cmd(app: App, run_id: str, as_json: bool) -> None:
    """Show the run RUN: config, metrics, orders and fills, error, trained model."""
    from rlbridge.metrics import format_table, performance
    from rlbridge.runs import (
        equity_spans,
        get_run,
        list_models,
        run_equity,
        run_fills,
        trade_counts,
    )

    store = app.store()
    record = get_run(store, run_id)
    summary = _summary(record, equity_spans(store, [record]).get(record.id))
    equity = run_equity(store, record)
    metrics = (performance(equity["value"], fills=run_fills(store, record))
               if len(equity) > 1 else {})
    counts = trade_counts(store, record)
    models = [{"model_id": m.id, "algo": m.algo, "path": m.path, "data_hash": m.data_hash,
               "versions": m.versions, "created_at": m.created_at.isoformat()}
              for m in list_models(store, None, run=record)]
    if as_json:
        echo_json({**summary, "config": record.config, "data_hash": record.data_hash,
                   "metrics": metrics, **counts, "models": models})
        return
    click.echo(f"Run {record.id}: {record.kind}, {record.status}")
    facts = [("Started", f"{record.started_at:%Y-%m-%d %H:%M:%S} UTC" + (
        f", finished after {(record.finished_at - record.started_at).total_seconds():.1f} s"
        if record.finished_at else ", still running")),
        ("Config", record.config_path or "(no file)"),
        ("Strategy", _what(summary)),
        ("Span", f"{summary['start']} .. {summary['end']} ({summary['bars']:,} bars), final "
                 f"value {summary['final_value']:,.2f}" if summary["start"] else "no equity"),
        ("Orders", f"{counts['orders']}" + (" (" + ", ".join(
            f"{s} {n}" for s, n in counts["orders_by_status"].items()) + ")"
            if counts["orders"] else "") + f"; fills {counts['fills']}")]
    if record.data_hash:
        facts.append(("Data hash", record.data_hash))
    if record.error:
        facts.append(("Error", record.error))
    for model in models:
        facts.append(("Model", f"{model['model_id']}: {model['algo']}, {model['path']}"))
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        click.echo(f"{key.ljust(width)}  {value}")
    if metrics:
        click.echo("")
        click.echo(format_table({record.id: metrics}))
    click.echo("")
    click.echo("\n".join(_toml_lines(record.config)))


@click.command("compare")
@click.argument("run_ids", metavar="RUN [RUN ...]", nargs=-1, required=True)
@click.option("--baseline", metavar="RUN|equal_weight|SYMBOL",
              help="Compare each run's Sharpe ratio with a run's, an equal-weight "
                   "portfolio's, or a symbol's buy and hold (the benchmark stored with the run).")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples.")
@click.option("--block", type=click.FloatRange(min=1.0), default=None,
              help="Mean block length in bars [default: bars ** (1/3)].")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95,
              show_default=True, help="Confidence level of the interval.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def compare_cmd(app: App, run_ids: tuple[str, ...], baseline: str | None, n_boot: int,
                block: float | None, confidence: float, seed: int, as_json: bool) -> None:
    """Print the metrics of recorded runs side by side over the dates they share and, with
    --baseline, each run's Sharpe difference over the baseline with its confidence interval
    and one-sided p-value (stationary block bootstrap)."""
    from rlbridge.metrics import format_table
    from rlbridge.runs import compare_runs

    result = compare_runs(app.store(), list(run_ids), baseline=baseline, pm=app.pm,
                          n_boot=n_boot, block=block, confidence=confidence, seed=seed)
    if as_json:
        echo_json(result.to_json())
        return
    payload = result.to_json()
    click.echo(f"Compared over {payload['start']} .. {payload['end']} "
               f"({result.bars:,} common bars):")
    width = max(len(label) for label in result.columns)
    for label in result.columns:
        click.echo(f"  {label.ljust(width)}  {result.describe[label]}")
    click.echo("")
    click.echo(format_table(result.columns))
    if not result.significance:
        return
    first = next(iter(result.significance.values()))
    level = f"{confidence * 100:g}% CI"
    click.echo("")
    click.echo(f"Sharpe ratio difference over the baseline: stationary block bootstrap, "
               f"{first.n_boot:,} resamples, mean block {first.block:g} bars; p-value of "
               "H0: difference <= 0 (one-sided)")
    rows = [("Run", "Baseline", "Difference", level, "p-value")]
    for run_id, test in result.significance.items():
        rows.append((run_id, result.baselines[run_id], f"{test.difference:+.2f}",
                     f"[{test.low:+.2f}, {test.high:+.2f}]", f"{test.p_value:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())


@click.command("export")
@click.argument("run_id", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["pyfolio"]), default="pyfolio",
              show_default=True, help="The layout to write.")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(),
              help="The folder to write (default: exports/RUN).")
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
@pass_app
@cli_errors
def export_cmd(app: App, run_id: str, fmt: str, out_dir: str | None, as_json: bool) -> None:
    """Write the returns, positions and transactions of the recorded run RUN in pyfolio's
    layout: returns.csv, positions.csv, transactions.csv (and .parquet with pyarrow)."""
    from pathlib import Path

    from rlbridge.exports import write_pyfolio

    out = Path(out_dir) if out_dir else Path("exports") / run_id
    files = write_pyfolio(app.store(), run_id, out)
    if as_json:
        echo_json({"run_id": run_id, "format": fmt, "directory": str(out.absolute()),
                   "files": {name: str(path) for name, path in files.items()}})
        return
    click.echo(f"Exported run {run_id} ({fmt}) to {out.absolute()}: {', '.join(files)}")


# ---------------------------------------------------------------------- helpers
def _summary(record: Any, span: Any) -> dict[str, Any]:
    """A run as one JSON-ready row of ``runs list``."""
    config = record.config or {}
    return {
        "run_id": record.id, "kind": record.kind, "status": record.status,
        "strategy": (config.get("strategy") or {}).get("name"),
        "algo": (config.get("policy") or {}).get("algo"),
        "engine": (config.get("backtest") or {}).get("engine"),
        "start": None if span is None else _day(span.start),
        "end": None if span is None else _day(span.end),
        "bars": 0 if span is None else span.bars,
        "final_value": None if span is None else span.final_value,
        "started_at": record.started_at.isoformat(),
        "finished_at": None if record.finished_at is None else record.finished_at.isoformat(),
        "config_path": record.config_path, "error": record.error,
    }


def _day(stamp: Any) -> str:
    return str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat()


def _what(summary: dict[str, Any]) -> str:
    name = summary["strategy"] or (f"{summary['algo']} policy" if summary["algo"] else "-")
    return f"{name} on {summary['engine']}" if summary["engine"] else name


def _toml_lines(config: dict[str, Any]) -> list[str]:
    """The stored config as TOML text (tables, then ``key = value``)."""
    lines = ["# config as stored with the run (secrets removed)"]
    for name, table in config.items():
        if not isinstance(table, dict):
            lines.append(f"{name} = {_toml(table)}")
            continue
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    return lines


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(runs_group)
    cli.add_command(compare_cmd)
    cli.add_command(export_cmd)

"""Backtest reports: PNG plots and one self-contained HTML page, from a result or from the store.

::

    result = rlbridge.backtest(config)
    files = write_report(result, "reports/latest")          # just run
    files = write_report(load_run_report(store, run_id), "reports/" + run_id)  # from the store

A report is five PNGs (``equity.png``: the strategy against its benchmark and any baselines,
all from the same starting value; ``drawdown.png``; ``weights.png``: a stacked area of the
weights at each close, cash included; ``rolling_sharpe.png``; ``monthly_returns.png``: a
heatmap of monthly returns) and ``report.html``: the run's id, config, engine, strategy and
span, the metrics of the strategy beside its benchmark, the plots embedded as ``data:`` URIs,
and the last fills.  The page loads nothing from anywhere: it can be mailed or archived alone.

The files are written into a temporary folder beside the destination and moved there only
once all of them exist, so a failure leaves no half report.  Plots are drawn on matplotlib's
Agg canvas without pyplot: no global backend is switched and nothing opens a window.  This
module imports matplotlib, numpy and pandas only when a report is made.
"""

from __future__ import annotations

import base64
import html
import math
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RLBridgeError

if TYPE_CHECKING:
    import pandas as pd

    from .backtesting import BacktestResult
    from .store import Store

__all__ = ["IMAGES", "ReportError", "ReportFiles", "RunReport", "load_run_report",
           "report_from_result", "write_report"]

#: The images of a report, in the order the page shows them: file stem -> caption.
IMAGES: dict[str, str] = {
    "equity": "Equity against the benchmark",
    "drawdown": "Drawdown",
    "weights": "Weights at each close (cash included)",
    "rolling_sharpe": "Rolling Sharpe ratio",
    "monthly_returns": "Monthly returns",
}


class ReportError(RLBridgeError):
    """A report cannot be made: the run has nothing to report, or the folder cannot be written."""


@dataclass(frozen=True)
class RunReport:
    """Everything a report shows, from a :class:`~rlbridge.backtesting.BacktestResult` or the store.

    Attributes:
        run_id: the run's id (None for a run not recorded).
        status: ``"completed"``, ``"failed"`` or ``"running"``.
        error: the error of a failed run.
        config_path: the config file the run came from, if known.
        engine, strategy: the names that ran.
        equity: portfolio value at each close.
        weights: ``[T, N+1]`` weights at each close, cash last (column ``"cash"``).
        fills: the fills, indexed by time: ``symbol``, ``quantity``, ``price``, ``commission``.
        metrics: :func:`~rlbridge.metrics.performance` of ``equity``.
        benchmark: the benchmark's buy-and-hold value at each close, or None.
        benchmark_symbol: its symbol, or None.
        benchmark_metrics: the benchmark's performance ({} without one).
        baselines: more curves to compare against (label -> value at each close).
    """

    run_id: str | None
    status: str
    error: str | None
    config_path: str | None
    engine: str
    strategy: str
    equity: pd.Series
    weights: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict[str, float]
    benchmark: pd.Series | None = None
    benchmark_symbol: str | None = None
    benchmark_metrics: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, pd.Series] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportFiles:
    """The files a report wrote.

    Attributes:
        directory: the report's folder.
        html: its ``report.html``.
        images: image stem (see :data:`IMAGES`) -> PNG file.
    """

    directory: Path
    html: Path
    images: dict[str, Path]

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form: folder, page and images as strings."""
        return {"directory": str(self.directory), "html": str(self.html),
                "images": {k: str(v) for k, v in self.images.items()}}


# ---------------------------------------------------------------------- sources
def report_from_result(result: BacktestResult) -> RunReport:
    """The report data of a backtest just run."""
    import pandas as pd

    fills = pd.DataFrame(
        [(f.symbol, float(f.quantity), float(f.price), float(f.commission)) for f in result.fills],
        index=pd.DatetimeIndex([f.time for f in result.fills]) if result.fills else None,
        columns=["symbol", "quantity", "price", "commission"])
    return RunReport(
        run_id=result.run_id, status="completed", error=None, config_path=result.config_path,
        engine=result.engine, strategy=result.strategy, equity=result.equity,
        weights=result.weights, fills=fills, metrics=dict(result.metrics),
        benchmark=result.benchmark, benchmark_symbol=result.benchmark_symbol,
        benchmark_metrics=dict(result.benchmark_metrics))


def load_run_report(store: Store, run: str) -> RunReport:
    """The report data of a recorded run, from the store alone.

    The metrics are computed again from the stored equity and fills (the same numbers the run
    printed); the weights from the stored holdings and equity.

    Raises:
        NotFoundError: no such run (the message lists the most recent runs).
        ReportError: the run recorded no equity curve (a training run, or one that failed
            before its first bar).
    """
    import pandas as pd

    from .metrics import performance
    from .runs import get_run, run_benchmark, run_equity, run_fills, run_positions

    record = get_run(store, run)
    equity = run_equity(store, record)
    if equity.empty:
        raise ReportError(f"run {record.id} ({record.kind}, {record.status}) recorded no "
                          "equity curve; there is nothing to report")
    value = equity["value"].rename("equity")
    held = run_positions(store, record, values=True)
    weights = held.div(value, axis=0)
    weights["cash"] = equity["cash"] / value
    fills = run_fills(store, record)[["symbol", "quantity", "price", "commission"]]
    benchmark = run_benchmark(store, record)
    config = record.config
    symbol = (config.get("backtest") or {}).get("benchmark") if benchmark is not None else None
    return RunReport(
        run_id=record.id, status=record.status, error=record.error,
        config_path=record.config_path,
        engine=str((config.get("backtest") or {}).get("engine", record.kind)),
        strategy=str((config.get("strategy") or {}).get("name", "?")),
        equity=value, weights=weights, fills=fills,
        metrics=performance(value, fills=fills) if len(value) > 1 else {},
        benchmark=None if benchmark is None else pd.Series(benchmark, name=symbol),
        benchmark_symbol=symbol,
        benchmark_metrics=performance(benchmark) if benchmark is not None
        and len(benchmark) > 1 else {})


# ---------------------------------------------------------------------- writing
def write_report(
    source: BacktestResult | RunReport,
    out_dir: str | os.PathLike[str],
    *,
    baselines: Mapping[str, pd.Series | BacktestResult] | None = None,
    fills_shown: int = 20,
    rolling_window: int = 126,
) -> ReportFiles:
    """Write the report of ``source`` into the folder ``out_dir`` (created; existing report
    files in it are replaced).

    Args:
        source: a backtest result, or :func:`load_run_report` of a stored run.
        out_dir: the folder.
        baselines: more curves for the equity plot and the metrics table, label -> values at
            each close (or a backtest result, e.g. an equal-weight run on the same span);
            each is rescaled to start at the strategy's first value.
        fills_shown: how many of the last fills the page lists.
        rolling_window: bars in the rolling Sharpe window (fewer when the run is shorter).

    Returns:
        The files written.

    Raises:
        ReportError: ``out_dir`` is a file or cannot be created or written, the run has fewer
            than 2 bars, or a plot cannot be drawn; nothing is left at ``out_dir`` by a
            failed report (an existing folder keeps its previous files).
    """
    report = source if isinstance(source, RunReport) else report_from_result(source)
    if baselines:
        report = _with_baselines(report, baselines)
    if len(report.equity) < 2:
        raise ReportError(f"run {report.run_id}: {len(report.equity)} bar(s) recorded; a "
                          "report needs at least 2")
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out} is a file, not a folder; give --out a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = out.parent / f".{out.name}-{secrets.token_hex(4)}.tmp"
        work.mkdir()  # not mkdtemp: the report gets the umask's permissions, not 0700
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {out}: "
                          f"{exc.strerror or exc}") from None
    try:
        images = _draw_all(report, work, rolling_window)
        page = _page(report, images, fills_shown)
        (work / "report.html").write_text(page, encoding="utf-8")
        names = [f"{stem}.png" for stem in images] + ["report.html"]
        _move(work, out, names)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ReportError(f"cannot write the report into {out}: "
                              f"{exc.strerror or exc}") from exc
        raise
    return ReportFiles(out, out / "report.html", {k: out / f"{k}.png" for k in images})


def _move(work: Path, out: Path, names: list[str]) -> None:
    """Put the finished files at ``out``: the whole folder at once when ``out`` is new."""
    try:
        os.rename(work, out)
        return
    except OSError:
        if not out.is_dir():
            raise
    for name in names:  # an existing folder: replace our files one by one (each atomic)
        os.replace(work / name, out / name)
    work.rmdir()


def _with_baselines(report: RunReport, extra: Mapping[str, Any]) -> RunReport:
    import dataclasses

    import pandas as pd

    curves = dict(report.baselines)
    for label, curve in extra.items():
        series = curve.equity if hasattr(curve, "equity") else curve
        series = pd.Series(series, dtype="float64").dropna()
        if len(series) == 0:
            raise ReportError(f"the baseline {label!r} has no values")
        curves[str(label)] = series
    return dataclasses.replace(report, baselines=curves)


def _draw_all(report: RunReport, work: Path, window: int) -> dict[str, bytes]:
    from . import plots

    images: dict[str, bytes] = {}
    for stem in IMAGES:
        try:
            figure = getattr(plots, stem)(report, window) if stem == "rolling_sharpe" \
                else getattr(plots, stem)(report)
            data = plots.png(figure)
        except (ReportError, OSError):
            raise
        except Exception as exc:  # bad data in a hand-made RunReport, or a plotting bug
            raise ReportError(f"cannot draw {stem}.png for run {report.run_id}: "
                              f"{type(exc).__name__}: {exc}") from exc
        (work / f"{stem}.png").write_bytes(data)
        images[stem] = data
    return images


# ---------------------------------------------------------------------- the page
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       max-width: 1080px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
dl.run { display: grid; grid-template-columns: max-content auto; gap: .15em 1.2em; }
dl.run dt { color: #5b6475; } dl.run dd { margin: 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .8em; border-bottom: 1px solid #e3e6ec; }
th { text-align: left; background: #f4f6f9; } td.num, th.num { text-align: right; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #5b6475; font-size: .9em; }
.failed { color: #b42318; font-weight: 600; }
"""


def _page(report: RunReport, images: Mapping[str, bytes], fills_shown: int) -> str:
    e = html.escape
    index = report.equity.index
    title = f"{report.strategy} on {report.engine}"
    config = report.config_path
    facts = [
        ("Run", report.run_id or "not recorded"),
        ("Status", report.status),
        ("Config", Path(config).name if config else "(no file)"),
        ("Engine", report.engine),
        ("Strategy", report.strategy),
        ("Benchmark", f"{report.benchmark_symbol} buy and hold" if report.benchmark_symbol
         else "none"),
        ("Span", f"{_when(index[0])} .. {_when(index[-1])} ({len(index):,} bars)"),
    ]
    tip = f" title={_attr(config)}" if config else ""
    rows = "".join(f"<dt>{e(k)}</dt><dd{tip if k == 'Config' else ''}>{e(str(v))}</dd>"
                   for k, v in facts)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)} - rlbridge report {e(report.run_id or '')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>", f'<dl class="run">{rows}</dl>',
    ]
    if report.error:
        parts.append(f'<p class="failed">The run failed: {e(report.error)}</p>')
    parts += ["<h2>Metrics</h2>", _metrics_table(report), "<h2>Plots</h2>"]
    for stem, caption in IMAGES.items():
        if stem in images:
            data = base64.b64encode(images[stem]).decode("ascii")
            parts.append(f'<figure id="{stem}"><img alt="{e(caption)}" '
                         f'src="data:image/png;base64,{data}"><figcaption>{e(caption)}'
                         "</figcaption></figure>")
    parts += [_fills_table(report.fills, fills_shown), "</body></html>"]
    return "\n".join(parts) + "\n"


def _attr(text: str) -> str:
    return '"' + html.escape(text, quote=True) + '"'


def _metrics_table(report: RunReport) -> str:
    from .metrics import METRICS, format_value

    columns = {report.strategy: report.metrics}
    if report.benchmark is not None:
        columns[f"{report.benchmark_symbol or 'benchmark'} (benchmark)"] = report.benchmark_metrics
    for label, curve in report.baselines.items():
        columns[label] = _baseline_metrics(curve)
    keys = [k for k in METRICS if any(k in m for m in columns.values())]
    e = html.escape
    head = "".join(f'<th class="num">{e(name)}</th>' for name in columns)
    body = "".join(
        f"<tr><th>{e(METRICS[k][0])}</th>"
        + "".join(f'<td class="num">{e(format_value(m.get(k), METRICS[k][1]))}</td>'
                  for m in columns.values()) + "</tr>" for k in keys)
    return (f'<table id="metrics"><thead><tr><th>Metric</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _baseline_metrics(curve: pd.Series) -> dict[str, float]:
    from .metrics import performance

    return performance(curve) if len(curve) > 1 else {}


def _fills_table(fills: pd.DataFrame, shown: int) -> str:
    e = html.escape
    total = len(fills)
    if total == 0:
        return '<h2>Fills</h2><p id="fills">No fills.</p>'
    last = fills.iloc[-shown:] if shown > 0 else fills.iloc[:0]
    note = f"the last {len(last):,} of {total:,}" if len(last) < total else f"all {total:,}"
    rows = "".join(
        f"<tr><td>{e(_when(t))}</td><td>{e(str(r.symbol))}</td>"
        f'<td class="num">{_quantity(r.quantity)}</td><td class="num">{_price(r.price)}</td>'
        f'<td class="num">{r.commission:,.2f}</td></tr>'
        for t, r in zip(last.index, last.itertuples(index=False), strict=True))
    return (f"<h2>Fills ({note})</h2>"
            '<table id="fills"><thead><tr><th>Time</th><th>Symbol</th>'
            '<th class="num">Quantity</th><th class="num">Price</th>'
            f'<th class="num">Commission</th></tr></thead><tbody>{rows}</tbody></table>')


def _when(stamp: Any) -> str:
    import pandas as pd

    from .data import format_stamp

    return format_stamp(pd.Timestamp(stamp))


def _quantity(q: float) -> str:
    return f"{q:+,.0f}" if float(q).is_integer() else f"{q:+,.4f}"


def _price(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    digits = 2 if abs(p) >= 10 else 4 if abs(p) >= 0.1 else 6
    return f"{p:,.{digits}f}"

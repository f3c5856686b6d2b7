"""The figures of a backtest report, drawn on matplotlib's Agg canvas.

Each function takes a :class:`~rlbridge.report.RunReport` and returns a
``matplotlib.figure.Figure``; :func:`png` turns one into PNG bytes.  No pyplot: the figures
belong to no global state, switch no backend and open no window, so they are safe in scripts,
servers and notebooks alike.  matplotlib is imported inside the functions (``rlbridge --help``
never pays for it).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    from .report import RunReport

__all__ = ["drawdown", "equity", "monthly_returns", "png", "rolling_sharpe", "weights"]

_SIZE = (10.0, 4.2)
_DPI = 100
_STRATEGY, _BENCHMARK = "#1f5fbf", "#d9822b"
_PERIODS = 252  # bars per year, as rlbridge.metrics.performance assumes


def png(figure: Figure) -> bytes:
    """``figure`` as PNG bytes (no metadata, so equal figures give equal bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure(title: str, size: tuple[float, float] = _SIZE) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, color="#e3e6ec", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return figure, ax


def _x(index: pd.DatetimeIndex) -> np.ndarray:
    """Times for the x axis: naive datetime64 (UTC times shown as UTC)."""
    if getattr(index, "tz", None) is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _benchmark_label(report: RunReport) -> str:
    return f"{report.benchmark_symbol or 'benchmark'} buy and hold"


def equity(report: RunReport) -> Figure:
    """The strategy's equity, its benchmark and baselines, all from the same starting value."""
    figure, ax = _figure("Equity")
    start = float(report.equity.iloc[0])
    ax.plot(_x(report.equity.index), report.equity.to_numpy(), color=_STRATEGY, linewidth=1.6,
            label=report.strategy)
    if report.benchmark is not None:
        ax.plot(_x(report.benchmark.index), report.benchmark.to_numpy(), color=_BENCHMARK,
                linewidth=1.2, label=_benchmark_label(report))
    for label, curve in report.baselines.items():
        ax.plot(_x(curve.index), curve.to_numpy() * start / float(curve.iloc[0]),
                linewidth=1.0, linestyle="--", label=label)
    ax.axhline(start, color="#8a93a3", linewidth=0.8, linestyle=":")
    ax.set_ylabel("value")
    ax.yaxis.set_major_formatter(_thousands())
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    return figure


def drawdown(report: RunReport) -> Figure:
    """The fall from the running peak, in percent, of the strategy and its benchmark."""
    figure, ax = _figure("Drawdown")
    strategy = _drawdown(report.equity)
    x = _x(report.equity.index)
    ax.fill_between(x, strategy * 100, 0, color=_STRATEGY, alpha=0.25, linewidth=0)
    ax.plot(x, strategy * 100, color=_STRATEGY, linewidth=1.2, label=report.strategy)
    if report.benchmark is not None:
        ax.plot(_x(report.benchmark.index), _drawdown(report.benchmark) * 100, color=_BENCHMARK,
                linewidth=1.0, label=_benchmark_label(report))
    ax.set_ylabel("drawdown (%)")
    ax.legend(loc="lower left", frameon=False, fontsize=9)
    return figure


def _drawdown(curve: pd.Series) -> np.ndarray:
    import numpy as np

    values = curve.to_numpy(dtype=np.float64)
    return values / np.maximum.accumulate(values) - 1.0


def weights(report: RunReport) -> Figure:
    """A stacked area of the weights at each close, one band per symbol and cash last."""
    import numpy as np

    frame = report.weights
    held = [c for c in frame.columns if c != "cash"]
    title = "Weights" if held else "Weights (holdings were not recorded for this run)"
    figure, ax = _figure(title, (_SIZE[0], _SIZE[1] + 0.6))
    colors = _colors(len(held))
    columns = [*held, "cash"] if "cash" in frame.columns else held
    palette = [*colors, "#c9ced8"][:len(columns)]
    ax.stackplot(_x(frame.index), np.vstack([frame[c].to_numpy() for c in columns]),
                 labels=[str(c) for c in columns], colors=palette, linewidth=0)
    ax.set_ylabel("weight")
    ax.set_ylim(min(0.0, float(np.nanmin(frame.to_numpy().clip(max=0).sum(axis=1)))),
                max(1.0, float(np.nanmax(frame.to_numpy().clip(min=0).sum(axis=1)))))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8,
              ncol=1 if len(columns) <= 16 else 2)
    return figure


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def rolling_sharpe(report: RunReport, window: int = 126) -> Figure:
    """The annualised Sharpe ratio over a rolling window of bars (shorter for short runs)."""
    import empyrical

    returns = report.equity.pct_change().iloc[1:]
    window = max(2, min(window, len(returns) // 2)) if len(returns) < 2 * window else window
    figure, ax = _figure(f"Rolling Sharpe ratio ({window} bars)")
    curves = [(report.strategy, returns, _STRATEGY)]
    if report.benchmark is not None:
        curves.append((_benchmark_label(report), report.benchmark.pct_change().iloc[1:],
                       _BENCHMARK))
    for label, series, color in curves:
        if len(series) < window:
            continue
        rolled = empyrical.roll_sharpe_ratio(series, window, annualization=_PERIODS)
        ax.plot(_x(rolled.index), rolled.to_numpy(), color=color, linewidth=1.2, label=label)
    ax.axhline(0.0, color="#8a93a3", linewidth=0.8)
    ax.set_ylabel("Sharpe ratio (annualised)")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    return figure


def monthly_returns(report: RunReport) -> Figure:
    """A heatmap of the strategy's return in each calendar month (years down, months across)."""
    import empyrical
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    returns = report.equity.pct_change().iloc[1:]
    if getattr(returns.index, "tz", None) is not None:
        returns.index = returns.index.tz_convert("UTC").tz_localize(None)
    monthly = empyrical.aggregate_returns(returns, "monthly")
    years = sorted({int(y) for y, _ in monthly.index})
    grid = np.full((len(years), 12), np.nan)
    for (year, month), value in monthly.items():
        grid[years.index(int(year)), int(month) - 1] = value * 100
    figure, ax = _figure("Monthly returns (%)", (_SIZE[0], max(2.2, 0.9 + 0.42 * len(years))))
    ax.grid(False)
    bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    bound = bound or 1.0
    image = ax.imshow(grid, cmap="RdYlGn", aspect="auto",
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound))
    ax.set_xticks(range(12), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                              "Oct", "Nov", "Dec"])
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    for (row, col), value in np.ndenumerate(grid):
        if np.isfinite(value):
            label = f"{value:.1f}".replace("-0.0", "0.0") if abs(value) < 0.05 else f"{value:.1f}"
            ax.text(col, row, label, ha="center", va="center", fontsize=8,
                    color="#1d2330")
    figure.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
    return figure


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: f"{value:,.0f}")

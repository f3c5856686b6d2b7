"""Feature speed: the full default pipeline on 30 assets x 2,500 days against pandas.

The pipeline is every built-in transform with its default options (``DEFAULT_TRANSFORMS``: 15
features per asset).  The baseline computes the same features with pandas on ``[T, N]``
DataFrames (``diff``, ``rolling().std()/.mean()``, ``ewm().mean()``) and stacks them into the
same ``[T, N, F]`` array; its RSI uses ``ewm(alpha=1/window)``, which skips Wilder's
simple-average seed, so RSI is left out of the agreement check.  Each figure is the best of
several repeats on synthetic bars (geometric random walks), each on a new ``Bars`` so that
nothing cached on a panel is reused; ratio > 1 means rlbridge is faster.

Also shown: each transform on its own, and ``compute_features`` (pipeline plus normalisation
fitted on the first 2,000 days).

Run: .venv/bin/python benchmarks/bench_features.py [--assets 30] [--days 2500] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any


def best(fn: Callable[[Any], object], bars: Any, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn(bars)``, in seconds.

    Each call gets a new ``Bars`` of the same data (made untimed), so nothing computed on the
    panel by an earlier call (the shared log returns) is reused.
    """
    from rlbridge.interfaces import Bars

    times = []
    for _ in range(repeats):
        fresh = Bars(bars.index, bars.symbols, bars.values)
        t0 = time.perf_counter()
        fn(fresh)
        times.append(time.perf_counter() - t0)
    return min(times)


def synthetic_bars(assets: int, days: int, seed: int = 0) -> Any:
    from rlbridge.testing import random_walk_bars

    return random_walk_bars(days, assets, seed=seed, start="2010-01-01", price=100.0,
                            volatility=0.015)


def pandas_features(bars: Any) -> Any:
    """The default pipeline's 15 features, computed the pandas way."""
    import numpy as np
    import pandas as pd

    def df(field: str) -> pd.DataFrame:
        return pd.DataFrame(bars.field(field), index=bars.index)

    close = df("close")
    cols: list[Any] = [np.log(df(f)).diff() for f in ("open", "high", "low", "close")]
    cols.append(np.log1p(df("volume")).diff())
    r = cols[3]
    roll = r.rolling(20)
    std = roll.std()
    cols += [std, roll.mean() / std * math.sqrt(252), close / close.rolling(20).mean() - 1]
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    cols.append((gain - loss) / (gain + loss))
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    signal = line.ewm(span=9, adjust=False).mean()
    cols += [line / close, signal / close, (line - signal) / close]
    market = r.mean(axis=1)
    mroll = market.rolling(20)
    mstd = mroll.std()
    level = np.exp(market.fillna(0.0).cumsum())
    n = len(bars.symbols)
    for series in (mstd, mroll.mean() / mstd * math.sqrt(252),
                   level / level.rolling(20).mean() - 1):
        cols.append(pd.DataFrame(np.repeat(series.to_numpy()[:, None], n, axis=1)))
    return np.stack([c.to_numpy() for c in cols], axis=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=30)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import numpy as np

    from rlbridge.config import Config as AgentConfig
    from rlbridge.config import FeaturesConfig, TrainConfig, TransformSpec
    from rlbridge.features import DEFAULT_TRANSFORMS, FeaturePipeline, compute_features
    from rlbridge.manager import make_plugin_manager

    pm = make_plugin_manager(entrypoints=False, warn=False)
    features = FeaturesConfig(transforms=tuple(TransformSpec(n) for n in DEFAULT_TRANSFORMS))
    pipeline = FeaturePipeline.from_config(features, pm)
    bars = synthetic_bars(args.assets, args.days)
    shape = f"{args.assets} assets x {args.days} days, F = {len(pipeline)}"

    ours = pipeline.compute(bars)
    theirs = pandas_features(bars)
    rsi = pipeline.feature_names.index("rsi_14")
    keep = [f for f in range(len(pipeline)) if f != rsi]
    lb = pipeline.lookback
    diff = np.abs(ours[lb:, :, keep] - theirs[lb:, :, keep])
    scale = np.maximum(np.abs(theirs[lb:, :, keep]), 1e-12)
    print(f"agreement with pandas (all features but rsi, rows >= {lb}): "
          f"max relative difference {float((diff / scale).max()):.1e}")

    t_ours = best(pipeline.compute, bars, args.repeats)
    t_pandas = best(pandas_features, bars, args.repeats)
    print(f"\ndefault pipeline, {shape}")
    print(f"  rlbridge FeaturePipeline.compute  {t_ours * 1e3:8.2f} ms")
    print(f"  pandas baseline                   {t_pandas * 1e3:8.2f} ms")
    print(f"  ratio (pandas / rlbridge)         {t_pandas / t_ours:8.2f}x")

    config = AgentConfig(features=features, train=TrainConfig(
        start=bars.index[0].date(), end=bars.index[min(1999, args.days - 1)].date(),
        timesteps=1))
    t_full = best(lambda b: compute_features(config, b, pm), bars, args.repeats)
    print(f"  compute_features (+ normalise)    {t_full * 1e3:8.2f} ms")

    print("\neach transform on its own")
    for transform in pipeline.transforms:
        t = best(transform.compute, bars, args.repeats)
        print(f"  {transform.name:<18} {t * 1e3:7.2f} ms  ({len(transform.feature_names)} "
              f"feature{'s' if len(transform.feature_names) > 1 else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost model speed: microseconds per call at N = 30 assets, the RL environment's hot path.

The environment calls ``fill_price`` and ``commission`` on every step and must make at least
50,000 steps/s with full costs (20 us per step for everything), so one call should cost a few
microseconds.  Each figure is the best of several repeats of many calls, on a synthetic panel
of 2,500 bars x 30 assets, with the decision bar moving through the panel, and is shown
beside one ``numpy.multiply`` of two ``[30]`` arrays measured in the same run (the ratio says
how many such multiplies a call costs).

Run: .venv/bin/python benchmarks/bench_costs.py [--repeats N] [--calls N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

N = 30
T = 2_500

MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("zero", "zero", {}),
    ("percent", "percent", {}),
    ("per_share", "per_share", {}),
    ("spread", "spread", {}),
    ("volatility_slippage", "volatility_slippage", {"minimum_bps": 1.0}),
    ("composite spread+percent", "composite",
     {"parts": [{"model": "spread"}, {"model": "percent"}]}),
    ("composite full", "composite",
     {"parts": [{"model": "spread"}, {"model": "volatility_slippage"},
                {"model": "per_share"}]}),
]


def best_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``calls`` calls, in microseconds per call."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append(time.perf_counter() - t0)
    return min(times) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from rlbridge.config import CostsConfig
    from rlbridge.costs import create_cost_model
    from rlbridge.interfaces import Bars, CostContext
    from rlbridge.manager import make_plugin_manager

    rng = np.random.default_rng(0)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    values = np.stack([close, close * 1.01, close * 0.99, close,
                       rng.integers(10_000, 1_000_000, (T, N)).astype(float)], axis=2)
    bars = Bars(pd.bdate_range("2010-01-01", periods=T), tuple(f"S{i:02d}" for i in range(N)),
                values)
    context = CostContext(bars, 100)
    price = bars.open[101].copy()
    quantity = rng.integers(-500, 500, N).astype(float)
    quantity[::4] = 0.0
    a, b = rng.random(N), rng.random(N)

    baseline = best_us(lambda: np.multiply(a, b), args.calls, args.repeats)
    print(f"N = {N} assets, {T} bars; best of {args.repeats} x {args.calls:,} calls")
    print(f"baseline numpy.multiply of two [{N}] arrays: {baseline:.3f} us\n")
    print(f"{'model':<26} {'fill_price':>11} {'ratio':>6} {'commission':>11} {'ratio':>6} "
          f"{'both':>8} {'ratio':>6}")
    pm = make_plugin_manager(entrypoints=False, warn=False)
    for label, name, options in MODELS:
        model = create_cost_model(CostsConfig(name, options), pm)
        model.fill_price(price, quantity, context)  # build per-run tables outside the timing
        fill = model.fill_price(price, quantity, context)

        def both(model: Any = model) -> object:
            f = model.fill_price(price, quantity, context)
            return model.commission(f, quantity, context)

        fp = best_us(lambda m=model: m.fill_price(price, quantity, context),
                     args.calls, args.repeats)
        cm = best_us(lambda m=model, f=fill: m.commission(f, quantity, context),
                     args.calls, args.repeats)
        bt = best_us(both, args.calls, args.repeats)
        print(f"{label:<26} {fp:>8.3f} us {fp / baseline:>5.1f}x {cm:>8.3f} us "
              f"{cm / baseline:>5.1f}x {bt:>5.3f} us {bt / baseline:>5.1f}x")


if __name__ == "__main__":
    main()

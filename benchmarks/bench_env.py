"""Environment speed (issue 3 goals), each figure beside a baseline measured in the same run.

* steps/s of one PortfolioEnv at 30 assets x 2,500 days x 8 features with full costs
  (spread + volatility slippage + per-share commission), synthetic data; goal >= 50,000;
  baseline: gymnasium's CartPole-v1 stepped the same way;
* the same on the real bundled ETFs with the demo's features;
* step time at 250 vs 5,000 days: goal flat within 10 %;
* aggregate steps/s of 64 copies in PortfolioVecEnv (its compiled step; baseline: the same
  copies stepped in numpy); goal >= 1,000,000;
* the share of PPO's wall time spent in the environment; goal < 15 %.

Run: .venv/bin/python benchmarks/bench_env.py   (takes about a minute)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from rlbridge import Bars
from rlbridge.config import config_from_mapping
from rlbridge.costs import create_cost_model
from rlbridge.env import PortfolioEnv
from rlbridge.vec_env import PortfolioVecEnv

FULL_COSTS = config_from_mapping({"costs": {"model": "composite", "parts": [
    {"model": "spread", "bps": 2},
    {"model": "volatility_slippage", "coefficient": 0.1, "window": 20},
    {"model": "per_share", "per_share": 0.005, "minimum": 1.0}]}}).costs


def synthetic(days: int, n: int = 30, f: int = 8, seed: int = 0) -> tuple[Bars, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (days, n)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, (days, n)))
    volume = rng.integers(100_000, 5_000_000, (days, n)).astype(float)
    values = np.stack([open_, np.maximum(open_, close) * 1.005, np.minimum(open_, close) * 0.995,
                       close, volume], axis=2)
    bars = Bars(pd.bdate_range("2000-01-03", periods=days), tuple(f"S{i:02d}" for i in range(n)),
                values)
    return bars, rng.normal(size=(days, n, f)).astype(np.float32)


def steps_per_second(env: Any, seconds: float = 1.5, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of stepping ``env`` for ``seconds`` with random actions."""
    actions = [env.action_space.sample() for _ in range(64)]
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for a in actions:
                _, _, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    env.reset()
            n += len(actions)
        best = max(best, n / (time.perf_counter() - start))
    return best


def vec_steps_per_second(vec: PortfolioVecEnv, seconds: float = 1.5, repeats: int = 3) -> float:
    actions = np.stack([vec.action_space.sample() for _ in range(vec.num_envs)])
    best = 0.0
    for _ in range(repeats):
        vec.reset()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            vec.step(actions)
            n += vec.num_envs
        best = max(best, n / (time.perf_counter() - start))
    return best


def cartpole() -> float:
    import gymnasium as gym

    return steps_per_second(gym.make("CartPole-v1").unwrapped)


def real_etfs() -> tuple[float, str]:
    from rlbridge import sample_data
    from rlbridge.features import compute_features
    from rlbridge.plugins.commands.demo import AGENT
    from rlbridge.training import make_env

    mapping = {k: AGENT[k] for k in ("data", "features", "env", "costs", "train")}
    mapping["data"] = {**mapping["data"], "feed": "sample"}
    config = config_from_mapping({**mapping, "costs": {"model": "composite", "parts": [
        dict(p) for p in FULL_COSTS.options["parts"]]}})
    bars = sample_data.load(list(AGENT["data"]["symbols"]), start="2007-01-01", end="2020-09-30")
    env = make_env(config, bars=bars, features=compute_features(config, bars))
    shape = f"{len(bars.symbols)} ETFs x {len(bars)} days x {env.features.shape[2]} features"
    return steps_per_second(env), shape


def ppo_share(timesteps: int = 16_384) -> tuple[float, float]:
    """(env seconds, total seconds) of PPO training on the synthetic 30-asset env."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    bars, features = synthetic(2500)
    env = PortfolioEnv(bars, features, create_cost_model(FULL_COSTS), window=60,
                       random_start=True, episode_length=252)
    spent = [0.0]
    step = env.step

    def timed(action: Any) -> Any:
        t0 = time.perf_counter()
        out = step(action)
        spent[0] += time.perf_counter() - t0
        return out

    env.step = timed  # type: ignore[method-assign]
    model = PPO("MultiInputPolicy", env, n_steps=2048, batch_size=256, n_epochs=4, seed=0,
                device="cpu", policy_kwargs={"net_arch": [64, 64]})
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    return spent[0], time.perf_counter() - start


def main() -> None:
    base = cartpole()
    print(f"baseline: CartPole-v1 (unwrapped)            {base:12,.0f} steps/s")

    bars, features = synthetic(2500)
    one = steps_per_second(PortfolioEnv(bars, features, create_cost_model(FULL_COSTS), window=60))
    print(f"PortfolioEnv 30 x 2,500 x 8, full costs       {one:12,.0f} steps/s  "
          f"({one / base:.2f}x CartPole; goal >= 50,000: {'met' if one >= 50_000 else 'NOT met'})")

    for label, costs in (("no costs", {"model": "zero"}),
                         ("percent + spread", {"model": "composite", "parts": [
                             {"model": "percent"}, {"model": "spread"}]})):
        model = create_cost_model(config_from_mapping({"costs": costs}).costs)
        rate = steps_per_second(PortfolioEnv(bars, features, model, window=60))
        print(f"PortfolioEnv 30 x 2,500 x 8, {label:<17} {rate:12,.0f} steps/s  "
              f"({rate / base:.2f}x CartPole)")

    real, shape = real_etfs()
    print(f"PortfolioEnv real ETFs ({shape}) {real:,.0f} steps/s ({real / base:.2f}x CartPole)")

    times = {}
    for days in (250, 5000):
        bars, features = synthetic(days)
        env = PortfolioEnv(bars, features, create_cost_model(FULL_COSTS), window=60)
        times[days] = 1e6 / steps_per_second(env)
    ratio = times[5000] / times[250]
    print(f"step time 250 days {times[250]:.1f} us, 5,000 days {times[5000]:.1f} us: ratio "
          f"{ratio:.3f} (goal within 10 %: {'met' if abs(ratio - 1) <= 0.10 else 'NOT met'})")

    bars, features = synthetic(2500)
    for window in (60, 20, 5):
        env = PortfolioEnv(bars, features, create_cost_model(FULL_COSTS), window=window,
                           random_start=True, episode_length=252)
        agg = vec_steps_per_second(PortfolioVecEnv(env, 64, seed=0))
        plain = vec_steps_per_second(PortfolioVecEnv(env, 64, seed=0, compiled=False),
                                     seconds=0.75, repeats=2)
        print(f"PortfolioVecEnv 64 copies, window {window:2d}         {agg:12,.0f} steps/s  "
              f"({agg / one:.1f}x one env; {agg / plain:.1f}x its numpy path at "
              f"{plain:,.0f}; goal >= 1,000,000: {'met' if agg >= 1_000_000 else 'NOT met'})")

    env_s, total_s = ppo_share()
    print(f"PPO 16,384 steps: env {env_s:.2f} s of {total_s:.2f} s = {env_s / total_s:.1%} "
          f"(goal < 15 %: {'met' if env_s / total_s < 0.15 else 'NOT met'})")


if __name__ == "__main__":
    main()

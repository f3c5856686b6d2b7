"""PortfolioEnv: gymnasium and SB3 checkers, the action mappings, rewards that equal the market
model's equity, and clear errors for bad actions and data."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlbridge import Bars, ConfigError, DataError
from rlbridge.actions import SOFTMAX_SCALE, ActionError, make_action_mapping
from rlbridge.env import PortfolioEnv
from rlbridge.market import MarketSimulator
from tests.test_market import Percent


def synthetic(days=120, n=3, f=2, warmup=5, seed=0):
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.015, (days, n)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, (days, n)))
    values = np.stack([open_, np.maximum(open_, close) * 1.01, np.minimum(open_, close) * 0.99,
                       close, np.full((days, n), 1e6)], axis=2)
    bars = Bars(pd.bdate_range("2015-01-01", periods=days), tuple("ABCDEFG"[:n]), values)
    features = np.arange(days * n * f, dtype=np.float32).reshape(days, n, f)
    features[:warmup] = np.nan
    return bars, features


@pytest.mark.parametrize("actions", ["softmax", "long_short", "discrete"])
def test_env_passes_gymnasium_and_sb3_checkers(actions):
    bars, features = synthetic()
    env = PortfolioEnv(bars, features, Percent(0.001, 5), window=4, actions=actions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 hints about 3-D float observations, not errors
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(PortfolioEnv(bars, features, Percent(0.001, 5), window=4, actions=actions))


def test_observation_is_the_feature_window_and_current_weights():
    bars, features = synthetic(warmup=5)
    env = PortfolioEnv(bars, features, Percent(), window=4)
    obs, info = env.reset()
    assert env.first == 5 + 4 - 1 and info["t"] == 8
    np.testing.assert_array_equal(obs["features"], features[5:9])
    assert obs["weights"].tolist() == [0, 0, 0, 1]
    action = np.array([1, -1, -1, -1], dtype=np.float32)
    obs, reward, terminated, truncated, info = env.step(action)
    np.testing.assert_array_equal(obs["features"], features[6:10])
    w = env.portfolio.weights(bars.close[9])
    np.testing.assert_allclose(obs["weights"], w, rtol=1e-6)
    assert obs["weights"].sum() == pytest.approx(1.0, abs=1e-6)


def test_rewards_equal_the_log_growth_of_the_market_models_equity():
    bars, features = synthetic(days=80)
    cost = Percent(0.002, 10)
    env = PortfolioEnv(bars, features, cost, window=3, cash=25_000)
    sim = MarketSimulator(bars, cost, cash=25_000)
    obs, _ = env.reset()
    sim.reset(env.t)
    rng = np.random.default_rng(7)
    total, steps = 0.0, 0
    truncated = False
    while not truncated:
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        value_before = sim.value()
        sim.order_target_weights(env.mapping(action, None))
        sim.step()
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated
        assert info["value"] == sim.value()  # same arithmetic, same bits
        assert reward == math.log(sim.value() / value_before)
        total += reward
        steps += 1
    assert steps == env.last - env.first
    assert total == pytest.approx(math.log(sim.value() / 25_000), rel=1e-12)


def test_penalties_lower_the_reward_by_their_definition():
    bars, features = synthetic()
    plain = PortfolioEnv(bars, features, Percent(), window=3)
    penalised = PortfolioEnv(bars, features, Percent(), window=3, turnover_penalty=0.5,
                             drawdown_penalty=2.0)
    plain.reset()
    penalised.reset()
    peak = penalised.initial_cash
    for k in range(10):
        action = np.array([1.0, -1, -1, -1] if k % 2 else [-1.0, 1, -1, -1], dtype=np.float32)
        value_before = plain.value
        _, r_plain, *_ , info = plain.step(action)
        _, r_pen, *_ = penalised.step(action)
        peak = max(peak, plain.value)
        expected = (r_plain - 0.5 * info["traded"] / value_before
                    - 2.0 * (1 - plain.value / peak))
        assert r_pen == pytest.approx(expected, rel=1e-12)


def test_action_mappings_give_the_documented_weights():
    soft = make_action_mapping("softmax", 2)
    w = soft(np.array([1.0, 0.0, -1.0]), None)
    e = np.exp(np.array([1.0, 0.0, -1.0]) * SOFTMAX_SCALE)
    np.testing.assert_allclose(w, e / e.sum())
    long_short = make_action_mapping("long_short", 3, gross_cap=1.5)
    np.testing.assert_allclose(long_short(np.array([1.0, -1.0, 1.0]), None), [0.5, -0.5, 0.5, 0.5])
    np.testing.assert_allclose(long_short(np.array([0.2, -0.3, 0.1]), None), [0.2, -0.3, 0.1, 1.0])
    discrete = make_action_mapping("discrete", 3, trade_step=0.25)
    np.testing.assert_allclose(discrete(np.array([2, 1, 0]), np.array([0.5, 0.3, 0.1, 0.1])),
                               [0.75 / 1.05, 0.3 / 1.05, 0.0, 1 - 1.05 / 1.05], atol=1e-12)
    np.testing.assert_allclose(discrete(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.0, 0.7])),
                               [0.0, 0.2, 0.25, 0.55])


@pytest.mark.parametrize("action, message", [
    (np.array([0.1, np.nan, 0.0, 0.2]), r"softmax action has NaN or infinite values at \[1\]"),
    (np.array([0.1, 0.0, np.inf, 0.2]), r"softmax action has NaN or infinite values at \[2\]"),
    (np.array([0.1, 0.2]), r"softmax action must have shape \(4,\), got \(2,\)"),
])
def test_bad_actions_are_refused_with_the_reason(action, message):
    bars, features = synthetic()
    env = PortfolioEnv(bars, features, Percent(), window=3)
    env.reset()
    with pytest.raises(ActionError, match=message):
        env.step(action)
    discrete = PortfolioEnv(bars, features, Percent(), window=3, actions="discrete")
    discrete.reset()
    with pytest.raises(ActionError, match=r"0 \(sell\), 1 \(hold\) or 2 \(buy\), got \[3.0, 1.0, 1.0\]"):
        discrete.step(np.array([3, 1, 1]))


def test_random_starts_are_seeded_and_episodes_have_the_asked_length():
    bars, features = synthetic(days=200)
    env = PortfolioEnv(bars, features, Percent(), window=5, random_start=True, episode_length=20)
    starts = [env.reset(seed=s)[1]["t"] for s in (1, 2, 3)]
    again = [env.reset(seed=s)[1]["t"] for s in (1, 2, 3)]
    assert starts == again and len(set(starts)) > 1
    assert all(env.first <= s <= env.last - 20 for s in starts)
    env.reset(seed=4)
    steps, truncated = 0, False
    while not truncated:
        *_, truncated, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == 20


def test_bad_data_is_refused():
    bars, features = synthetic(days=12, warmup=5)
    with pytest.raises(DataError, match=r"needs two bars after the 10-bar window"):
        PortfolioEnv(bars, features, Percent(), window=10)
    holes = features.copy()
    holes[8, 1, 0] = np.nan
    with pytest.raises(DataError, match="features are NaN or infinite at 2015-01-13, after their warm-up ended at 2015-01-08"):
        PortfolioEnv(bars, holes, Percent(), window=2)
    with pytest.raises(DataError, match=r"features must have shape \[T=12, N=3, F\]"):
        PortfolioEnv(bars, features[:, :2], Percent(), window=2)


def test_discrete_action_masks_allow_selling_only_what_is_held():
    bars, features = synthetic(n=3)
    env = PortfolioEnv(bars, features, Percent(), window=4, actions="discrete", trade_step=0.25)
    env.reset()
    # all cash: selling is a no-op for every asset, hold and buy are open
    assert env.action_masks().tolist() == [False, True, True] * 3
    env.step(np.array([2, 1, 2]))  # buy A and C
    assert env.action_masks().tolist() == [True, True, True, False, True, True,
                                           True, True, True]


def test_action_masks_exist_only_for_the_discrete_mapping():
    bars, features = synthetic()
    env = PortfolioEnv(bars, features, Percent(), window=4)
    env.reset()
    with pytest.raises(ConfigError, match="action masks exist for the discrete mapping only, "
                                          "not softmax"):
        env.action_masks()

"""PortfolioVecEnv: K copies stepped at once behave exactly like K PortfolioEnvs."""

import numpy as np
import pytest

from rlbridge.env import PortfolioEnv
from rlbridge.vec_env import PortfolioVecEnv
from tests.test_env import synthetic
from tests.test_market import Percent


@pytest.mark.parametrize("actions, band", [("softmax", 0.0), ("long_short", 0.0),
                                           ("discrete", 0.0), ("softmax", 0.05),
                                           ("long_short", 0.05), ("discrete", 0.05)])
def test_each_copy_matches_a_single_environment(actions, band):
    bars, features = synthetic(days=60, n=3)
    kwargs = dict(window=3, actions=actions, turnover_penalty=0.1, drawdown_penalty=0.5,
                  rebalance_band=band, fractional=band == 0.0)
    cost = Percent(0.001, 7)
    vec = PortfolioVecEnv(PortfolioEnv(bars, features, cost, **kwargs), 4, seed=0)
    singles = [PortfolioEnv(bars, features, cost, **kwargs) for _ in range(4)]
    obs = vec.reset()
    for k, env in enumerate(singles):
        single_obs, _ = env.reset()
        np.testing.assert_array_equal(obs["features"][k], single_obs["features"])
    rng = np.random.default_rng(3)
    for _ in range(20):
        batch = np.stack([env.action_space.sample() for env in singles])
        if actions != "discrete":
            batch = rng.uniform(-1, 1, batch.shape)
        obs, rewards, dones, infos = vec.step(batch)
        for k, env in enumerate(singles):
            single_obs, reward, terminated, truncated, info = env.step(batch[k])
            assert rewards[k] == pytest.approx(reward, rel=1e-5, abs=1e-9)  # float32 rewards
            assert vec.value[k] == pytest.approx(info["value"], rel=1e-12)
            np.testing.assert_allclose(obs["weights"][k], single_obs["weights"], rtol=1e-5,
                                       atol=1e-7)
            np.testing.assert_array_equal(obs["features"][k], single_obs["features"])
            assert not dones[k]
        if actions == "discrete":  # maskable_ppo reads each copy's masks through env_method
            masks = vec.env_method("action_masks")
            for k, env in enumerate(singles):
                assert masks[k].tolist() == env.action_masks().tolist()


def test_finished_copies_reset_with_their_terminal_observation():
    bars, features = synthetic(days=100)
    env = PortfolioEnv(bars, features, Percent(), window=4, random_start=True, episode_length=5)
    vec = PortfolioVecEnv(env, 3, seed=1)
    vec.reset()
    starts = vec.t.copy()
    action = np.tile(env.action_space.sample(), (3, 1))
    for step in range(1, 6):
        obs, rewards, dones, infos = vec.step(action)
        if step < 5:
            assert not dones.any()
    assert dones.all()
    for k in range(3):
        terminal = infos[k]["terminal_observation"]
        np.testing.assert_array_equal(terminal["features"],
                                      features[starts[k] + 5 - 3:starts[k] + 5 + 1])
        assert infos[k]["TimeLimit.truncated"] is True
    assert (vec.value == env.initial_cash).all() and (vec.positions == 0).all()
    np.testing.assert_array_equal(obs["features"][0], features[vec.t[0] - 3:vec.t[0] + 1])


def test_copies_match_single_environments_with_the_full_built_in_costs():
    from rlbridge.config import config_from_mapping
    from rlbridge.costs import create_cost_model

    costs = config_from_mapping({"costs": {"model": "composite", "parts": [
        {"model": "spread", "bps": 3},
        {"model": "volatility_slippage", "coefficient": 0.2, "window": 5},
        {"model": "per_share", "per_share": 0.01, "minimum": 1.0}]}}).costs
    bars, features = synthetic(days=80, n=4)
    kwargs = dict(window=3, random_start=False, cash=20_000)
    vec = PortfolioVecEnv(PortfolioEnv(bars, features, create_cost_model(costs), **kwargs), 3)
    singles = [PortfolioEnv(bars, features, create_cost_model(costs), **kwargs) for _ in range(3)]
    vec.reset()
    for env in singles:
        env.reset()
    rng = np.random.default_rng(11)
    for _ in range(30):
        batch = rng.uniform(-1, 1, (3, 5))
        _, rewards, _, _ = vec.step(batch)
        for k, env in enumerate(singles):
            _, reward, _, _, info = env.step(batch[k])
            assert vec.value[k] == pytest.approx(info["value"], rel=1e-12)
            assert rewards[k] == pytest.approx(reward, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_windows_stay_right_through_episode_restarts_and_the_previous_one_survives_a_step(
        window):
    bars, features = synthetic(days=90, n=3)
    env = PortfolioEnv(bars, features, Percent(0.001, 7), window=window, random_start=True,
                       episode_length=4)
    vec = PortfolioVecEnv(env, 5, seed=1)
    rng = np.random.default_rng(0)

    def expected():
        return np.stack([features[t - window + 1:t + 1] for t in vec.t])

    obs = vec.reset()
    np.testing.assert_array_equal(obs["features"], expected())
    restarts = 0
    for _ in range(40):
        before, kept = obs["features"], expected()
        obs, _, dones, infos = vec.step(rng.uniform(-1, 1, (5, 4)))
        restarts += int(dones.sum())
        np.testing.assert_array_equal(obs["features"], expected())
        # the observation SB3 stores after the step is still the one it acted on
        np.testing.assert_array_equal(before, kept)
        for k in np.flatnonzero(dones):  # a copy of the finished episode's last window
            final = infos[k]["terminal_observation"]["features"]
            assert final.base is None and final.shape == (window, 3, 2)
    assert restarts >= 35  # episodes of 4 steps: nearly every copy restarted many times


def test_copy_observations_gives_fresh_arrays():
    bars, features = synthetic(days=60, n=3)
    env = PortfolioEnv(bars, features, Percent(), window=3)
    vec = PortfolioVecEnv(env, 2, seed=0, copy_observations=True)
    first = vec.reset()["features"]
    snapshot = first.copy()
    for _ in range(3):
        vec.step(np.zeros((2, 4)))
    np.testing.assert_array_equal(first, snapshot)
    assert first.flags.owndata


COSTS = {
    "percent": {"model": "percent", "rate": 0.002},
    "per_share": {"model": "per_share", "per_share": 0.01, "minimum": 1.0,
                  "maximum_percent": 0.01},
    "spread": {"model": "spread", "bps": 4},
    "volatility_slippage": {"model": "volatility_slippage", "coefficient": 0.3, "window": 5,
                            "minimum_bps": 1},
    "zero": {"model": "zero"},
    "composite": {"model": "composite", "parts": [
        {"model": "spread", "bps": 3}, {"model": "volatility_slippage", "window": 5},
        {"model": "percent", "rate": 0.001}, {"model": "per_share", "minimum": 0.5}]},
}


@pytest.mark.parametrize("actions", ["softmax", "long_short", "discrete"])
@pytest.mark.parametrize("cost", list(COSTS))
@pytest.mark.parametrize("fractional", [True, False])
def test_the_compiled_step_is_the_numpy_step(actions, cost, fractional):
    from rlbridge.config import config_from_mapping
    from rlbridge.costs import create_cost_model

    model = create_cost_model(config_from_mapping({"costs": COSTS[cost]}).costs)
    bars, features = synthetic(days=120, n=4)
    kwargs = dict(window=3, actions=actions, random_start=True, episode_length=15, cash=30_000,
                  fractional=fractional, turnover_penalty=0.05, drawdown_penalty=0.2,
                  trade_step=0.2, gross_cap=1.5)
    compiled = PortfolioVecEnv(PortfolioEnv(bars, features, model, **kwargs), 6, seed=4)
    plain = PortfolioVecEnv(PortfolioEnv(bars, features, model, **kwargs), 6, seed=4,
                            compiled=False)
    assert compiled._program is not None and plain._program is None
    compiled.reset(), plain.reset()
    rng = np.random.default_rng(2)
    traded = 0.0
    for _ in range(45):
        batch = (rng.integers(0, 3, (6, 4)) if actions == "discrete"
                 else rng.uniform(-1, 1, (6, compiled.action_space.shape[0])))
        a_obs, a_reward, a_done, _ = compiled.step(batch)
        b_obs, b_reward, b_done, _ = plain.step(batch)
        traded += np.abs(compiled.positions).sum()
        np.testing.assert_allclose(compiled.positions, plain.positions, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(compiled.cash, plain.cash, rtol=1e-11, atol=1e-7)
        np.testing.assert_allclose(compiled.value, plain.value, rtol=1e-11)
        np.testing.assert_allclose(a_reward, b_reward, rtol=1e-5, atol=1e-8)
        assert (a_done == b_done).all()
        np.testing.assert_array_equal(a_obs["features"], b_obs["features"])
        # start the next step from the same state: the two sum in different orders, and a
        # whole-share target that lands within rounding of an integer would otherwise let
        # the two drift apart by a share
        for name in ("positions", "cash", "value", "peak"):
            getattr(plain, name)[...] = getattr(compiled, name)
    assert traded > 0


def test_a_cost_model_without_a_compiled_form_steps_with_numpy():
    from rlbridge.errors import ConfigError

    bars, features = synthetic(days=60, n=3)
    env = PortfolioEnv(bars, features, Percent(0.001, 7), window=3)
    assert PortfolioVecEnv(env, 2)._program is None
    with pytest.raises(ConfigError, match="has no compiled form"):
        PortfolioVecEnv(env, 2, compiled=True)
    from rlbridge.plugins.costs.percent import PercentCost

    banded = PortfolioEnv(bars, features, PercentCost(), window=3, rebalance_band=0.02)
    assert PortfolioVecEnv(banded, 2)._program is None  # the band is sized in numpy
    with pytest.raises(ConfigError, match=r"\[env.rebalance_band\]: the compiled step sizes "
                                          "without a rebalance band"):
        PortfolioVecEnv(banded, 2, compiled=True)


def test_the_compiled_step_refuses_nan_actions():
    from rlbridge.actions import ActionError
    from rlbridge.plugins.costs.percent import PercentCost

    bars, features = synthetic(days=60, n=3)
    vec = PortfolioVecEnv(PortfolioEnv(bars, features, PercentCost(), window=3), 2)
    vec.reset()
    with pytest.raises(ActionError, match="NaN or infinite values at \\[5\\]"):
        vec.step(np.array([[0.1, 0.2, 0.3, 0.4], [0.1, np.nan, 0.3, 0.4]]))

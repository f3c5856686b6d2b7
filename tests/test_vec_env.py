"""PortfolioVecEnv: K copies stepped at once behave exactly like K PortfolioEnvs."""

import numpy as np
import pytest

from rlbridge.env import PortfolioEnv
from rlbridge.vec_env import PortfolioVecEnv
from tests.test_env import synthetic
from tests.test_market import Percent


@pytest.mark.parametrize("actions", ["softmax", "long_short", "discrete"])
def test_each_copy_matches_a_single_environment(actions):
    bars, features = synthetic(days=60, n=3)
    kwargs = dict(window=3, actions=actions, turnover_penalty=0.1, drawdown_penalty=0.5)
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

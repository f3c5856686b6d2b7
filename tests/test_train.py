"""Training end to end on the bundled ETFs: the saved policy, its record, reproducibility,
resume, and the RL strategy replaying the environment exactly in the native engine."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import rlbridge
from rlbridge.config import config_from_mapping
from rlbridge.data import load_bars
from rlbridge.errors import ConfigError
from rlbridge.features import Normalizer, compute_features
from rlbridge.manager import make_plugin_manager
from rlbridge.policy import PolicyMismatchError, TrainedPolicy
from rlbridge.runs import get_model, get_run
from rlbridge.store import open_store
from rlbridge.training import make_env, train

torch.set_num_threads(1)

SYMBOLS = ["SPY", "AGG", "XLK"]


def agent(tmp_path, **changes):
    mapping = {
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2007-06-01", "end": "2020-09-30"},
        "features": {"window": 5, "transforms": [
            "log_return", {"name": "volatility", "window": 10}]},
        "env": {"fractional": True},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 128, "batch_size": 64, "n_epochs": 2,
                   "net_arch": [16]},
        "train": {"start": "2008-01-01", "end": "2018-12-31", "timesteps": 256, "seed": 3,
                  "output": str(tmp_path / "models")},
        "strategy": {"name": "rl_allocation", "model": "unset"},
        "backtest": {"engine": "native", "cash": 100_000, "start": "2019-01-01",
                     "end": "2020-09-30", "fractional": True},
    }
    for table, values in changes.items():
        mapping[table] = {**mapping[table], **values}
    return config_from_mapping(mapping, pm=PM)


PM = make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    store = open_store(f"sqlite:///{tmp / 'store.db'}")
    config = agent(tmp)
    result = train(config, PM, store=store)
    return tmp, store, config, result


def test_training_saves_the_policy_with_what_a_later_run_needs(trained):
    tmp, store, config, result = trained
    assert result.path == tmp / "models" / result.run_id / "policy.zip"
    meta = json.loads(result.path.with_suffix(".json").read_text())["metadata"]
    assert meta["symbols"] == SYMBOLS and meta["window"] == 5 and meta["actions"] == "softmax"
    assert meta["feature_names"] == ["log_return_open", "log_return_high", "log_return_low",
                                     "log_return_close", "volatility_10"]
    bars = load_bars(config, PM)
    assert meta["data_hash"] == bars.digest() == result.data_hash
    assert meta["train_range"] == ["2008-01-02 00:00:00", "2018-12-31 00:00:00"]
    assert Normalizer.from_dict(meta["normalizer"]) == compute_features(config, bars, PM).normalizer
    assert meta["versions"]["torch"] == torch.__version__ and meta["seed"] == 3
    run = get_run(store, result.run_id)
    assert (run.kind, run.status, run.data_hash) == ("train", "completed", result.data_hash)
    model = get_model(store, result.model_id)
    assert (model.algo, model.path) == ("ppo", str(result.path))
    assert result.timesteps == 256


def test_the_same_seed_gives_the_same_weights(trained, tmp_path):
    _, _, _, first = trained
    again = train(agent(tmp_path), PM, record=False)
    other = train(agent(tmp_path, train={"seed": 4}), PM, record=False)

    def params(path):
        return TrainedPolicy.load(path).model.policy.state_dict()

    a, b, c = params(first.path), params(again.path), params(other.path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_native_backtest_of_the_policy_replays_the_environment(trained):
    _, store, config, result = trained
    config = agent(trained[0], strategy={"model": str(result.path)})
    backtest = rlbridge.backtest(config, pm=PM, store=store)
    values, rewards = replay(config, result)
    equity = backtest.equity.to_numpy()
    assert len(equity) == len(values) == 441
    np.testing.assert_array_equal(equity, values)  # the same decisions, fills and marks
    np.testing.assert_allclose(np.diff(np.log(equity)), rewards, rtol=0, atol=1e-14)
    assert math.exp(sum(rewards)) * 100_000 == pytest.approx(backtest.final_value, rel=1e-12)
    assert len(backtest.fills) > 100 and backtest.metrics["bars"] == 441


def test_a_rebalance_band_leaves_small_orders_out_in_the_env_and_every_backtest(tmp_path):
    band = {"rebalance_band": 0.02, "fractional": False}
    result = train(agent(tmp_path, env=band), PM, record=False)
    assert TrainedPolicy.load(result.path).metadata["rebalance_band"] == 0.02
    config = agent(tmp_path, env=band, strategy={"model": str(result.path)},
                   backtest={"fractional": False})
    banded = rlbridge.backtest(config, pm=PM, record=False)
    values, _ = replay(config, result)
    np.testing.assert_array_equal(banded.equity.to_numpy(), values)  # the env's own trades
    bars = load_bars(config, PM)
    close = bars.between("2019-01-01", "2020-09-30").close
    equity = banded.equity.to_numpy()
    index = {t: i for i, t in enumerate(banded.equity.index)}
    for fill in banded.fills:  # every order worth at least 2 % of the value it was sized on
        i = index[pd.Timestamp(fill.time)] - 1
        n = bars.symbols.index(fill.symbol)
        assert abs(fill.quantity) * close[i, n] >= 0.02 * equity[i] - 1e-9
    assert banded.cash.min() >= 0  # the sales the band holds back never overdraw the cash
    assert len(banded.fills) > 10


def replay(config, result):
    """The environment stepped through the backtest's period by the policy: values, rewards."""
    policy = TrainedPolicy.load(result.path)
    bars = load_bars(config, PM)
    features = compute_features(config, bars, PM,
                                normalizer=Normalizer.from_dict(policy.metadata["normalizer"]))
    env = make_env(config, PM, bars=bars, features=features, start="2019-01-01",
                   end="2020-09-30")
    obs, info = env.reset()
    values, rewards = [info["value"]], []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        values.append(info["value"])
        rewards.append(reward)
        done = terminated or truncated
    return values, rewards


@pytest.mark.parametrize("changes, message", [
    ({"data": {"symbols": ["SPY", "XLK", "AGG"]}},
     "symbols SPY, AGG, XLK at training, SPY, XLK, AGG now (same symbols in another order)"),
    ({"data": {"symbols": ["SPY", "AGG"]}}, "symbols SPY, AGG, XLK at training, SPY, AGG now "
                                            "(missing XLK)"),
    ({"features": {"transforms": ["log_return", {"name": "volatility", "window": 20}]}},
     "features changed (missing volatility_10; new volatility_20)"),
    ({"features": {"window": 8}}, "window 5 at training, 8 now"),
])
def test_a_policy_refuses_data_it_was_not_trained_for(trained, changes, message):
    tmp, store, _, result = trained
    config = agent(tmp, strategy={"model": str(result.path)}, **changes)
    with pytest.raises(PolicyMismatchError) as err:
        rlbridge.backtest(config, pm=PM, record=False)
    assert message in str(err.value)
    assert str(result.path) in str(err.value)


def test_the_policy_acts_on_the_torch_threads_it_is_given(trained):
    import torch

    tmp, _, _, result = trained
    before = torch.get_num_threads()
    try:
        for threads, expected in ((2, 2), (0, 2), (1, 1)):  # 0 leaves torch's setting
            config = agent(tmp, strategy={"model": str(result.path), "threads": threads})
            rlbridge.backtest(config, pm=PM, record=False)
            assert torch.get_num_threads() == expected
        with pytest.raises(ConfigError, match="threads.*must be 0 .* or more, got -1"):
            agent(tmp, strategy={"model": str(result.path), "threads": -1})
    finally:
        torch.set_num_threads(before)


def test_checkpoints_and_resume_reach_the_total_budget(tmp_path):
    config = agent(tmp_path, train={"timesteps": 256, "checkpoint_every": 128})
    first = train(config, PM, record=False)
    checkpoints = sorted((first.path.parent / "checkpoints").glob("model_*_steps.zip"))
    assert [p.name for p in checkpoints] == ["model_128_steps.zip", "model_256_steps.zip"]
    longer = agent(tmp_path, train={"timesteps": 384})
    resumed = train(longer, PM, record=False, resume=checkpoints[0])
    assert resumed.timesteps == 384


def test_an_algorithm_that_cannot_act_in_the_env_is_a_config_error(tmp_path):
    mapping = agent(tmp_path).to_dict()
    mapping["policy"] = {"algo": "dqn"}
    with pytest.raises(ConfigError, match="dqn needs a Discrete action space"):
        train(config_from_mapping(mapping, pm=PM), PM, record=False)


def test_maskable_ppo_trains_on_the_discrete_mapping_with_the_environments_masks(tmp_path):
    config = agent(tmp_path, env={"actions": "discrete", "fractional": True},
                   policy={"algo": "maskable_ppo"}, train={"timesteps": 128, "n_envs": 2})
    result = train(config, PM, store=open_store(f"sqlite:///{tmp_path / 's.db'}"))
    policy = TrainedPolicy.load(result.path)
    assert type(policy.model).__name__ == "MaskablePPO"
    assert policy.metadata["actions"] == "discrete"


def test_training_writes_tensorboard_logs_beside_the_model(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp, _, config, result = trained
    runs = sorted((result.path.parent / "tensorboard").iterdir())
    assert len(runs) == 1  # one SB3 run folder for one training
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "train/value_loss" in scalars and "time/fps" in scalars
    # PPO logs once per rollout: 256 timesteps of 128-step rollouts
    assert [e.step for e in events.Scalars("time/fps")] == [128, 256]

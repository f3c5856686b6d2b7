"""Policy plugins: every stable-baselines3 / sb3-contrib algorithm by name, their options and
errors, training on a small portfolio env, save/load, attention over assets, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from click.testing import CliRunner
from gymnasium import spaces

from rlbridge.cli import build_cli
from rlbridge.config import PolicyConfig
from rlbridge.errors import ConfigError, DataError, RLBridgeError
from rlbridge.manager import make_plugin_manager
from rlbridge.policy import (
    PolicyFileError,
    PolicyMismatchError,
    TrainedPolicy,
    create_algorithm,
    library_versions,
)

ALL = ["a2c", "ars", "crossq", "ddpg", "dqn", "maskable_ppo", "ppo", "qrdqn", "recurrent_ppo",
       "sac", "td3", "tqc", "trpo"]
N, WINDOW, F = 3, 4, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def registries():
    return make_plugin_manager(builtins=True, entrypoints=False, warn=False).registries


class ToyPortfolioEnv(gym.Env):
    """The portfolio observation of the real env (features [window, N, F], weights [N + 1] with
    cash last) on random features; the reward is the return of the weights on the features."""

    metadata = {"render_modes": []}

    def __init__(self, actions: str = "softmax", n: int = N, window: int = WINDOW, f: int = F,
                 length: int = 16) -> None:
        self.n, self.window, self.f, self.length = n, window, f, length
        self.action_mapping = actions
        self.observation_space = spaces.Dict({
            "features": spaces.Box(-np.inf, np.inf, (window, n, f), np.float32),
            "weights": spaces.Box(0.0, 1.0, (n + 1,), np.float32),
        })
        self.action_space = {
            "softmax": spaces.Box(-1.0, 1.0, (n + 1,), np.float32),
            "unbounded": spaces.Box(-np.inf, np.inf, (n + 1,), np.float32),
            "discrete": spaces.MultiDiscrete([3] * n),
            "choose": spaces.Discrete(n + 1),
        }[actions]

    def _observation(self):
        self.features = self.np_random.normal(size=(self.window, self.n, self.f)).astype(
            np.float32)
        return {"features": self.features, "weights": self.weights.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.weights = np.full(self.n + 1, 1.0 / (self.n + 1))
        return self._observation(), {}

    def step(self, action):
        action = np.asarray(action, dtype=float)
        if self.action_mapping == "choose":
            weights = np.eye(self.n + 1)[int(action)]
        elif self.action_mapping == "discrete":  # sell / hold / buy one step per asset
            risky = np.clip(self.weights[:-1] + 0.1 * (action - 1), 0.0, 1.0)
            weights = np.append(risky, max(0.0, 1.0 - risky.sum()))
        else:
            weights = np.exp(action - action.max())
        self.weights = weights / weights.sum()
        reward = float(self.weights[:-1] @ self.features[-1, :, 0]) * 0.01
        self.t += 1
        return self._observation(), reward, self.t >= self.length, False, {}


class MaskedToyEnv(ToyPortfolioEnv):
    def action_masks(self):
        masks = np.ones((self.n, 3), dtype=bool)
        masks[:, 0] = self.weights[:-1] > 0  # nothing to sell
        return masks.reshape(-1)


def observations(n=N, window=WINDOW, count=5, seed=11):
    rng = np.random.default_rng(seed)
    return {"features": rng.normal(size=(count, window, n, F)).astype(np.float32),
            "weights": rng.dirichlet(np.ones(n + 1), size=count).astype(np.float32)}


def parameters(model):
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


# ---------------------------------------------------------------------- registration
def test_rlbridge_list_policies_shows_every_algorithm_with_its_action_spaces(registries):
    pm = make_plugin_manager(builtins=True, entrypoints=False, warn=False)
    result = CliRunner().invoke(build_cli(pm), ["list", "policies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert sorted(rows) == ALL
    assert rows["dqn"]["description"] == "Deep Q-Network (stable-baselines3); actions: Discrete"
    assert rows["trpo"]["description"] == ("Trust Region Policy Optimization (sb3-contrib); "
                                           "actions: Box, Discrete, MultiDiscrete, MultiBinary")
    assert "action_masks()" in rows["maskable_ppo"]["description"]
    assert {row["plugin"] for row in rows.values()} == {"rlbridge.plugins.policies.sb3"}


def test_supports_agrees_with_stable_baselines3_for_every_algorithm_and_space(registries):
    """The action-space table is checked against the libraries' own constructor checks."""
    env_spaces = {a: ToyPortfolioEnv(a).action_space
                  for a in ("softmax", "unbounded", "discrete", "choose")}
    for name in ALL:
        spec = registries.policies.create(name, {})
        cls = spec.algorithm_class()
        for actions, space in env_spaces.items():
            env = MaskedToyEnv(actions)
            policy = "MlpLstmPolicy" if name == "recurrent_ppo" else "MlpPolicy"
            try:
                cls(policy, spaces_only(env), _init_setup_model=False, device="cpu")
                accepted = True
            except (AssertionError, ValueError):
                accepted = False
            assert spec.supports(space) == accepted, (name, actions)


def spaces_only(env):
    """The env with a Box observation (the constructors' observation checks are not tested)."""
    from gymnasium.wrappers import FlattenObservation

    return FlattenObservation(env)


# ---------------------------------------------------------------------- options
def test_unknown_hyperparameter_names_the_key_the_closest_match_and_the_valid_ones(registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("ppo", {"learnin_rate": 1e-3})
    error = info.value
    assert error.key == "policy.learnin_rate"
    message = str(error)
    assert message.startswith("[policy.learnin_rate]: ppo has no hyperparameter or network "
                              "option 'learnin_rate' (did you mean 'learning_rate'?); valid keys: ")
    valid = message.split("valid keys: ")[1].split(", ")
    assert {"n_steps", "clip_range", "gamma", "net_arch", "activation", "extractor",
            "attention", "log_std_init", "ortho_init"} <= set(valid)
    assert "seed" not in valid and "policy_kwargs" not in valid and "lstm_hidden_size" not in valid


def test_config_file_is_named_in_policy_errors(registries, tmp_path):
    path = tmp_path / "agent.toml"
    with pytest.raises(ConfigError) as info:
        create_algorithm(registries, PolicyConfig("sac", {"tau": "soft"}), path=path)
    assert str(info.value) == f"{path}: [policy.tau]: expected a number, got 'soft'"


@pytest.mark.parametrize(("algo", "options", "key", "message"), [
    ("ppo", {"n_steps": "64"}, "policy.n_steps", "expected an integer, got '64'"),
    ("ppo", {"n_steps": 64.0}, "policy.n_steps", "expected an integer, got 64.0"),
    ("ppo", {"normalize_advantage": 1}, "policy.normalize_advantage",
     "expected true or false, got 1"),
    ("ppo", {"seed": 3}, "policy.seed", "seed cannot be set in [policy]: the seed is [train] seed"),
    ("ppo", {"policy_kwargs": {}}, "policy.policy_kwargs", "rlbridge builds the network"),
    ("ppo", {"device": "cuda"}, "policy.device", "device must be 'cpu', got 'cuda'"),
    ("ppo", {"activation": "rellu"}, "policy.activation",
     "unknown activation 'rellu'; valid: tanh, relu, elu, leaky_relu, gelu, silu, selu, "
     "sigmoid (did you mean 'relu'?)"),
    ("ppo", {"net_arch": [64, 0]}, "policy.net_arch",
     "expected a list of positive layer sizes, e.g. [64, 64], got [64, 0]"),
    ("ppo", {"net_arch": {"pi": [8], "qf": [8]}}, "policy.net_arch",
     "a net_arch table for ppo has exactly the keys pi (the actor) and vf (the value function); "
     "got pi, qf"),
    ("sac", {"net_arch": {"pi": [8], "vf": [8]}}, "policy.net_arch",
     "keys pi (the actor) and qf (the Q-functions); got pi, vf"),
    ("dqn", {"net_arch": {"pi": [8]}}, "policy.net_arch",
     "dqn has one network: net_arch is a list of layer sizes"),
    ("ppo", {"extractor": "atention"}, "policy.extractor",
     "unknown extractor 'atention'; valid: flatten, attention (did you mean 'attention'?)"),
    ("ars", {"extractor": "attention"}, "policy.extractor",
     "ars has no feature extractor"),
    ("ppo", {"attention": {"heads": 2}}, "policy.attention",
     "attention options are set but extractor is 'flatten'"),
    ("ppo", {"extractor": "attention", "attention": {"embed_dim": 10, "heads": 4}},
     "policy.attention.embed_dim", "embed_dim 10 is not a multiple of heads 4"),
    ("ppo", {"extractor": "attention", "attention": {"head": 4}}, "policy.attention.head",
     "unknown key 'head' (did you mean 'heads'?)"),
    ("ppo", {"lstm_hidden_size": 8}, "policy.lstm_hidden_size",
     "ppo has no hyperparameter or network option 'lstm_hidden_size'"),
])
def test_bad_policy_options_are_config_errors_naming_the_key(registries, algo, options, key,
                                                              message):
    with pytest.raises(ConfigError) as info:
        registries.policies.create(algo, options)
    assert info.value.key == key
    assert message in str(info.value)


def test_options_are_converted_to_what_the_algorithm_takes(registries):
    spec = registries.policies.create("dqn", {"learning_rate": 1, "train_freq": [4, "step"],
                                              "net_arch": [16, 16], "activation": "tanh"})
    assert spec.hyperparameters == {"learning_rate": 1.0, "train_freq": (4, "step")}
    assert type(spec.hyperparameters["learning_rate"]) is float
    model = spec.build(ToyPortfolioEnv("choose"), seed=0)
    assert model.learning_rate == 1.0 and model.train_freq.frequency == 4
    import torch

    linears = [m for m in model.q_net.q_net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 16, N + 1]
    assert any(isinstance(m, torch.nn.Tanh) for m in model.q_net.modules())

    recurrent = registries.policies.create("recurrent_ppo", {"lstm_hidden_size": 8,
                                                             "n_lstm_layers": 2})
    assert recurrent.policy_options == {"lstm_hidden_size": 8, "n_lstm_layers": 2}


def test_a_value_the_algorithm_refuses_is_a_config_error(registries):
    spec = registries.policies.create("ppo", {"batch_size": 1})
    with pytest.raises(ConfigError) as info:
        spec.build(ToyPortfolioEnv(), seed=0)
    assert info.value.key == "policy"
    assert "ppo refused its settings" in str(info.value)


# ---------------------------------------------------------------------- action spaces
def test_dqn_on_a_continuous_action_names_the_space_mapping_and_the_algorithms_that_fit(
        registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("dqn", {}).build(ToyPortfolioEnv("softmax"), seed=0)
    assert info.value.key == "policy.algo"
    assert str(info.value) == (
        "[policy.algo]: dqn needs a Discrete action space (one choice out of n); the "
        "environment's is Box(-1.0, 1.0, (4,), float32) (action mapping 'softmax'); "
        "algorithms that take it: ppo, a2c, sac, td3, ddpg, recurrent_ppo, tqc, trpo, ars, "
        "crossq. The discrete buy/hold/sell mapping ([env] actions = \"discrete\") gives "
        "MultiDiscrete([3] * N), which dqn does not take either; ppo, a2c, recurrent_ppo, "
        "trpo, maskable_ppo do")


def test_qrdqn_on_the_buy_hold_sell_mapping_says_multidiscrete_needs_another_algorithm(
        registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("qrdqn", {}).build(ToyPortfolioEnv("discrete"), seed=0)
    assert str(info.value) == (
        "[policy.algo]: qrdqn needs a Discrete action space (one choice out of n); the "
        "environment's is MultiDiscrete([3 3 3]) (action mapping 'discrete'); algorithms that "
        "take it: ppo, a2c, recurrent_ppo, trpo. The discrete buy/hold/sell mapping gives one "
        "choice per asset (MultiDiscrete), which qrdqn cannot take; ppo, a2c, recurrent_ppo, "
        "trpo, maskable_ppo can")


def test_sac_on_discrete_actions_suggests_a_continuous_mapping(registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("sac", {}).build(MaskedToyEnv("discrete"), seed=0)
    assert str(info.value) == (
        "[policy.algo]: sac needs a continuous (Box) action space; the environment's is "
        "MultiDiscrete([3 3 3]) (action mapping 'discrete'); algorithms that take it: ppo, "
        "a2c, recurrent_ppo, trpo, maskable_ppo; or keep sac with a continuous action mapping "
        "([env] actions)")


def test_an_unbounded_box_action_is_refused_with_the_reason(registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("ppo", {}).build(ToyPortfolioEnv("unbounded"), seed=0)
    assert "ppo needs finite bounds on a continuous action space; the environment's is " \
           "Box(-inf, inf, (4,), float32) (action mapping 'unbounded')" in str(info.value)


def test_maskable_ppo_needs_action_masks(registries):
    with pytest.raises(ConfigError) as info:
        registries.policies.create("maskable_ppo", {}).build(ToyPortfolioEnv("discrete"), seed=0)
    assert "maskable_ppo needs an environment that offers action_masks()" in str(info.value)


def test_attention_needs_the_portfolio_observation(registries):
    class BoxEnv(ToyPortfolioEnv):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Box(-1.0, 1.0, (6,), np.float32)

    spec = registries.policies.create("ppo", {"extractor": "attention"})
    with pytest.raises(ConfigError) as info:
        spec.build(BoxEnv(), seed=0)
    assert info.value.key == "policy.extractor"
    assert "needs a Dict observation with 'features' [window, N, F]" in str(info.value)


# ---------------------------------------------------------------------- train, save, load
SMALL = {"learning_starts": 16, "batch_size": 16, "net_arch": [16]}
CASES = [
    ("ppo", "softmax", {"n_steps": 32, "batch_size": 16, "extractor": "attention",
                        "attention": {"embed_dim": 8, "heads": 2, "hidden": 8}}),
    ("a2c", "discrete", {"n_steps": 8}),
    ("sac", "softmax", SMALL),
    ("td3", "softmax", SMALL),
    ("ddpg", "softmax", SMALL),
    ("dqn", "choose", {**SMALL, "train_freq": 2}),
    ("recurrent_ppo", "softmax", {"n_steps": 32, "batch_size": 16, "lstm_hidden_size": 8}),
    ("tqc", "softmax", SMALL),
    ("trpo", "discrete", {"n_steps": 32, "batch_size": 16}),
    ("qrdqn", "choose", {**SMALL, "train_freq": 2}),
    ("ars", "softmax", {"n_delta": 2}),
    ("crossq", "softmax", {"learning_starts": 16, "batch_size": 16, "extractor": "attention",
                           "attention": {"embed_dim": 8, "heads": 2, "hidden": 8}}),
    ("maskable_ppo", "discrete", {"n_steps": 32, "batch_size": 16}),
]


@pytest.mark.parametrize(("algo", "actions", "options"), CASES, ids=[c[0] for c in CASES])
def test_train_predict_save_load_predicts_the_same(registries, tmp_path, algo, actions, options):
    spec = registries.policies.create(algo, options)
    env = (MaskedToyEnv if algo == "maskable_ppo" else ToyPortfolioEnv)(actions)
    model = spec.build(env, seed=3)
    before = parameters(model)
    model.learn(64)
    after = parameters(model)
    assert any(not np.array_equal(before[k], after[k]) for k in before), "nothing was learned"

    policy = spec.trained_policy(model, env)
    assert policy.flattened == (algo in ("ars", "crossq"))
    batch = observations()
    actions_before, state = policy.predict(batch)
    assert env.action_space.contains(np.asarray(actions_before[0], env.action_space.dtype))
    assert len(actions_before) == 5
    single, _ = policy.predict({k: v[0] for k, v in batch.items()})
    # one observation or a batch of them: the same action (up to batched float rounding)
    np.testing.assert_allclose(np.asarray(single, float), np.asarray(actions_before[0], float),
                               rtol=0, atol=1e-5)

    meta = {"symbols": ["SPY", "AGG", "XLK"], "window": WINDOW, "mean": np.arange(2.0)}
    zip_path = policy.save(tmp_path / "agent", meta)
    assert zip_path == tmp_path / "agent.zip"
    sidecar = json.loads((tmp_path / "agent.json").read_text())
    assert sidecar["algo"] == algo
    assert sidecar["metadata"] == {"symbols": ["SPY", "AGG", "XLK"], "window": WINDOW,
                                   "mean": [0.0, 1.0]}
    assert sidecar["observation"] == [["features", [WINDOW, N, F]], ["weights", [N + 1]]]

    loaded = TrainedPolicy.load(tmp_path / "agent.zip")
    assert loaded.algo == algo and loaded.path == zip_path
    assert dict(loaded.metadata) == sidecar["metadata"]
    assert type(loaded.model) is type(model)
    actions_after, _ = loaded.predict(batch)
    np.testing.assert_array_equal(actions_after, actions_before)
    if algo == "recurrent_ppo":  # the state carries over steps: [layers, batch, hidden]
        assert [s.shape for s in state] == [(1, 5, 8), (1, 5, 8)]
        second, _ = loaded.predict(batch, state=state, episode_start=np.zeros(5, bool))
        again, _ = policy.predict(batch, state=state, episode_start=np.zeros(5, bool))
        np.testing.assert_array_equal(second, again)
    else:
        assert state is None
    if algo == "maskable_ppo":  # the masks decide: only "hold", then only "buy", per asset
        one = {k: v[0] for k, v in batch.items()}
        for allowed in (1, 2):
            masks = np.tile(np.arange(3) == allowed, N)
            assert loaded.predict(one, action_masks=masks)[0].tolist() == [allowed] * N


def test_a_saved_attention_policy_loads_in_a_fresh_process(registries, tmp_path):
    spec = registries.policies.create("crossq", {"learning_starts": 8, "batch_size": 8,
                                                 "extractor": "attention",
                                                 "attention": {"embed_dim": 4, "heads": 1}})
    env = ToyPortfolioEnv()
    policy = spec.trained_policy(spec.build(env, seed=1), env)
    policy.save(tmp_path / "agent")
    batch = observations(count=2)
    np.savez(tmp_path / "obs.npz", **batch)
    code = textwrap.dedent(f"""
        import numpy as np
        from rlbridge.policy import TrainedPolicy
        obs = dict(np.load({str(tmp_path / 'obs.npz')!r}))
        action, _ = TrainedPolicy.load({str(tmp_path / 'agent')!r}).predict(obs)
        print(repr(action.tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert eval(out.stdout) == policy.predict(batch)[0].tolist()


def test_act_carries_the_recurrent_state_and_reset_starts_over(registries):
    spec = registries.policies.create("recurrent_ppo", {"n_steps": 16, "batch_size": 16,
                                                        "lstm_hidden_size": 4})
    env = ToyPortfolioEnv()
    policy = spec.trained_policy(spec.build(env, seed=2), env)
    obs = observations(count=3)
    steps = [{k: v[i] for k, v in obs.items()} for i in range(3)]
    first = [policy.act(o) for o in steps]
    policy.reset()
    assert [a.tolist() for a in (policy.act(o) for o in steps)] == [a.tolist() for a in first]
    state = None
    for i, o in enumerate(steps):
        action, state = policy.predict(o, state, [i == 0])
        np.testing.assert_array_equal(action, first[i])


def test_vectorised_envs_work_with_flattening_algorithms(registries):
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: ToyPortfolioEnv(length=8), lambda: ToyPortfolioEnv(length=8)])
    spec = registries.policies.create("crossq", {"learning_starts": 8, "batch_size": 8})
    model = spec.build(venv, seed=0)
    model.learn(32)  # two episodes end in each copy: terminal observations are flattened too
    assert model.observation_space.shape == (WINDOW * N * F + N + 1,)
    assert model.num_timesteps == 32


# ---------------------------------------------------------------------- the real environment
@pytest.fixture(scope="module")
def portfolio(sample_bars, registries):
    """PortfolioEnv inputs on the bundled SPY, AGG, XLK: log returns of close and volume."""
    values = sample_bars.values[:120]
    bars = type(sample_bars)(sample_bars.index[:120], sample_bars.symbols, values)
    features = np.full((len(bars), 3, 2), np.nan)
    features[1:, :, 0] = np.diff(np.log(bars.close), axis=0)
    features[1:, :, 1] = np.diff(np.log(bars.volume), axis=0)
    return bars, features, registries.costs.create("percent", {"rate": 0.001})


def make_portfolio_env(portfolio, actions="softmax"):
    from rlbridge.env import PortfolioEnv

    bars, features, cost = portfolio
    return PortfolioEnv(bars, features, cost, window=5, actions=actions, episode_length=20,
                        random_start=True, feature_names=("ret", "vol"))


def test_ppo_with_attention_trains_on_the_portfolio_env_and_reloads(registries, portfolio,
                                                                     tmp_path):
    env = make_portfolio_env(portfolio)
    spec = registries.policies.create("ppo", {"n_steps": 32, "batch_size": 16,
                                              "extractor": "attention",
                                              "attention": {"embed_dim": 8, "heads": 2}})
    model = spec.build(env, seed=5)
    model.learn(64)
    policy = spec.trained_policy(model, env)
    obs, _ = env.reset(seed=1)
    action, _ = policy.predict(obs)
    assert action.shape == (4,) and env.action_space.contains(action)
    policy.save(tmp_path / "agent", {"symbols": list(env.symbols)})
    np.testing.assert_array_equal(TrainedPolicy.load(tmp_path / "agent").predict(obs)[0], action)


def test_errors_name_the_portfolio_envs_action_mapping(registries, portfolio):
    with pytest.raises(ConfigError, match=r"dqn needs a Discrete action space \(one choice out "
                       r"of n\); the environment's is Box\(-1.0, 1.0, \(4,\), float32\) "
                       r"\(action mapping 'softmax'\)"):
        registries.policies.create("dqn", {}).build(make_portfolio_env(portfolio), seed=0)
    with pytest.raises(ConfigError, match=r"td3 needs a continuous \(Box\) action space; the "
                       r"environment's is MultiDiscrete\(\[3 3 3\]\) \(action mapping "
                       r"'discrete'\); algorithms that take it: ppo, a2c, recurrent_ppo, trpo, "
                       r"maskable_ppo;"):
        registries.policies.create("td3", {}).build(make_portfolio_env(portfolio, "discrete"),
                                                    seed=0)


def test_flattening_algorithms_train_on_the_portfolio_vec_env(registries, portfolio):
    from rlbridge.vec_env import PortfolioVecEnv

    venv = PortfolioVecEnv(make_portfolio_env(portfolio), 4, seed=0)
    with pytest.raises(ConfigError, match="action mapping 'softmax'"):
        registries.policies.create("qrdqn", {}).build(venv, seed=0)
    spec = registries.policies.create("ars", {"n_delta": 2})
    model = spec.build(venv, seed=0)
    model.learn(160)  # 2 * n_delta candidates, one 20-step episode each, on 4 copies
    assert model.observation_space.shape == (5 * 3 * 2 + 4,)
    assert model.num_timesteps >= 160


# ---------------------------------------------------------------------- bad input at predict
@pytest.fixture(scope="module")
def saved_ppo(registries, tmp_path_factory):
    spec = registries.policies.create("ppo", {"n_steps": 16, "batch_size": 16})
    env = ToyPortfolioEnv()
    policy = spec.trained_policy(spec.build(env, seed=0), env)
    path = tmp_path_factory.mktemp("ppo") / "agent"
    policy.save(path, {"symbols": ["SPY", "AGG", "XLK"], "feature_names": ["r", "v"]})
    return TrainedPolicy.load(path), path


def test_an_observation_that_no_longer_matches_names_the_mismatch(saved_ppo):
    policy, path = saved_ppo
    wider = observations(n=4, count=1)
    with pytest.raises(PolicyMismatchError) as info:
        policy.predict({k: v[0] for k, v in wider.items()})
    assert str(info.value) == (
        f"policy {path}.zip: observation 'features' has shape (4, 4, 2); the policy was trained "
        "on (4, 3, 2) (window 4, 3 assets, 2 features; now window 4, 4 assets, 2 features); it "
        "was trained on symbols SPY, AGG, XLK; features r, v")
    with pytest.raises(PolicyMismatchError, match="the observation has keys features; the "
                                                  "policy was trained on features, weights"):
        policy.predict({"features": observations()["features"][0]})


def test_nan_in_an_observation_is_a_data_error(saved_ppo):
    policy, path = saved_ppo
    obs = {k: v[0].copy() for k, v in observations().items()}
    obs["features"][1, 2, 0] = np.nan
    with pytest.raises(DataError) as info:
        policy.predict(obs)
    assert str(info.value) == (f"policy {path}.zip: the observation 'features' holds NaN or "
                               "infinite values")


def test_missing_and_corrupt_files_name_the_path(saved_ppo, tmp_path):
    _, path = saved_ppo
    with pytest.raises(PolicyFileError, match=f"^{tmp_path}/nope.zip: no saved policy there$"):
        TrainedPolicy.load(tmp_path / "nope")
    (tmp_path / "bad.zip").write_bytes(b"not a zip at all")
    (tmp_path / "bad.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(PolicyFileError, match=f"^{tmp_path}/bad.zip: not a saved PPO model"):
        TrainedPolicy.load(tmp_path / "bad.zip")
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(PolicyFileError, match=f"^{tmp_path}/bad.json: not a policy sidecar"):
        TrainedPolicy.load(tmp_path / "bad")
    (tmp_path / "bad.json").unlink()
    with pytest.raises(PolicyFileError, match=f"^{tmp_path}/bad.json: the policy's sidecar is "
                                              "missing"):
        TrainedPolicy.load(tmp_path / "bad")
    assert issubclass(PolicyFileError, RLBridgeError)


def test_metadata_that_is_not_json_is_refused_and_nothing_is_written(saved_ppo, tmp_path):
    policy, _ = saved_ppo
    with pytest.raises(RLBridgeError, match="^policy metadata must be JSON data: object <object "
                                            "object at 0x[0-9a-f]+> is not JSON data$"):
        policy.save(tmp_path / "agent", {"thing": object()})
    assert list(tmp_path.iterdir()) == []


def test_spec_load_resumes_and_refuses_a_mismatched_env(registries, saved_ppo):
    _, path = saved_ppo
    spec = registries.policies.create("ppo", {})
    model = spec.load(path, ToyPortfolioEnv())
    assert model.n_steps == 16 and model.get_env() is not None
    with pytest.raises(PolicyMismatchError, match="the environment does not match"):
        spec.load(path, ToyPortfolioEnv(n=4))
    with pytest.raises(PolicyFileError, match="no saved model there"):
        spec.load(path.with_name("missing"))


def test_library_versions_are_the_installed_ones():
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    import rlbridge

    versions = library_versions()
    assert versions["torch"] == torch.__version__
    assert versions["stable_baselines3"] == stable_baselines3.__version__
    assert versions["sb3_contrib"] == sb3_contrib.__version__
    assert versions["gymnasium"] == gymnasium.__version__
    assert versions["numpy"] == np.__version__
    assert versions["rlbridge"] == rlbridge.__version__
    assert versions["python"] == "{}.{}.{}".format(*sys.version_info[:3])


# ---------------------------------------------------------------------- attention extractor
def test_attention_extractor_output_does_not_depend_on_asset_order():
    import torch

    from rlbridge.plugins.policies.nets import lazy_class

    torch.manual_seed(0)
    n = 5
    space = ToyPortfolioEnv(n=n).observation_space
    extractor = lazy_class("AttentionExtractor")(space, embed_dim=16, heads=4, hidden=16)
    obs = observations(n=n, count=4, seed=5)
    order = np.array([3, 0, 4, 1, 2])
    permuted = {"features": obs["features"][:, :, order, :],
                "weights": np.concatenate([obs["weights"][:, order], obs["weights"][:, n:]], 1)}

    def run(o):
        with torch.no_grad():
            return extractor({k: torch.as_tensor(v) for k, v in o.items()}).numpy()

    base = run(obs)
    assert base.shape == (4, 2 * 16 + 1)
    np.testing.assert_allclose(run(permuted), base, rtol=0, atol=1e-5)  # measured: < 1e-6
    np.testing.assert_array_equal(base[:, -1], obs["weights"][:, -1])  # cash weight last
    # the control: moving the features but not their weights is a different portfolio
    mismatched = {"features": permuted["features"], "weights": obs["weights"]}
    assert np.abs(run(mismatched) - base).max() > 1e-3


def test_attention_extractor_reads_a_flattened_observation_the_same_way():
    import torch

    from rlbridge.plugins.policies.nets import flat_space, lazy_class
    from rlbridge.policy import flatten_observation, layout_of

    space = ToyPortfolioEnv().observation_space
    cls = lazy_class("AttentionExtractor")
    as_dict = cls(space, embed_dim=8, heads=2, hidden=8)
    flat = cls(flat_space(space), embed_dim=8, heads=2, hidden=8, layout=layout_of(space))
    flat.load_state_dict(as_dict.state_dict())
    obs = observations(count=3)
    with torch.no_grad():
        expected = as_dict({k: torch.as_tensor(v) for k, v in obs.items()})
        got = flat(torch.as_tensor(flatten_observation(obs, layout_of(space))))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


# ---------------------------------------------------------------------- reproducibility
def test_same_seed_gives_the_same_weights_and_another_seed_does_not(registries):
    import torch

    spec = registries.policies.create("ppo", {"n_steps": 64, "batch_size": 32, "n_epochs": 2})

    def trained(seed):
        model = spec.build(ToyPortfolioEnv(), seed=seed)
        model.learn(256)
        return parameters(model)

    first, second, other = trained(7), trained(7), trained(8)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)

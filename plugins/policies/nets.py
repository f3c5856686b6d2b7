"""Torch pieces of the policy plugins: the attention-over-assets extractor, observation flattening.

Importing this module imports no torch: the classes that subclass torch or stable-baselines3
types are built on first attribute access (``nets.AttentionExtractor``) and then kept as module
attributes, so pickle (which stable-baselines3 uses to save a policy's classes) finds them by
name, ``rlbridge.plugins.policies.nets.AttentionExtractor``, and a saved model loads again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlbridge.policy import Layout, flatten_observation, layout_of

__all__ = ["ACTIVATIONS", "Layout", "activation_class", "flat_space", "flatten_env",
           "flatten_observation", "layout_of", "lazy_class", "portfolio_shapes"]

#: ``activation = "..."`` in ``[policy]`` -> the ``torch.nn`` class it names
ACTIVATIONS: Mapping[str, str] = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "selu": "SELU",
    "sigmoid": "Sigmoid",
}

def activation_class(name: str) -> Any:
    """The ``torch.nn`` module class of an activation name from :data:`ACTIVATIONS`."""
    from torch import nn

    return getattr(nn, ACTIVATIONS[name])


def flat_space(space: Any) -> Any:
    """The Box that :func:`flatten_observation` maps a Dict space of Boxes into."""
    import numpy as np
    from gymnasium import spaces

    low = np.concatenate([np.asarray(s.low, np.float32).reshape(-1) for s in space.spaces.values()])
    high = np.concatenate([np.asarray(s.high, np.float32).reshape(-1)
                           for s in space.spaces.values()])
    return spaces.Box(low, high, dtype=np.float32)


def portfolio_shapes(space: Any, layout: Layout | None = None) -> tuple[tuple[int, int, int], int]:
    """``((window, N, F), N + 1)`` of a portfolio observation, or ValueError saying why not."""
    parts = getattr(space, "spaces", None)
    shapes = dict(layout) if layout is not None else {
        key: tuple(sub.shape) for key, sub in parts.items()} if isinstance(parts, Mapping) else {}
    features, weights = shapes.get("features"), shapes.get("weights")
    if features is None or weights is None:
        raise ValueError("it needs a Dict observation with 'features' [window, N, F] and "
                         f"'weights' [N + 1]; this one has keys {sorted(shapes) or 'none'}")
    if len(features) != 3 or len(weights) != 1 or weights[0] != features[1] + 1:
        raise ValueError(f"it needs 'features' [window, N, F] and 'weights' [N + 1]; got "
                         f"{tuple(features)} and {tuple(weights)}")
    return (int(features[0]), int(features[1]), int(features[2])), int(weights[0])


# ---------------------------------------------------------------------- lazily built classes
def _attention_extractor() -> type:
    import math

    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class AttentionExtractor(BaseFeaturesExtractor):
        """Attention over assets: features that do not depend on the order of the assets.

        Each asset's ``[window, F]`` history and its own portfolio weight are encoded by one
        shared MLP into a token; the tokens attend to each other (multi-head self-attention,
        no positional encoding, a residual connection and layer norm); the output is the mean
        and the max of the tokens over assets, followed by the cash weight.  Reordering the
        assets (their features and weights together) reorders the tokens and leaves the
        output unchanged, up to float rounding.

        Args:
            observation_space: the portfolio Dict space (``features`` ``[window, N, F]``,
                ``weights`` ``[N + 1]``, cash last), or its flattened Box with ``layout``.
            embed_dim: the token size; the output has ``2 * embed_dim + 1`` features.
            heads: attention heads (``embed_dim`` must be a multiple).
            hidden: the hidden layer size of the token MLP.
            activation: an :data:`ACTIVATIONS` name for the token MLP.
            layout: for a flattened observation, the layout it was flattened with.
        """

        def __init__(self, observation_space: spaces.Space, embed_dim: int = 32,
                     heads: int = 4, hidden: int = 64, activation: str = "relu",
                     layout: Sequence[tuple[str, Sequence[int]]] | None = None) -> None:
            frozen = None if layout is None else tuple((k, tuple(s)) for k, s in layout)
            (window, n, f), _ = portfolio_shapes(observation_space, frozen)
            super().__init__(observation_space, features_dim=2 * embed_dim + 1)
            self.window, self.n_assets, self.n_features = window, n, f
            self.slices: dict[str, tuple[int, int, tuple[int, ...]]] | None = None
            if frozen is not None:
                self.slices, start = {}, 0
                for key, shape in frozen:
                    size = math.prod(shape)
                    self.slices[key] = (start, start + size, shape)
                    start += size
            act = activation_class(activation)
            self.encoder = nn.Sequential(
                nn.Linear(window * f + 1, hidden), act(), nn.Linear(hidden, embed_dim), act())
            self.attention = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
            self.norm = nn.LayerNorm(embed_dim)

        def _parts(self, observations: Any) -> tuple[th.Tensor, th.Tensor]:
            if self.slices is None:
                return observations["features"], observations["weights"]
            batch = observations.shape[0]
            lo, hi, shape = self.slices["features"]
            features = observations[:, lo:hi].reshape(batch, *shape)
            lo, hi, _ = self.slices["weights"]
            return features, observations[:, lo:hi]

        def forward(self, observations: Any) -> th.Tensor:
            features, weights = self._parts(observations)
            batch, n = features.shape[0], self.n_assets
            # [B, window, N, F] -> one [window * F] history per asset, plus its own weight
            history = features.permute(0, 2, 1, 3).reshape(batch, n, -1)
            tokens = self.encoder(th.cat([history, weights[:, :n, None]], dim=-1))
            attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
            tokens = self.norm(tokens + attended)
            return th.cat([tokens.mean(dim=1), tokens.amax(dim=1), weights[:, n:]], dim=-1)

    return AttentionExtractor


def _flatten_wrapper() -> type:
    import gymnasium

    class FlattenDictObservation(gymnasium.ObservationWrapper):
        """A gymnasium env whose Dict observation is concatenated into one Box vector."""

        def __init__(self, env: gymnasium.Env) -> None:
            super().__init__(env)
            self.layout = layout_of(env.observation_space)
            self.observation_space = flat_space(env.observation_space)

        def observation(self, observation: Any) -> Any:
            return flatten_observation(observation, self.layout)

    return FlattenDictObservation


def _flatten_vec_wrapper() -> type:
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class FlattenDictVecObservation(VecEnvWrapper):
        """A stable-baselines3 VecEnv whose Dict observations are concatenated into vectors."""

        def __init__(self, venv: Any) -> None:
            self.layout = layout_of(venv.observation_space)
            super().__init__(venv, observation_space=flat_space(venv.observation_space))

        def reset(self) -> Any:
            return flatten_observation(self.venv.reset(), self.layout)

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            for info in infos:  # the last observation of an episode, kept by the VecEnv
                if isinstance(info.get("terminal_observation"), Mapping):
                    info["terminal_observation"] = flatten_observation(
                        info["terminal_observation"], self.layout)
            return flatten_observation(obs, self.layout), rewards, dones, infos

    return FlattenDictVecObservation


_BUILDERS: dict[str, Callable[[], type]] = {
    "AttentionExtractor": _attention_extractor,
    "FlattenDictObservation": _flatten_wrapper,
    "FlattenDictVecObservation": _flatten_vec_wrapper,
}


def lazy_class(name: str) -> type:
    """The class ``name`` of this module, built (importing torch) the first time."""
    built = globals().get(name)
    return built if built is not None else __getattr__(name)


def __getattr__(name: str) -> type:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = builder()
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__ = name
    globals()[name] = cls
    return cls


def flatten_env(env: Any) -> Any:
    """``env`` (a gymnasium env or a stable-baselines3 VecEnv) with flattened observations."""
    from stable_baselines3.common.vec_env import VecEnv

    wrapper = lazy_class("FlattenDictVecObservation" if isinstance(env, VecEnv)
                         else "FlattenDictObservation")
    return wrapper(env)

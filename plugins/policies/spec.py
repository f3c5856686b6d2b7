"""Algorithm specs: one stable-baselines3 algorithm each, its options checked, ready to build.

The ``[policy]`` table minus ``algo`` holds three kinds of keys:

* the algorithm's hyperparameters: the keyword arguments of its constructor
  (``learning_rate``, ``n_steps``, ``gamma``, ...), checked by name and type against that
  constructor when the spec is created;
* options of its policy network class that take plain values (``log_std_init``,
  ``ortho_init``, ``n_critics``, ``n_quantiles``, ``lstm_hidden_size``, ``n_lstm_layers``, ...);
* rlbridge's network options: ``net_arch`` (a list of layer sizes, or a table of them for the
  actor ``pi`` and the critic ``vf``/``qf``), ``activation`` (``"tanh"``, ``"relu"``, ...),
  ``extractor`` (``"flatten"``, the default, or ``"attention"``) and ``attention``
  (``{embed_dim, heads, hidden}``), and ``device`` (always ``"cpu"``).

The seed, logging and verbosity are not hyperparameters: ``build()`` takes them.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError
from rlbridge.plugins.policies.nets import ACTIVATIONS
from rlbridge.plugins.policies.sb3 import (
    ALGORITHMS,
    BOX,
    DISCRETE,
    MULTI_BINARY,
    MULTI_DISCRETE,
    AlgorithmInfo,
)
from rlbridge.policy import is_dict_space as _is_dict

if TYPE_CHECKING:
    from rlbridge.policy import TrainedPolicy

#: how a user switches the environment's action mapping (quoted in messages)
ACTIONS_KEY = "[env] actions"

NETWORK_KEYS = ("net_arch", "activation", "extractor", "attention", "device")
EXTRACTORS = ("flatten", "attention")

#: constructor arguments rlbridge sets itself, and where the user sets them instead
OWNED: Mapping[str, str] = {
    "policy": "rlbridge picks the policy class from the observation space",
    "env": "the environment is built from the config",
    "seed": "the seed is [train] seed",
    "verbose": "verbosity follows the command line",
    "tensorboard_log": "TensorBoard logs are set up by rlbridge train",
    "policy_kwargs": ("rlbridge builds the network from net_arch, activation, extractor, "
                      "attention and the policy's own options, each a key of [policy]"),
    "supported_action_spaces": "fixed by the algorithm",
}

#: policy constructor arguments that are not user options (set by rlbridge or the algorithm)
POLICY_OWNED = frozenset({
    "observation_space", "action_space", "lr_schedule", "net_arch", "activation_fn",
    "features_extractor_class", "features_extractor_kwargs", "features_extractor",
    "features_dim", "normalize_images", "optimizer_class", "use_sde",
})


@dataclasses.dataclass(frozen=True)
class AttentionOptions:
    """``attention = {embed_dim = 32, heads = 4, hidden = 64}`` in ``[policy]``.

    Attributes:
        embed_dim: the size of each asset's token; ``heads`` must divide it.
        heads: attention heads.
        hidden: hidden layer size of the MLP that encodes an asset into its token.
    """

    embed_dim: int = 32
    heads: int = 4
    hidden: int = 64


@dataclasses.dataclass(frozen=True)
class NetworkOptions:
    """rlbridge's network options of one policy (see the module docstring)."""

    net_arch: tuple[int, ...] | Mapping[str, tuple[int, ...]] | None = None
    activation: str | None = None
    extractor: str = "flatten"
    attention: AttentionOptions = AttentionOptions()


def _error(message: str, key: str | None = None) -> ConfigError:
    return ConfigError(message, key=f"policy.{key}" if key else "policy")


def _closest(word: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def space_kind(space: Any) -> str | None:
    """``"Box"``, ``"Discrete"``, ``"MultiDiscrete"``, ``"MultiBinary"`` or None."""
    names = {cls.__name__ for cls in type(space).__mro__}
    return next((k for k in (BOX, DISCRETE, MULTI_DISCRETE, MULTI_BINARY) if k in names), None)


def _bounded(space: Any) -> bool:
    import numpy as np

    return bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))


def fits(info: AlgorithmInfo, action_space: Any) -> bool:
    """Whether the algorithm of ``info`` takes ``action_space``."""
    kind = space_kind(action_space)
    if kind not in info.actions:
        return False
    return kind != BOX or _bounded(action_space)


class AlgorithmSpec:
    """One algorithm with its checked options; builds and loads stable-baselines3 models.

    Created by the registered factory (``registries.policies.create("ppo", options)``).

    Raises:
        ConfigError: naming ``policy.<key>`` for an unknown key (listing the valid ones and
            the closest match) or a value of the wrong type or out of range.
    """

    def __init__(self, info: AlgorithmInfo, options: Mapping[str, Any]) -> None:
        self.info = info
        self.name = info.name
        raw = dict(options)
        network = {key: raw.pop(key) for key in NETWORK_KEYS if key in raw}
        self.network = self._network_options(network)
        self.hyperparameters, self.policy_options = self._check_keys(raw)

    def __repr__(self) -> str:
        return f"AlgorithmSpec({self.name!r}, {dict(self.hyperparameters)!r})"

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def recurrent(self) -> bool:
        return self.info.recurrent

    def algorithm_class(self) -> Any:
        """The stable-baselines3 class (imports it)."""
        import importlib

        module, _, name = self.info.target.partition(":")
        return getattr(importlib.import_module(module), name)

    # ------------------------------------------------------------------ checking options
    def _network_options(self, raw: Mapping[str, Any]) -> NetworkOptions:
        from rlbridge.options import build

        device = raw.get("device", "cpu")
        if device != "cpu":
            raise _error(f"rlbridge trains and runs policies on the CPU; device must be 'cpu', "
                         f"got {device!r}", "device")
        net_arch = self._net_arch(raw["net_arch"]) if "net_arch" in raw else None
        activation = raw.get("activation")
        if activation is not None and activation not in ACTIVATIONS:
            raise _error(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}"
                         f"{_closest(str(activation), list(ACTIVATIONS))}", "activation")
        extractor = raw.get("extractor", "flatten")
        if extractor not in EXTRACTORS:
            raise _error(f"unknown extractor {extractor!r}; valid: {', '.join(EXTRACTORS)}"
                         f"{_closest(str(extractor), list(EXTRACTORS))}", "extractor")
        if extractor == "attention" and not self.info.extractor:
            takers = ", ".join(i.name for i in ALGORITHMS if i.extractor)
            raise _error(f"{self.name} has no feature extractor (its policy is one MLP over the "
                         f"flattened observation), so extractor = 'attention' cannot apply; "
                         f"algorithms that take it: {takers}", "extractor")
        if "attention" in raw and extractor != "attention":
            raise _error("attention options are set but extractor is "
                         f"{extractor!r}; add extractor = \"attention\" or drop them",
                         "attention")
        if not isinstance(raw.get("attention", {}), Mapping):
            raise _error(f"expected a table, e.g. {{embed_dim = 32, heads = 4}}, got "
                         f"{raw['attention']!r}", "attention")
        attention = build(AttentionOptions, raw.get("attention", {}), path=None,
                          key="policy.attention")
        for field in ("embed_dim", "heads", "hidden"):
            if getattr(attention, field) < 1:
                raise _error(f"must be a positive integer, got {getattr(attention, field)}",
                             f"attention.{field}")
        if attention.embed_dim % attention.heads:
            raise _error(f"embed_dim {attention.embed_dim} is not a multiple of heads "
                         f"{attention.heads}", "attention.embed_dim")
        return NetworkOptions(net_arch, activation, extractor, attention)

    def _net_arch(self, value: Any) -> tuple[int, ...] | Mapping[str, tuple[int, ...]]:
        critic = self.info.critic

        def layers(v: Any, key: str) -> tuple[int, ...]:
            if (isinstance(v, (list, tuple))
                    and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)):
                return tuple(v)
            raise _error(f"expected a list of positive layer sizes, e.g. [64, 64], got {v!r}",
                         key)

        if isinstance(value, Mapping):
            if critic is None:
                raise _error(f"{self.name} has one network: net_arch is a list of layer sizes, "
                             f"e.g. [64, 64], not a table", "net_arch")
            wanted = {"pi", critic}
            if set(value) != wanted:
                what = "value function" if critic == "vf" else "Q-functions"
                raise _error(f"a net_arch table for {self.name} has exactly the keys pi "
                             f"(the actor) and {critic} (the {what}); got "
                             f"{', '.join(sorted(value)) or 'none'}", "net_arch")
            return types.MappingProxyType(
                {k: layers(v, f"net_arch.{k}") for k, v in sorted(value.items())})
        return layers(value, "net_arch")

    def _check_keys(self, raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        cls = self.algorithm_class()
        hyper = _keyword_parameters(cls.__init__)
        alias = "MlpLstmPolicy" if self.info.recurrent else "MlpPolicy"
        policy = {name: p for name, p in
                  _keyword_parameters(cls.policy_aliases[alias].__init__).items()
                  if name not in POLICY_OWNED and name not in hyper}
        for name in OWNED:
            hyper.pop(name, None)
        hyper.pop("device", None)
        hyperparameters: dict[str, Any] = {}
        policy_options: dict[str, Any] = {}
        for key, value in raw.items():
            if key in OWNED:
                raise _error(f"{key} cannot be set in [policy]: {OWNED[key]}", key)
            if key in hyper:
                hyperparameters[key] = _coerce(hyper[key].annotation, value, key)
            elif key in policy:
                policy_options[key] = _coerce(policy[key].annotation, value, key)
            else:
                valid = sorted({*hyper, *policy, *NETWORK_KEYS})
                raise _error(f"{self.name} has no hyperparameter or network option {key!r}"
                             f"{_closest(key, valid)}; valid keys: {', '.join(valid)}", key)
        return types.MappingProxyType(hyperparameters), types.MappingProxyType(policy_options)

    # ------------------------------------------------------------------ spaces
    def supports(self, action_space: Any) -> bool:
        """Whether this algorithm takes ``action_space`` (a gymnasium space)."""
        return fits(self.info, action_space)

    def check_env(self, env: Any) -> None:
        """Raise :class:`ConfigError` when this algorithm cannot run on ``env``.

        Checks the action space (naming the algorithms that would fit and the env's action
        mapping when it has an ``action_mapping`` attribute), action masks for
        ``maskable_ppo``, and the observation the attention extractor needs.
        """
        space = env.action_space
        if not self.supports(space):
            raise self._action_space_error(space, env)
        if self.info.masked and not _has_masks(env):
            raise _error(f"{self.name} needs an environment that offers action_masks() (which "
                         f"actions are allowed now); this one does not: use ppo, or an "
                         f"environment with action masks", "algo")
        if self.network.extractor == "attention":
            from rlbridge.plugins.policies.nets import portfolio_shapes

            try:
                portfolio_shapes(env.observation_space)
            except ValueError as exc:
                raise _error(f"extractor = 'attention' cannot apply: {exc}", "extractor") from None

    def _action_space_error(self, space: Any, env: Any) -> ConfigError:
        kind = space_kind(space)
        mapping = _action_mapping(env)
        shown = f"{space}" + (f" (action mapping {mapping!r})" if mapping else "")
        masks = _has_masks(env)
        takers = [i.name for i in ALGORITHMS if fits(i, space) and (masks or not i.masked)]
        if kind == BOX and BOX in self.info.actions:
            return _error(f"{self.name} needs finite bounds on a continuous action space; the "
                          f"environment's is {shown}. stable-baselines3 takes no unbounded Box "
                          "action with any algorithm: give the action space finite low and "
                          "high bounds", "algo")
        needs = {(BOX,): "a continuous (Box) action space", (DISCRETE,): "a Discrete action "
                 "space (one choice out of n)"}.get(self.info.actions, "an action space of "
                                                     + " or ".join(self.info.actions))
        message = f"{self.name} needs {needs}; the environment's is {shown}"
        if takers:
            message += f"; algorithms that take it: {', '.join(takers)}"
        multi = [i.name for i in ALGORITHMS if MULTI_DISCRETE in i.actions]
        if MULTI_DISCRETE not in self.info.actions and DISCRETE in self.info.actions:
            if kind == MULTI_DISCRETE:
                message += (f". The discrete buy/hold/sell mapping gives one choice per asset "
                            f"(MultiDiscrete), which {self.name} cannot take; "
                            f"{', '.join(multi)} can")
            elif kind == BOX:
                message += (f". The discrete buy/hold/sell mapping ({ACTIONS_KEY} = "
                            f"\"discrete\") gives MultiDiscrete([3] * N), which {self.name} "
                            f"does not take either; {', '.join(multi)} do")
        elif kind == BOX and MULTI_DISCRETE in self.info.actions:
            message += f"; or use the discrete buy/hold/sell mapping ({ACTIONS_KEY} = \"discrete\")"
        elif BOX in self.info.actions and kind in (DISCRETE, MULTI_DISCRETE, MULTI_BINARY):
            message += f"; or keep {self.name} with a continuous action mapping ({ACTIONS_KEY})"
        return _error(message, "algo")

    # ------------------------------------------------------------------ models
    def policy_kwargs(self, observation_space: Any) -> dict[str, Any]:
        """The ``policy_kwargs`` for a model on ``observation_space`` (the env's, unflattened)."""
        kwargs: dict[str, Any] = dict(self.policy_options)
        net = self.network
        if net.net_arch is not None:
            arch = net.net_arch
            kwargs["net_arch"] = ({k: list(v) for k, v in arch.items()}
                                  if isinstance(arch, Mapping) else list(arch))
        if net.activation is not None:
            from rlbridge.plugins.policies.nets import activation_class

            kwargs["activation_fn"] = activation_class(net.activation)
        if net.extractor == "attention":
            from rlbridge.plugins.policies.nets import layout_of, lazy_class

            kwargs["features_extractor_class"] = lazy_class("AttentionExtractor")
            extractor = dict(dataclasses.asdict(net.attention),
                             activation=net.activation or "relu")
            if self._flattens(observation_space):
                extractor["layout"] = [[k, list(s)] for k, s in layout_of(observation_space)]
            kwargs["features_extractor_kwargs"] = extractor
        return kwargs

    def _flattens(self, observation_space: Any) -> bool:
        return _is_dict(observation_space) and not self.info.dict_observations

    def prepare_env(self, env: Any) -> Any:
        """``env`` as the model sees it: Dict observations flattened for ``ars``/``crossq``."""
        if self._flattens(env.observation_space):
            from rlbridge.plugins.policies.nets import flatten_env

            return flatten_env(env)
        return env

    def build(self, env: Any, *, seed: int | None, tensorboard_log: str | None = None,
              verbose: int = 0) -> Any:
        """A new, untrained stable-baselines3 model on ``env`` (a gymnasium env or a VecEnv).

        Uses ``MultiInputPolicy`` (``MultiInputLstmPolicy`` for ``recurrent_ppo``) for a Dict
        observation and ``MlpPolicy`` for a Box; always on the CPU.  The same seed on the same
        machine gives the same initial weights and the same training.

        Raises:
            ConfigError: the algorithm does not take the env's action space, or it refused a
                hyperparameter value.
        """
        self.check_env(env)
        dict_obs = _is_dict(env.observation_space)
        if self.info.recurrent:
            policy = "MultiInputLstmPolicy" if dict_obs else "MlpLstmPolicy"
        else:
            policy = "MultiInputPolicy" if dict_obs and self.info.dict_observations else "MlpPolicy"
        kwargs = self.policy_kwargs(env.observation_space)
        model_env = self.prepare_env(env)
        cls = self.algorithm_class()
        try:
            return cls(policy, model_env, seed=seed, device="cpu", verbose=verbose,
                       tensorboard_log=tensorboard_log, policy_kwargs=kwargs,
                       **self.hyperparameters)
        except (AssertionError, ValueError) as exc:
            raise _error(f"{self.name} refused its settings: {exc}") from None

    def load(self, path: Any, env: Any = None) -> Any:
        """The stable-baselines3 model saved at ``path`` (to resume training on ``env``).

        Raises:
            rlbridge.policy.PolicyFileError: the file is missing or not a saved model.
        """
        from rlbridge.policy import load_model

        return load_model(self.algorithm_class(), path,
                          None if env is None else self.prepare_env(env))

    def trained_policy(self, model: Any, env: Any) -> TrainedPolicy:
        """Wrap ``model`` trained on ``env`` for prediction and saving."""
        from rlbridge.policy import TrainedPolicy

        return TrainedPolicy(model, self.name, observation_space=env.observation_space)


def _has_masks(env: Any) -> bool:
    if env is None:
        return False
    from sb3_contrib.common.maskable.utils import is_masking_supported

    return bool(is_masking_supported(env))


def _action_mapping(env: Any) -> str | None:
    """The name of the env's action mapping (its ``action_mapping`` or ``mapping`` attribute)."""
    if env is None:
        return None
    for attr in ("action_mapping", "mapping"):
        try:
            if hasattr(env, "get_attr") and hasattr(env, "num_envs"):  # an SB3 VecEnv
                value = env.get_attr(attr, [0])[0]
            elif hasattr(env, "get_wrapper_attr"):
                value = env.get_wrapper_attr(attr)
            else:
                value = getattr(env, attr)
        except AttributeError:
            continue
        name = getattr(value, "name", value)
        if isinstance(name, str) and name:
            return name
    return None


def _keyword_parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in inspect.signature(function).parameters.items()
            if p.kind in kinds and name != "self" and not name.startswith("_")}


# ---------------------------------------------------------------------- value types
_NO = object()


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    """``value`` checked (and converted: int -> float, list -> tuple) against ``annotation``."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return value
    origin = typing.get_origin(annotation)
    members = (typing.get_args(annotation) if origin in (typing.Union, types.UnionType)
               else (annotation,))
    unknown = False
    for member in members:
        converted = _match(member, value)
        if converted is None:
            unknown = True
        elif converted is not _NO:
            return converted[0]
    if unknown:
        return value
    expected = " or ".join(dict.fromkeys(_describe(m) for m in members))
    raise _error(f"expected {expected}, got {value!r}", key)


def _match(member: Any, value: Any) -> Any:
    """``(converted,)`` if ``value`` fits ``member``, ``_NO`` if not, None if unknowable."""
    origin = typing.get_origin(member) or member
    plain_int = isinstance(value, int) and not isinstance(value, bool)
    if member is type(None):
        return (None,) if value is None else _NO
    if member is bool:
        return (value,) if isinstance(value, bool) else _NO
    if member is int:
        return (value,) if plain_int else _NO
    if member is float:
        return (float(value),) if plain_int or isinstance(value, float) else _NO
    if member is str:
        return (value,) if isinstance(value, str) else _NO
    if origin is typing.Literal:
        return (value,) if value in typing.get_args(member) else _NO
    if origin in (tuple, list):
        return (origin(value),) if isinstance(value, (list, tuple)) else _NO
    if origin in (dict, Mapping):
        return (dict(value),) if isinstance(value, Mapping) else _NO
    if origin in (Callable, typing.Callable):
        return (value,) if callable(value) else _NO
    if origin is type:
        return (value,) if isinstance(value, type) else _NO
    if inspect.isclass(member):
        return (value,) if isinstance(value, member) else _NO
    return None


def _describe(member: Any) -> str:
    origin = typing.get_origin(member) or member
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "nothing", tuple: "a list", list: "a list", dict: "a table",
             Mapping: "a table", Callable: "a schedule (a Python callable)", type: "a class"}
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(member))
    return names.get(origin, f"a {getattr(member, '__name__', member)}")

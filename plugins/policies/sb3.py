"""The stable-baselines3 and sb3-contrib algorithms, registered by lower-case name.

``[policy] algo = "ppo"`` (or any name below) picks one; the rest of the ``[policy]`` table holds
the algorithm's hyperparameters and rlbridge's network options (see
:mod:`rlbridge.plugins.policies.spec`).  This module is pure data and one hook: importing it
costs nothing, torch and stable-baselines3 are imported when a policy is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    from rlbridge.plugins.policies.spec import AlgorithmSpec

BOX, DISCRETE, MULTI_DISCRETE, MULTI_BINARY = "Box", "Discrete", "MultiDiscrete", "MultiBinary"
ANY_ACTION = (BOX, DISCRETE, MULTI_DISCRETE, MULTI_BINARY)


@dataclass(frozen=True)
class AlgorithmInfo:
    """What rlbridge knows about one algorithm, before importing it.

    Attributes:
        name: the registered name (``[policy] algo``).
        target: ``module:Class`` of the algorithm.
        title: the algorithm's full name.
        actions: the gymnasium action space classes it takes.
        critic: the key of the critic in a ``net_arch`` table: ``"vf"`` (value function,
            on-policy), ``"qf"`` (Q-functions, off-policy actor-critic) or None (one network).
        recurrent: an LSTM policy whose state the caller carries between steps.
        masked: needs ``action_masks()`` from the environment.
        dict_observations: takes a Dict observation as is; when False rlbridge flattens it into
            one vector (the attention extractor unflattens it again).
        extractor: accepts a feature extractor (``extractor = "attention"``).
    """

    name: str
    target: str
    title: str
    actions: tuple[str, ...]
    critic: str | None
    recurrent: bool = False
    masked: bool = False
    dict_observations: bool = True
    extractor: bool = True

    @property
    def library(self) -> str:
        return "sb3-contrib" if self.target.startswith("sb3_contrib") else "stable-baselines3"

    @property
    def description(self) -> str:
        extra = ""
        if self.recurrent:
            extra = "; LSTM policy (lstm_hidden_size)"
        elif self.masked:
            extra = "; the environment must offer action_masks()"
        return f"{self.title} ({self.library}); actions: {', '.join(self.actions)}{extra}"


ALGORITHMS: tuple[AlgorithmInfo, ...] = (
    AlgorithmInfo("ppo", "stable_baselines3:PPO", "Proximal Policy Optimization",
                  ANY_ACTION, critic="vf"),
    AlgorithmInfo("a2c", "stable_baselines3:A2C", "Advantage Actor-Critic",
                  ANY_ACTION, critic="vf"),
    AlgorithmInfo("sac", "stable_baselines3:SAC", "Soft Actor-Critic", (BOX,), critic="qf"),
    AlgorithmInfo("td3", "stable_baselines3:TD3", "Twin Delayed DDPG", (BOX,), critic="qf"),
    AlgorithmInfo("ddpg", "stable_baselines3:DDPG", "Deep Deterministic Policy Gradient",
                  (BOX,), critic="qf"),
    AlgorithmInfo("dqn", "stable_baselines3:DQN", "Deep Q-Network", (DISCRETE,), critic=None),
    AlgorithmInfo("recurrent_ppo", "sb3_contrib:RecurrentPPO", "PPO with an LSTM policy",
                  ANY_ACTION, critic="vf", recurrent=True),
    AlgorithmInfo("tqc", "sb3_contrib:TQC", "Truncated Quantile Critics", (BOX,), critic="qf"),
    AlgorithmInfo("trpo", "sb3_contrib:TRPO", "Trust Region Policy Optimization",
                  ANY_ACTION, critic="vf"),
    AlgorithmInfo("qrdqn", "sb3_contrib:QRDQN", "Quantile Regression DQN",
                  (DISCRETE,), critic=None),
    AlgorithmInfo("ars", "sb3_contrib:ARS", "Augmented Random Search",
                  (BOX, DISCRETE), critic=None, dict_observations=False, extractor=False),
    AlgorithmInfo("crossq", "sb3_contrib:CrossQ", "CrossQ (batch-normalised SAC)",
                  (BOX,), critic="qf", dict_observations=False),
    AlgorithmInfo("maskable_ppo", "sb3_contrib:MaskablePPO", "PPO with invalid-action masking",
                  (DISCRETE, MULTI_DISCRETE, MULTI_BINARY), critic="vf", masked=True),
)
"""Every built-in algorithm, in the order messages list them."""

BY_NAME: Mapping[str, AlgorithmInfo] = {info.name: info for info in ALGORITHMS}


class AlgorithmFactory:
    """The registered factory of one algorithm: options in, an :class:`AlgorithmSpec` out.

    It takes the ``[policy]`` table minus ``algo`` as a read-only mapping (hyperparameters and
    network options are open-ended, so there is no ``Config`` dataclass); the spec checks them
    against the algorithm's constructor.
    """

    def __init__(self, info: AlgorithmInfo) -> None:
        self.info = info
        self.__doc__ = info.description

    def __call__(self, options: Mapping[str, Any] | None = None) -> AlgorithmSpec:
        from rlbridge.plugins.policies.spec import AlgorithmSpec

        return AlgorithmSpec(self.info, options or {})

    def __repr__(self) -> str:
        return f"AlgorithmFactory({self.info.name!r})"


@hookimpl
def register_policies(register: Any) -> None:
    """Register every stable-baselines3 and sb3-contrib algorithm rlbridge knows."""
    for info in ALGORITHMS:
        register(info.name, AlgorithmFactory(info), description=info.description)

"""``rl_allocation``: a trained policy as an ordinary strategy.

After each close: the last ``window`` rows of features, normalised with the statistics saved at
training time, and the current weights form the same observation the training environment
gave; the policy's action becomes target weights through the same action mapping; the orders
that reach them fill at the next open.  Whatever the engine, the decisions are the
environment's.

The policy is checked against the run before the first bar: the symbols (and their order),
the feature names and the window must be those it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import BarContext, Strategy


class RLAllocation(Strategy):
    """Trade the weights a trained policy asks for.

    Params:
        model: the saved policy (``NAME``, ``NAME.zip`` or ``NAME.json``, as ``rlbridge
            train`` wrote it; a relative path is relative to the config file).
        deterministic: act on the policy's mean action (the default) or sample.
        threads: torch's threads (``torch.set_num_threads``, for the whole process) when the
            strategy starts; 1, the default, is the fastest for the small networks trading
            policies use (several times faster than one per core); 0 leaves torch's setting.
    """

    @dataclass(frozen=True)
    class Config:
        model: Path
        deterministic: bool = True
        threads: int = 1

        def __post_init__(self) -> None:
            if self.threads < 0:
                from rlbridge.errors import ConfigError

                raise ConfigError(f"must be 0 (torch's own setting) or more, got "
                                  f"{self.threads}", key="threads")

    def start(self, ctx: BarContext) -> None:
        from rlbridge.actions import make_action_mapping
        from rlbridge.features import Normalizer
        from rlbridge.policy import TrainedPolicy

        threads = int(self.params.get("threads", 1))
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        self.policy = TrainedPolicy.load(self.params["model"])
        meta = self.policy.metadata
        check_compatible(meta, ctx, str(self.params["model"]))
        self.window = int(meta["window"])
        self.normalizer = Normalizer.from_dict(meta["normalizer"])
        self.mapping = make_action_mapping(meta["actions"], len(ctx.symbols),
                                           gross_cap=float(meta.get("gross_cap", 1.0)),
                                           trade_step=float(meta.get("trade_step", 0.1)))
        self.deterministic = bool(self.params.get("deterministic", True))
        self.band = float(meta.get("rebalance_band", 0.0))  # the env's, at training
        self.policy.reset()

    def on_bar(self, ctx: BarContext) -> None:
        import numpy as np

        raw = ctx.features(self.window)
        if len(raw) < self.window or np.isnan(raw).any():
            return  # the features' warm-up: no decision before a full, finite window
        weights = ctx.weights
        observation = {"features": self.normalizer.apply(raw),
                       "weights": weights.astype(np.float32)}
        action = self.policy.act(observation, deterministic=self.deterministic)
        ctx.order_target_weights(self.mapping(action, weights), band=self.band)


def _difference(trained: list[str], now: list[str], what: str) -> str:
    """``missing A; new B`` (or ``same WHAT in another order``) between two name lists."""
    missing = [x for x in trained if x not in now]
    extra = [x for x in now if x not in trained]
    parts = [f"missing {', '.join(missing)}" if missing else "",
             f"new {', '.join(extra)}" if extra else ""]
    return "; ".join(p for p in parts if p) or f"same {what} in another order"


def check_compatible(meta: Any, ctx: BarContext, where: str) -> None:
    """Raise :class:`~rlbridge.policy.PolicyMismatchError` naming what changed since training."""
    from rlbridge.policy import PolicyMismatchError

    problems = []
    trained, now = list(meta.get("symbols", [])), list(ctx.symbols)
    if trained != now:
        problems.append(f"symbols {', '.join(trained)} at training, {', '.join(now)} now "
                        f"({_difference(trained, now, 'symbols')})")
    names, current = list(meta.get("feature_names", [])), list(ctx.feature_names)
    if names != current:
        problems.append(f"features changed ({_difference(names, current, 'features')})")
    window = meta.get("window")
    if ctx.feature_window is not None and window != ctx.feature_window:
        problems.append(f"window {window} at training, {ctx.feature_window} now")
    if problems:
        raise PolicyMismatchError(f"policy {where} does not match this run's observation: "
                                  + "; ".join(problems))


@hookimpl
def register_strategies(register: Any) -> None:
    register("rl_allocation", RLAllocation,
             description="a trained RL policy's target weights (rlbridge train), in any engine")

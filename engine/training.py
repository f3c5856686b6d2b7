"""``rlbridge.train(config)``: train a policy in the portfolio environment and record it.

The environment is built from the config exactly as a backtest reads it (same bars, same
features fitted on ``[train] start .. end`` only, same cost model, same market model), the
algorithm comes from the policy registry, and the trained policy is saved with everything a
later run needs to rebuild its observation and to refuse data it was not trained for: symbols,
feature names, window, action mapping, the feature normaliser, the config, the data hash and
the library versions.  The run and the model are recorded in the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .env import PortfolioEnv
    from .features import FeatureSet
    from .interfaces import Bars
    from .manager import RLBridgePluginManager
    from .store import Store

DEFAULT_CASH = 100_000.0


@dataclass(frozen=True)
class TrainResult:
    """A finished training run.

    Attributes:
        run_id: the training run in the store (None when not recorded).
        model_id: the model's id in the store (None when not recorded).
        path: the saved policy (``.zip``; its ``.json`` sidecar beside it).
        algo: the algorithm's name.
        timesteps: environment steps trained in total.
        seconds: wall time of the training itself.
        data_hash: hash of the bars the environment was built on.
    """

    run_id: str | None
    model_id: int | None
    path: Path
    algo: str
    timesteps: int
    seconds: float
    data_hash: str

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "model_id": self.model_id, "path": str(self.path),
                "algo": self.algo, "timesteps": self.timesteps,
                "seconds": round(self.seconds, 3), "data_hash": self.data_hash}


def make_env(
    config: Config,
    pm: RLBridgePluginManager | None = None,
    *,
    bars: Bars | None = None,
    start: Any = None,
    end: Any = None,
    features: FeatureSet | None = None,
) -> PortfolioEnv:
    """The training environment of ``config`` (``rlbridge.make_env``).

    Args:
        config: needs ``[data]``, ``[features]``; ``[env]``, ``[costs]``, ``[train]`` and
            ``[backtest] cash`` are used when present.
        pm: the plugin manager (default: a new one).
        bars: use these bars instead of loading them through the configured feed.
        start, end: the episode range (default ``[train] start .. end``).
        features: precomputed features (default: computed, the normaliser fitted on
            ``[train] start .. end``).

    The environment keeps its :class:`~rlbridge.features.FeatureSet` as ``env.feature_set``.
    """
    from .backtesting import decision_range
    from .config import EnvConfig, require
    from .costs import create_cost_model
    from .data import load_bars
    from .env import PortfolioEnv
    from .features import compute_features

    require(config, "training needs", "data", "features")
    assert config.features is not None
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    if bars is None:
        bars = load_bars(config, pm)
    if features is None:
        features = compute_features(config, bars, pm)
    train = config.train
    lo, hi = decision_range(bars, start if start is not None else getattr(train, "start", None),
                            end if end is not None else getattr(train, "end", None), what="train")
    options = config.env or EnvConfig()
    env = PortfolioEnv(
        bars, features.values, create_cost_model(config.costs, pm, path=config.path),
        window=config.features.window, start=lo, end=hi,
        cash=config.backtest.cash if config.backtest is not None else DEFAULT_CASH,
        actions=options.actions, gross_cap=options.gross_cap, trade_step=options.trade_step,
        rebalance_band=options.rebalance_band,
        drawdown_penalty=options.drawdown_penalty, turnover_penalty=options.turnover_penalty,
        random_start=options.random_start, episode_length=options.episode_length,
        fractional=options.fractional, fill_at=options.fill_at, feature_names=features.names,
    )
    env.feature_set = features  # type: ignore[attr-defined]
    return env


def policy_metadata(env: PortfolioEnv, features: FeatureSet, config: Config, algo: str,
                    data_hash: str, seed: int | None) -> dict[str, Any]:
    """What is saved with a policy so a later run can rebuild and check its observation."""
    from .config import EnvConfig
    from .policy import library_versions

    options = config.env or EnvConfig()
    return {
        **env.describe(),
        "gross_cap": options.gross_cap, "trade_step": options.trade_step,
        "normalizer": features.normalizer.to_dict(), "algo": algo, "seed": seed,
        "data_hash": data_hash, "config": config.to_dict(), "versions": library_versions(),
        "train_range": [str(env.bars.index[env.first]), str(env.bars.index[env.last])],
    }


def train(
    config: Config,
    pm: RLBridgePluginManager | None = None,
    *,
    store: Store | None = None,
    record: bool = True,
    progress: bool = False,
    resume: str | Path | None = None,
    bars: Bars | None = None,
) -> TrainResult:
    """Train ``config``'s policy; save it and record the run and the model.

    Args:
        config: needs ``[data]``, ``[features]``, ``[policy]`` and ``[train]``.
        pm: the plugin manager (default: a new one).
        store: where the run is recorded (default: :func:`rlbridge.store.open_store`).
        record: record the run and the model in the store.
        progress: show a progress bar (the CLI turns it on for a terminal).
        resume: a checkpoint or saved model to continue training from; the run then trains
            up to ``[train] timesteps`` in total.
        bars: use these bars instead of loading them through the configured feed.

    Raises:
        ConfigError: a missing table, a bad hyperparameter, an algorithm that does not take the
            environment's action space.
        DataError: the training range is outside the data or shorter than the window.
    """
    import numpy as np

    from .config import require

    require(config, "training needs", "data", "features", "policy", "train")
    assert config.train is not None and config.policy is not None
    settings = config.train
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)

    from .data import load_bars
    from .features import compute_features
    from .policy import create_algorithm

    algorithm = create_algorithm(pm.registries, config.policy, path=config.path)
    if record and store is None:
        from .store import open_store

        store = open_store(config=config)
    if bars is None:
        bars = load_bars(config, pm, store_url=None if store is None else store.full_url)
    features = compute_features(config, bars, pm)
    env = make_env(config, pm, bars=bars, features=features)
    data_hash = bars.digest()
    seed = settings.seed if settings.seed is not None else int(
        int(np.random.SeedSequence().entropy) % 2**32)  # type: ignore[arg-type]
    run = None
    if record:
        from .runs import start_run

        run = start_run(store, "train", config, data_hash)  # type: ignore[arg-type]
        pm.hook.before_run(run=run)
    folder = _output(config) / (run.id if run is not None else f"seed{seed}")
    try:
        result = _learn(config, env, features, algorithm, seed, folder, data_hash, progress, resume)
    except BaseException as exc:
        if run is not None:
            from .runs import error_text, finish_run

            run = finish_run(store, run, "failed", error_text(exc))  # type: ignore[arg-type]
            pm.hook.on_run_error(run=run, error=exc)
        raise
    model_id = None
    if run is not None:
        from .policy import library_versions
        from .runs import finish_run, save_model

        model = save_model(store, run, algo=algorithm.name, path=result.path,  # type: ignore[arg-type]
                           config=config, data_hash=data_hash, versions=library_versions())
        model_id = model.id
        result = TrainResult(run.id, model_id, result.path, result.algo, result.timesteps,
                             result.seconds, data_hash)
        run = finish_run(store, run, "completed")  # type: ignore[arg-type]
        pm.hook.after_run(run=run, result=result)
    return result


def _output(config: Config) -> Path:
    assert config.train is not None
    if config.train.output is not None:
        return Path(config.train.output)
    base = config.path.parent if config.path is not None else Path.cwd()
    return base / "models"


def _learn(config: Config, env: PortfolioEnv, features: FeatureSet, algorithm: Any, seed: int,
           folder: Path, data_hash: str, progress: bool, resume: str | Path | None) -> TrainResult:
    import importlib.util

    import torch

    assert config.train is not None
    settings = config.train
    torch.set_num_threads(settings.threads)
    folder.mkdir(parents=True, exist_ok=True)
    train_env: Any = env
    if settings.n_envs > 1:
        from .vec_env import PortfolioVecEnv

        train_env = PortfolioVecEnv(env, settings.n_envs, seed=seed)
    board = (str(folder / "tensorboard") if importlib.util.find_spec("tensorboard") is not None
             else None)
    if resume is not None:
        from .policy import TrainedPolicy

        path = Path(resume)
        if path.suffix != ".zip" or path.with_suffix(".json").exists():  # a saved policy
            path = Path(TrainedPolicy.load(path).path or path)
        model = algorithm.load(path, env=algorithm.prepare_env(train_env))
        if board is not None:
            model.tensorboard_log = board
    else:
        model = algorithm.build(train_env, seed=seed, tensorboard_log=board)
    callbacks = []
    if settings.checkpoint_every:
        from stable_baselines3.common.callbacks import CheckpointCallback

        callbacks.append(CheckpointCallback(
            save_freq=max(1, settings.checkpoint_every // settings.n_envs),
            save_path=str(folder / "checkpoints"), name_prefix="model"))
    remaining = settings.timesteps - (model.num_timesteps if resume is not None else 0)
    started = time.perf_counter()
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=callbacks or None,
                    progress_bar=progress, reset_num_timesteps=resume is None)
    seconds = time.perf_counter() - started
    policy = algorithm.trained_policy(model, env)
    metadata = policy_metadata(env, features, config, algorithm.name, data_hash, seed)
    path = policy.save(folder / "policy", metadata)
    return TrainResult(None, None, path, algorithm.name, int(model.num_timesteps), seconds,
                       data_hash)

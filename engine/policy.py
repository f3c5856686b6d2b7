"""Trained policies: predict, save with a metadata sidecar, load, and the library versions.

A saved policy is two files side by side: ``NAME.zip``, the stable-baselines3 model, and
``NAME.json``, rlbridge's sidecar.  The sidecar records the algorithm, the observation layout the
policy was trained on, the library versions, and the caller's metadata (symbols, feature names,
window, action mapping, normaliser, config, data hash...), so a strategy can check that today's
data still matches before it acts.

Nothing here imports torch or stable-baselines3 at module level.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, RLBridgeError

if TYPE_CHECKING:
    from .config import PolicyConfig
    from .registry import Registries

SIDECAR_FORMAT = "rlbridge-policy"
FORMAT_VERSION = 1

#: one observation part per entry, in flattening order: (Dict key, shape)
Layout = tuple[tuple[str, tuple[int, ...]], ...]


class PolicyFileError(RLBridgeError):
    """A saved policy is missing, unreadable or not a policy; the message names the file."""


class PolicyMismatchError(RLBridgeError):
    """An observation or environment does not match what the policy was trained on."""


def library_versions() -> dict[str, str | None]:
    """The versions that decide whether a saved policy reproduces: python, numpy, torch, ...

    Read from package metadata, so nothing heavy is imported; None for a package not installed.
    """
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in (("numpy", "numpy"), ("torch", "torch"),
                      ("stable_baselines3", "stable-baselines3"), ("sb3_contrib", "sb3-contrib"),
                      ("gymnasium", "gymnasium"), ("rlbridge", "rlbridge")):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def policy_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(NAME.zip, NAME.json)`` for ``NAME``, ``NAME.zip`` or ``NAME.json``."""
    p = Path(path)
    if p.suffix in (".zip", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".zip"), p.with_name(p.name + ".json")


# ---------------------------------------------------------------------- observation layouts
def is_dict_space(space: Any) -> bool:
    return any(cls.__name__ == "Dict" for cls in type(space).__mro__)


def layout_of(space: Any) -> Layout:
    """The flattening layout of a Dict observation space of Boxes (keys in the space's order)."""
    return tuple((key, tuple(int(d) for d in sub.shape)) for key, sub in space.spaces.items())


def flatten_observation(observation: Mapping[str, Any], layout: Layout) -> Any:
    """Concatenate the parts of a Dict observation into one float32 vector per observation.

    Works on one observation (each part shaped as in ``layout``) and on a batch (each part with
    one leading batch axis), returning ``[size]`` or ``[batch, size]``.
    """
    import numpy as np

    key, shape = layout[0]
    batched = np.ndim(observation[key]) == len(shape) + 1
    parts = []
    for key, _ in layout:
        part = np.asarray(observation[key], dtype=np.float32)
        parts.append(part.reshape(part.shape[0], -1) if batched else part.reshape(-1))
    return np.concatenate(parts, axis=-1)


# ---------------------------------------------------------------------- the trained policy
class TrainedPolicy:
    """A trained stable-baselines3 model behind rlbridge's policy interface.

    Args:
        model: the stable-baselines3 model.
        algo: the registered algorithm name (``"ppo"``, ...).
        observation_space: the environment's observation space when it differs from the
            model's (a Dict the model sees flattened); the model's by default.
        metadata: what the caller wants saved with the policy.
        path: where the policy was loaded from or last saved.
    """

    def __init__(self, model: Any, algo: str, *, observation_space: Any = None,
                 metadata: Mapping[str, Any] | None = None, path: Path | None = None) -> None:
        self.model = model
        self.algo = algo
        self.path = path
        self._metadata = dict(metadata or {})
        space = model.observation_space if observation_space is None else observation_space
        self.layout: Layout = (layout_of(space) if is_dict_space(space)
                               else (("", tuple(int(d) for d in space.shape)),))
        self.dict_observation = is_dict_space(space)
        self.flattened = self.dict_observation and not is_dict_space(model.observation_space)
        self.recurrent = getattr(model.policy, "lstm_hidden_state_shape", None) is not None
        self._state: Any = None
        self._episode_start = True

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"TrainedPolicy({self.algo!r}{where})"

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The caller's metadata saved with the policy (read-only)."""
        return types.MappingProxyType(self._metadata)

    # ------------------------------------------------------------------ acting
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True, action_masks: Any = None) -> tuple[Any, Any]:
        """The action for ``observation`` (one, or a batch with a leading axis).

        Args:
            observation: as the environment gives it (a Dict stays a Dict: a policy that
                sees it flattened flattens it here).
            state: the recurrent state returned by the previous call (``recurrent_ppo``);
                None at the start.  Other algorithms return None and ignore it.
            episode_start: True where a new episode starts (resets the recurrent state).
            deterministic: the most likely action rather than a sample.
            action_masks: allowed actions, for ``maskable_ppo``.

        Returns:
            ``(action, state)``.

        Raises:
            PolicyMismatchError: the observation's keys or shapes differ from training.
            DataError: the observation holds NaN or infinite values.
        """
        obs = self._checked(observation)
        kwargs = {"action_masks": action_masks} if action_masks is not None else {}
        import numpy as np

        if episode_start is not None:
            episode_start = np.asarray(episode_start, dtype=bool).reshape(-1)
        action, new_state = self.model.predict(obs, state=state, episode_start=episode_start,
                                               deterministic=deterministic, **kwargs)
        return action, new_state

    def act(self, observation: Any, deterministic: bool = True) -> Any:
        """The action for one observation, carrying the recurrent state between calls.

        Call :meth:`reset` at the start of each episode (or backtest).
        """
        action, self._state = self.predict(observation, self._state, [self._episode_start],
                                           deterministic)
        self._episode_start = False
        return action

    def reset(self) -> None:
        """Forget the recurrent state: the next :meth:`act` starts an episode."""
        self._state = None
        self._episode_start = True

    def _checked(self, observation: Any) -> Any:
        import numpy as np

        if self.dict_observation:
            if not isinstance(observation, Mapping):
                raise PolicyMismatchError(
                    f"{self._name()}: expected a Dict observation with keys "
                    f"{', '.join(k for k, _ in self.layout)}, got {type(observation).__name__}")
            if set(observation) != {k for k, _ in self.layout}:
                raise PolicyMismatchError(
                    f"{self._name()}: the observation has keys {', '.join(sorted(observation))}; "
                    f"the policy was trained on {', '.join(k for k, _ in self.layout)}")
            parts = {k: np.asarray(observation[k]) for k, _ in self.layout}
        else:
            parts = {"": np.asarray(observation)}
        batch: set[int | None] = set()
        for key, shape in self.layout:
            got = parts[key].shape
            if got == shape:
                batch.add(None)
            elif got[1:] == shape:
                batch.add(got[0])
            else:
                raise PolicyMismatchError(self._shape_message(key, got, shape))
            if not np.all(np.isfinite(parts[key])):
                name = f" {key!r}" if key else ""
                raise DataError(f"the observation{name} holds NaN or infinite values",
                                source=self._name())
        if len(batch) > 1:
            raise PolicyMismatchError(f"{self._name()}: the observation's parts disagree on the "
                                      f"batch size: {sorted(map(str, batch))}")
        if not self.dict_observation:
            return parts[""]
        return flatten_observation(parts, self.layout) if self.flattened else parts

    def _shape_message(self, key: str, got: tuple[int, ...], shape: tuple[int, ...]) -> str:
        part = f"observation {key!r}" if key else "the observation"
        message = f"{self._name()}: {part} has shape {got}; the policy was trained on {shape}"
        if key == "features" and len(shape) == 3 and len(got) in (3, 4):
            w, n, f = got[-3:]
            message += (f" (window {shape[0]}, {shape[1]} assets, {shape[2]} features; now "
                        f"window {w}, {n} assets, {f} features)")
        meta = self._metadata
        trained = [f"{label} {', '.join(map(str, meta[k]))}" for k, label in
                   (("symbols", "symbols"), ("feature_names", "features"))
                   if isinstance(meta.get(k), (list, tuple))]
        if trained:
            message += f"; it was trained on {'; '.join(trained)}"
        return message

    def _name(self) -> str:
        return f"policy {self.path}" if self.path else f"{self.algo} policy"

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str],
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``NAME.zip`` (the model) and ``NAME.json`` (the sidecar); return the zip's path.

        Args:
            path: ``NAME``, ``NAME.zip`` or ``NAME.json``; folders are created.
            metadata: JSON-able data to keep with the policy (numpy values, paths and dates
                are converted); by default the metadata it already has.

        Raises:
            RLBridgeError: ``metadata`` holds something that is not JSON data.
            PolicyFileError: the files cannot be written.
        """
        zip_path, json_path = policy_paths(path)
        meta = self._metadata if metadata is None else dict(metadata)
        cls = type(self.model)
        sidecar = {
            "format": SIDECAR_FORMAT,
            "version": FORMAT_VERSION,
            "algo": self.algo,
            "algorithm_class": f"{cls.__module__}:{cls.__qualname__}",
            "observation": [[k, list(s)] for k, s in self.layout],
            "dict_observation": self.dict_observation,
            "flattened": self.flattened,
            "recurrent": self.recurrent,
            "action_space": str(self.model.action_space),
            "library_versions": library_versions(),
            "metadata": meta,
        }
        try:
            text = json.dumps(sidecar, indent=2, default=_json_default, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RLBridgeError(f"policy metadata must be JSON data: {exc}") from None
        buffer = io.BytesIO()
        self.model.save(buffer)
        try:
            zip_path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(zip_path, buffer.getvalue())
            _write_atomic(json_path, (text + "\n").encode("utf-8"))
        except OSError as exc:
            raise PolicyFileError(f"{zip_path}: cannot write the policy: "
                                  f"{exc.strerror or exc}") from None
        self._metadata = json.loads(text)["metadata"]
        self.path = zip_path
        return zip_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainedPolicy:
        """The policy saved at ``path`` (``NAME``, ``NAME.zip`` or ``NAME.json``).

        Raises:
            PolicyFileError: either file is missing, unreadable or not what ``save`` wrote.
        """
        zip_path, json_path = policy_paths(path)
        if not zip_path.is_file():
            raise PolicyFileError(f"{zip_path}: no saved policy there")
        if not json_path.is_file():
            raise PolicyFileError(f"{json_path}: the policy's sidecar is missing (save() writes "
                                  f"it next to {zip_path.name})")
        try:
            sidecar = json.loads(json_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyFileError(f"{json_path}: not a policy sidecar: {exc}") from None
        if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
            raise PolicyFileError(f"{json_path}: not a policy sidecar (no "
                                  f"\"format\": \"{SIDECAR_FORMAT}\")")
        if not isinstance(sidecar.get("version"), int) or sidecar["version"] > FORMAT_VERSION:
            raise PolicyFileError(f"{json_path}: sidecar version {sidecar.get('version')!r} is "
                                  f"not one this rlbridge reads (up to {FORMAT_VERSION})")
        try:
            algo = str(sidecar["algo"])
            target = str(sidecar["algorithm_class"])
            layout = tuple((str(k), tuple(int(d) for d in s)) for k, s in sidecar["observation"])
            dict_observation, flattened = bool(sidecar["dict_observation"]), bool(
                sidecar["flattened"])
            metadata = dict(sidecar.get("metadata") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyFileError(f"{json_path}: incomplete policy sidecar ({exc!r})") from None
        module, _, name = target.partition(":")
        try:
            algorithm = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise PolicyFileError(f"{json_path}: cannot import the algorithm {target}: "
                                  f"{exc}") from None
        policy = cls(load_model(algorithm, zip_path), algo, metadata=metadata, path=zip_path)
        policy.layout, policy.dict_observation, policy.flattened = (
            layout, dict_observation, flattened)
        return policy


def load_model(algorithm: Any, path: str | os.PathLike[str], env: Any = None) -> Any:
    """``algorithm.load(path)`` on the CPU, with errors that name the file.

    Raises:
        PolicyFileError: the file is missing or is not a saved model of ``algorithm``.
        PolicyMismatchError: ``env``'s spaces differ from the saved model's.
    """
    zip_path = policy_paths(path)[0]
    if not zip_path.is_file():
        raise PolicyFileError(f"{zip_path}: no saved model there")
    try:
        return algorithm.load(zip_path, env=env, device="cpu")
    except ValueError as exc:
        if env is not None and "do not match" in str(exc):
            raise PolicyMismatchError(f"{zip_path}: the environment does not match the saved "
                                      f"model: {exc}") from None
        raise PolicyFileError(f"{zip_path}: not a saved {algorithm.__name__} model: "
                              f"{exc}") from None
    except RLBridgeError:
        raise
    except Exception as exc:  # a damaged file fails anywhere in zip, pickle or torch
        raise PolicyFileError(f"{zip_path}: not a saved {algorithm.__name__} model: "
                              f"{type(exc).__name__}: {exc}") from None


def create_algorithm(registries: Registries, policy: PolicyConfig, *,
                     path: object = None) -> Any:
    """The algorithm spec of a ``[policy]`` table, with errors naming the config file ``path``."""
    try:
        return registries.policies.create(policy.algo, policy.options, where="policy.algo")
    except ConfigError as exc:
        if exc.path is not None or path is None:
            raise
        prefix = f"[{exc.key}]: " if exc.key else ""
        text = str(exc)
        raise ConfigError(text[len(prefix):] if text.startswith(prefix) else text,
                          path=path, key=exc.key) from None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_default(value: Any) -> Any:
    import datetime as dt

    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (os.PathLike, dt.date)):
        return value.isoformat() if isinstance(value, dt.date) else os.fspath(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")

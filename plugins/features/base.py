"""What the built-in feature transforms share: option checks and the transform base class.

Not a plugin (it registers nothing).  Cheap to import: the stdlib and ``rlbridge.errors`` only;
the transforms import numpy and :mod:`rlbridge.features` inside ``compute``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from rlbridge.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars

PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close")


def check_int(value: int, key: str, minimum: int) -> None:
    """Raise :class:`ConfigError` at ``key`` unless ``value >= minimum``."""
    if value < minimum:
        raise ConfigError(f"must be at least {minimum}, got {value}", key=key)


def check_windows(windows: Iterable[int], key: str, minimum: int = 2) -> tuple[int, ...]:
    """A non-empty list of distinct windows, each at least ``minimum``."""
    result = tuple(windows)
    if not result:
        raise ConfigError("empty list; give at least one window", key=key)
    for i, window in enumerate(result):
        check_int(window, f"{key}[{i}]", minimum)
        if window in result[:i]:
            raise ConfigError(f"window {window} is listed twice", key=f"{key}[{i}]")
    return result


def pick_windows(window: int | None, windows: tuple[int, ...] | None,
                 default: int = 20) -> tuple[int, ...]:
    """``windows`` when given, else ``(window,)``; both is an error."""
    if window is not None and windows is not None:
        raise ConfigError("set window or windows, not both", key="windows")
    if windows is not None:
        return check_windows(windows, "windows")
    window = default if window is None else window
    check_int(window, "window", 2)
    return (window,)


class Transform:
    """Base of the built-in transforms: ``name``, ``lookback``, ``memory``, ``feature_names``.

    Subclasses set the class attribute ``name`` and a nested frozen ``Config`` dataclass, fill
    ``lookback`` and ``_names`` in ``__init__`` and implement :meth:`compute`.  A transform
    whose value at row t reads bars ``t - k .. t`` only, computed by the same operations
    wherever the bars start, sets ``memory = k``; the default None says the value depends on
    every earlier bar (an exponential average), and
    :meth:`~rlbridge.features.FeaturePipeline.compute_tail` then computes it on all the bars.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    lookback: int
    memory: int | None = None
    _names: tuple[str, ...]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the ``F`` output columns."""
        return self._names

    def compute(self, bars: Bars) -> np.ndarray:  # pragma: no cover - abstract
        """``[T, N, F]`` float64 features; NaN in the first ``lookback`` rows."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<feature {self.name}: {', '.join(self._names)} (lookback {self.lookback})>"


def stack(columns: Iterable[np.ndarray], assets: int) -> np.ndarray:
    """``[T, N]`` arrays, or ``[T, 1]`` market columns broadcast to every asset -> ``[T, N, F]``."""
    import numpy as np

    return np.stack([np.broadcast_to(c, (c.shape[0], assets)) for c in columns], axis=2)

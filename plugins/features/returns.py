"""One-bar changes: ``log_return`` of the prices and ``volume_change``.

Both read bars t-1 and t only (lookback and memory 1): row 0 is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError
from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.features.base import PRICE_FIELDS, Transform, stack

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars


class LogReturn(Transform):
    """``log p[t] - log p[t-1]`` for each price field: features ``log_return_<field>``."""

    name = "log_return"

    @dataclass(frozen=True)
    class Config:
        """Options of ``log_return``.

        Attributes:
            fields: which prices, among open, high, low, close (all four by default).
        """

        fields: tuple[str, ...] = PRICE_FIELDS

        def __post_init__(self) -> None:
            fields = tuple(self.fields)
            if not fields:
                raise ConfigError("empty list; give some of "
                                  f"{', '.join(PRICE_FIELDS)}", key="fields")
            for i, name in enumerate(fields):
                if name not in PRICE_FIELDS:
                    hint = " (use the volume_change transform for volume)" \
                        if name == "volume" else ""
                    raise ConfigError(f"{name!r} is not one of {', '.join(PRICE_FIELDS)}{hint}",
                                      key=f"fields[{i}]")
                if name in fields[:i]:
                    raise ConfigError(f"{name!r} is listed twice", key=f"fields[{i}]")
            object.__setattr__(self, "fields", fields)

    def __init__(self, config: LogReturn.Config | None = None) -> None:
        super().__init__(config)
        self.lookback = self.memory = 1
        self._names = tuple(f"log_return_{f}" for f in self.config.fields)

    def compute(self, bars: Bars) -> np.ndarray:
        from rlbridge.features import bar_log_returns

        return stack([bar_log_returns(bars, f) for f in self.config.fields], len(bars.symbols))


class VolumeChange(Transform):
    """``log(1 + v[t]) - log(1 + v[t-1])``: feature ``volume_change`` (zero volume is fine)."""

    name = "volume_change"

    @dataclass(frozen=True)
    class Config:
        """``volume_change`` takes no options."""

    def __init__(self, config: VolumeChange.Config | None = None) -> None:
        super().__init__(config)
        self.lookback = self.memory = 1
        self._names = ("volume_change",)

    def compute(self, bars: Bars) -> np.ndarray:
        import numpy as np

        logs = np.log1p(bars.volume)
        out = np.empty(logs.shape + (1,))
        out[:1] = np.nan
        np.subtract(logs[1:], logs[:-1], out=out[1:, :, 0])
        return out


@hookimpl
def register_features(register: Any) -> None:
    register("log_return", LogReturn,
             description="log change of open/high/low/close from the previous bar "
                         "(option: fields, default all four)")
    register("volume_change", VolumeChange,
             description="log(1 + volume) change from the previous bar")

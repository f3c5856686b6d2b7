"""Feature pipelines: transforms from config, computed once per run, normalised on in-sample rows.

::

    from rlbridge.features import compute_features

    features = compute_features(config, bars)   # FeatureSet
    features.values                             # float32 [T, N, F], z-scored, clipped
    features.names                              # ("log_return_close", "volatility_20", ...)
    features.first_valid                        # first row where every feature has a value

:class:`FeaturePipeline` builds the ``[features] transforms`` of a config through the
``features`` registry and concatenates their outputs; :class:`Normalizer` z-scores each feature
with a mean and standard deviation fitted on the training rows only (so nothing about the
out-of-sample period leaks into the observation) and is saved with a model.

The array kernels the built-in transforms are made of (:func:`log_returns`,
:func:`bar_log_returns`, :func:`rolling_sum`, :func:`rolling_mean`, :func:`rolling_std`,
:func:`rolling_moments`, :func:`level_sma_ratio`, :func:`ema`, :func:`wilder_mean`) live in
:mod:`rlbridge.feature_kernels` and are importable from here.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import feature_kernels
from .errors import ConfigError, DataError, PluginError
from .feature_kernels import *  # noqa: F403  (the kernels: importable from here, as always)

if TYPE_CHECKING:
    from .config import Config, FeaturesConfig
    from .interfaces import Bars, FeatureTransform
    from .manager import RLBridgePluginManager

__all__ = [
    "DEFAULT_TRANSFORMS",
    "FeaturePipeline",
    "FeatureSet",
    "Normalizer",
    "compute_features",
    *feature_kernels.__all__,
]

#: Every built-in transform with its default options: a reasonable first ``transforms`` list
#: (15 features per asset).
DEFAULT_TRANSFORMS: tuple[str, ...] = (
    "log_return", "volume_change", "volatility", "sharpe", "sma_ratio", "rsi", "macd",
    "market_volatility", "market_sharpe", "market_sma_ratio",
)


# ---------------------------------------------------------------------- pipeline
class FeaturePipeline:
    """Several transforms computed on the same bars, their features side by side.

    Args:
        transforms: the transforms, in output order.
        labels: where each transform comes from, for errors; :meth:`from_config` gives its
            config key, ``features.transforms[i]``.
        path: the config file named in errors.

    Raises:
        ConfigError: two transforms produce a feature of the same name (naming both).
    """

    name = "pipeline"

    def __init__(self, transforms: Sequence[FeatureTransform], *,
                 labels: Sequence[str] | None = None, path: object = None) -> None:
        self.transforms = tuple(transforms)
        self._labels = tuple(
            f"transform {t.name!r}" if labels is None else f"{labels[i]} ({t.name})"
            for i, t in enumerate(self.transforms))
        owner: dict[str, int] = {}
        names: list[str] = []
        for i, transform in enumerate(self.transforms):
            for feature in transform.feature_names:
                if feature in owner:
                    j = owner[feature]
                    raise ConfigError(
                        f"{self._labels[i]} and {self._labels[j]} both produce the feature "
                        f"{feature!r}; give one of them other options or remove it",
                        path=path, key=None if labels is None else labels[i])
                owner[feature] = i
                names.append(feature)
        self._names = tuple(names)
        self.lookback = max((int(t.lookback) for t in self.transforms), default=0)
        self._resumed: dict[int, _Resumed] = {}  # transform -> where compute_tail left it

    @classmethod
    def from_config(cls, features_config: FeaturesConfig,
                    pm: RLBridgePluginManager | None = None, *,
                    path: object = None) -> FeaturePipeline:
        """Build the ``transforms`` of a ``[features]`` table through the ``features`` registry.

        Args:
            features_config: the config's ``features`` table.
            pm: the plugin manager whose registry holds the names; a new one by default.
            path: the config file, named in errors.

        Raises:
            UnknownNameError: a transform name is not registered.
            ConfigError: a bad option (naming ``features.transforms[i].key``), or two
                transforms producing the same feature.
        """
        if pm is None:
            from .manager import make_plugin_manager

            pm = make_plugin_manager(warn=False)
        registry = pm.registries["features"]
        transforms, labels = [], []
        for i, spec in enumerate(features_config.transforms):
            where = f"features.transforms[{i}]"
            transforms.append(registry.create(spec.name, spec.options, where=where, path=path))
            labels.append(where)
        return cls(transforms, labels=labels, path=path)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every transform's feature names, in order."""
        return self._names

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"FeaturePipeline({', '.join(t.name for t in self.transforms)}; F={len(self)})"

    def compute(self, bars: Bars) -> np.ndarray:
        """``[T, N, F]`` float64: each transform's features, concatenated on the last axis.

        Raises:
            PluginError: a transform returned an array of the wrong shape.
            DataError: a feature is NaN or infinite after its transform's lookback (naming the
                transform, feature, symbol and bar).
        """
        t, n = len(bars), len(bars.symbols)
        out = np.empty((t, n, len(self._names)), dtype=np.float64)
        col = 0
        for transform, label in zip(self.transforms, self._labels, strict=True):
            width = len(transform.feature_names)
            values = self._run(transform, label, bars)
            self._check(transform, label, values, bars, 0)
            out[:, :, col:col + width] = values
            col += width
        return out

    def compute_tail(self, bars: Bars, rows: int) -> np.ndarray:
        """The last ``rows`` rows of :meth:`compute` ``(bars)``, to the bit, computed on fewer bars.

        ``[min(rows, T), N, F]`` float64.  The transforms with a finite ``memory`` (the value
        at row t reads bars ``t - memory .. t`` only) are computed on one panel of the last
        ``rows + span`` bars, ``span`` the longest of their memories (each at least its
        ``lookback``); one without (no ``memory`` attribute, or None: the value depends on
        every earlier bar, as an exponential average does) on all of ``bars``.  What a live
        decision reads costs what those bars cost, whatever the length of the history.

        Args:
            bars: the whole history.
            rows: how many of the last rows to return (``>= 0``).

        Raises:
            ValueError: ``rows`` is negative.
            PluginError: a transform returned an array of the wrong shape, or declares a
                negative ``memory``.
            DataError: a returned feature is NaN or infinite at a row past its transform's
                lookback in the whole series (naming the transform, feature, symbol, bar and
                row of ``bars``), as :meth:`compute` would raise.
        """
        if rows < 0:
            raise ValueError(f"rows must be at least 0, got {rows}")
        t, n = len(bars), len(bars.symbols)
        first = t - min(rows, t)  # the first returned row, in ``bars``
        out = np.empty((t - first, n, len(self._names)), dtype=np.float64)
        spans = [_span(transform, label)
                 for transform, label in zip(self.transforms, self._labels, strict=True)]
        finite = [span for span in spans if span is not None]
        # one panel for every finite transform, as long as the longest needs: more rows than
        # a short one needs change none of its bits, and the panel (with its cached log
        # returns) is made once
        start = max(0, first - max(finite)) if finite else 0
        part = bars if start == 0 else type(bars)._checked_already(  # rows of a checked panel
            bars.index[start:], bars.symbols, bars.values[start:])
        col = 0
        for i, (transform, label, span) in enumerate(zip(self.transforms, self._labels, spans,
                                                         strict=True)):
            width = len(transform.feature_names)
            if span is not None:
                values = self._run(transform, label, part)[first - start:]
            else:
                values = self._unbounded(i, transform, label, bars)[first:]
            self._check(transform, label, values, bars, first)
            out[:, :, col:col + width] = values
            col += width
        return out

    def _unbounded(self, i: int, transform: FeatureTransform, label: str,
                   bars: Bars) -> np.ndarray:
        """``[T, N, F]``: every row of a transform without ``memory``.

        One that can ``resume(bars, state) -> (new rows, state)`` computes only the rows
        after those of its previous call when ``bars`` is that call's panel grown at its end:
        the same array (``values.base``), whose rows never change once written (a live
        run's :class:`~rlbridge.live.bars.BarBuffer`), and the same timestamp at the last
        row done.  Anything else computes every row again.
        """
        resume = getattr(transform, "resume", None)
        base = bars.values.base
        t = len(bars)
        if resume is None or base is None:
            return self._run(transform, label, bars)
        width = len(transform.feature_names)
        done = self._resumed.get(i)
        if (done is not None and done.base is base and done.state is not None
                and 0 < done.rows <= t and bars.index[done.rows - 1] == done.last):
            new, state = resume(bars, done.state)
            self._shape(label, np.asarray(new), (t - done.rows, len(bars.symbols), width))
            done.append(np.asarray(new, dtype=np.float64))
        else:
            values, state = resume(bars, None)
            values = np.asarray(values, dtype=np.float64)
            self._shape(label, values, (t, len(bars.symbols), width))
            done = self._resumed[i] = _Resumed(base, values)
        done.state, done.last = state, bars.index[t - 1] if t else None
        return done.values

    @staticmethod
    def _shape(label: str, values: np.ndarray, expected: tuple[int, int, int]) -> None:
        if values.shape != expected:
            raise PluginError(
                f"{label} returned features of shape {values.shape}; expected "
                f"[T, N, F] = {expected}")

    @staticmethod
    def _run(transform: FeatureTransform, label: str, bars: Bars) -> np.ndarray:
        """``transform.compute(bars)`` as float64, its shape checked."""
        values = np.asarray(transform.compute(bars), dtype=np.float64)
        FeaturePipeline._shape(label, values,
                               (len(bars), len(bars.symbols), len(transform.feature_names)))
        return values

    @staticmethod
    def _check(transform: FeatureTransform, label: str, values: np.ndarray, bars: Bars,
               first: int) -> None:
        """Raise DataError for a non-finite value past the lookback; ``values[0]`` is row
        ``first`` of ``bars``."""
        lookback = int(transform.lookback)
        tail = values[max(0, lookback - first):]
        if not np.isfinite(tail).all():
            i, asset, f = np.argwhere(~np.isfinite(tail))[0]
            row = int(i) + max(lookback, first)
            raise DataError(
                f"feature {transform.feature_names[f]!r} of {label} is "
                f"{tail[i, asset, f]} for {bars.symbols[asset]} at "
                f"{_when(bars, row)} (row {row}), after its lookback of "
                f"{transform.lookback} bars")


class _Resumed:
    """A resumable transform's rows so far (grown in place) and its state after them."""

    def __init__(self, base: Any, values: np.ndarray) -> None:
        self.base = base
        self.rows = len(values)
        self._store = values
        self.state: Any = None
        self.last: Any = None

    @property
    def values(self) -> np.ndarray:
        return self._store[:self.rows]

    def append(self, new: np.ndarray) -> None:
        rows = self.rows + len(new)
        if rows > len(self._store):
            grown = np.empty((2 * rows,) + self._store.shape[1:])
            grown[:self.rows] = self._store[:self.rows]
            self._store = grown
        self._store[self.rows:rows] = new
        self.rows = rows


def _span(transform: FeatureTransform, label: str) -> int | None:
    """How many bars before a row :meth:`FeaturePipeline.compute_tail` gives a transform: its
    ``memory`` (at least its ``lookback``), or None (every bar) when it has none."""
    memory = getattr(transform, "memory", None)
    if memory is None:
        return None
    try:
        span = operator.index(memory)
    except TypeError:
        span = -1
    if span < 0:
        raise PluginError(f"{label} declares a memory of {memory!r} bars; expected None "
                          "(every earlier bar) or an integer number of bars >= 0")
    return max(span, int(transform.lookback))


def _when(bars: Bars, row: int) -> str:
    stamp = bars.index[row]
    return str(stamp) if bars.intraday else stamp.strftime("%Y-%m-%d")


# ---------------------------------------------------------------------- normalisation
class Normalizer:
    """Per-feature z-score: ``clip((x - mean) / std, -clip, clip)``, as float32.

    ``mean`` and ``std`` are one number per feature, over time and assets, fitted on the
    training rows only (:meth:`fit`).  A feature constant on those rows gets ``std = 1``.
    NaN stays NaN.  :meth:`to_dict` / :meth:`from_dict` save it with a model.

    Args:
        mean, std: ``[F]`` per-feature statistics (``std > 0``).
        clip: the bound of the normalised values.
        names: the feature names, checked by :meth:`apply` when given there too.
    """

    def __init__(self, mean: Sequence[float] | np.ndarray, std: Sequence[float] | np.ndarray,
                 *, clip: float = 10.0, names: Sequence[str] | None = None) -> None:
        self.mean = np.array(mean, dtype=np.float64).reshape(-1)
        self.std = np.array(std, dtype=np.float64).reshape(-1)
        self.clip = float(clip)
        self.names = None if names is None else tuple(str(n) for n in names)
        f = len(self.mean)
        problems = []
        if len(self.std) != f:
            problems.append(f"{f} means but {len(self.std)} standard deviations")
        if self.names is not None and len(self.names) != f:
            problems.append(f"{f} means but {len(self.names)} names")
        if not np.isfinite(self.mean).all():
            problems.append("a mean is not finite")
        if not (np.isfinite(self.std).all() and (self.std > 0).all()):
            problems.append("a standard deviation is not a positive number")
        if not (self.clip > 0):
            problems.append(f"clip must be positive, got {clip!r}")
        if problems:
            raise DataError(f"invalid normalizer: {'; '.join(problems)}", source="normalizer")
        self.mean.flags.writeable = False
        self.std.flags.writeable = False

    @classmethod
    def fit(cls, values: np.ndarray, rows: slice | None = None, *, clip: float = 10.0,
            names: Sequence[str] | None = None) -> Normalizer:
        """Fit on ``values[rows]`` (``[T, N, F]``; every row when ``rows`` is None).

        NaN entries (lookback rows) are ignored.  Nothing outside ``rows`` is read.

        Raises:
            DataError: a feature has no finite value in ``rows`` (naming it).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 3:
            raise DataError(f"expected features of shape [T, N, F], got {values.shape}",
                            source="normalizer")
        part = values[rows if rows is not None else slice(None)]
        count = values.shape[2]
        # one feature per contiguous row: each reduction below runs over contiguous memory
        columns = np.ascontiguousarray(part.reshape(-1, count).T)
        mean, std = np.empty(count), np.empty(count)
        for f, column in enumerate(columns):
            finite = np.isfinite(column)
            if not finite.all():
                column = column[finite]
            if column.size == 0:
                what = repr(names[f]) if names is not None else f"#{f}"
                start, stop, _ = (rows or slice(None)).indices(len(values))
                raise DataError(
                    f"feature {what} has no value in rows {start}..{stop - 1}, the rows the "
                    "normalisation is fitted on; fit on a longer period (the first rows of a "
                    "feature are NaN for its lookback)", source="normalizer")
            mean[f] = column.mean()
            spread = column.std()
            constant = column.min() == column.max()
            std[f] = 1.0 if constant or not spread > 0 else spread  # no division by zero
        return cls(mean, std, clip=clip, names=names)

    def __len__(self) -> int:
        return len(self.mean)

    def apply(self, values: np.ndarray, *, names: Sequence[str] | None = None) -> np.ndarray:
        """Normalise ``values`` (any shape ending in ``F``) to float32, clipped to ``+-clip``.

        Args:
            values: features, last axis the features this normalizer was fitted on.
            names: the features' names; when both sides know names they must match.

        Raises:
            DataError: the number or names of the features differ from the fitted ones
                (a saved model applied to data with other features).
        """
        values = np.asarray(values, dtype=np.float64)
        self.check(values.shape[-1] if values.ndim else 0, names)
        shape = values.shape
        # [T, N, F] as [T, N * F] with the statistics tiled: broadcasting over a short last
        # axis is several times slower than over a long one
        rows = shape[0] if values.ndim > 1 else 1
        flat = values.reshape(rows, math.prod(shape[1:]) if values.ndim > 1 else shape[-1])
        repeat = math.prod(shape[1:-1]) if values.ndim > 1 else 1
        out = np.subtract(flat, np.tile(self.mean, repeat))
        np.divide(out, np.tile(self.std, repeat), out=out)
        np.clip(out, -self.clip, self.clip, out=out)
        return out.astype(np.float32).reshape(shape)

    def check(self, count: int, names: Sequence[str] | None = None) -> None:
        """Raise DataError unless ``count`` features named ``names`` are the fitted ones."""
        if names is not None and self.names is not None and tuple(names) != self.names:
            missing = [n for n in self.names if n not in names]
            extra = [n for n in names if n not in self.names]
            detail = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"new {', '.join(extra)}" if extra else "",
                "same features in another order" if not missing and not extra else "",
            ) if part)
            raise DataError(f"the features differ from the ones the normalizer was fitted on "
                            f"({detail})", source="normalizer")
        if count != len(self.mean):
            raise DataError(f"{count} features, but the normalizer was fitted on "
                            f"{len(self.mean)}", source="normalizer")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: ``mean``, ``std``, ``clip`` and ``names`` (when known)."""
        data: dict[str, Any] = {"mean": self.mean.tolist(), "std": self.std.tolist(),
                                "clip": self.clip}
        if self.names is not None:
            data["names"] = list(self.names)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        """The normalizer :meth:`to_dict` wrote.

        Raises:
            DataError: a key is missing or unknown, or a value is not what it should be.
        """
        if not isinstance(data, Mapping):
            raise DataError(f"a saved normalizer is a mapping, got {type(data).__name__}",
                            source="normalizer")
        known = {"mean", "std", "clip", "names"}
        unknown = sorted(set(data) - known)
        missing = sorted({"mean", "std"} - set(data))
        if unknown or missing:
            wrong = f"missing {', '.join(missing)}" if missing else \
                f"unknown {', '.join(unknown)}"
            raise DataError(f"a saved normalizer has keys mean, std, clip, names; {wrong}",
                            source="normalizer")
        try:
            return cls(data["mean"], data["std"], clip=data.get("clip", 10.0),
                       names=data.get("names"))
        except (TypeError, ValueError) as exc:
            raise DataError(f"a saved normalizer holds a bad value: {exc}",
                            source="normalizer") from None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Normalizer) and self.clip == other.clip
                and self.names == other.names and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.std, other.std))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Normalizer(F={len(self)}, clip={self.clip})"


# ---------------------------------------------------------------------- one call for a run
@dataclass(frozen=True, eq=False)
class FeatureSet:
    """The features of one run: computed once, normalised, read-only.

    Attributes:
        values: float32 ``[T, N, F]``, normalised; NaN before ``first_valid`` where a
            transform's lookback is not filled yet.
        names: the ``F`` feature names.
        lookback: the pipeline's lookback (the largest of its transforms').
        first_valid: the first row where no feature is NaN for any asset (``T`` if none).
        normalizer: fitted on the rows ``fit_rows``, or the saved one passed in; save it with
            a model.
        fit_rows: the rows the normalizer was fitted on (None when a saved one was applied).
    """

    values: np.ndarray
    names: tuple[str, ...]
    lookback: int
    first_valid: int
    normalizer: Normalizer
    fit_rows: slice | None = None


def compute_features(config: Config, bars: Bars, pm: RLBridgePluginManager | None = None, *,
                     fit_rows: slice | None = None,
                     normalizer: Normalizer | None = None) -> FeatureSet:
    """Compute and normalise the features of ``config``'s ``[features]`` table on ``bars``.

    The normalizer is fitted on ``fit_rows`` when given; otherwise on the rows inside
    ``[train] start .. end`` when the config has a ``[train]`` table; otherwise on every row.
    Pass a saved ``normalizer`` instead to apply it unchanged (backtests and live use the one
    fitted in training).

    Raises:
        ConfigError: no ``[features]`` table or no transforms; a bad transform option.
        DataError: the fitting rows hold no value of a feature (a period shorter than the
            lookback), or a saved normalizer does not match the features.
    """
    if config.features is None or not config.features.transforms:
        suggestion = ", ".join(f'"{n}"' for n in DEFAULT_TRANSFORMS[:3])
        raise ConfigError(
            "no feature transforms; list some, e.g. "
            f"[features] transforms = [{suggestion}] (`rlbridge list features` shows them all)",
            path=config.path, key="features" if config.features is None else "features.transforms")
    pipeline = FeaturePipeline.from_config(config.features, pm, path=config.path)
    raw = pipeline.compute(bars)
    names = pipeline.feature_names
    if normalizer is None:
        if fit_rows is None:
            fit_rows = _train_rows(config, bars)
        start, stop, _ = fit_rows.indices(len(bars))
        if stop <= start:
            raise DataError(f"no bars to fit the feature normalisation on (rows {fit_rows}); "
                            f"the bars span {bars!r}", source="features")
        normalizer = Normalizer.fit(raw, fit_rows, names=names)
    else:
        normalizer.check(len(names), names)
        fit_rows = None
    values = normalizer.apply(raw, names=names)
    values.flags.writeable = False
    valid = ~np.isnan(values).any(axis=(1, 2))
    first_valid = int(np.argmax(valid)) if valid.any() else len(bars)
    return FeatureSet(values, names, pipeline.lookback, first_valid, normalizer, fit_rows)


def _train_rows(config: Config, bars: Bars) -> slice:
    """The rows of ``bars`` inside ``[train] start .. end`` (every row without ``[train]``)."""
    import datetime as dt

    import pandas as pd

    train = config.train
    if train is None:
        return slice(0, len(bars))
    index = bars.index

    def stamp(day: dt.date) -> pd.Timestamp:
        ts = pd.Timestamp(day)
        return ts.tz_localize("UTC") if index.tz is not None else ts

    lo = 0 if train.start is None else int(index.searchsorted(stamp(train.start), "left"))
    # the end date is inclusive: every bar of that day, intraday too
    hi = len(bars) if train.end is None else int(
        index.searchsorted(stamp(train.end + dt.timedelta(days=1)), "left"))
    if hi <= lo:
        raise DataError(
            f"the bars ({bars!r}) have no session in the training period "
            f"{train.start or '...'} .. {train.end or '...'} ([train] start/end), on which the "
            "feature normalisation is fitted", source="features")
    return slice(lo, hi)

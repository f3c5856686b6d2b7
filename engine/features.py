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

The array kernels at the end (:func:`log_returns`, :func:`bar_log_returns`, :func:`rolling_sum`,
:func:`rolling_mean`, :func:`rolling_std`, :func:`rolling_moments`, :func:`level_sma_ratio`,
:func:`ema`, :func:`wilder_mean`) are what the built-in transforms are made of.  They work on
``[T, N]`` float64 arrays and are causal to the bit: the value at row t is computed from rows
0..t only, by the same floating-point operations whatever comes after row t (and however long
the series is), so a feature computed live on the bars up to now equals the one the
environment precomputed.  The rolling ones are also start-independent to the bit: the value at
row t reads the window's rows only, through a fixed tree of operations (``O(T log window)``), so
:meth:`FeaturePipeline.compute_tail` can compute a finite-memory transform on the last rows of
the bars alone.
"""

from __future__ import annotations

import math
import operator
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, DataError, PluginError

if TYPE_CHECKING:
    from .config import Config, FeaturesConfig
    from .interfaces import Bars, FeatureTransform
    from .manager import RLBridgePluginManager

__all__ = [
    "DEFAULT_TRANSFORMS",
    "bar_log_returns",
    "FeaturePipeline",
    "FeatureSet",
    "Normalizer",
    "compute_features",
    "ema",
    "level_sma_ratio",
    "log_returns",
    "rolling_mean",
    "rolling_moments",
    "rolling_std",
    "rolling_sum",
    "wilder_mean",
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

        ``[min(rows, T), N, F]`` float64.  A transform with a finite ``memory`` (its value at
        row t reads bars ``t - memory .. t`` only) is computed on the last ``rows + memory``
        bars (at least ``lookback`` bars before the first returned row); one without (no
        ``memory`` attribute, or None: the value depends on every earlier bar, as an
        exponential average does) on all of ``bars``.  What a live decision reads costs what
        those bars cost, whatever the length of the history.

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
        from . import interfaces

        if rows < 0:
            raise ValueError(f"rows must be at least 0, got {rows}")
        t, n = len(bars), len(bars.symbols)
        first = t - min(rows, t)  # the first returned row, in ``bars``
        out = np.empty((t - first, n, len(self._names)), dtype=np.float64)
        slices: dict[int, Bars] = {}  # by first row: transforms of one memory share a panel
        col = 0
        for transform, label in zip(self.transforms, self._labels, strict=True):
            width = len(transform.feature_names)
            start = max(0, first - _span(transform, label))
            if start == 0:
                part = bars
            elif start in slices:
                part = slices[start]
            else:
                part = slices[start] = interfaces.Bars(bars.index[start:], bars.symbols,
                                                       bars.values[start:])
            values = self._run(transform, label, part)[first - start:]
            self._check(transform, label, values, bars, first)
            out[:, :, col:col + width] = values
            col += width
        return out

    @staticmethod
    def _run(transform: FeatureTransform, label: str, bars: Bars) -> np.ndarray:
        """``transform.compute(bars)`` as float64, its shape checked."""
        expected = (len(bars), len(bars.symbols), len(transform.feature_names))
        values = np.asarray(transform.compute(bars), dtype=np.float64)
        if values.shape != expected:
            raise PluginError(
                f"{label} returned features of shape {values.shape}; expected "
                f"[T, N, F] = {expected}")
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


def _span(transform: FeatureTransform, label: str) -> int:
    """How many bars before a row :meth:`FeaturePipeline.compute_tail` gives a transform: its
    ``memory`` (at least its ``lookback``), or every bar when it has none."""
    memory = getattr(transform, "memory", None)
    if memory is None:
        return sys.maxsize
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


# ---------------------------------------------------------------------- array kernels
def log_returns(prices: np.ndarray) -> np.ndarray:
    """``log p[t] - log p[t-1]`` per column of ``[T, N]`` prices; row 0 is NaN."""
    logs = np.log(np.asarray(prices, dtype=np.float64))
    out = np.empty_like(logs)
    out[:1] = np.nan
    np.subtract(logs[1:], logs[:-1], out=out[1:])
    return out


_RETURNS: weakref.WeakKeyDictionary[Bars, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def bar_log_returns(bars: Bars, field: str = "close") -> np.ndarray:
    """:func:`log_returns` of one field of ``bars``, computed once per panel (read-only).

    Several transforms of a pipeline read the log close returns; a ``Bars`` never changes,
    so they share one array.
    """
    cached = _RETURNS.setdefault(bars, {})
    if field not in cached:
        returns = log_returns(bars.field(field))
        returns.flags.writeable = False
        cached[field] = returns
    return cached[field]


def _first_row(x: np.ndarray) -> int:
    """The first row with no NaN (leading NaN rows are a lookback not yet filled)."""
    rows = np.flatnonzero(np.isfinite(x).all(axis=1))
    return int(rows[0]) if rows.size else len(x)


_States = tuple[np.ndarray, ...]


def _window_reduce(leaf: _States, window: int,
                   join: Callable[[_States, _States], _States]) -> _States:
    """Fold every run of ``window`` consecutive rows, by a fixed tree of ``join`` calls.

    ``leaf`` holds the state of each one-row block (arrays of ``m >= window`` rows), and
    ``join(recent, older)`` gives the state of the block ``older`` followed by ``recent``.
    Blocks of 1, 2, 4, ... rows are built by doubling; a window is then joined from the blocks
    of the binary digits of ``window``, the most recent first.  The result has
    ``m - window + 1`` rows, row ``i`` for the window ending at row ``i + window - 1``, each
    computed by the same operations on the same values whatever rows come before its window:
    a series cut anywhere gives the same bits.  ``O(m log window)``.
    """
    count = len(leaf[0]) - window + 1
    digits: list[tuple[int, _States]] = []
    level, size = leaf, 1
    while True:
        if window & size:
            digits.append((size, level))
        if 2 * size > window:
            break
        # row j of the next level: the block of rows j .. j + 2 * size - 1
        level = join(tuple(a[size:] for a in level), tuple(a[:-size] for a in level))
        size *= 2
    result: _States | None = None
    gap = 0  # rows between the window's last row and the current block's last row
    for size, states in reversed(digits):
        first = window - gap - size
        block = tuple(a[first:first + count] for a in states)
        result = block if result is None else join(result, block)
        gap += size
    assert result is not None
    return result


def _add(recent: _States, older: _States) -> _States:
    return (recent[0] + older[0],)


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last ``window`` rows of ``[T, N]`` ``x`` at each row.

    Each sum is a fixed pairwise tree of the window's values (blocks of 1, 2, 4, ... rows, see
    :func:`_window_reduce`): the sum at row t depends on rows ``t - window + 1 .. t`` only, to
    the bit, so the same rows cut out of a longer series give the same sums.  ``O(T log
    window)``, with no cancellation (prefix sums would carry rounding from the series' start).

    Leading NaN rows are skipped: the first sum is at row ``s + window - 1`` where ``s`` is
    the first row without NaN; earlier rows are NaN.

    Raises:
        ValueError: ``window`` is less than 1.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    s = _first_row(x)
    if s + window > len(x):
        return out
    out[s + window - 1:] = _window_reduce((x[s:],), window, _add)[0]
    return out


def level_sma_ratio(returns: np.ndarray, window: int) -> np.ndarray:
    """``level / SMA(level, window) - 1`` of a level whose log changes are ``returns``.

    ``returns[t]`` (``[T, N]``) is ``log(level[t] / level[t-1])``; row 0 is not read.  The
    level is never formed: each window sums its levels relative to its last one,
    ``exp(-(returns[t-k+1] + ... + returns[t]))`` for ``k = 0 .. window - 1``, so the value at
    row t depends on ``returns[t - window + 2 .. t]`` only, to the bit (a level built by a
    cumulative sum from row 0 would carry that sum's rounding).  The first ``window - 1`` rows
    are NaN.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    growth = np.array(returns, dtype=np.float64)
    growth[:1] = 0.0  # the change into row 0: never part of a window's relative levels
    out = np.full(growth.shape, np.nan)
    if window > len(growth):
        return out
    total = _window_reduce((np.ones(growth.shape), growth), window, _join_levels)[0]
    out[window - 1:] = window / total - 1.0
    return out


def _join_levels(recent: _States, older: _States) -> _States:
    """(sum of levels over the block's last level, log growth over the block), two blocks.

    The older block's levels are rescaled by ``exp(-growth of the recent block)``: only a
    recent block's growth is ever used, so the change into a series' first row never is.
    """
    return (recent[0] + np.exp(-recent[1]) * older[0], recent[1] + older[1])


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` rows (see :func:`rolling_sum` for leading NaN rows)."""
    return rolling_sum(x, window) / window


def rolling_std(x: np.ndarray, window: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation of the last ``window`` rows (sample, ``ddof=1``, by default)."""
    return np.sqrt(rolling_moments(x, window, ddof)[0])


def rolling_moments(x: np.ndarray, window: int,
                    ddof: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(variance, mean, mean of squares)`` of the last ``window`` rows at each row."""
    x = np.asarray(x, dtype=np.float64)
    mean = rolling_sum(x, window) / window
    meansq = rolling_sum(x * x, window) / window
    var = (meansq - mean * mean) * (window / (window - ddof))
    np.maximum(var, 0.0, out=var, where=~np.isnan(var))  # rounding can dip below zero
    return var, mean, meansq


#: exponentials are computed in closed form over blocks where (1 - alpha) ** -k stays below
#: 1e150, far from float64 overflow, and restarted from the last value after each block
_BLOCK_GROWTH = 150 * math.log(10)


def _recurse(x: np.ndarray, alpha: float, start: int, seed: np.ndarray) -> np.ndarray:
    """``e[start] = seed``; ``e[t] = alpha * x[t] + (1 - alpha) * e[t-1]`` after; NaN before."""
    out = np.full(x.shape, np.nan)
    if start >= len(x):
        return out
    out[start] = seed
    beta = 1.0 - alpha
    if beta <= 0.0:
        out[start + 1:] = x[start + 1:]
        return out
    block = max(1, int(_BLOCK_GROWTH / -math.log(beta)))
    extra = (1,) * (x.ndim - 1)
    lo = start
    while lo < len(x) - 1:
        # block boundaries depend on start and alpha only, never on len(x): a longer series
        # gives the same values at the same rows
        hi = min(lo + block, len(x) - 1)
        k = np.arange(1, hi - lo + 1, dtype=np.float64).reshape((-1,) + extra)
        acc = np.cumsum(x[lo + 1:hi + 1] * (alpha * beta ** -k), axis=0)
        out[lo + 1:hi + 1] = (out[lo] + acc) * beta ** k
        lo = hi
    return out


def ema(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average ``e[t] = alpha * x[t] + (1 - alpha) * e[t-1]``.

    Starts at the first row without NaN with ``e = x`` there (a span ``s`` is
    ``alpha = 2 / (s + 1)``); pandas' ``ewm(alpha=alpha, adjust=False).mean()`` computes the
    same recursion.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    s = _first_row(x)
    if s >= len(x):
        return np.full(x.shape, np.nan)
    return _recurse(x, alpha, s, x[s])


def wilder_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's smoothing: the mean of the first ``window`` rows, then ``alpha = 1 / window``.

    The first value is at row ``s + window - 1`` (``s``: the first row without NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    s = _first_row(x)
    first = s + window - 1
    if first >= len(x):
        return np.full(x.shape, np.nan)
    return _recurse(x, 1.0 / window, first, x[s:first + 1].mean(axis=0))

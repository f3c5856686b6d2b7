"""``FeaturePipeline.compute_tail``: the last rows of the features, to the bit, from fewer bars.

Every comparison is exact (``np.array_equal``, NaN equal to NaN): a live decision computed on
the last bars must decide what a backtest over the whole history decided.
"""

import numpy as np
import pandas as pd
import pytest

from rlbridge.errors import DataError, PluginError
from rlbridge.features import (
    DEFAULT_TRANSFORMS,
    FeaturePipeline,
    level_sma_ratio,
    rolling_std,
    rolling_sum,
)
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.testing import random_walk_bars

# option sets of each built-in; windows of every binary shape (one digit, several, odd)
OPTIONS = {
    "log_return": [{}, {"fields": ["close", "open"]}],
    "volume_change": [{}],
    "volatility": [{}, {"window": 2}, {"window": 7}, {"window": 64}],
    "sharpe": [{}, {"window": 3}, {"window": 13, "annualisation": 52}],
    "sma_ratio": [{}, {"windows": [2, 5, 50]}, {"window": 31}],
    "rsi": [{}, {"window": 5}],
    "macd": [{}, {"fast": 3, "slow": 10, "signal": 4}],
    "market_volatility": [{}, {"window": 9}, {"window": 60}],
    "market_sharpe": [{}, {"window": 5}],
    "market_sma_ratio": [{}, {"windows": [2, 10, 33]}],
}
LENGTHS = (1, 12, 75, 301, 640)


@pytest.fixture(scope="module")
def registry():
    return make_plugin_manager(builtins=True, entrypoints=False, warn=False).registries["features"]


def part(bars, lo, hi):
    return Bars(bars.index[lo:hi], bars.symbols, bars.values[lo:hi])


def walk(days, assets=3, seed=0):
    return random_walk_bars(days, ("AA", "BB", "CC", "DD", "EE")[:assets], seed=seed)


def last(full, rows):
    return full[len(full) - min(rows, len(full)):]


def tails(days):
    """Tail sizes: every size up to 80, then a spread up to past the end."""
    return sorted({*range(0, 81), *range(81, days + 3, 17), days - 1, days, days + 1})


def assert_tails_equal(pipeline, bars):
    full = pipeline.compute(bars)
    for rows in tails(len(bars)):
        got = pipeline.compute_tail(bars, rows)
        assert got.shape == (min(rows, len(bars)),) + full.shape[1:]
        assert np.array_equal(got, last(full, rows), equal_nan=True), (pipeline, rows)


# ---------------------------------------------------------------------- bit for bit
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_each_builtin_tail_equals_the_full_computation(registry, name):
    for days, seed in zip(LENGTHS, range(len(LENGTHS)), strict=True):
        bars = walk(days, seed=seed)
        for options in OPTIONS[name]:
            assert_tails_equal(FeaturePipeline([registry.create(name, options)]), bars)


def test_pipeline_of_every_builtin_tail_equals_the_full_computation(registry):
    transforms = [registry.create(name, {}) for name in DEFAULT_TRANSFORMS]
    transforms += [registry.create(name, options[-1]) for name, options in OPTIONS.items()
                   if len(options) > 1 and name != "log_return"]  # its features: the defaults'
    pipeline = FeaturePipeline(transforms)
    assert len(pipeline) == 15 + 12
    for days in (301, 420):
        assert_tails_equal(pipeline, walk(days, assets=5, seed=days))


def test_builtin_memories(registry):
    memories = {name: [registry.create(name, o).memory for o in options]
                for name, options in OPTIONS.items()}
    assert memories == {
        "log_return": [1, 1], "volume_change": [1],
        "volatility": [20, 2, 7, 64], "sharpe": [20, 3, 13],
        "sma_ratio": [19, 49, 30], "rsi": [None, None], "macd": [None, None],
        "market_volatility": [20, 9, 60], "market_sharpe": [20, 5],
        "market_sma_ratio": [19, 32],
    }


def test_a_finite_transform_reads_only_its_memory(registry):
    """Computed on ``memory`` bars before a row, its value there is that of the whole series
    (the memory is not too small), and with a bar less it has none (nor larger than needed)."""
    bars = walk(301, seed=7)
    for name, options in OPTIONS.items():
        for option in options:
            transform = registry.create(name, option)
            if transform.memory is None:
                continue
            full = transform.compute(bars)
            for start in (0, 1, 37, 200):
                part = Bars(bars.index[start:], bars.symbols, bars.values[start:])
                got = transform.compute(part)
                known = start + transform.memory  # the first row with all its bars in part
                assert np.array_equal(got[transform.memory:], full[known:], equal_nan=True)
                if start:  # the row before has a bar missing: NaN, not a wrong number
                    assert np.isnan(got[transform.memory - 1]).any(), (name, option)


# ---------------------------------------------------------------------- which bars
class Recorder:
    """Log close returns; records every panel it is given."""

    def __init__(self, name, memory="absent", lookback=1):
        self.name, self.feature_names, self.lookback = name, (name,), lookback
        if memory != "absent":
            self.memory = memory
        self.seen = []

    def compute(self, bars):
        self.seen.append(bars)
        out = np.full((len(bars), len(bars.symbols), 1), np.nan)
        out[1:, :, 0] = np.diff(np.log(bars.close), axis=0)
        return out


class Cumulative:
    """The log close change since the first bar: row t depends on row 0, and no memory."""

    name = "cumulative"
    lookback = 0
    feature_names = ("cumulative",)

    def compute(self, bars):
        return np.cumsum(np.diff(np.log(bars.close), axis=0, prepend=np.log(bars.close[:1])),
                         axis=0)[:, :, None]


def test_a_transform_without_memory_is_computed_on_every_bar():
    bars = walk(120, seed=3)
    cumulative = Cumulative()
    pipeline = FeaturePipeline([cumulative, Recorder("none", None)])
    assert_tails_equal(pipeline, bars)
    # the whole history is needed: the same rows computed on fewer bars differ
    part = Bars(bars.index[100:], bars.symbols, bars.values[100:])
    assert not np.array_equal(cumulative.compute(part)[-10:], cumulative.compute(bars)[-10:])
    recorder = pipeline.transforms[1]
    recorder.seen.clear()
    pipeline.compute_tail(bars, 10)
    assert [b is bars for b in recorder.seen] == [True]


def test_finite_transforms_share_one_panel_as_long_as_the_longest_needs():
    bars = walk(120, seed=4)
    three, other, long = Recorder("a", 3), Recorder("b", 3), Recorder("c", 2, lookback=6)
    pipeline = FeaturePipeline([three, other, long])
    out = pipeline.compute_tail(bars, 10)
    assert [len(b) for b in three.seen] == [16]  # 10 rows + the longest span (lookback 6)
    assert three.seen[0].index[0] == bars.index[104]
    assert other.seen[0] is three.seen[0] is long.seen[0]  # one panel for all
    assert np.array_equal(out, pipeline.compute(bars)[-10:]) and np.isfinite(out).all()
    deep = FeaturePipeline([Recorder("e", 3), Recorder("d", 500)])
    deep.compute_tail(bars, 10)
    assert all(t.seen[-1] is bars for t in deep.transforms)  # more memory than bars


def test_tail_sizes_at_the_edges():
    bars = walk(30, seed=5)
    pipeline = FeaturePipeline([Recorder("r", 1), Cumulative()])
    assert pipeline.compute_tail(bars, 0).shape == (0, 3, 2)
    assert np.array_equal(pipeline.compute_tail(bars, 31), pipeline.compute(bars),
                          equal_nan=True)
    with pytest.raises(ValueError, match=r"rows must be at least 0, got -1"):
        pipeline.compute_tail(bars, -1)


# ---------------------------------------------------------------------- errors
class Holey:
    """Zeros, with NaN for BB at one date (found by date, so every slice has it)."""

    name = "holey"
    lookback = 1
    feature_names = ("h",)

    def __init__(self, date, memory=5):
        self.date, self.memory = pd.Timestamp(date), memory

    def compute(self, bars):
        out = np.zeros((len(bars), len(bars.symbols), 1))
        out[bars.index == self.date, 1] = np.nan
        return out


def test_a_nan_in_the_tail_names_the_row_of_the_whole_bars():
    bars = walk(200, seed=6)
    date = bars.index[193]
    message = (f"feature 'h' of transform 'holey' is nan for BB at {date:%Y-%m-%d} (row 193), "
               "after its lookback of 1 bars")
    for memory in (5, None):
        pipeline = FeaturePipeline([Holey(date, memory)])
        with pytest.raises(DataError) as full:
            pipeline.compute(bars)
        with pytest.raises(DataError) as tail:
            pipeline.compute_tail(bars, 10)
        assert str(tail.value) == str(full.value) == message
        # rows before the tail are not returned, so not checked
        assert (pipeline.compute_tail(bars, 6) == 0).all()


def test_the_lookback_is_that_of_the_whole_series():
    bars = walk(200, seed=6)
    inside = FeaturePipeline([Holey(bars.index[0])])  # NaN inside the lookback: fine
    assert np.isnan(inside.compute_tail(bars, 200)[0, 1, 0])
    late = FeaturePipeline([Holey(bars.index[1], memory=0)])  # row 1 of the bars is checked
    with pytest.raises(DataError, match=r"at \S+ \(row 1\), after its lookback of 1 bars"):
        late.compute_tail(bars, 199)


def test_a_wrong_shape_or_memory_is_the_plugins_error():
    bars = walk(50, seed=8)
    short = Recorder("short", 3)
    short.compute = lambda b: np.zeros((len(b) - 1, len(b.symbols), 1))
    with pytest.raises(PluginError, match=r"transform 'short' returned features of shape "
                                          r"\(12, 3, 1\); expected \[T, N, F\] = \(13, 3, 1\)"):
        FeaturePipeline([short]).compute_tail(bars, 10)
    for memory in (-2, 2.5):
        with pytest.raises(PluginError, match=rf"transform 'odd' declares a memory of {memory} "
                                              r"bars; expected None \(every earlier bar\) or an "
                                              r"integer number of bars >= 0"):
            FeaturePipeline([Recorder("odd", memory)]).compute_tail(bars, 10)


# ---------------------------------------------------------------------- kernels
def test_rolling_kernels_do_not_depend_on_where_the_series_starts():
    rng = np.random.default_rng(9)
    x = rng.normal(0.001, 0.02, size=(700, 4))
    x[0] = np.nan
    for window in (1, 2, 3, 20, 63, 200, 255):
        sums, ratios = rolling_sum(x, window), level_sma_ratio(x, window)
        stds = rolling_std(x, window) if window > 1 else None
        for start in (1, 2, 99, 400):
            first = start + window - 1  # the first row whose window is inside x[start:]
            assert np.array_equal(rolling_sum(x[start:], window)[window - 1:], sums[first:])
            if stds is not None:
                assert np.array_equal(rolling_std(x[start:], window)[window - 1:],
                                      stds[first:])
            # a level ratio reads one return less: that into its window's first row is unused
            ratio = level_sma_ratio(x[start - 1:], window)
            assert np.array_equal(ratio[window - 1:], ratios[first - 1:])
        # and a window sum is the window's sum: no rounding carried from the start
        naive = np.array([x[t - window + 1:t + 1].sum(axis=0) for t in range(window, 700)])
        np.testing.assert_allclose(sums[window:], naive, rtol=1e-13, atol=1e-15)


def test_level_sma_ratio_against_explicit_levels():
    returns = np.array([np.nan, 0.1, -0.2, 0.05, 0.3])[:, None]
    level = np.exp(np.concatenate([[0.0], np.cumsum(returns[1:, 0])]))
    got = level_sma_ratio(returns, 3)[:, 0]
    assert np.isnan(got[:2]).all()
    np.testing.assert_allclose(got[2:], [level[t] / level[t - 2:t + 1].mean() - 1
                                         for t in (2, 3, 4)], rtol=1e-15, atol=1e-16)
    with pytest.raises(ValueError, match="window must be at least 1, got 0"):
        rolling_sum(returns, 0)


# ---------------------------------------------------------------------- resumable transforms
@pytest.mark.parametrize("name, options", [("rsi", {}), ("rsi", {"window": 3}), ("macd", {}),
                                           ("macd", {"fast": 3, "slow": 10, "signal": 4})])
def test_exponential_transforms_resume_to_the_bit(registry, name, options):
    bars = walk(300, seed=11)
    transform = registry.create(name, options)
    full = transform.compute(bars)
    for k in (1, 2, 3, 5, 20, 34, 35, 120, 299, 300):  # before, at and after the warm-up
        head, state = transform.resume(part(bars, 0, k), None)
        assert np.array_equal(head, full[:k], equal_nan=True)
        if state is None:  # not warm yet: nothing to carry, the next call starts over
            assert np.isnan(full[k - 1]).all()
            continue
        rest, _ = transform.resume(bars, state)
        assert np.array_equal(rest, full[k:], equal_nan=True), k


class Counting:
    """The running sum of the log close returns, resumable; counts the rows it computes."""

    name, lookback, feature_names = "counting", 1, ("counting",)

    def __init__(self):
        self.rows = []

    def compute(self, bars):
        return self.resume(bars, None)[0]

    def resume(self, bars, state):
        done, total = (0, np.zeros(len(bars.symbols))) if state is None else state
        returns = np.diff(np.log(bars.close), axis=0, prepend=np.nan)[done:]
        out = total + np.nancumsum(returns, axis=0)
        out[:max(0, 1 - done)] = np.nan
        self.rows.append(len(bars) - done)
        return out[:, :, None], (len(bars), np.nan_to_num(out[-1]))


def test_a_live_panel_growing_bar_by_bar_computes_each_new_row_once(registry):
    from rlbridge.live.bars import BarBuffer

    bars = walk(260, seed=12)
    counting = Counting()
    pipeline = FeaturePipeline([registry.create(n) for n in DEFAULT_TRANSFORMS] + [counting])
    full = pipeline.compute(bars)
    buffer = BarBuffer(part(bars, 0, 200), spare=16)  # outgrows its room: a new array
    counting.rows.clear()
    for t in range(200, 260):
        assert np.array_equal(pipeline.compute_tail(buffer.bars, 20), full[t - 20:t],
                              equal_nan=True), t
        buffer.extend(part(bars, t - 1, t + 1))
    # all rows once, then one new row a bar; all again once, when the buffer outgrew its array
    assert counting.rows[0] == 200 and len(counting.rows) == 60
    again = [r for r in counting.rows[1:] if r != 1]
    assert len(again) == 1 and 200 < again[0] < 260
    # a revised bar: a new array, every row again, and still the whole history's bits
    values = bars.values[258:260].copy()
    values[1, 0, 3] *= 1.02
    buffer.extend(Bars(bars.index[258:260], bars.symbols, values))
    revised = Bars(bars.index, bars.symbols, np.concatenate([bars.values[:259], values[1:]]))
    counting.rows.clear()
    assert np.array_equal(pipeline.compute_tail(buffer.bars, 5), pipeline.compute(revised)[-5:],
                          equal_nan=True)
    assert counting.rows[0] == 260


def test_a_resume_of_the_wrong_shape_is_the_transforms_error():
    from rlbridge.live.bars import BarBuffer

    class Broken(Counting):
        def resume(self, bars, state):
            out, after = super().resume(bars, state)
            return (out if state is None else out[:1]), after  # one row short

    bars = walk(101, seed=13)
    buffer = BarBuffer(part(bars, 0, 99))
    pipeline = FeaturePipeline([Broken()])
    pipeline.compute_tail(buffer.bars, 3)
    buffer.extend(part(bars, 98, 101))
    with pytest.raises(PluginError, match=r"counting.*shape \(1, 3, 1\); expected \[T, N, F\] "
                                          r"= \(2, 3, 1\)"):
        pipeline.compute_tail(buffer.bars, 3)

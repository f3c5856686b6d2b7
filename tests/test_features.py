"""Feature transforms, the pipeline, normalisation and the causality check.

Known values come from independent pandas computations on the bundled ETFs (rolling std and
mean, ``ewm``) and from a short RSI series worked out by hand.
"""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rlbridge import sample_data
from rlbridge.cli import build_cli
from rlbridge.config import FeaturesConfig, TransformSpec, config_from_mapping
from rlbridge.errors import ConfigError, DataError, PluginError, UnknownNameError
from rlbridge.features import (
    DEFAULT_TRANSFORMS,
    FeaturePipeline,
    Normalizer,
    compute_features,
    ema,
    rolling_std,
    rolling_sum,
    wilder_mean,
)
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.testing import assert_causal

SYMBOLS = ["SPY", "AGG", "XLK", "XLE"]
MARKET = ("market_volatility", "market_sharpe", "market_sma_ratio")

# non-default options for each built-in, checked as well as the defaults
OPTIONS = {
    "log_return": {"fields": ["close", "open"]},
    "volume_change": {},
    "volatility": {"window": 5},
    "sharpe": {"window": 10, "annualisation": 52},
    "sma_ratio": {"windows": [5, 50]},
    "rsi": {"window": 5},
    "macd": {"fast": 3, "slow": 10, "signal": 4},
    "market_volatility": {"window": 60},
    "market_sharpe": {"window": 5},
    "market_sma_ratio": {"windows": [10, 3]},
}


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(builtins=True, entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def registry(pm):
    return pm.registries["features"]


@pytest.fixture(scope="module")
def bars():
    """SPY, AGG, XLK, XLE, 2015-2016: 504 sessions."""
    return sample_data.load(SYMBOLS, start="2015-01-01", end="2016-12-31")


def frame(bars, field):
    return pd.DataFrame(bars.field(field), index=bars.index, columns=list(bars.symbols))


def feature(registry, bars, name, **options):
    """The transform ``name`` and its output on ``bars``."""
    transform = registry.create(name, options)
    return transform, transform.compute(bars)


def make_bars(closes, volume=1000.0):
    """Bars of one or more assets whose open, high and low equal the close."""
    close = np.asarray(closes, dtype=float).reshape(len(closes), -1)
    values = np.repeat(close[:, :, None], 5, axis=2)
    values[:, :, 4] = volume
    index = pd.date_range("2020-01-01", periods=len(close), freq="D")
    return Bars(index, tuple(f"A{i}" for i in range(close.shape[1])), values)


# ---------------------------------------------------------------------- registration
def test_list_features_shows_every_builtin_with_a_description(pm):
    result = CliRunner().invoke(build_cli(pm), ["list", "features", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert sorted(rows) == sorted(DEFAULT_TRANSFORMS) == sorted(OPTIONS)
    assert all(row["description"] for row in rows.values())
    assert rows["rsi"]["plugin"] == "rlbridge.plugins.features.oscillators"
    text = CliRunner().invoke(build_cli(pm), ["list", "features"]).output
    assert re.search(r"^market_sharpe +rolling Sharpe ratio of the equal-weighted market, same "
                     r"for every asset \(options: window 20, annualisation 252\) +"
                     r"\[rlbridge\.plugins\.features\.market\]$", text, re.M)


def test_plugin_modules_import_no_numpy():
    code = ("import sys, rlbridge.plugins.features.returns, rlbridge.plugins.features.rolling, "
            "rlbridge.plugins.features.oscillators, rlbridge.plugins.features.market; "
            "print(sorted(m for m in ('pandas', 'numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_feature_names_carry_the_options(registry):
    names = {name: registry.create(name, opts).feature_names for name, opts in OPTIONS.items()}
    assert names == {
        "log_return": ("log_return_close", "log_return_open"),
        "volume_change": ("volume_change",),
        "volatility": ("volatility_5",),
        "sharpe": ("sharpe_10",),
        "sma_ratio": ("sma_ratio_5", "sma_ratio_50"),
        "rsi": ("rsi_5",),
        "macd": ("macd_3_10_4", "macd_signal_3_10_4", "macd_hist_3_10_4"),
        "market_volatility": ("market_volatility_60",),
        "market_sharpe": ("market_sharpe_5",),
        "market_sma_ratio": ("market_sma_ratio_10", "market_sma_ratio_3"),
    }
    lookbacks = {name: registry.create(name, opts).lookback for name, opts in OPTIONS.items()}
    assert lookbacks == {"log_return": 1, "volume_change": 1, "volatility": 5, "sharpe": 10,
                         "sma_ratio": 49, "rsi": 5, "macd": 12, "market_volatility": 60,
                         "market_sharpe": 5, "market_sma_ratio": 9}


# ---------------------------------------------------------------------- causality
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_builtin_is_causal(registry, bars, name):
    assert_causal(registry.create(name, {}), bars)
    assert_causal(registry.create(name, OPTIONS[name]), bars, seed=1)


def test_default_pipeline_is_causal(pm, bars):
    config = FeaturesConfig(transforms=tuple(TransformSpec(n) for n in DEFAULT_TRANSFORMS))
    assert_causal(FeaturePipeline.from_config(config, pm), bars, cuts=[0, 32, 33, 250])


class CentredMean:
    """Leaky on purpose: the mean of closes t-2 .. t+2."""

    name = "centred_mean"
    lookback = 2
    feature_names = ("centred_mean_5",)

    def compute(self, bars):
        close = frame(bars, "close")
        return close.rolling(5, center=True).mean().to_numpy()[:, :, None]


class WholeSeriesZScore:
    """Leaky on purpose: z-scored with the mean and std of the whole series."""

    name = "zscore"
    lookback = 0
    feature_names = ("zscore",)

    def compute(self, bars):
        close = bars.close
        return ((close - close.mean(axis=0)) / close.std(axis=0))[:, :, None]


class NextOpen:
    """Leaky on purpose: the classic off-by-one, tomorrow's open over today's close."""

    name = "next_open"
    lookback = 0
    feature_names = ("next_open",)

    def compute(self, bars):
        out = np.full(bars.close.shape, 0.0)
        out[:-1] = bars.open[1:] / bars.close[:-1]
        return out[:, :, None]


class ShareOfSeries:
    """Leaky on purpose: depends on the series length, which perturbing bars does not change."""

    name = "share_of_series"
    lookback = 0
    feature_names = ("share",)

    def compute(self, bars):
        t = np.arange(len(bars), dtype=float) / len(bars)
        return np.repeat(t[:, None, None], len(bars.symbols), axis=1)


def test_assert_causal_catches_a_centred_moving_average(bars):
    with pytest.raises(AssertionError) as info:
        assert_causal(CentredMean(), bars, cuts=[100])
    message = str(info.value)
    assert message.startswith(
        "transform 'centred_mean' is not causal: feature 'centred_mean_5' for SPY at row 99 "
        f"({bars.index[99]:%Y-%m-%d}) changed from ")
    assert message.endswith(" when every bar after row 100 was changed; the value at a bar "
                            "may only use that bar and earlier ones")
    with pytest.raises(AssertionError, match="'centred_mean' is not causal"):
        assert_causal(CentredMean(), bars)  # the default cut points find it too


@pytest.mark.parametrize("leaky, row", [(WholeSeriesZScore(), 0), (NextOpen(), 30)])
def test_assert_causal_catches_other_leaks(bars, leaky, row):
    with pytest.raises(AssertionError, match=rf"'{leaky.name}' is not causal: feature "
                                             rf"'{leaky.feature_names[0]}' for SPY at row {row} "):
        assert_causal(leaky, bars, cuts=[30])


def test_assert_causal_truncation_catches_what_perturbing_cannot(bars):
    assert_causal(ShareOfSeries(), bars, truncate=False)
    with pytest.raises(AssertionError, match=r"'share_of_series' is not causal: feature 'share' "
                                             r"for SPY at row 1 .* when it was computed on rows "
                                             r"0\.\.10 alone"):
        assert_causal(ShareOfSeries(), bars, cuts=[10])


# ---------------------------------------------------------------------- known values
def test_log_return_and_volume_change_match_pandas(registry, bars):
    _, got = feature(registry, bars, "log_return")
    for f, field in enumerate(("open", "high", "low", "close")):
        want = np.log(frame(bars, field)).diff().to_numpy()
        np.testing.assert_allclose(got[:, :, f], want, rtol=1e-12, atol=0)
    _, got = feature(registry, bars, "volume_change")
    want = np.log1p(frame(bars, "volume")).diff().to_numpy()
    np.testing.assert_allclose(got[:, :, 0], want, rtol=1e-12, atol=1e-15)


def test_volatility_and_sharpe_match_pandas_rolling(registry, bars):
    returns = np.log(frame(bars, "close")).diff()
    for window in (5, 20, 63):
        _, vol = feature(registry, bars, "volatility", window=window)
        want = returns.rolling(window).std().to_numpy()
        np.testing.assert_allclose(vol[:, :, 0], want, rtol=1e-8, atol=0)
        _, sharpe = feature(registry, bars, "sharpe", window=window, annualisation=252)
        rolling = returns.rolling(window)
        want = (rolling.mean() / rolling.std() * math.sqrt(252)).to_numpy()
        np.testing.assert_allclose(sharpe[:, :, 0], want, rtol=1e-7, atol=1e-9)


def test_sma_ratio_matches_pandas_rolling_mean(registry, bars):
    close = frame(bars, "close")
    _, got = feature(registry, bars, "sma_ratio", windows=[5, 200])
    for f, window in enumerate((5, 200)):
        want = (close / close.rolling(window).mean() - 1).to_numpy()
        np.testing.assert_allclose(got[:, :, f], want, rtol=1e-9, atol=1e-13)


def test_macd_matches_pandas_ewm(registry, bars):
    close = frame(bars, "close")
    transform, got = feature(registry, bars, "macd")
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    signal = line.ewm(span=9, adjust=False).mean()
    wanted = [line / close, signal / close, (line - signal) / close]
    assert transform.lookback == 33
    for f, want in enumerate(wanted):
        np.testing.assert_allclose(got[33:, :, f], want.to_numpy()[33:], rtol=1e-9, atol=1e-14)
    assert np.isnan(got[:33]).all()


def test_rsi_on_a_series_worked_by_hand(registry):
    # changes +1, -0.5, +1, -0.5, +1; window 3
    # row 3: G = 2/3, L = 1/6 -> RSI 80 -> (80 - 50) / 50 = 0.6
    # row 4: G = (2/3 * 2 + 0) / 3 = 4/9, L = (1/6 * 2 + 0.5) / 3 = 5/18 -> RSI 61.54 -> 3/13
    # row 5: G = (4/9 * 2 + 1) / 3 = 17/27, L = (5/18 * 2) / 3 = 5/27 -> RSI 77.27 -> 6/11
    bars = make_bars([10, 11, 10.5, 11.5, 11, 12])
    _, got = feature(registry, bars, "rsi", window=3)
    assert np.isnan(got[:3]).all()
    np.testing.assert_allclose(got[3:, 0, 0], [0.6, 3 / 13, 6 / 11], rtol=1e-14)
    textbook = [100 - 100 / (1 + g / loss) for g, loss in
                ((2 / 3, 1 / 6), (4 / 9, 5 / 18), (17 / 27, 5 / 27))]
    np.testing.assert_allclose((got[3:, 0, 0] + 1) * 50, textbook, rtol=1e-13)


def test_rsi_matches_a_textbook_loop_on_real_closes(registry, bars):
    _, got = feature(registry, bars, "rsi")
    for n, symbol in enumerate(bars.symbols):
        change = frame(bars, "close")[symbol].diff().to_numpy()
        gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
        g, loss = gains[1:15].mean(), losses[1:15].mean()
        want = [np.nan] * 14
        for t in range(14, len(change)):
            if t > 14:
                g = (g * 13 + gains[t]) / 14
                loss = (loss * 13 + losses[t]) / 14
            want.append(((100 - 100 / (1 + g / loss)) - 50) / 50)
        np.testing.assert_allclose(got[:, n, 0], want, rtol=1e-9, atol=1e-12)


def test_market_features_match_pandas_on_the_equal_weighted_market(registry, bars):
    market = np.log(frame(bars, "close")).diff().mean(axis=1)
    level = np.exp(market.fillna(0.0).cumsum())
    _, vol = feature(registry, bars, "market_volatility")
    _, sharpe = feature(registry, bars, "market_sharpe")
    _, sma = feature(registry, bars, "market_sma_ratio", windows=[20, 50])
    rolling = market.rolling(20)
    np.testing.assert_allclose(vol[:, 0, 0], rolling.std().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(sharpe[:, 0, 0],
                               (rolling.mean() / rolling.std() * math.sqrt(252)).to_numpy(),
                               rtol=1e-7, atol=1e-9)
    for f, window in enumerate((20, 50)):
        np.testing.assert_allclose(sma[:, 0, f], (level / level.rolling(window).mean() - 1),
                                   rtol=1e-9, atol=1e-13)
    for values in (vol, sharpe, sma):  # one value per bar, the same for every asset
        assert np.array_equal(values, np.broadcast_to(values[:, :1], values.shape), equal_nan=True)


def test_market_features_of_one_asset_are_its_own(registry, bars):
    one = bars.select(["XLE"])
    for market, own in (("market_volatility", "volatility"), ("market_sharpe", "sharpe"),
                        ("market_sma_ratio", "sma_ratio")):
        np.testing.assert_allclose(feature(registry, one, market)[1],
                                   feature(registry, one, own)[1], rtol=1e-9, atol=1e-12)


def test_flat_prices_give_zero_volatility_sharpe_and_rsi(registry):
    closes = [100.0] * 30 + [101.0, 99.0] + [99.0] * 30
    bars = make_bars(closes)
    assert feature(registry, bars, "volatility", window=5)[1][5:30, 0, 0].tolist() == [0.0] * 25
    sharpe = feature(registry, bars, "sharpe", window=5)[1][:, 0, 0]
    assert sharpe[5:30].tolist() == [0.0] * 25
    assert np.isfinite(sharpe[30:36]).all() and (sharpe[30:36] != 0).all()
    assert sharpe[36:].tolist() == [0.0] * 26  # flat again once the moves leave the window
    rsi = feature(registry, bars, "rsi", window=5)[1][:, 0, 0]
    assert rsi[5:30].tolist() == [0.0] * 25 and rsi[30] == 1.0 and rsi[31] < 0
    # a constant growth rate is flat too: no ratio of rounding errors
    steady = make_bars(100 * 1.001 ** np.arange(60))
    assert feature(registry, steady, "sharpe", window=10)[1][10:, 0, 0].tolist() == [0.0] * 50


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_lookback_rows_are_nan_and_every_later_row_finite(registry, bars, name):
    for options in ({}, OPTIONS[name]):
        transform, got = feature(registry, bars, name, **options)
        assert got.shape == (len(bars), len(SYMBOLS), len(transform.feature_names))
        assert got.dtype == np.float64
        # the longest window of the transform fills last: its first lookback rows are NaN
        assert np.isnan(got[:transform.lookback]).any(axis=(1, 2)).all()
        assert np.isfinite(got[transform.lookback:]).all()


def test_transforms_accept_series_shorter_than_their_lookback(registry, bars):
    for name in OPTIONS:
        short = Bars(bars.index[:3], bars.symbols, bars.values[:3])
        got = registry.create(name, {}).compute(short)
        assert got.shape[:2] == (3, len(SYMBOLS))
        if name not in ("log_return", "volume_change"):
            assert np.isnan(got).all()


# ---------------------------------------------------------------------- kernels
def test_ema_restarts_blocks_exactly_and_matches_pandas():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 2)).cumsum(axis=0)
    x[:4] = np.nan  # leading NaN rows: the average starts at the first full row
    for alpha in (0.5, 0.9, 2 / 27):  # blocks of 497, 150 and 4480 rows
        got = ema(x, alpha)
        want = pd.DataFrame(x[4:]).ewm(alpha=alpha, adjust=False).mean().to_numpy()
        assert np.isnan(got[:4]).all()
        np.testing.assert_allclose(got[4:], want, rtol=1e-10, atol=1e-10)
        assert np.array_equal(ema(x[:1234], alpha), got[:1234], equal_nan=True)


def test_rolling_kernels_against_naive_windows():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3))
    x[0] = np.nan
    s = rolling_sum(x, 7)
    assert np.isnan(s[:7]).all()
    np.testing.assert_allclose(s[7:], [x[t - 6:t + 1].sum(axis=0) for t in range(7, 400)],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rolling_std(x, 7)[7:],
                               [x[t - 6:t + 1].std(axis=0, ddof=1) for t in range(7, 400)],
                               rtol=1e-10)
    w = wilder_mean(np.abs(x), 4)
    assert np.isnan(w[:4]).all()
    np.testing.assert_allclose(w[4], np.abs(x[1:5]).mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(w[5], (w[4] * 3 + np.abs(x[5])) / 4, rtol=1e-14)


# ---------------------------------------------------------------------- options and pipeline
@pytest.mark.parametrize("transform, message", [
    ({"name": "volatility", "window": 1}, r"\[features.transforms\[0\].window\]: must be at "
                                          r"least 2, got 1"),
    ({"name": "log_return", "fields": ["close", "volume"]},
     r"\[features.transforms\[0\].fields\[1\]\]: 'volume' is not one of open, high, low, close "
     r"\(use the volume_change transform for volume\)"),
    ({"name": "log_return", "fields": []}, r"\[features.transforms\[0\].fields\]: empty list"),
    ({"name": "sma_ratio", "window": 10, "windows": [5]},
     r"\[features.transforms\[0\].windows\]: set window or windows, not both"),
    ({"name": "sma_ratio", "windows": [5, 20, 5]},
     r"\[features.transforms\[0\].windows\[2\]\]: window 5 is listed twice"),
    ({"name": "macd", "fast": 26, "slow": 12},
     r"\[features.transforms\[0\].slow\]: must be more than fast \(26\), got 12"),
    ({"name": "sharpe", "annualisation": 0},
     r"\[features.transforms\[0\].annualisation\]: must be a positive number, got 0.0"),
    ({"name": "rsi", "windw": 3}, r"\[features.transforms\[0\].windw\]: unknown key 'windw'"),
    ({"name": "rsi", "window": "14"}, r"\[features.transforms\[0\].window\]: expected an "
                                      r"integer, got '14'"),
])
def test_bad_options_name_the_file_and_key(pm, tmp_path, transform, message):
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"features": {"transforms": [transform]}},
                            path=tmp_path / "agent.toml", pm=pm)
    spec = TransformSpec(transform["name"], {k: v for k, v in transform.items() if k != "name"})
    with pytest.raises(ConfigError, match=message):  # the pipeline checks them too
        FeaturePipeline.from_config(FeaturesConfig(transforms=(spec,)), pm)


def test_pipeline_from_config_concatenates_in_order(pm, bars):
    config = config_from_mapping({"features": {"window": 30, "transforms": [
        "log_return", {"name": "volatility", "window": 60}, "volatility", "rsi"]}}, pm=pm)
    pipeline = FeaturePipeline.from_config(config.features, pm)
    assert pipeline.feature_names == ("log_return_open", "log_return_high", "log_return_low",
                                      "log_return_close", "volatility_60", "volatility_20",
                                      "rsi_14")
    assert pipeline.lookback == 60
    got = pipeline.compute(bars)
    assert got.shape == (len(bars), 4, 7)
    assert np.array_equal(got[:, :, 4:5], feature(pm.registries["features"], bars, "volatility",
                                                  window=60)[1], equal_nan=True)
    assert np.array_equal(got[:, :, 6:], feature(pm.registries["features"], bars, "rsi")[1],
                          equal_nan=True)


def test_duplicate_feature_names_name_both_transforms(pm, tmp_path):
    config = config_from_mapping({"features": {"transforms": [
        "rsi", "volatility", {"name": "volatility", "window": 20}]}}, pm=pm)
    with pytest.raises(ConfigError) as info:
        FeaturePipeline.from_config(config.features, pm, path=tmp_path / "agent.toml")
    assert str(info.value) == (
        f"{tmp_path / 'agent.toml'}: [features.transforms[2]]: features.transforms[2] "
        "(volatility) and features.transforms[1] (volatility) both produce the feature "
        "'volatility_20'; give one of them other options or remove it")


def test_unknown_transform_lists_the_builtins(pm):
    spec = TransformSpec("volatilty")
    with pytest.raises(UnknownNameError, match=r"features.transforms\[0\]: unknown feature "
                                               r"'volatilty'; valid names: log_return, macd, .*"
                                               r"\(did you mean 'volatility'\?\)"):
        FeaturePipeline.from_config(FeaturesConfig(transforms=(spec,)), pm)


class Broken:
    lookback = 1

    def __init__(self, name, names, result):
        self.name, self.feature_names, self._result = name, names, result

    def compute(self, bars):
        return self._result(bars)


def test_pipeline_refuses_a_wrong_shape_and_a_late_nan(bars):
    wide = Broken("wide", ("a",), lambda b: np.zeros((len(b), len(b.symbols), 2)))
    with pytest.raises(PluginError, match=r"transform 'wide' returned features of shape "
                                          r"\(504, 4, 2\); expected \[T, N, F\] = \(504, 4, 1\)"):
        FeaturePipeline([wide]).compute(bars)

    def hole(b):
        out = np.zeros((len(b), len(b.symbols), 1))
        out[0] = np.nan  # inside the lookback: fine
        out[10, 2] = np.nan  # after it: XLK at the 11th session
        return out

    with pytest.raises(DataError) as info:
        FeaturePipeline([Broken("holey", ("h",), hole)]).compute(bars)
    assert str(info.value) == ("feature 'h' of transform 'holey' is nan for XLK at 2015-01-16 "
                               "(row 10), after its lookback of 1 bars")


# ---------------------------------------------------------------------- normalisation
def test_normalizer_fits_on_the_training_rows_only():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(300, 4, 3))
    values[:5, :, 1] = np.nan  # a lookback
    values[:, :, 2] = 7.0  # constant
    fitted = Normalizer.fit(values, slice(0, 200))
    inside = values[:200].reshape(-1, 3)
    np.testing.assert_allclose(fitted.mean[:2], np.nanmean(inside, axis=0)[:2], rtol=1e-12)
    np.testing.assert_allclose(fitted.std[:2], np.nanstd(inside, axis=0)[:2], rtol=1e-12)
    assert fitted.mean[2] == 7.0 and fitted.std[2] == 1.0

    changed = values.copy()
    changed[200:] = rng.normal(50.0, 30.0, size=(100, 4, 3))
    again = Normalizer.fit(changed, slice(0, 200))
    assert again == fitted  # nothing after the slice is read

    out = fitted.apply(values)
    assert out.dtype == np.float32 and out.shape == values.shape
    assert np.isnan(out[:5, :, 1]).all() and not np.isnan(out[5:]).any()
    np.testing.assert_allclose(out[:200, :, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:200, :, 0].std(), 1.0, rtol=1e-5)
    assert (out[:, :, 2] == 0.0).all()
    # a window or a single bar (what a live strategy normalises) gives the same numbers
    assert np.array_equal(fitted.apply(values[40:100]), out[40:100])
    assert np.array_equal(fitted.apply(values[250, 2]), out[250, 2])
    wild = fitted.apply(np.array([[1e6, -1e6, 7.0]]))
    assert wild.tolist() == [[10.0, -10.0, 0.0]]  # clipped to +-clip


def test_normalizer_round_trips_through_json():
    fitted = Normalizer.fit(np.arange(24.0).reshape(2, 4, 3), names=["a", "b", "c"])
    data = json.loads(json.dumps(fitted.to_dict()))
    assert data == {"mean": [10.5, 11.5, 12.5], "std": fitted.std.tolist(), "clip": 10.0,
                    "names": ["a", "b", "c"]}
    assert Normalizer.from_dict(data) == fitted
    with pytest.raises(DataError, match=r"normalizer: a saved normalizer has keys mean, std, "
                                        r"clip, names; missing std"):
        Normalizer.from_dict({"mean": [1.0]})
    with pytest.raises(DataError, match=r"invalid normalizer: a standard deviation is not a "
                                        r"positive number"):
        Normalizer.from_dict({"mean": [1.0], "std": [0.0]})


def test_normalizer_refuses_features_it_was_not_fitted_on():
    fitted = Normalizer.fit(np.ones((3, 2, 2)), names=["rsi_14", "volatility_20"])
    with pytest.raises(DataError, match=r"the features differ from the ones the normalizer was "
                                        r"fitted on \(missing volatility_20; new sharpe_20\)"):
        fitted.apply(np.ones((3, 2, 2)), names=["rsi_14", "sharpe_20"])
    with pytest.raises(DataError, match=r"3 features, but the normalizer was fitted on 2"):
        fitted.apply(np.ones((3, 2, 3)))
    partly = np.ones((4, 1, 2))
    partly[:3, :, 1] = np.nan
    with pytest.raises(DataError, match=r"normalizer: feature 'b' has no value in rows 0\.\.1, "):
        Normalizer.fit(partly, slice(0, 2), names=["a", "b"])
    assert Normalizer.fit(partly, slice(0, 4), names=["a", "b"]).mean.tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------- compute_features
def agent(train=True, **features):
    mapping = {"data": {"feed": "sample", "symbols": SYMBOLS},
               "features": {"transforms": list(DEFAULT_TRANSFORMS), **features}}
    if train:
        mapping["train"] = {"start": "2015-03-01", "end": "2015-12-31", "timesteps": 100}
    return mapping


def test_compute_features_fits_on_the_train_period(pm, bars):
    config = config_from_mapping(agent(), pm=pm)
    result = compute_features(config, bars, pm)
    rows = slice(int(bars.index.searchsorted(pd.Timestamp("2015-03-01"))),
                 int(bars.index.searchsorted(pd.Timestamp("2016-01-01"))))
    assert result.fit_rows == rows and bars.index[rows.stop - 1] == pd.Timestamp("2015-12-31")
    assert result.names == FeaturePipeline.from_config(config.features, pm).feature_names
    assert len(result.names) == 15 and result.lookback == 33 and result.first_valid == 33
    assert result.values.dtype == np.float32 and not result.values.flags.writeable
    assert np.isnan(result.values[32]).any() and not np.isnan(result.values[33:]).any()

    raw = FeaturePipeline.from_config(config.features, pm).compute(bars)
    inside = raw[rows].reshape(-1, 15)
    np.testing.assert_allclose(result.normalizer.mean, np.nanmean(inside, axis=0), rtol=1e-9)
    np.testing.assert_allclose(result.values, result.normalizer.apply(raw), rtol=0)

    # other prices after the training period: same normalisation, same in-sample features
    values = np.array(bars.values)
    values[rows.stop:, :, :4] *= 1.5
    values[rows.stop + 5:, :, :4] *= 0.5
    later = compute_features(config, Bars(bars.index, bars.symbols, values), pm)
    assert later.normalizer == result.normalizer
    assert np.array_equal(later.values[:rows.stop], result.values[:rows.stop], equal_nan=True)
    assert not np.array_equal(later.values[rows.stop:], result.values[rows.stop:])


def test_compute_features_fit_rows_and_saved_normalizer(pm, bars):
    config = config_from_mapping(agent(train=False), pm=pm)
    everything = compute_features(config, bars, pm)
    assert everything.fit_rows == slice(0, len(bars))
    first = compute_features(config, bars, pm, fit_rows=slice(0, 100))
    assert first.fit_rows == slice(0, 100) and first.normalizer != everything.normalizer
    reused = compute_features(config, bars, pm, normalizer=first.normalizer)
    assert reused.fit_rows is None and np.array_equal(reused.values, first.values, equal_nan=True)
    other = config_from_mapping(agent(transforms=["rsi", {"name": "volatility", "window": 60}]),
                                pm=pm)
    with pytest.raises(DataError, match=r"normalizer: the features differ from the ones the "
                                        r"normalizer was fitted on \(missing log_return_open, "
                                        r".*, market_sma_ratio_20; new volatility_60\)"):
        compute_features(other, bars, pm, normalizer=first.normalizer)


def test_compute_features_needs_transforms_and_a_long_enough_period(pm, bars):
    with pytest.raises(ConfigError, match=r"\[features\]: no feature transforms; list some, "
                                          r"e.g. \[features\] transforms = \[\"log_return\""):
        compute_features(config_from_mapping({"data": {"feed": "sample"}}, pm=pm), bars, pm)
    early = agent()
    early["train"] = {"start": "2015-01-01", "end": "2015-01-31", "timesteps": 100}
    with pytest.raises(DataError, match=r"feature 'volatility_20' has no value in rows 0\.\.19"):
        compute_features(config_from_mapping(early, pm=pm), bars, pm)
    outside = agent()
    outside["train"] = {"start": "2010-01-01", "end": "2010-12-31", "timesteps": 100}
    with pytest.raises(DataError, match=r"have no session in the training period 2010-01-01 "
                                        r"\.\. 2010-12-31"):
        compute_features(config_from_mapping(outside, pm=pm), bars, pm)


def test_train_period_of_intraday_bars_includes_every_bar_of_the_end_day(pm):
    index = pd.DatetimeIndex([f"2021-03-0{d} {h}:30" for d in (1, 2, 3, 4) for h in range(14, 21)],
                             tz="UTC")
    close = 100 * np.exp(np.random.default_rng(2).normal(0, 0.01, size=(len(index), 1)).cumsum(0))
    values = np.repeat(close[:, :, None], 5, axis=2)
    bars = Bars(index, ("SPY",), values)
    config = config_from_mapping({
        "features": {"transforms": ["log_return"]},
        "train": {"start": "2021-03-02", "end": "2021-03-03", "timesteps": 10}}, pm=pm)
    result = compute_features(config, bars, pm)
    assert result.fit_rows == slice(7, 21)  # the 14 bars of March 2 and 3

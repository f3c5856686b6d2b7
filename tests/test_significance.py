"""The stationary block bootstrap of the Sharpe difference: known answers, coverage, bad input."""

import math

import empyrical
import numpy as np
import pandas as pd
import pytest

from rlbridge.errors import DataError, RLBridgeError
from rlbridge.significance import (
    SharpeComparison,
    compare_sharpe,
    default_block,
    stationary_bootstrap_indices,
)

DAYS = pd.bdate_range("2019-01-02", periods=500)


def returns(seed=1, n=500, mean=0.0003, sd=0.01):
    return pd.Series(np.random.default_rng(seed).normal(mean, sd, n), index=DAYS[:n])


def test_identical_series_differ_by_exactly_zero_with_p_one():
    # every resample draws the same bars for both: each resampled difference is exactly 0, so
    # the interval is [0, 0]; the p-value counts resamples with d* - d >= d, i.e. 0 >= 0: all
    # of them, hence p = (1 + n_boot) / (1 + n_boot) = 1 (ties never count as evidence)
    r = returns()
    result = compare_sharpe(r, r.copy(), n_boot=500)
    assert result == SharpeComparison(difference=0.0, low=0.0, high=0.0, p_value=1.0,
                                      n_boot=500, block=8.0, confidence=0.95, observations=500)


def test_a_constant_daily_edge_is_significant():
    base = returns()
    edge = 0.0005
    result = compare_sharpe(base + edge, base)
    # adding a constant moves the mean, not the deviation: the difference is edge / sd * sqrt(252)
    expected = edge / base.std(ddof=1) * math.sqrt(252)
    assert result.difference == pytest.approx(expected, rel=1e-12)
    assert 0 < result.low < result.difference < result.high
    # the same holds in every resample (d* = edge / sd* * sqrt(252) > 0), and d* - d >= d would
    # need a resample whose deviation is half the sample's: none of 2,000 has one
    assert result.p_value == 1 / 2001 < 0.05


def test_the_estimate_is_empyricals_sharpe_difference():
    a, b = returns(1, mean=0.0008, sd=0.012), returns(2)
    result = compare_sharpe(a, b, n_boot=200)
    assert result.difference == pytest.approx(
        empyrical.sharpe_ratio(a) - empyrical.sharpe_ratio(b), rel=1e-12)
    weekly = compare_sharpe(a, b, n_boot=200, periods_per_year=52)
    assert weekly.difference == pytest.approx(result.difference * math.sqrt(52 / 252),
                                              rel=1e-12)


def test_the_same_seed_gives_the_same_answer():
    a, b = returns(3), returns(4)
    first = compare_sharpe(a, b, n_boot=300, seed=11)
    assert compare_sharpe(a.to_numpy(), b.to_numpy(), n_boot=300, seed=11) == first
    other = compare_sharpe(a, b, n_boot=300, seed=12)
    assert other.difference == first.difference
    assert (other.low, other.high, other.p_value) != (first.low, first.high, first.p_value)


def test_the_interval_covers_the_true_difference_in_most_repetitions():
    # correlated daily returns with known Sharpe ratios: the true annualised difference is
    # (0.0008 / 0.01 - 0.0003 / 0.01) * sqrt(252) = 0.79
    truth = (0.0008 / 0.01 - 0.0003 / 0.01) * math.sqrt(252)
    covered, below_half = 0, 0
    for rep in range(12):
        rng = np.random.default_rng(100 + rep)
        common = rng.normal(0.0, 1.0, 750)
        own = rng.normal(0.0, 1.0, (2, 750))
        # correlation 0.6 between the two, each with deviation 0.01
        a = 0.0008 + 0.01 * (0.6 ** 0.5 * common + 0.4 ** 0.5 * own[0])
        b = 0.0003 + 0.01 * (0.6 ** 0.5 * common + 0.4 ** 0.5 * own[1])
        result = compare_sharpe(a, b, n_boot=400, seed=rep)
        covered += result.low <= truth <= result.high
        below_half += result.p_value < 0.5
    assert covered >= 10  # 95% nominal: 12 of 12 expected, 10 allows for chance
    assert below_half >= 10  # a better strategy mostly looks better


def test_blocks_keep_serial_dependence_and_widen_the_interval():
    # AR(1) returns with strong positive autocorrelation: resampling single bars (block 1)
    # breaks the dependence and understates the uncertainty of the Sharpe ratio
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.01, (2, 1000))
    ar = np.zeros((2, 1000))
    for t in range(1, 1000):
        ar[:, t] = 0.7 * ar[:, t - 1] + noise[:, t]
    a, b = 0.0005 + ar[0], ar[1]
    iid = compare_sharpe(a, b, n_boot=600, block=1)
    blocks = compare_sharpe(a, b, n_boot=600, block=25)
    assert iid.difference == blocks.difference
    assert (blocks.high - blocks.low) > 1.5 * (iid.high - iid.low)


def test_stationary_bootstrap_indices_have_geometric_blocks():
    rng = np.random.default_rng(0)
    index = stationary_bootstrap_indices(1000, 200, 10.0, rng)
    assert index.shape == (200, 1000) and index.min() >= 0 and index.max() <= 999
    continues = index[:, 1:] == (index[:, :-1] + 1) % 1000
    # a block ends with probability 1/10 at each step (plus 1/1000 for a new block that happens
    # to start at the next bar)
    assert 1 - continues.mean() == pytest.approx(0.1 * (1 - 1 / 1000), abs=0.003)
    assert index.mean() == pytest.approx(499.5, rel=0.01)  # every bar equally likely
    single = stationary_bootstrap_indices(1000, 50, 1.0, rng)
    assert not ((single[:, 1:] == (single[:, :-1] + 1) % 1000).mean() > 0.01)


def test_default_block_length_is_the_cube_root():
    assert [default_block(n) for n in (1, 7, 8, 337, 441, 500, 2520)] == [1, 2, 2, 7, 8, 8, 14]
    assert compare_sharpe(returns(1, n=441), returns(2, n=441), n_boot=100).block == 8.0


def test_bad_input_is_a_clear_error():
    a, b = returns(1), returns(2)
    with pytest.raises(DataError, match=r"^the strategy has 500 returns and the baseline 499; "
                                        r"align them on the same bars$"):
        compare_sharpe(a, b.iloc[1:])
    with pytest.raises(DataError, match=r"^the strategy has 500 returns and the baseline 400"):
        compare_sharpe(a.to_numpy(), b.to_numpy()[:400])
    shifted = b.copy()
    shifted.index = pd.bdate_range("2019-01-03", periods=500)
    with pytest.raises(DataError, match=r"^the strategy and baseline returns are on different "
                                        r"bars: the 1st is 2019-01-02 00:00:00 for the strategy "
                                        r"and 2019-01-03 00:00:00 for the baseline"):
        compare_sharpe(a, shifted)
    holed = a.copy()
    holed.iloc[7] = np.nan
    with pytest.raises(DataError, match=r"^the strategy return at 2019-01-11 00:00:00 is nan; "
                                        r"returns must be finite"):
        compare_sharpe(holed, b)
    with pytest.raises(DataError, match=r"^the baseline return at position 3 is inf"):
        compare_sharpe(a.to_numpy(), np.r_[b.to_numpy()[:3], np.inf, b.to_numpy()[4:]])
    with pytest.raises(DataError, match=r"^19 paired returns are too few for a block bootstrap "
                                        r"with mean block length 10: at least 20 are needed$"):
        compare_sharpe(a.iloc[:19], b.iloc[:19], block=10)
    with pytest.raises(DataError, match="the baseline returns do not vary: its Sharpe ratio is "
                                        "undefined"):
        compare_sharpe(a, pd.Series(0.0, index=a.index))
    with pytest.raises(RLBridgeError, match="n_boot must be a whole number of at least 1, not 0"):
        compare_sharpe(a, b, n_boot=0)
    with pytest.raises(RLBridgeError, match="confidence must be between 0 and 1, not 1.5"):
        compare_sharpe(a, b, confidence=1.5)
    with pytest.raises(RLBridgeError, match="the mean block length must be at least 1 bar, "
                                            "not 0.5"):
        compare_sharpe(a, b, block=0.5)

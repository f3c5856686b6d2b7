"""The bundled sample data: the files, their provenance, the sample feed and sample_data.load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.data import extra_rows, missing_sessions
from rlbridge.errors import DataError
from rlbridge.manager import make_plugin_manager

ORIGINAL = Path("/work/shared/data/etf-daily")
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def test_the_folder_holds_the_twelve_symbols():
    folder = sample_data.path()
    assert folder.is_dir()
    assert sorted(p.stem for p in folder.glob("*.csv")) == sorted(sample_data.SYMBOLS)
    assert sample_data.SYMBOLS == ("SPY", "AGG", "XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP",
                                   "XLU", "XLV", "XLY")


@pytest.mark.parametrize("symbol", sample_data.SYMBOLS)
def test_each_file_is_the_original_trimmed_to_2005_2020(symbol):
    lines = (sample_data.path() / f"{symbol}.csv").read_text().splitlines()
    original = (ORIGINAL / f"{symbol}.csv").read_text().splitlines()
    expected = [original[0]] + [row for row in original[1:]
                               if "2005-01-01" <= row[:10] <= "2020-12-31"]
    assert lines == expected
    assert lines[0] == HEADER
    first = "2018-06-19" if symbol == "XLC" else "2005-01-03"
    assert (lines[1][:10], lines[-1][:10]) == (first, "2020-12-31")
    assert len(lines) - 1 == (640 if symbol == "XLC" else 4028)


def test_every_file_follows_the_nyse_calendar():
    feed = make_plugin_manager(entrypoints=False, disabled=(), warn=False).registries[
        "feeds"].create("sample", {"adjust": False})
    for symbol in sample_data.SYMBOLS:
        index = feed.load([symbol]).index
        assert missing_sessions(index, "XNYS").empty, symbol
        assert extra_rows(index, "XNYS").empty, symbol


def test_load_everything_starts_with_xlc():
    bars = sample_data.load()
    assert bars.symbols == sample_data.SYMBOLS
    assert bars.shape == (640, 12, 5) and bars.values.dtype == np.float64
    assert bars.index.tz is None
    assert bars.index[0] == pd.Timestamp("2018-06-19")
    assert bars.index[-1] == pd.Timestamp("2020-12-31")
    ffilled = sample_data.load(align="ffill")
    assert ffilled.equals(bars)  # no gaps: nothing to fill


def test_adjusted_by_default_traded_prices_on_request():
    day = pd.Timestamp("2020-03-16")
    adjusted = sample_data.load(["SPY"], day, day)
    traded = sample_data.load(["SPY"], day, day, adjust=False)
    assert adjusted.values[0, 0, 3] == 222.370773
    assert traded.values[0, 0].tolist() == [241.179993, 256.899994, 237.360001, 239.850006,
                                            297240000.0]
    factor = 222.370773 / 239.850006
    assert adjusted.values[0, 0, :3] == pytest.approx(traded.values[0, 0, :3] * factor, rel=1e-12)


def test_in_and_out_of_sample_periods():
    assert sample_data.IN_SAMPLE == ("2008-01-01", "2018-12-31")
    assert sample_data.OUT_OF_SAMPLE == ("2019-01-01", "2020-09-30")
    train = sample_data.load(["SPY", "AGG", "XLK"], *sample_data.IN_SAMPLE)
    test = sample_data.load(["SPY", "AGG", "XLK"], *sample_data.OUT_OF_SAMPLE)
    assert (train.index[0], train.index[-1], len(train)) == (
        pd.Timestamp("2008-01-02"), pd.Timestamp("2018-12-31"), 2769)
    assert (test.index[0], test.index[-1], len(test)) == (
        pd.Timestamp("2019-01-02"), pd.Timestamp("2020-09-30"), 441)


def test_sample_feed_through_the_registry():
    registry = make_plugin_manager(entrypoints=False, disabled=(), warn=False).registries["feeds"]
    assert "12 bundled ETFs" in registry.info("sample").description
    feed = registry.create("sample", {})
    assert feed.symbols() == list(sample_data.SYMBOLS)
    with pytest.raises(DataError, match=r"no symbol 'QQQ'; available: AGG, SPY, XLB"):
        feed.load(["QQQ"])


def test_the_sample_bars_fixture(sample_bars):
    assert sample_bars.symbols == ("SPY", "AGG", "XLK")
    assert (sample_bars.index[0], sample_bars.index[-1]) == (pd.Timestamp("2019-01-02"),
                                                             pd.Timestamp("2020-12-31"))
    assert len(sample_bars) == 505


def test_provenance_names_origin_range_and_split():
    text = (sample_data.path().parent / "PROVENANCE.md").read_text()
    for needed in ("cweill/qstrader-examples", "608f51c", "2005-01-01", "2020-12-31",
                   "2018-06-19", "Adj Close", "2008-01-01 .. 2018-12-31",
                   "2019-01-01 .. 2020-09-30", "not adjusted"):
        assert needed in text, needed

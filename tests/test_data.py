"""The data layer: AlignOptions, validate_frame, align, calendar gaps and load_bars."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rlbridge
from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.data import (
    AlignOptions,
    DroppedBarsWarning,
    align,
    extra_rows,
    load_bars,
    missing_sessions,
    sessions,
    validate_frame,
)
from rlbridge.errors import ConfigError, DataError
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager

ETF = Path("/work/shared/data/etf-daily")
COLUMNS = ["open", "high", "low", "close", "volume"]


def daily(dates, closes, volume=100.0):
    """A frame with a bar per date: open = close - 1, high = close + 1, low = close - 2."""
    closes = np.asarray(closes, dtype=float)
    values = np.column_stack([closes - 1, closes + 1, closes - 2, closes,
                              np.full(len(closes), volume)])
    return pd.DataFrame(values, index=pd.DatetimeIndex(dates), columns=COLUMNS)


def business(start, end):
    return list(sessions("XNYS", start, end))


# ---------------------------------------------------------------------- AlignOptions
def test_align_options_defaults_and_none_calendar():
    assert AlignOptions() == AlignOptions(calendar="XNYS", align="drop", fill_limit=5)
    assert AlignOptions(calendar="none").calendar is None
    assert AlignOptions(calendar=None, align="ffill", fill_limit=0).fill_limit == 0


@pytest.mark.parametrize(("options", "key", "message"), [
    ({"calendar": "XNSY"}, "calendar", "[calendar]: unknown exchange calendar 'XNSY'; close names: "
                                       "XNYS"),
    ({"calendar": "xnys"}, "calendar", "close names: XNYS"),
    ({"fill_limit": -1}, "fill_limit", "[fill_limit]: must be a whole number of bars, 0 or more, "
                                       "got -1"),
    ({"fill_limit": True}, "fill_limit", "got True"),
    ({"align": "bfill"}, "align", "[align]: expected 'drop' or 'ffill', got 'bfill'"),
])
def test_align_options_are_checked(options, key, message):
    with pytest.raises(ConfigError) as info:
        AlignOptions(**options)
    assert info.value.key == key
    assert message in str(info.value)


def test_feed_options_inherit_align_options_with_required_fields():
    @dataclasses.dataclass(frozen=True)
    class Options(AlignOptions):
        url: str

    options = Options(url="sqlite://", align="ffill")
    assert (options.url, options.align, options.calendar) == ("sqlite://", "ffill", "XNYS")


# ---------------------------------------------------------------------- validate_frame
def test_validate_frame_returns_float64_oldest_first():
    frame = daily(["2020-01-03", "2020-01-02"], [11, 10]).astype({"volume": "int64"})
    out = validate_frame(frame, newest_first=True)
    assert list(out.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert out.index.name == "date"
    assert (out.dtypes == np.float64).all() and list(out.columns) == COLUMNS
    assert out["close"].tolist() == [10.0, 11.0]


def test_validate_frame_reports_given_rows_and_names():
    frame = daily(["2020-01-02", "2020-01-03", "2020-01-06"], [10, 11, 12])
    frame.iloc[1, 3] = np.nan
    with pytest.raises(DataError) as info:
        validate_frame(frame, source="prices table", lines=[10, 20, 30], names={"close": "CLOSE"})
    assert str(info.value) == "prices table, row 20, column 'CLOSE': missing value (empty or NaN)"
    frame.iloc[1, 3] = 11
    frame.iloc[2, 2] = 13.5  # low above high
    with pytest.raises(DataError, match=r"row 30, column 'high': high 13 is below low 13\.5"):
        validate_frame(frame, source="t", lines=[10, 20, 30])


def test_validate_frame_missing_columns_and_dates():
    frame = daily(["2020-01-02"], [10]).drop(columns="volume")
    with pytest.raises(DataError) as info:
        validate_frame(frame, source="x.csv")
    assert str(info.value) == ("x.csv, row 1, column 'volume': missing column 'volume'; columns "
                               "found: open, high, low, close")
    frame = daily(["2020-01-02", None], [10, 11])
    with pytest.raises(DataError, match=r"x.csv, row 3, column 'date': missing date"):
        validate_frame(frame, source="x.csv")


def test_validate_frame_sorted_rows_keep_their_file_rows():
    frame = daily(["2020-01-06", "2020-01-02", "2020-01-03"], [12, 10, 11])
    frame.iloc[0, 4] = -5.0
    with pytest.raises(DataError) as info:
        validate_frame(frame, source="f", sort=True)
    assert (info.value.row, info.value.column) == (2, "volume")
    frame.iloc[0, 4] = 5.0
    out = validate_frame(frame, sort=True)
    assert out["close"].tolist() == [10.0, 11.0, 12.0]


def test_validate_frame_checks_extra_price_columns():
    frame = daily(["2020-01-02", "2020-01-03"], [10, 11])
    frame["adjusted"] = [9.0, 0.0]
    with pytest.raises(DataError, match=r"row 3, column 'Adj Close': adjusted must be positive"):
        validate_frame(frame, extra=("adjusted",), names={"adjusted": "Adj Close"})
    frame["adjusted"] = [9.0, 10.0]
    assert list(validate_frame(frame, extra=("adjusted",)).columns) == [*COLUMNS, "adjusted"]


# ---------------------------------------------------------------------- align: drop
def test_drop_keeps_common_sessions_of_the_common_range():
    a = daily(business("2020-12-21", "2020-12-31"), range(1, 9))
    b = daily([d for d in business("2020-12-22", "2020-12-30") if d.day != 24], range(10, 15))
    with pytest.warns(DroppedBarsWarning, match=r'left out 1 timestamp\(s\) where not every '
                      r"symbol has a bar, the first 2020-12-24 \(missing for B\)"):
        bars = align({"A": a, "B": b}, AlignOptions())
    assert [d.day for d in bars.index] == [22, 23, 28, 29, 30]
    assert bars.shape == (5, 2, 5) and bars.values.dtype == np.float64
    assert bars.close[:, 0].tolist() == [2, 3, 5, 6, 7]
    assert bars.close[:, 1].tolist() == [10, 11, 12, 13, 14]


def test_single_symbol_drop_returns_its_rows_unchanged():
    dates = ["2020-12-21", "2020-12-23", "2020-12-26"]  # a gap and a Saturday
    bars = align({"A": daily(dates, [1, 2, 3])}, AlignOptions())
    assert list(bars.index) == [pd.Timestamp(d) for d in dates]


def test_xlc_with_spy_from_the_sample_starts_with_xlc():
    bars = sample_data.load(["SPY", "XLC"], adjust=False)
    assert bars.index[0] == pd.Timestamp("2018-06-19") and len(bars) == 640
    assert bars.values[0, 0].tolist() == [274.0, 275.75, 273.529999, 275.5, 97531500.0]


# ---------------------------------------------------------------------- align: ffill
def test_ffill_fills_inside_the_limit_from_the_previous_close():
    a = daily(business("2020-12-21", "2020-12-31"), range(1, 9))
    b = daily([d for d in business("2020-12-21", "2020-12-31") if d.day not in (23, 24)],
              [10, 11, 12, 13, 14, 15])
    bars = align({"A": a, "B": b}, AlignOptions(align="ffill", fill_limit=2))
    assert [d.day for d in bars.index] == [21, 22, 23, 24, 28, 29, 30, 31]  # no 25th: a holiday
    filled = bars.values[2:4, 1]
    assert filled.tolist() == [[11, 11, 11, 11, 0], [11, 11, 11, 11, 0]]
    assert bars.values[4, 1].tolist() == [11, 13, 10, 12, 100]
    assert bars.values[:, 0, 3].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_ffill_gap_beyond_the_limit_names_symbol_dates_and_fix():
    a = daily(business("2020-12-21", "2020-12-31"), range(1, 9))
    b = daily([d for d in business("2020-12-21", "2020-12-31") if d.day not in (23, 24, 28)],
              [10, 11, 12, 13, 14])
    with pytest.raises(DataError) as info:
        align({"A": a, "B": b}, AlignOptions(align="ffill", fill_limit=2), source="etf/")
    assert str(info.value) == ('etf/: B has no bars for 3 consecutive sessions (2020-12-23 .. '
                               '2020-12-28), more than fill_limit = 2; set fill_limit = 3 or '
                               'more, or align = "drop"')


def test_ffill_at_the_start_of_the_range_uses_the_bar_before_it():
    a = daily(["2020-12-18", "2020-12-23"], [5, 6])  # no bar on the 21st and 22nd
    b = daily(business("2020-12-21", "2020-12-23"), [10, 11, 12])
    bars = align({"A": a, "B": b}, AlignOptions(align="ffill"))
    assert [d.day for d in bars.index] == [21, 22, 23]
    assert bars.values[:2, 0].tolist() == [[5, 5, 5, 5, 0], [5, 5, 5, 5, 0]]


def test_ffill_single_symbol_fills_missing_sessions():
    bars = align({"A": daily(["2020-12-21", "2020-12-23"], [5, 6])}, AlignOptions(align="ffill"))
    assert bars.values[:, 0].tolist() == [[4, 6, 3, 5, 100], [5, 5, 5, 5, 0], [5, 7, 4, 6, 100]]
    with pytest.raises(DataError, match=r"A has no bars for 1 consecutive sessions \(2020-12-22\)"):
        align({"A": daily(["2020-12-21", "2020-12-23"], [5, 6])},
              AlignOptions(align="ffill", fill_limit=0))


def test_ffill_refuses_bars_on_days_the_calendar_is_closed():
    a = daily(["2020-12-24", "2020-12-25", "2020-12-28"], [1, 2, 3])
    with pytest.raises(DataError, match=r"A has a bar on 2020-12-25, which is not a XNYS session "
                                        r"\(1 such bars\)"):
        align({"A": a, "B": daily(["2020-12-24", "2020-12-28"], [4, 5])},
              AlignOptions(align="ffill"))
    bars = align({"A": a, "B": daily(["2020-12-24", "2020-12-28"], [4, 5])},
                 AlignOptions(align="ffill", calendar=None))
    assert [d.day for d in bars.index] == [24, 25, 28]
    assert bars.values[1, 1].tolist() == [4, 4, 4, 4, 0]


def test_ffill_intraday_uses_the_union_of_timestamps():
    hours = pd.date_range("2020-01-02 14:00", periods=4, freq="h", tz="UTC")
    a = daily(hours, [1, 2, 3, 4])
    b = daily(hours.delete(2), [10, 11, 13])
    bars = align({"A": a, "B": b}, AlignOptions(align="ffill", fill_limit=1))
    assert str(bars.index.tz) == "UTC" and bars.intraday and len(bars) == 4
    assert bars.values[2, 1].tolist() == [11, 11, 11, 11, 0]
    with pytest.raises(DataError, match=r"B has no bars for 1 consecutive bars \(2020-01-02 16:00 "
                                        r"UTC\), more than fill_limit = 0"):
        align({"A": a, "B": b}, AlignOptions(align="ffill", fill_limit=0))


def test_align_refuses_what_cannot_be_one_panel():
    day = daily(["2020-01-02", "2020-01-03"], [1, 2])
    hour = daily(pd.date_range("2020-01-02 14:00", periods=2, freq="h", tz="UTC"), [1, 2])
    with pytest.raises(DataError, match=r"cannot put daily and intraday bars in one panel: "
                                        r"D \(daily\), H \(intraday\)"):
        align({"D": day, "H": hour}, AlignOptions())
    later = daily(["2020-02-03"], [1])
    with pytest.raises(DataError, match=r"the symbols share no dates: D ends on 2020-01-03, before "
                                        r"L starts on 2020-02-03"):
        align({"D": day, "L": later}, AlignOptions())
    with pytest.raises(DataError, match="no symbols to load"):
        align({}, AlignOptions())
    with pytest.raises(DataError, match=r"E has no bars"):
        align({"D": day, "E": day.iloc[:0]}, AlignOptions())


# ---------------------------------------------------------------------- calendar gaps
def test_missing_sessions_and_extra_rows_against_xnys():
    index = sample_data.load(["SPY"], "2020-01-01", "2020-12-31").index
    assert len(index) == 253
    assert missing_sessions(index, "XNYS").empty and extra_rows(index, "XNYS").empty
    holed = index.drop([pd.Timestamp("2020-03-16"), pd.Timestamp("2020-07-02")])
    assert list(missing_sessions(holed, "XNYS")) == [pd.Timestamp("2020-03-16"),
                                                      pd.Timestamp("2020-07-02")]
    padded = index.append(pd.DatetimeIndex(["2020-07-03", "2020-07-04"])).sort_values()
    assert list(extra_rows(padded, "XNYS")) == [pd.Timestamp("2020-07-03"),
                                                 pd.Timestamp("2020-07-04")]


def test_calendar_gaps_over_the_whole_spy_history():
    bars = rlbridge.plugins.feeds.csv.CsvFeed(
        rlbridge.plugins.feeds.csv.CsvFeed.Config(path=ETF)).load(["SPY"])
    assert bars.index[0] == pd.Timestamp("1993-01-29")
    assert missing_sessions(bars.index, "XNYS").empty and extra_rows(bars.index, "XNYS").empty
    assert list(missing_sessions(bars.index.delete(1), "XNYS")) == [pd.Timestamp("1993-02-01")]


def test_intraday_bars_count_for_the_session_of_their_local_date():
    index = pd.DatetimeIndex(["2020-12-23 15:00", "2020-12-28 15:00", "2020-12-29 01:00"],
                             tz="UTC")  # the last is 2020-12-28 20:00 in New York
    assert list(missing_sessions(index, "XNYS")) == [pd.Timestamp("2020-12-24")]
    assert extra_rows(index, "XNYS").empty
    assert len(extra_rows(pd.DatetimeIndex(["2020-12-25 15:00"], tz="UTC"), "XNYS")) == 1


# ---------------------------------------------------------------------- load_bars
@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(entrypoints=False, disabled=(), warn=False)


def test_load_bars_from_a_config(pm):
    config = config_from_mapping({"data": {"feed": "csv", "path": str(ETF),
                                           "symbols": ["SPY", "XLC"], "start": "2019-01-01",
                                           "end": "2019-12-31"}}, pm=pm)
    bars = load_bars(config, pm)
    assert bars.symbols == ("SPY", "XLC")
    assert (bars.index[0], bars.index[-1], len(bars)) == (pd.Timestamp("2019-01-02"),
                                                          pd.Timestamp("2019-12-31"), 252)
    other = load_bars(config, pm, symbols=["AGG"], start="2020-03-16", end="2020-03-16")
    assert other.symbols == ("AGG",) and list(other.index) == [pd.Timestamp("2020-03-16")]


def test_load_bars_from_a_toml_file_with_a_relative_path(pm, tmp_path):
    (tmp_path / "data").mkdir()
    btc = Path("/work/shared/data/intraday/BTCUSD-1h-coinbase.csv")
    (tmp_path / "data" / "btc.csv").write_bytes(btc.read_bytes())
    (tmp_path / "agent.toml").write_text(
        '[data]\nfeed = "csv"\npath = "data/btc.csv"\nnewest_first = true\nsort = true\n'
        'start = "2019-07-01"\ncolumns = { volume = "VolumeFrom" }\n')
    config = rlbridge.load_config(tmp_path / "agent.toml", pm)
    bars = load_bars(config, pm)
    assert bars.symbols == ("BTCUSD",) and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2019-07-01 00:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2019-07-04 01:00", tz="UTC")
    assert len(bars) == 74
    assert bars.values[-1, 0].tolist() == [11849.99, 11880.0, 11790.01, 11849.69, 303.61]


def test_load_bars_sample_feed_with_options(pm):
    config = config_from_mapping({"data": {"feed": "sample", "adjust": False,
                                           "symbols": ["SPY"]}}, pm=pm)
    bars = load_bars(config, pm, start="2020-03-16", end="2020-03-16")
    assert bars.values[0, 0].tolist() == [241.179993, 256.899994, 237.360001, 239.850006,
                                          297240000.0]


class StoreFeed:
    """A feed that reads the run's store: records the url it was given."""

    uses_store = True
    seen: list = []

    @dataclasses.dataclass(frozen=True)
    class Config(AlignOptions):
        url: str | None = None

    def __init__(self, config):
        StoreFeed.seen.append(config.url)

    def load(self, symbols=None, start=None, end=None):
        return Bars(pd.DatetimeIndex(["2020-01-02"]), ("X",), np.ones((1, 1, 5)))


class StorePlugin:
    @rlbridge.hookimpl
    def register_feeds(self, register):
        register("store_test", StoreFeed)
        register("broken_test", lambda options: types.SimpleNamespace(load=lambda *a: "rows"))


def test_load_bars_passes_the_store_url_to_store_feeds():
    pm = make_plugin_manager(entrypoints=False, disabled=(), warn=False)
    pm.register(StorePlugin(), name="store-test")
    StoreFeed.seen.clear()
    data = types.SimpleNamespace(feed="store_test", symbols=None, start=None, end=None, options={})
    config = types.SimpleNamespace(data=data, path=None)
    load_bars(config, pm, store_url="sqlite:///run.db")
    load_bars(config, pm)
    data.options = {"url": "sqlite:///mine.db"}
    load_bars(config, pm, store_url="sqlite:///run.db")
    assert StoreFeed.seen == ["sqlite:///run.db", None, "sqlite:///mine.db"]
    data.feed = "broken_test"
    with pytest.raises(DataError, match="feed 'broken_test' returned str, not Bars"):
        load_bars(config, pm)


def test_load_bars_option_errors_name_the_config_file(pm, tmp_path):
    path = tmp_path / "agent.toml"
    data = types.SimpleNamespace(feed="sample", symbols=None, start=None, end=None,
                                 options={"fill_limit": -2})
    with pytest.raises(ConfigError) as info:
        load_bars(types.SimpleNamespace(data=data, path=path), pm)
    assert str(info.value) == (f"{path}: [data.fill_limit]: must be a whole number of bars, "
                               f"0 or more, got -2")
    with pytest.raises(ConfigError, match=r"\[data\]: the config has no \[data\] table"):
        load_bars(types.SimpleNamespace(data=None, path=path), pm)

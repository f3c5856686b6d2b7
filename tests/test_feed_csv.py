"""The csv feed on the real files of ../shared/data and on small broken files written here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlbridge.errors import ConfigError, DataError
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.feeds import csv as csv_feed
from rlbridge.plugins.feeds.csv import CsvFeed

DATA = Path("/work/shared/data")
ETF = DATA / "etf-daily"
BTC = DATA / "intraday" / "BTCUSD-1h-coinbase.csv"
EURUSD = DATA / "intraday" / "EURUSD-1h.csv"
ORCL = DATA / "validation" / "orcl-1995-2014.txt"
HEADER = "Date,Open,High,Low,Close,Volume\n"


def feed(path, **options):
    return CsvFeed(CsvFeed.Config(path=path, **options))


def write(tmp_path, text, name="BAD.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error(path, **options):
    with pytest.raises(DataError) as info:
        feed(path, **options).load()
    return info.value


# ---------------------------------------------------------------------- the ETF folder
def test_folder_lists_one_symbol_per_file():
    assert feed(ETF).symbols() == ["AGG", "SPY", "XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP",
                                   "XLU", "XLV", "XLY"]


def test_single_symbol_returns_every_row_of_the_file_unadjusted():
    bars = feed(ETF).load(["SPY"])
    assert bars.shape == (8042, 1, 5)
    assert bars.values.dtype == np.float64
    assert bars.index.tz is None and not bars.intraday
    assert bars.index[0] == pd.Timestamp("1993-01-29")
    assert bars.index[-1] == pd.Timestamp("2025-01-07")
    row = bars.index.get_loc(pd.Timestamp("2008-10-10"))
    assert bars.values[row, 0].tolist() == [86.760002, 93.940002, 83.580002, 88.5, 871026300.0]
    row = bars.index.get_loc(pd.Timestamp("2020-03-16"))
    assert bars.values[row, 0].tolist() == [241.179993, 256.899994, 237.360001, 239.850006,
                                            297240000.0]


def test_bar_counts_per_symbol():
    f = feed(ETF)
    counts = {s: len(f.load([s])) for s in ("SPY", "AGG", "XLK", "XLC")}
    assert counts == {"SPY": 8042, "AGG": 5355, "XLK": 6552, "XLC": 1649}


def test_xlc_and_spy_drop_starts_when_xlc_starts():
    bars = feed(ETF).load(["SPY", "XLC"])
    assert bars.symbols == ("SPY", "XLC")
    assert bars.index[0] == pd.Timestamp("2018-06-19")
    assert len(bars) == 1649
    assert bars.values[0, 1].tolist() == [49.700001, 50.060001, 49.580002, 49.959999, 16600.0]
    assert bars.values[0, 0, 3] == 275.5


def test_start_and_end_are_inclusive():
    bars = feed(ETF).load(["SPY", "AGG"], start="2019-01-02", end="2020-09-30")
    assert bars.index[0] == pd.Timestamp("2019-01-02")
    assert bars.index[-1] == pd.Timestamp("2020-09-30")
    assert len(bars) == 441


def test_adjust_scales_prices_to_adj_close_and_volume_inversely():
    raw = feed(ETF).load(["SPY"]).frame("SPY").loc["2020-03-16"]
    adj = feed(ETF, adjust=True).load(["SPY"]).frame("SPY").loc["2020-03-16"]
    factor = 222.370773 / 239.850006
    assert adj["close"] == 222.370773
    assert adj["open"] == pytest.approx(241.179993 * factor, rel=1e-12)
    assert adj["high"] == pytest.approx(256.899994 * factor, rel=1e-12)
    assert adj["low"] == pytest.approx(237.360001 * factor, rel=1e-12)
    assert adj["volume"] == pytest.approx(297240000 / factor, rel=1e-12)
    assert raw["close"] == 239.850006


def test_unknown_symbol_lists_the_available_ones():
    with pytest.raises(DataError) as info:
        feed(ETF).load(["SPY", "XLQ"])
    message = str(info.value)
    assert message.startswith(f"{ETF}: no symbol 'XLQ'")
    assert "available: AGG, SPY, XLB, XLC, XLE, XLF, XLI, XLK, XLP, XLU, XLV, XLY" in message


def test_unknown_symbol_suggests_the_right_case():
    with pytest.raises(DataError, match=r"no symbol 'spy' \(did you mean 'SPY'\?\)"):
        feed(ETF).load(["spy"])


def test_a_symbol_without_bars_in_the_range_is_an_error():
    with pytest.raises(DataError, match=r"XLC has no bars between 2010-01-01 and 2011-01-01 "
                                        r"\(its file covers 2018-06-19 \.\. 2025-01-07\)"):
        feed(ETF).load(["XLC"], "2010-01-01", "2011-01-01")


def test_parsed_files_are_cached_on_the_feed(monkeypatch):
    calls = []
    real = csv_feed._read
    monkeypatch.setattr(csv_feed, "_read", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    f = feed(ETF)
    f.load(["SPY"])
    f.load(["SPY", "AGG"], start="2010-01-01")
    f.load(["AGG"])
    assert [p.name for p in calls] == ["SPY.csv", "AGG.csv"]


# ---------------------------------------------------------------------- BTC: newest first
BTC_OPTIONS = {"columns": {"volume": "VolumeFrom"}}


def test_btc_newest_first_without_the_option_tells_to_set_it():
    err = error(BTC, **BTC_OPTIONS)
    assert str(err) == (f"{BTC}, row 3, column 'Date': rows run newest first (2019-07-04 01:00 UTC "
                        f"on row 2 .. 2017-07-01 11:00 UTC on row 17584); set newest_first = true")
    assert (err.source, err.row, err.column) == (str(BTC), 3, "Date")


def test_btc_out_of_order_rows_are_found_even_with_newest_first():
    # the file holds five rows (2017-11-12 04:00 .. 08:00) placed out of newest-first order
    err = error(BTC, newest_first=True, **BTC_OPTIONS)
    assert str(err) == (f"{BTC}, row 14372, column 'Date': 2017-11-12 08:00 UTC comes after "
                        f"2017-11-12 03:00 UTC on row 14371, but newest_first = true says rows run "
                        f"newest first; set sort = true to sort the rows")


def test_btc_sorted_is_a_complete_hourly_utc_series():
    f = feed(BTC, sort=True, **BTC_OPTIONS)
    assert f.symbols() == ["BTCUSD"]
    bars = f.load()
    assert bars.shape == (17583, 1, 5)
    assert str(bars.index.tz) == "UTC" and bars.intraday
    assert bars.index[0] == pd.Timestamp("2017-07-01 11:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2019-07-04 01:00", tz="UTC")
    assert (np.diff(bars.index.asi8) == 3600 * 10**9).all()
    assert bars.values[0, 0].tolist() == [2505.56, 2513.38, 2495.12, 2509.17, 114.6]
    assert bars.values[-1, 0].tolist() == [11849.99, 11880.0, 11790.01, 11849.69, 303.61]
    both = feed(BTC, sort=True, newest_first=True, **BTC_OPTIONS).load()
    assert both.equals(bars)


def test_btc_row_numbers_stay_file_rows_after_sorting(tmp_path):
    lines = BTC.read_text().splitlines()
    lines[17000] = lines[17000].replace(",BTCUSD,", ",BTCUSD,,", 1).rsplit(",", 1)[0]
    broken = tmp_path / "btc.csv"
    broken.write_text("\n".join(lines) + "\n")
    err = error(broken, sort=True, **BTC_OPTIONS)
    assert (err.row, err.column) == (17001, "Open")
    assert "missing value" in str(err)
    err = error(broken, newest_first=True, **BTC_OPTIONS)  # the order error comes first
    assert err.row == 14372


# ---------------------------------------------------------------------- EURUSD: day first
def test_eurusd_without_dayfirst_fails_on_the_first_day_above_12():
    err = error(EURUSD)
    assert (err.row, err.column) == (220, "Time")
    assert str(err) == (f"{EURUSD}, row 220, column 'Time': cannot read '13.01.2017 00:00:00.000' "
                        f"as a date in the format of the first row ('01.01.2017 22:00:00.000' read "
                        f"as '%m.%d.%Y %H:%M:%S.%f'); set date_format or dayfirst = true")


def test_eurusd_dayfirst_and_date_format_agree():
    bars = feed(EURUSD, dayfirst=True, symbol="EURUSD").load()
    assert bars.symbols == ("EURUSD",)
    assert bars.shape == (6225, 1, 5) and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2017-12-29 21:00", tz="UTC")
    assert bars.values[0, 0].tolist() == [1.05236, 1.05253, 1.05221, 1.05227, 143539993.3]
    assert bars.values[-1, 0].tolist() == [1.19984, 1.2013, 1.19931, 1.20075, 4885529785.0]
    formatted = feed(EURUSD, date_format="%d.%m.%Y %H:%M:%S.%f", symbol="EURUSD").load()
    assert formatted.equals(bars)


def test_timezone_moves_naive_times_to_utc():
    bars = feed(EURUSD, dayfirst=True, timezone="Europe/Zurich").load()
    assert bars.symbols == ("EURUSD-1h",)
    assert bars.index[0] == pd.Timestamp("2017-01-01 21:00", tz="UTC")  # CET = UTC+1 in winter
    july = bars.frame("EURUSD-1h").loc["2017-07-03 06:00"]  # 08:00 CEST
    assert july.tolist() == [1.13949, 1.13951, 1.13773, 1.13792, 12158570313.0]  # file row 3133


# ---------------------------------------------------------------------- ORCL: one-symbol file
def test_orcl_volume_before_adj_close():
    f = feed(ORCL, symbol="ORCL")
    assert f.symbols() == ["ORCL"]
    bars = f.load()
    assert bars.shape == (5036, 1, 5)
    assert bars.values[0, 0].tolist() == [44.12, 44.38, 42.87, 42.87, 36301200.0]
    assert bars.values[-1, 0].tolist() == [45.45, 45.56, 44.97, 44.97, 13269200.0]
    adjusted = feed(ORCL, symbol="ORCL", adjust=True).load()
    assert adjusted.values[0, 0, 3] == 2.00
    assert adjusted.values[0, 0, 0] == pytest.approx(44.12 * 2.00 / 42.87, rel=1e-12)
    assert feed(ORCL).symbols() == ["orcl-1995-2014"]


# ---------------------------------------------------------------------- long files
def test_long_file_with_interleaved_symbols(tmp_path):
    path = write(tmp_path, """
        date,ticker,open,high,low,close,volume,note
        2020-01-02,AAA,10,11,9,10.5,100,x
        2020-01-02,BBB,20,21,19,20.5,200,y
        2020-01-03,AAA,10.5,12,10,11,110,x
        2020-01-03,BBB,20.5,22,20,21,210,y
        2020-01-06,BBB,21,22,20,21.5,220,y
    """, name="prices.csv")
    f = feed(path)
    assert f.symbols() == ["AAA", "BBB"]
    bars = f.load(["BBB", "AAA"])
    assert bars.symbols == ("BBB", "AAA")
    assert list(bars.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert bars.values[:, 0, 3].tolist() == [20.5, 21.0]
    assert len(f.load(["BBB"])) == 3


def test_long_file_errors_name_the_file_row_of_that_symbol(tmp_path):
    path = write(tmp_path, """
        Date,Symbol,Open,High,Low,Close,Volume
        2020-01-02,AAA,10,11,9,10.5,100
        2020-01-02,BBB,20,21,19,20.5,200
        2020-01-02,AAA,10.5,12,10,11,110
    """, name="long.csv")
    err = error(path)
    assert str(err) == (f"{path}, row 4, column 'Date': duplicate timestamp 2020-01-02 "
                        f"(also on row 2)")
    assert len(feed(path).load(["BBB"])) == 1


def test_symbol_option_on_a_long_file_is_a_config_error(tmp_path):
    path = write(tmp_path, "Date,Symbol,Open,High,Low,Close,Volume\n2020-01-02,A,1,1,1,1,1\n")
    with pytest.raises(ConfigError, match="symbol names the symbol of a one-symbol file"):
        feed(path, symbol="X").load()


# ---------------------------------------------------------------------- bad files
def test_missing_column_lists_the_columns_found(tmp_path):
    path = write(tmp_path, "Date,Open,High,Low,Last,Volume\n2020-01-02,1,2,0.5,1.5,100\n")
    err = error(path)
    assert str(err) == (f"{path}, row 1, column 'close': missing column 'close'; columns found: "
                        f"Date, Open, High, Low, Last, Volume; map another header to it with "
                        f"columns.close")
    bars = feed(path, columns={"close": "Last"}).load()
    assert bars.close[0, 0] == 1.5


def test_mapped_column_absent_from_the_file(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-02,1,2,0.5,1.5,100\n")
    err = error(path, columns={"volume": "Vol"})
    assert (err.row, err.column) == (1, "Vol")
    assert "no column 'Vol' (columns.volume)" in str(err)


def test_adjust_without_an_adjusted_column(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-02,1,2,0.5,1.5,100\n")
    err = error(path, adjust=True)
    assert str(err).startswith(f"{path}, row 1, column 'Adj Close': missing column 'Adj Close' "
                               f"(needed by adjust = true)")


@pytest.mark.parametrize(("body", "row", "column", "message"), [
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-0X,1,2,0.5,1.5,100\n", 3, "Date",
     "cannot read '2020-01-0X' as a date in the format of the first row ('2020-01-02' read as "
     "'%Y-%m-%d'); set date_format or dayfirst = true"),
    ("2020-01-02,1,2,0.5,1.5,100\n,1,2,0.5,1.5,100\n", 3, "Date", "missing date"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,100\n",
     4, "Date", "duplicate timestamp 2020-01-03 (also on row 3)"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-06,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,100\n",
     4, "Date", "2020-01-03 comes before 2020-01-06 on row 3; rows must run oldest first "
     "(set sort = true to sort them)"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,,100\n", 3, "Close",
     "missing value (empty or NaN)"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,null,0.5,1.5,100\n", 3, "High",
     "missing value (empty or NaN)"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,abc\n", 3, "Volume",
     "cannot read 'abc' as a number"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,inf,1.5,100\n", 3, "Low",
     "not a finite number: inf"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,0,2,0.5,1.5,100\n", 3, "Open",
     "open must be positive, got 0"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,-0.5,1.5,100\n", 3, "Low",
     "low must be positive, got -0.5"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,0.4,0.5,1.5,100\n", 3, "High",
     "high 0.4 is below low 0.5"),
    ("2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,-1\n", 3, "Volume",
     "volume must not be negative, got -1"),
])
def test_bad_rows_name_file_row_and_column(tmp_path, body, row, column, message):
    path = write(tmp_path, HEADER + body)
    err = error(path)
    assert str(err) == f"{path}, row {row}, column {column!r}: {message}"
    assert (err.source, err.row, err.column) == (str(path), row, column)


def test_blank_lines_keep_spreadsheet_row_numbers(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-02,1,2,0.5,1.5,100\n\n\n2020-01-03,1,2,0.5,-1,100\n\n")
    err = error(path)
    assert (err.row, err.column) == (5, "Close")
    good = write(tmp_path, HEADER + "2020-01-02,1,2,0.5,1.5,100\n\n2020-01-03,1,2,0.5,1,100\n\n",
                 name="GOOD.csv")
    assert len(feed(good).load()) == 2


def test_newest_first_rows_are_reported_by_file_row(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-06,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,100\n"
                                    "2020-01-02,1,0.1,0.5,1.5,100\n")
    err = error(path, newest_first=True)
    assert (err.row, err.column) == (4, "High")
    ascending = write(tmp_path, HEADER + "2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,1.5,100\n",
                      name="UP.csv")
    err = error(ascending, newest_first=True)
    assert "rows run oldest first" in str(err) and "remove newest_first" in str(err)


def test_sort_reports_the_later_duplicate_and_first_bad_file_row(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-06,1,2,0.5,1.5,100\n2020-01-02,1,2,0.5,1.5,100\n"
                                    "2020-01-06,1,2,0.5,1.5,100\n")
    err = error(path, sort=True)
    assert str(err) == (f"{path}, row 4, column 'Date': duplicate timestamp 2020-01-06 "
                        f"(also on row 2)")
    path = write(tmp_path, HEADER + "2020-01-07,1,2,0.5,-1.5,100\n2020-01-02,1,2,0.5,1.5,100\n"
                                    "2020-01-03,-1,2,0.5,1.5,100\n", name="S.csv")
    err = error(path, sort=True)
    assert (err.row, err.column) == (2, "Close")
    bars = feed(write(tmp_path, HEADER + "2020-01-06,1,2,0.5,1.6,100\n2020-01-02,1,2,0.5,1.5,100\n",
                      name="T.csv"), sort=True).load()
    assert bars.close[:, 0].tolist() == [1.5, 1.6]


def test_empty_file_header_only_and_missing_path(tmp_path):
    empty = write(tmp_path, "", name="E.csv")
    assert str(error(empty)) == f"{empty}, row 1: empty file: no header row"
    header = write(tmp_path, HEADER, name="H.csv")
    assert str(error(header)) == f"{header}, row 2: the file has a header but no rows"
    missing = tmp_path / "nope"
    assert str(error(missing)) == f"{missing}: no such file or folder"
    folder = tmp_path / "folder"
    folder.mkdir()
    assert str(error(folder)) == f"{folder}: no files matching '*.csv' in this folder"


def test_malformed_files_name_the_row(tmp_path):
    quote = write(tmp_path, HEADER + '2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1,2,0.5,"1.5,100\n'
                                     '2020-01-06,1,2,0.5,1.5,100\n', name="Q.csv")
    assert str(error(quote)) == (f"{quote}, row 3: malformed CSV: a quote opened on this row is "
                                 f"never closed")
    binary = tmp_path / "B.csv"
    binary.write_bytes(HEADER.encode() + b"2020-01-02,1,2,0.5,1.5,100\n\xff\xfe,1,2,3\n")
    assert str(error(binary)) == f"{binary}, row 3: not UTF-8 text (save the file as UTF-8)"
    semi = write(tmp_path, HEADER.replace(",", ";") + "2020-01-02;1;2;0.5;1.5;100\n", name="S.csv")
    assert str(error(semi)).endswith("the file does not separate its columns with commas; "
                                     "save it as CSV")
    bom = tmp_path / "BOM.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + HEADER.replace("\n", "\r\n").encode()
                    + b"2020-01-02,1,2,0.5,1.5,100\r\n")
    assert feed(bom).load().values.tolist() == [[[1.0, 2.0, 0.5, 1.5, 100.0]]]


def test_ambiguous_and_missing_local_times(tmp_path):
    # New York, 2020-11-01: 01:00 and 01:30 happen twice; in order, the rows tell which is which
    path = write(tmp_path, HEADER + "".join(
        f"2020-11-01 {t},1,2,0.5,1.5,100\n" for t in ("00:30", "01:00", "01:30", "01:00", "01:30",
                                                      "02:00")))
    bars = feed(path, timezone="America/New_York").load()
    assert [t.strftime("%H:%M") for t in bars.index] == ["04:30", "05:00", "05:30", "06:00",
                                                          "06:30", "07:00"]
    spring = write(tmp_path, HEADER + "2020-03-08 01:30,1,2,0.5,1.5,100\n"
                                      "2020-03-08 02:30,1,2,0.5,1.5,100\n", name="S.csv")
    err = error(spring, timezone="America/New_York")
    assert str(err) == (f"{spring}, row 3, column 'Date': 2020-03-08 02:30:00 does not exist in "
                        f"America/New_York (the clocks jumped forward)")


def test_offsets_in_the_file_become_utc(tmp_path):
    path = write(tmp_path, HEADER + "2020-01-02T09:30:00-05:00,1,2,0.5,1.5,100\n"
                                    "2020-01-02T10:30:00-05:00,1,2,0.5,1.5,100\n")
    bars = feed(path).load()
    assert list(bars.index) == [pd.Timestamp("2020-01-02 14:30", tz="UTC"),
                                pd.Timestamp("2020-01-02 15:30", tz="UTC")]


# ---------------------------------------------------------------------- options and registration
@pytest.mark.parametrize(("options", "key", "text"), [
    ({"columns": {"closing": "Last"}}, "columns.closing", "unknown column 'closing'"),
    ({"timezone": "America/New_Yrok"}, "timezone", "close names: America/New_York"),
    ({"date_format": "YYYY-MM-DD"}, "date_format", "expected a strftime format"),
    ({"fill_limit": -1}, "fill_limit", "0 or more, got -1"),
    ({"calendar": "NYSEE"}, "calendar", "unknown exchange calendar 'NYSEE'"),
])
def test_bad_options_are_config_errors(tmp_path, options, key, text):
    with pytest.raises(ConfigError) as info:
        CsvFeed.Config(path=tmp_path, **options)
    assert info.value.key == key
    assert text in str(info.value)


def test_registered_with_relative_path_resolved_against_the_config_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "AAA.csv").write_text(HEADER + "2020-01-02,1,2,0.5,1.5,100\n")
    registry = make_plugin_manager(entrypoints=False, disabled=(), warn=False).registries["feeds"]
    assert "CSV files" in registry.info("csv").description
    f = registry.create("csv", {"path": "data"}, where="data", path=tmp_path / "agent.toml")
    assert f.config.path == tmp_path / "data"
    assert f.load().symbols == ("AAA",)
    with pytest.raises(ConfigError, match=r"\[data.paht\]: unknown key 'paht'"):
        registry.create("csv", {"paht": "data"}, where="data", path=tmp_path / "agent.toml")


def test_plugin_modules_import_no_pandas_or_numpy():
    code = ("import sys, rlbridge.plugins.feeds.csv, rlbridge.plugins.feeds.sample; "
            "print(sorted(m for m in ('pandas', 'numpy', 'exchange_calendars') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The ``sql`` feed: the store read back as aligned Bars, equal to what the other feeds give."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.data import AlignOptions, DroppedBarsWarning, load_bars
from rlbridge.errors import ConfigError, DataError, StoreError
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.feeds.sql import SqlFeed
from rlbridge.store import open_store

DATA = Path("/work/shared/data")


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory, pm):
    """A store holding the 12 sample ETFs (raw, one symbol at a time) and EUR/USD hourly."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sql') / 'store.db'}"
    sample = pm.registries["feeds"].create("sample", {})
    eurusd = pm.registries["feeds"].create("csv", {
        "path": DATA / "intraday" / "EURUSD-1h.csv", "dayfirst": True, "symbol": "EURUSD"})
    with open_store(url) as store, store.ingest(feed="sample") as batch:
        for symbol in sample_data.SYMBOLS:
            batch.write(sample.load([symbol]))
        batch.write(eurusd.load())
    return url


def sql_feed(pm, **options):
    return pm.registries["feeds"].create("sql", options)


def test_registered_with_align_options_and_store_flag(pm):
    entry = pm.registries["feeds"].info("sql")
    assert entry.factory is SqlFeed and entry.plugin == "rlbridge.plugins.feeds.sql"
    assert SqlFeed.uses_store is True
    assert issubclass(SqlFeed.Config, AlignOptions)
    config = SqlFeed.Config()
    assert (config.url, config.interval, config.calendar, config.align, config.fill_limit) == \
        (None, "1d", "XNYS", "drop", 5)


def test_store_round_trip_equals_the_sample_feed(pm, sample_url):
    symbols = ["SPY", "AGG", "XLK"]
    from_store = sql_feed(pm, url=sample_url).load(symbols, "2019-01-01", "2020-09-30")
    direct = sample_data.load(symbols, start="2019-01-01", end="2020-09-30")
    assert from_store.symbols == ("SPY", "AGG", "XLK")
    assert from_store.shape == (252 + 189, 3, 5)  # NYSE sessions of 2019 and 2020-01..09
    assert from_store.equals(direct)  # bit for bit
    assert from_store.digest() == direct.digest()


def test_every_symbol_aligned_with_drop_starts_with_xlc(pm, sample_url):
    bars = sql_feed(pm, url=sample_url).load()
    assert bars.symbols == tuple(sorted(sample_data.SYMBOLS))
    assert bars.index[0] == pd.Timestamp("2018-06-19") and len(bars) == 640
    assert bars.equals(sample_data.load(sorted(sample_data.SYMBOLS)))


def test_ffill_over_a_removed_session(pm, tmp_path):
    url = f"sqlite:///{tmp_path / 'gap.db'}"
    sample = pm.registries["feeds"].create("sample", {})
    spy = sample.load(["SPY"], "2020-03-02", "2020-03-31")
    agg = sample.load(["AGG"], "2020-03-02", "2020-03-31")
    keep = agg.index != pd.Timestamp("2020-03-16")
    with open_store(url) as store:
        store.write_bars(spy)
        store.write_bars(type(agg)(agg.index[keep], agg.symbols, agg.values[keep]))
    with pytest.warns(DroppedBarsWarning, match="the first 2020-03-16 .missing for AGG."):
        dropped = sql_feed(pm, url=url).load(["SPY", "AGG"])
    assert len(dropped) == 21 and pd.Timestamp("2020-03-16") not in dropped.index
    filled = sql_feed(pm, url=url, align="ffill").load(["SPY", "AGG"])
    assert len(filled) == 22
    row = filled.index.get_loc(pd.Timestamp("2020-03-16"))
    close_before = agg.values[agg.index.get_loc(pd.Timestamp("2020-03-13")), 0, 3]
    assert np.array_equal(filled.values[row, 1], [close_before] * 4 + [0.0])
    with pytest.raises(DataError, match="AGG has no bars for 1 consecutive sessions .2020-03-16."):
        sql_feed(pm, url=url, align="ffill", fill_limit=0).load(["SPY", "AGG"])


def test_intraday_interval(pm, sample_url):
    feed = sql_feed(pm, url=sample_url, interval="1h", calendar="none")
    assert feed.symbols() == ["EURUSD"]
    bars = feed.load(["EURUSD"], "2017-11-03 20:00", "2017-11-06 00:00")
    assert bars.intraday and str(bars.index.tz) == "UTC"
    assert list(bars.index.strftime("%m-%d %H:%M")) == ["11-03 20:00", "11-05 22:00", "11-05 23:00",
                                                         "11-06 00:00"]


def test_symbols_lists_the_store_per_interval(pm, sample_url):
    assert sql_feed(pm, url=sample_url).symbols() == sorted(sample_data.SYMBOLS)
    assert sql_feed(pm, url=sample_url, interval="5m").symbols() == []


def test_unknown_symbol_lists_what_the_store_has(pm, sample_url):
    with pytest.raises(StoreError) as info:
        sql_feed(pm, url=sample_url).load(["SPY", "QQQ"])
    assert str(info.value) == (f"{sample_url}: no 1d bars for QQQ; the store has 1d bars for "
                               "AGG, SPY, XLB, XLC, XLE, XLF, XLI, XLK, XLP, XLU, XLV, XLY")


def test_no_bars_in_the_range_names_what_is_stored(pm, sample_url):
    with pytest.raises(DataError) as info:
        sql_feed(pm, url=sample_url).load(["SPY", "XLC"], "2010-01-01", "2010-12-31")
    assert str(info.value) == (f"{sample_url}: no 1d bars of XLC between 2010-01-01 and "
                               "2010-12-31 (XLC has 2018-06-19 .. 2020-12-31)")


def test_load_bars_gives_the_feed_the_runs_store(pm, sample_url, tmp_path):
    config = config_from_mapping(
        {"data": {"feed": "sql", "symbols": ["XLE", "XLU"], "start": "2020-01-01",
                  "end": "2020-06-30"}},
        path=tmp_path / "agent.toml", pm=pm)
    bars = load_bars(config, pm, store_url=sample_url)
    assert bars.symbols == ("XLE", "XLU") and len(bars) == 125
    assert bars.equals(sample_data.load(["XLE", "XLU"], start="2020-01-01", end="2020-06-30"))


def test_a_missing_store_is_a_store_error(pm, tmp_path):
    feed = sql_feed(pm, url=f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
    with pytest.raises(StoreError, match="the folder .*nowhere does not exist"):
        feed.load(["SPY"])


def test_options_are_checked(pm, tmp_path):
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"data": {"feed": "sql", "urll": "sqlite:///x.db"}},
                            path=tmp_path / "agent.toml", pm=pm)
    assert "unknown key 'urll' (did you mean 'url'?)" in str(info.value)
    with pytest.raises(ConfigError, match=r"\[align\]: 'fill' is not one of 'drop', 'ffill'"):
        sql_feed(pm, align="fill")


def test_repr_masks_the_password(pm):
    feed = sql_feed(pm, url="postgresql://trader:hunter2@db/bars")
    assert repr(feed) == "SqlFeed(url='postgresql://trader:***@db/bars', interval='1d')"


def test_module_import_is_cheap():
    code = ("import sys, rlbridge.plugins.feeds.sql\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'sqlalchemy', 'exchange_calendars') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

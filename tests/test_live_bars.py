"""The live run's bars: appended in place as they arrive, never changing a panel handed out."""

from __future__ import annotations

import numpy as np
import pytest

from rlbridge import Bars
from rlbridge.config import config_from_mapping
from rlbridge.data import load_bars
from rlbridge.errors import DataError
from rlbridge.live.bars import BarBuffer, LiveBars


def part(bars: Bars, lo: int, hi: int) -> Bars:
    return Bars(bars.index[lo:hi], bars.symbols, bars.values[lo:hi])


def test_appends_match_the_whole_panel_and_earlier_views_never_change(sample_bars: Bars) -> None:
    buffer = BarBuffer(part(sample_bars, 0, 100), spare=8)  # outgrows its room several times
    views = [buffer.bars]
    for lo in range(100, len(sample_bars), 37):
        assert buffer.extend(part(sample_bars, lo - 1, lo + 37)) == min(37, len(sample_bars) - lo)
        views.append(buffer.bars)
    assert buffer.bars.equals(sample_bars)
    assert buffer.bars.index.name == sample_bars.index.name
    for view in views:  # each view is still exactly the first rows of the data
        assert view.equals(part(sample_bars, 0, len(view)))
        with pytest.raises(ValueError, match="read-only"):
            view.values[0, 0, 0] = 1.0


def test_rows_already_held_are_not_new(sample_bars: Bars) -> None:
    buffer = BarBuffer(part(sample_bars, 0, 50))
    assert buffer.extend(part(sample_bars, 45, 50)) == 0
    assert buffer.extend(part(sample_bars, 49, 49)) == 0
    assert len(buffer) == 50 and buffer.bars.equals(part(sample_bars, 0, 50))


def test_a_revised_bar_replaces_it_and_what_follows(sample_bars: Bars) -> None:
    buffer = BarBuffer(part(sample_bars, 0, 60))
    before = buffer.bars
    values = sample_bars.values[58:62].copy()
    values[1, 0, 3] *= 1.01  # row 59, the last held, comes back with another close
    revised = Bars(sample_bars.index[58:62], sample_bars.symbols, values)
    assert buffer.extend(revised) == 3  # row 59 again, then 60 and 61
    assert buffer.bars.values[59, 0, 3] == values[1, 0, 3]
    assert np.array_equal(buffer.bars.values[:59], sample_bars.values[:59])
    assert np.array_equal(buffer.bars.values[60:62], sample_bars.values[60:62])
    assert before.equals(part(sample_bars, 0, 60))  # the panel handed out before is intact


def test_new_bars_of_other_symbols_or_before_the_history_are_errors(sample_bars: Bars) -> None:
    buffer = BarBuffer(part(sample_bars, 10, 50))
    with pytest.raises(DataError, match="new bars are of AGG, SPY, XLK; the live run trades "
                                        "SPY, AGG, XLK"):
        buffer.extend(part(sample_bars, 50, 52).select(["AGG", "SPY", "XLK"]))
    with pytest.raises(DataError, match="start at 2019-01-02.*before the history's first bar"):
        buffer.extend(part(sample_bars, 0, 52))
    assert buffer.bars.equals(part(sample_bars, 10, 50))  # nothing half-applied


def test_live_bars_read_only_what_is_new_from_the_store(sample_bars: Bars, rlbridge_store,
                                                       rlbridge_db_url: str) -> None:
    rlbridge_store.write_bars(part(sample_bars, 0, 300))
    config = config_from_mapping({"data": {"feed": "sql", "symbols": list(sample_bars.symbols)}})
    source = LiveBars(config, None, store_url=rlbridge_db_url)
    try:
        assert source.load().equals(part(sample_bars, 0, 300))
        assert source.refresh() == 0
        reads = []
        since = source.feed.load_since
        source.feed.load_since = lambda *a: reads.append(a) or since(*a)
        for hi in (301, 302, 340, len(sample_bars)):
            rlbridge_store.write_bars(part(sample_bars, 300, hi))
            source.refresh()
            assert source.bars.equals(part(sample_bars, 0, hi))
        # each read starts at the last bar held, not at the start of the history
        assert [a[1] for a in reads] == [sample_bars.index[i] for i in (299, 300, 301, 339)]
        assert source.bars.equals(load_bars(config, store_url=rlbridge_db_url))
    finally:
        source.close()


def sql_feed(url: str, **options):
    from rlbridge.plugins.feeds.sql import SqlFeed

    return SqlFeed(SqlFeed.Config(url=url, **options))


def test_the_sql_feeds_fast_read_is_its_load_when_nothing_needs_aligning(
        sample_bars: Bars, rlbridge_store, rlbridge_db_url: str) -> None:
    rlbridge_store.write_bars(part(sample_bars, 0, 120))
    symbols = ["XLK", "SPY", "AGG"]  # not the store's (sorted) order
    start = sample_bars.index[100]
    for options in ({}, {"align": "ffill"}):
        with sql_feed(rlbridge_db_url, **options) as feed:
            fast = feed.load_since(symbols, start)
            assert fast is not None and fast.symbols == tuple(symbols)
            assert fast.equals(feed.load(symbols, start))
            assert len(fast) == 20


def test_the_fast_read_declines_rows_that_need_aligning(sample_bars: Bars, rlbridge_store,
                                                       rlbridge_db_url: str) -> None:
    rlbridge_store.write_bars(part(sample_bars, 0, 100))
    # the next bar of SPY and AGG is stored, XLK's not yet
    rlbridge_store.write_bars(part(sample_bars, 100, 101).select(["SPY", "AGG"]))
    symbols = list(sample_bars.symbols)
    with sql_feed(rlbridge_db_url) as feed:
        assert feed.load_since(symbols, sample_bars.index[99]) is None
        assert feed.load_since(symbols, sample_bars.index[101]) is None  # nothing at all
    # a session with no bar at all: ffill against the calendar fills it, so load must
    rlbridge_store.write_bars(part(sample_bars, 102, 103))
    with sql_feed(rlbridge_db_url, align="ffill") as feed:
        assert feed.load_since(symbols, sample_bars.index[99]) is None
        filled = feed.load(symbols, sample_bars.index[99])
        assert list(filled.index) == list(sample_bars.index[99:103])
    with sql_feed(rlbridge_db_url) as feed:  # drop: rows 99 and 102 are a full panel
        fast = feed.load_since(symbols, sample_bars.index[101])
        assert fast is not None and list(fast.index) == [sample_bars.index[102]]


def test_live_bars_take_a_partly_stored_bar_once_every_symbol_has_it(
        sample_bars: Bars, rlbridge_store, rlbridge_db_url: str) -> None:
    rlbridge_store.write_bars(part(sample_bars, 0, 100))
    config = config_from_mapping({"data": {"feed": "sql", "symbols": list(sample_bars.symbols),
                                           "align": "ffill"}})
    with LiveBars(config, None, store_url=rlbridge_db_url) as source:
        source.load()
        rlbridge_store.write_bars(part(sample_bars, 100, 101).select(["SPY", "AGG"]))
        assert source.refresh() == 0  # a panel ends where every symbol has bars
        rlbridge_store.write_bars(part(sample_bars, 100, 101).select(["XLK"]))
        assert source.refresh() == 1
        assert source.bars.equals(part(sample_bars, 0, 101))

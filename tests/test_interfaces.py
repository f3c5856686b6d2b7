"""Bars invariants and conversions; the Strategy base class."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import rlbridge
from rlbridge import Bars, DataError, Strategy


def panel(days=4, symbols=("AAA", "BBB")):
    index = pd.date_range("2020-01-06", periods=days, freq="B")
    values = np.arange(days * len(symbols) * 5, dtype=float).reshape(days, len(symbols), 5) + 1.0
    return Bars(index, symbols, values)


def test_bars_are_read_only_float64_and_copied_from_the_input():
    values = np.ones((2, 1, 5), dtype=np.float32)
    bars = Bars(pd.to_datetime(["2020-01-02", "2020-01-03"]), ["X"], values)
    assert bars.values.dtype == np.float64 and not bars.values.flags.writeable
    writable = np.ones((2, 1, 5))
    bars = Bars(pd.to_datetime(["2020-01-02", "2020-01-03"]), ("X",), writable)
    writable[0, 0, 0] = 99.0  # the caller's array stays theirs
    assert bars.values[0, 0, 0] == 1.0
    with pytest.raises(ValueError):
        bars.values[0, 0, 0] = 5.0


@pytest.mark.parametrize("index, symbols, shape, message", [
    (["2020-01-03", "2020-01-02"], ("X",), (2, 1, 5), "sorted and unique"),
    (["2020-01-02", "2020-01-02"], ("X",), (2, 1, 5), "sorted and unique"),
    (["2020-01-02", "2020-01-03"], ("X", "X"), (2, 2, 5), "duplicate symbols"),
    (["2020-01-02", "2020-01-03"], ("X",), (2, 1, 4), r"shape \[T, N, 5\], got \(2, 1, 4\)"),
    (["2020-01-02"], ("X",), (2, 1, 5), "1 timestamps but 2 rows"),
    (["2020-01-02", "2020-01-03"], ("X", "Y"), (2, 1, 5), "2 symbols but 1 columns"),
])
def test_bars_refuse_broken_panels(index, symbols, shape, message):
    with pytest.raises(DataError, match=message):
        Bars(pd.to_datetime(index), symbols, np.ones(shape))


def test_bars_refuse_nan_naming_symbol_field_and_time():
    values = np.ones((3, 2, 5))
    values[2, 1, 3] = np.nan
    with pytest.raises(DataError, match=r"BBB has a missing or infinite close at 2020-01-08"):
        Bars(pd.date_range("2020-01-06", periods=3), ("AAA", "BBB"), values)


def test_intraday_index_is_utc_and_daily_is_naive():
    local = pd.date_range("2020-01-06 09:30", periods=3, freq="h", tz="America/New_York")
    bars = Bars(local, ("X",), np.ones((3, 1, 5)))
    assert bars.intraday and str(bars.index.tz) == "UTC" and bars.index[0].hour == 14
    assert not panel().intraday and panel().index.name == "date"


def test_fields_between_select_and_frames():
    bars = panel()
    assert bars.close[:, 1].tolist() == [9.0, 19.0, 29.0, 39.0]
    assert bars.open[0].tolist() == [1.0, 6.0]
    with pytest.raises(KeyError, match="unknown bar field 'adj'"):
        bars.field("adj")
    window = bars.between("2020-01-07", "2020-01-08")
    assert list(window.index.strftime("%m-%d")) == ["01-07", "01-08"]
    assert np.shares_memory(window.values, bars.values)
    swapped = bars.select(["BBB", "AAA"])
    assert swapped.symbols == ("BBB", "AAA") and swapped.close[0].tolist() == [9.0, 4.0]
    with pytest.raises(DataError, match="symbols not in these bars: ZZZ; have AAA, BBB"):
        bars.select(["ZZZ"])
    long = bars.to_frame()
    assert list(long.columns) == ["date", "symbol", *rlbridge.FIELDS]
    assert long.iloc[3].tolist()[1:] == ["BBB", 16.0, 17.0, 18.0, 19.0, 20.0]
    assert bars.frame("AAA")["volume"].tolist() == [5.0, 15.0, 25.0, 35.0]


def test_digest_changes_with_any_value_symbol_or_time():
    bars = panel()
    assert bars.digest() == panel().digest()
    changed = bars.values.copy()
    changed[-1, -1, -1] += 1e-9
    assert Bars(bars.index, bars.symbols, changed).digest() != bars.digest()
    assert bars.select(["BBB", "AAA"]).digest() != bars.digest()
    shifted = Bars(bars.index + pd.Timedelta(days=7), bars.symbols, bars.values)
    assert shifted.digest() != bars.digest()
    assert bars.equals(panel()) and not bars.equals(shifted)


def test_repr_names_size_symbols_and_span():
    assert repr(panel()) == "Bars(4 x 2 [AAA, BBB], 2020-01-06 .. 2020-01-09)"


def test_strategy_takes_mapping_dataclass_or_keywords():
    @dataclass(frozen=True)
    class Options:
        lookback: int = 20

    assert Strategy().params == {}
    assert Strategy({"lookback": 5}).params == {"lookback": 5}
    assert Strategy(Options(lookback=7)).params == {"lookback": 7}
    assert Strategy(lookback=3).params == {"lookback": 3}
    with pytest.raises(TypeError, match="Strategy options must be a mapping or a dataclass, got int"):
        Strategy(3)


def test_a_strategy_without_its_own_init_is_built_by_the_registry():
    class Rule(Strategy):
        pass

    class Plugin:
        @rlbridge.hookimpl
        def register_strategies(self, register):
            register("rule", Rule)

    pm = rlbridge.make_plugin_manager(builtins=False, entrypoints=False, warn=False)
    pm.register(Plugin(), name="rule-plugin")
    rule = pm.registries["strategies"].create("rule", {"lookback": 10})
    assert isinstance(rule, Rule) and rule.params == {"lookback": 10}

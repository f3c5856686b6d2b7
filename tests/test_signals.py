"""Signals export: one row per session and symbol, dated for the session it trades in, appended
day by day, readable as a factor series and as one column per asset."""

import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.errors import ConfigError
from rlbridge.manager import make_plugin_manager
from rlbridge.signals import read_signals, signals, write_signals

PM = make_plugin_manager(entrypoints=False, warn=False)
SYMBOLS = ["SPY", "AGG", "XLK"]


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2020-01-02", end="2020-09-30")


def config(strategy, end="2020-09-30", **backtest):
    return config_from_mapping({
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2020-01-02", "end": end},
        "strategy": strategy,
        "backtest": {"cash": 100_000, "start": "2020-06-01", "end": end, **backtest},
    }, pm=PM)


def test_equal_weight_signals_cover_every_session_up_to_the_next_one(bars):
    frame = signals(config({"name": "equal_weight", "rebalance": 21}), PM, bars=bars)
    assert list(frame.columns) == ["date", "symbol", "weight", "as_of"]
    sessions = bars.between("2020-06-01", None).index
    # decided after each close from 2020-06-01; each row is for the following session
    assert frame["as_of"].unique().tolist() == sessions.tolist()
    assert frame["date"].unique().tolist() == [*sessions[1:], pd.Timestamp("2020-10-01")]
    assert frame["weight"].tolist() == pytest.approx([1 / 3] * len(frame))
    assert frame["symbol"].tolist()[:3] == SYMBOLS


def test_a_share_order_strategy_gets_the_weights_its_book_is_heading_for(bars):
    frame = signals(config({"name": "buy_and_hold", "symbol": "XLK"}), PM, bars=bars)
    first = frame[frame["as_of"] == pd.Timestamp("2020-06-01")].set_index("symbol")["weight"]
    assert first.to_dict() == {"SPY": 0.0, "AGG": 0.0, "XLK": 1.0}  # the target itself
    # buy_and_hold never trades again: its target stays for every later session
    assert (frame[frame["symbol"] == "XLK"]["weight"] == 1.0).all()


def test_under_a_rebalance_band_the_signals_are_the_books_weights(bars):
    import rlbridge

    class Banded(rlbridge.Strategy):
        """All in SPY at first; then a target 1 % away from the book, inside a 5 % band."""

        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order_target_weights({"SPY": 1.0}, band=0.05)
            else:
                ctx.order_target_weights({"SPY": 0.98, "AGG": 0.01, "XLK": 0.01}, band=0.05)

    pm = make_plugin_manager(entrypoints=False, warn=False)

    class Plugin:
        @rlbridge.hookimpl
        def register_strategies(self, register):
            register("banded", Banded)

    pm.register(Plugin(), name="banded")
    mapping = config({"name": "equal_weight"}).to_dict()
    frame = signals(config_from_mapping({**mapping, "strategy": {"name": "banded"}}, pm=pm),
                    pm, bars=bars)
    later = frame[frame["as_of"] == pd.Timestamp("2020-06-10")].set_index("symbol")["weight"]
    # nothing is traded inside the band: the book (all SPY) is what the session holds
    assert later["AGG"] == later["XLK"] == 0.0 and later["SPY"] == pytest.approx(1.0, abs=0.01)


def test_daily_runs_append_only_the_new_session(tmp_path, bars):
    out = tmp_path / "signals.csv"
    day1 = signals(config({"name": "equal_weight"}, end="2020-09-29"), PM, bars=bars)
    assert write_signals(day1, out) == len(day1)
    before = out.read_text()
    day2 = signals(config({"name": "equal_weight"}), PM, bars=bars)
    assert write_signals(day2, out) == 3  # one session, three symbols
    text = out.read_text()
    assert text.startswith(before) and text.count("\n") == before.count("\n") + 3
    assert text.splitlines()[-1].startswith("2020-10-01,XLK,0.333")
    assert write_signals(day2, out) == 0  # the same day again adds nothing
    frame = read_signals(out)
    factor = frame.set_index(["date", "symbol"])["weight"]  # the factor-series layout
    assert factor.index.is_unique and len(factor) == len(day2)
    wide = frame.pivot(index="date", columns="symbol", values="weight")
    assert list(wide.columns) == sorted(SYMBOLS) and wide.index[-1] == pd.Timestamp("2020-10-01")


def test_parquet_round_trips(tmp_path, bars):
    frame = signals(config({"name": "equal_weight"}), PM, bars=bars)
    path = tmp_path / "s.parquet"
    write_signals(frame, path)
    pd.testing.assert_frame_equal(read_signals(path), frame, check_dtype=False)


def test_an_unknown_suffix_and_a_foreign_file_are_errors(tmp_path, bars):
    frame = signals(config({"name": "equal_weight"}), PM, bars=bars)
    with pytest.raises(ConfigError, match=r"signals are written as CSV \(.csv\) or Parquet "
                                          r"\(.parquet\), not '.xlsx'"):
        write_signals(frame, tmp_path / "s.xlsx")
    foreign = tmp_path / "prices.csv"
    foreign.write_text("date,close\n2020-01-02,3.0\n")
    with pytest.raises(Exception, match=r"prices.csv: cannot append to it: its columns are "
                                         r"\['date', 'close'\]"):
        write_signals(frame, foreign)
    assert foreign.read_text() == "date,close\n2020-01-02,3.0\n"  # left as it was


def test_rlbridge_signals_writes_the_file(tmp_path, rlbridge_cli):
    path = tmp_path / "agent.toml"
    path.write_text('[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG"]\nstart = 2020-01-02\n'
                    'end = 2020-09-30\n\n[strategy]\nname = "equal_weight"\n\n'
                    '[backtest]\nstart = 2020-09-01\n')
    out = rlbridge_cli("signals", path, "--out", tmp_path / "sig.csv")
    assert out.exit_code == 0, out.output
    assert out.stdout == f"42 row(s) added to {tmp_path / 'sig.csv'}; latest signals are " \
                         "for 2020-10-01\n"
    bad = rlbridge_cli("signals", path, "--out", tmp_path / "sig.txt")
    assert bad.exit_code == 2 and "not '.txt'" in bad.stderr

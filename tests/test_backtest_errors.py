"""Bad input to `rlbridge backtest`, in every engine: a range outside the data, a symbol missing
on some sessions, a strategy that raises. One line naming what and where, exit code 2, and a
failed run keeps what it recorded."""

import sys

import pandas as pd
import pytest

import rlbridge
from rlbridge import sample_data
from rlbridge.data import DroppedBarsWarning
from rlbridge.runs import list_runs, run_equity
from rlbridge.testing import register_plugin

ENGINES = ["native", "backtrader", "zipline"]


class FailsOnMarch16(rlbridge.Strategy):
    """Holds SPY, then fails after the close of 2020-03-16."""

    def on_bar(self, ctx):
        if ctx.bar_index == 0:
            ctx.order_target_weights({"SPY": 1.0})
        if ctx.now == pd.Timestamp("2020-03-16"):
            raise ZeroDivisionError("volatility is zero")


@rlbridge.hookimpl
def register_strategies(register):
    register("fails_on_march_16", FailsOnMarch16)


@pytest.fixture
def folder(tmp_path):
    """SPY and AGG as CSV files; AGG lacks 2020-03-10."""
    data = tmp_path / "etf"
    data.mkdir()
    bars = sample_data.load(["SPY", "AGG"], start="2020-01-02", end="2020-06-30", adjust=False)
    for symbol in ("SPY", "AGG"):
        frame = bars.frame(symbol)
        if symbol == "AGG":
            frame = frame.drop(pd.Timestamp("2020-03-10"))
        frame.to_csv(data / f"{symbol}.csv", index_label="date")
    return data


def write(tmp_path, folder, *, strategy="buy_and_hold", start="2020-02-03", end="2020-06-30",
          align=""):
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[data]\nfeed = "csv"\npath = "{folder}"\nsymbols = ["SPY", "AGG"]\n{align}\n'
        f'[strategy]\nname = "{strategy}"\n\n'
        f'[backtest]\ncash = 10_000\nstart = {start}\nend = {end}\n')
    return path


@pytest.fixture
def cli(rlbridge_cli, rlbridge_pm, tmp_path):
    register_plugin(rlbridge_pm, sys.modules[__name__], name="failing-strategy")

    def run(*args):
        return rlbridge_cli(*args, env={"RLBRIDGE_ZIPLINE_ROOT": str(tmp_path / "zipline")})

    return run


@pytest.mark.parametrize("engine", ENGINES)
def test_a_range_outside_the_data_names_both_ranges(cli, tmp_path, folder, engine):
    path = write(tmp_path, folder, start="2021-01-04", end="2021-06-30",
                 align='align = "ffill"\nfill_limit = 1\n')
    out = cli("backtest", path, "--engine", engine)
    assert out.exit_code == 2
    assert out.stderr.strip().endswith(
        "the backtest range 2021-01-04 .. 2021-06-30 holds 0 bar(s) of the data "
        "(2020-01-02 .. 2020-06-30); it needs at least 2")
    assert "Traceback" not in out.output


@pytest.mark.parametrize("engine", ENGINES)
def test_a_symbol_missing_a_session_is_dropped_with_a_warning_or_filled_as_configured(
        cli, tmp_path, folder, engine, rlbridge_store):
    path = write(tmp_path, folder, align='align = "ffill"\nfill_limit = 0\n')
    out = cli("backtest", path, "--engine", engine)
    assert out.exit_code == 2
    assert "AGG" in out.stderr and "2020-03-10" in out.stderr
    filled = write(tmp_path, folder, align='align = "ffill"\nfill_limit = 1\n')
    out = cli("backtest", filled, "--engine", engine, "--json")
    assert out.exit_code == 0, out.output
    # the default, align = "drop", runs without that session and says so
    with pytest.warns(DroppedBarsWarning, match=r'align = "drop" left out 1 timestamp\(s\) '
                      r"where not every symbol has a bar, the first 2020-03-10 \(missing for "
                      r"AGG\)"):
        out = cli("backtest", write(tmp_path, folder), "--engine", engine, "--json")
    if engine == "zipline":  # zipline needs every session of the calendar: it names the gap
        assert out.exit_code == 2 and "2020-03-10" in out.stderr
    else:
        assert out.exit_code == 0, out.output


@pytest.mark.parametrize("engine", ENGINES)
def test_a_strategy_that_raises_stops_the_run_which_keeps_its_past_and_is_failed(
        cli, tmp_path, folder, engine, rlbridge_store):
    path = write(tmp_path, folder, strategy="fails_on_march_16",
                 align='align = "ffill"\nfill_limit = 1\n')
    out = cli("backtest", path, "--engine", engine)
    assert out.exit_code == 2
    assert out.stderr.strip().endswith(
        "strategy FailsOnMarch16 failed at 2020-03-16 (bar 29): ZeroDivisionError: volatility "
        "is zero")
    [run] = list_runs(rlbridge_store, "backtest", limit=1)
    assert run.status == "failed" and "2020-03-16" in run.error
    equity = run_equity(rlbridge_store, run.id)
    assert equity.index[0] == pd.Timestamp("2020-02-03")
    # every close up to the failing bar's, which was marked before the strategy ran
    assert equity.index[-1] == pd.Timestamp("2020-03-16") and len(equity) == 30

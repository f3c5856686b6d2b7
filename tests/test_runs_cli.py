"""`rlbridge runs list|show`, `rlbridge compare` and `rlbridge export` on real backtests."""

import importlib.util
import json
import re

import empyrical
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rlbridge import sample_data
from rlbridge.backtesting import backtest
from rlbridge.cli import build_cli
from rlbridge.config import config_from_mapping
from rlbridge.context import StrategyError
from rlbridge.exports import pyfolio_frames, read_pyfolio
from rlbridge.interfaces import Fill
from rlbridge.metrics import performance, round_trips
from rlbridge.runs import (
    finish_run,
    get_run,
    list_runs,
    record_equity,
    record_fills,
    record_positions,
    run_benchmark,
    run_equity,
    run_fills,
    run_positions,
    save_model,
    start_run,
)
from rlbridge.significance import compare_sharpe

SYMBOLS = ["SPY", "AGG", "XLK"]


def tables(strategy, start="2019-01-02", end="2020-09-30"):
    return {"data": {"feed": "sample", "symbols": SYMBOLS, "start": "2018-10-01",
                     "end": "2020-12-31", "adjust": False},
            "costs": {"model": "percent", "rate": 0.001},
            "strategy": strategy,
            "backtest": {"engine": "native", "cash": 100_000, "start": start, "end": end,
                         "benchmark": "SPY"}}


@pytest.fixture(scope="module")
def runs(pm, store):
    """Five runs, oldest first: a training run with its model, three backtests (the last one
    starting later), a failed backtest and a backtest after all the others."""
    made = {}
    train = start_run(store, "train", {"policy": {"algo": "ppo"}, "data": tables({})["data"]})
    made["model"] = save_model(store, train, algo="ppo", path="/models/ppo-agent.zip",
                               config={"policy": {"algo": "ppo"}}, data_hash="abc123",
                               versions={"stable-baselines3": "2.9.2"})
    made["train"] = finish_run(store, train, "completed")

    def run(strategy, **span):
        return backtest(config_from_mapping(tables(strategy, **span), pm=pm), pm=pm,
                        store=store)

    made["ew"] = run({"name": "equal_weight", "rebalance": 21})
    made["ma"] = run({"name": "ma_crossover", "fast": 10, "slow": 30})
    made["bh"] = run({"name": "buy_and_hold", "symbol": "XLK"}, start="2019-06-03",
                     end="2020-12-31")
    with pytest.raises(StrategyError) as failure:
        run({"name": "buy_and_hold", "symbol": "TLT"})  # not a symbol of the run: fails
    [made["failed"]] = list_runs(store, limit=1)
    assert made["failed"].status == "failed" and made["failed"].error == str(failure.value)
    made["late"] = run({"name": "equal_weight"}, start="2020-10-01", end="2020-12-31")
    return made


def plain(metrics):
    """Metrics as the --json output has them: NaN as null."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in metrics.items()}


def assert_close(actual, expected):
    """JSON metrics against computed ones: the same keys, NaN as null, numbers to 1e-12."""
    expected = plain(expected)
    assert list(actual) == list(expected)
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-12), key


@pytest.fixture(scope="module")
def cli(pm, db):
    def invoke(*args):
        return CliRunner().invoke(build_cli(pm), ["--db", db, *map(str, args)])
    return invoke


# ---------------------------------------------------------------------- runs list
def test_runs_list_is_newest_first_with_span_and_final_value(cli, runs):
    result = cli("runs", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "KIND", "STATUS", "STRATEGY", "ENGINE", "SPAN", "FINAL",
                                "VALUE", "STARTED"]
    order = [runs["late"].run_id, runs["failed"].id, runs["bh"].run_id, runs["ma"].run_id,
             runs["ew"].run_id, runs["train"].id]
    assert [line.split()[0] for line in lines[1:]] == order
    ew = next(line for line in lines if line.startswith(runs["ew"].run_id)).split()
    assert ew[1:9] == ["backtest", "completed", "equal_weight", "native", "2019-01-02", "..",
                       "2020-09-30", f"{runs['ew'].final_value:,.2f}"]
    train = next(line for line in lines if line.startswith(runs["train"].id)).split()
    assert train[1:7] == ["train", "completed", "ppo", "-", "-", "-"]
    failed = next(line for line in lines if line.startswith(runs["failed"].id)).split()
    assert failed[1:4] == ["backtest", "failed", "buy_and_hold"]


def test_runs_list_filters_and_limits(cli, runs):
    only = cli("runs", "list", "--kind", "train", "--json")
    assert [r["run_id"] for r in json.loads(only.output)] == [runs["train"].id]
    failed = json.loads(cli("runs", "list", "--status", "failed", "--json").output)
    assert [r["run_id"] for r in failed] == [runs["failed"].id]
    assert failed[0]["error"] == ("strategy BuyAndHold failed at 2019-01-02 (bar 0): ConfigError: "
                                  "[strategy.symbol]: buy_and_hold symbol 'TLT' is not among "
                                  "the run's symbols SPY, AGG, XLK")
    two = json.loads(cli("runs", "list", "--limit", "2", "--json").output)
    assert [r["run_id"] for r in two] == [runs["late"].run_id, runs["failed"].id]
    bh = next(r for r in json.loads(cli("runs", "list", "--json").output)
              if r["run_id"] == runs["bh"].run_id)
    assert (bh["start"], bh["end"], bh["bars"]) == ("2019-06-03", "2020-12-31",
                                                    len(runs["bh"].equity))
    assert bh["final_value"] == runs["bh"].final_value
    assert (bh["strategy"], bh["engine"], bh["status"]) == ("buy_and_hold", "native",
                                                           "completed")
    none = cli("runs", "list", "--kind", "live", "--status", "running")
    assert none.exit_code == 0
    assert none.output.startswith("No runs (kind live, status running) in the store ")


# ---------------------------------------------------------------------- runs show
def test_runs_show_gives_config_metrics_counts(cli, runs, store):
    ma = runs["ma"]
    shown = json.loads(cli("runs", "show", ma.run_id, "--json").output)
    assert shown["config"] == get_run(store, ma.run_id).config
    assert shown["config"]["strategy"] == {"name": "ma_crossover", "fast": 10, "slow": 30}
    assert shown["metrics"] == plain(ma.metrics)  # the numbers the backtest printed
    assert shown["metrics"]["trades"] == len(round_trips(ma.fills)) > 0
    assert (shown["orders"], shown["fills"]) == (len(ma.orders), len(ma.fills))
    assert shown["orders_by_status"] == {"submitted": len(ma.orders)}
    assert shown["models"] == [] and shown["error"] is None
    text = cli("runs", "show", ma.run_id).output
    assert text.startswith(f"Run {ma.run_id}: backtest, completed\n")
    assert re.search(rf"^Orders\s+{len(ma.orders)} \(submitted {len(ma.orders)}\); fills "
                     rf"{len(ma.fills)}$", text, re.M)
    assert re.search(r"^Win rate\s+" + re.escape(f"{ma.metrics['win_rate'] * 100:.2f}%") + "$",
                     text, re.M)
    assert '[strategy]\nname = "ma_crossover"\nfast = 10\nslow = 30\n' in text


def test_runs_show_of_a_failed_run_and_of_a_training_run(cli, runs):
    failed = cli("runs", "show", runs["failed"].id)
    assert failed.exit_code == 0
    assert re.search(r"^Error\s+" + re.escape(runs["failed"].error) + "$", failed.output, re.M)
    train = json.loads(cli("runs", "show", runs["train"].id, "--json").output)
    model = runs["model"]
    assert train["models"] == [{"model_id": model.id, "algo": "ppo", "path": model.path,
                                "data_hash": "abc123",
                                "versions": {"stable-baselines3": "2.9.2"},
                                "created_at": model.created_at.isoformat()}]
    assert train["metrics"] == {} and train["bars"] == 0
    text = cli("runs", "show", runs["train"].id).output
    assert re.search(rf"^Model\s+{model.id}: ppo, {re.escape(model.path)}$", text, re.M)
    assert re.search(r"^Span\s+no equity$", text, re.M)


@pytest.mark.parametrize("args", [("runs", "show"), ("compare",), ("export",)])
def test_an_unknown_run_exits_2_naming_it(cli, runs, args):
    result = cli(*args, "20990101-000000-dead")
    assert result.exit_code == 2
    assert result.output.startswith("Error: no run '20990101-000000-dead' in the store ")
    assert f"the most recent runs are: {runs['late'].run_id}" in result.output


# ---------------------------------------------------------------------- compare
def test_compare_prints_runs_side_by_side_on_their_common_dates(cli, runs):
    ew, bh = runs["ew"], runs["bh"]
    result = cli("compare", ew.run_id, bh.run_id, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    # bh starts on 2019-06-03 and ends after ew: the common span is 2019-06-03 .. 2020-09-30
    assert (out["start"], out["end"]) == ("2019-06-03", "2020-09-30")
    assert out["bars"] == len(ew.equity.loc["2019-06-03":])
    cols = {r["run_id"]: r["metrics"] for r in out["runs"]}
    span = ew.equity.loc["2019-06-03":"2020-09-30"]
    assert cols[ew.run_id]["total_return"] == pytest.approx(span.iloc[-1] / span.iloc[0] - 1,
                                                            rel=1e-12)
    inside = [f for f in ew.fills if f.time > pd.Timestamp("2019-06-03")]
    expected = performance(span, fills=inside)
    # the fills after the span's start alone would see the rebalancing sales of positions
    # bought before it as short trades: round trips come from all fills, counted where closed
    assert expected["trades"] > 0
    expected.update(trades=0, win_rate=float("nan"), avg_trade_pnl=float("nan"))
    assert len(round_trips(ew.fills)) == 0  # equal weight never goes flat
    assert_close(cols[ew.run_id], expected)
    bh_span = bh.equity.loc[:"2020-09-30"]
    assert cols[bh.run_id]["final_value"] == bh_span.iloc[-1]
    assert out["baselines"] == {} and out["runs"][0]["significance"] is None
    # over a shared span the columns are the runs' own metrics
    same = json.loads(cli("compare", ew.run_id, runs["ma"].run_id, "--json").output)
    assert [r["metrics"] for r in same["runs"]] == [plain(ew.metrics), plain(runs["ma"].metrics)]
    text = cli("compare", ew.run_id, bh.run_id).output
    assert text.startswith(f"Compared over 2019-06-03 .. 2020-09-30 ({out['bars']:,} common "
                           "bars):\n")
    header = next(line for line in text.splitlines() if line.startswith("Metric"))
    assert header.split() == ["Metric", ew.run_id, bh.run_id]


def test_compare_against_the_stored_benchmark(cli, runs, store):
    ew, ma = runs["ew"], runs["ma"]
    out = json.loads(cli("compare", ew.run_id, ma.run_id, "--baseline", "SPY", "--json").output)
    spy = run_benchmark(store, ew.run_id)
    assert out["baselines"]["SPY (buy & hold)"]["metrics"] == plain(performance(spy))
    for run in (ew, ma):
        row = next(r for r in out["runs"] if r["run_id"] == run.run_id)
        assert row["baseline"] == "SPY (buy & hold)"
        expected = compare_sharpe(run.equity.pct_change().iloc[1:],
                                  spy.pct_change().iloc[1:], seed=0)
        assert row["significance"] == expected.to_json()
        assert row["significance"]["difference"] == pytest.approx(
            run.metrics["sharpe"] - ew.benchmark_metrics["sharpe"], rel=1e-12)
    text = cli("compare", ew.run_id, "--baseline", "SPY").output
    sig = compare_sharpe(ew.equity.pct_change().iloc[1:], spy.pct_change().iloc[1:])
    assert (f"{ew.run_id}  SPY (buy & hold)  {sig.difference:+.2f}  [{sig.low:+.2f}, "
            f"{sig.high:+.2f}]  {sig.p_value:.3f}") in re.sub(r" {2,}", "  ", text)
    assert "mean block 8 bars; p-value of H0: difference <= 0 (one-sided)" in text


def test_compare_against_another_run_and_against_equal_weight(cli, runs):
    ew, ma = runs["ew"], runs["ma"]
    out = json.loads(cli("compare", ma.run_id, "--baseline", ew.run_id, "--n-boot", "500",
                         "--seed", "3", "--json").output)
    expected = compare_sharpe(ma.equity.pct_change().iloc[1:], ew.equity.pct_change().iloc[1:],
                              n_boot=500, seed=3)
    assert out["runs"][0]["significance"] == expected.to_json()
    assert out["baselines"][ew.run_id]["metrics"] == plain(ew.metrics)
    # equal_weight rebuilt from the run's own config reproduces the equal_weight run exactly
    same = json.loads(cli("compare", ew.run_id, ma.run_id, "--baseline", "equal_weight",
                          "--json").output)
    assert same["baselines"]["equal_weight"]["metrics"] == plain(ew.metrics)
    test = same["runs"][0]["significance"]
    assert (test["difference"], test["low"], test["high"], test["p_value"]) == (0.0, 0.0, 0.0,
                                                                                1.0)
    assert same["runs"][1]["significance"]["difference"] == pytest.approx(
        ma.metrics["sharpe"] - ew.metrics["sharpe"], rel=1e-12)


def test_compare_refuses_runs_without_common_dates_or_an_unknown_baseline(cli, runs):
    ew, late = runs["ew"], runs["late"]
    apart = cli("compare", ew.run_id, late.run_id)
    assert apart.exit_code == 2
    assert apart.output == (
        f"Error: the runs do not overlap in dates (at least 2 common bars are needed): "
        f"{ew.run_id} 2019-01-02 .. 2020-09-30; {late.run_id} 2020-10-01 .. 2020-12-31\n")
    unknown = cli("compare", ew.run_id, "--baseline", "QQQ")
    assert unknown.exit_code == 2
    assert unknown.output == (
        f"Error: --baseline 'QQQ' is neither a run id, 'equal_weight', nor a symbol of run "
        f"{ew.run_id} (benchmark SPY; symbols: SPY, AGG, XLK)\n")
    outside = cli("compare", ew.run_id, "--baseline", late.run_id)
    assert outside.exit_code == 2
    assert outside.output == (
        f"Error: the baseline '{late.run_id}' has 0 bar(s) in common with run {ew.run_id} "
        "between 2019-01-02 and 2020-09-30; at least 3 are needed\n")
    train = cli("compare", runs["train"].id)
    assert train.exit_code == 2
    assert "recorded 0 equity value(s); there is nothing to compare" in train.output


def test_a_symbol_other_than_the_benchmark_is_held_from_the_runs_data(cli, runs):
    ew = runs["ew"]
    out = json.loads(cli("compare", ew.run_id, "--baseline", "XLK", "--json").output)
    close = sample_data.load(SYMBOLS, start="2019-01-02", end="2020-09-30",
                             adjust=False).frame("XLK")["close"]
    held = 100_000 * close / close.iloc[0]  # the starting cash in XLK from the first close
    assert held.index.equals(ew.equity.index)
    assert_close(out["baselines"]["XLK (buy & hold)"]["metrics"], performance(held))
    sig = out["runs"][0]["significance"]
    assert sig["difference"] == pytest.approx(
        ew.metrics["sharpe"] - performance(held)["sharpe"], rel=1e-12)


# ---------------------------------------------------------------------- export
def test_export_pyfolio_layout_matches_the_store(cli, runs, store, tmp_path):
    ma = runs["ma"]
    result = cli("export", ma.run_id, "--format", "pyfolio", "--out", tmp_path / "pf", "--json")
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    expected = ["returns.csv", "positions.csv", "transactions.csv"]
    if importlib.util.find_spec("pyarrow") is not None:
        expected += ["returns.parquet", "positions.parquet", "transactions.parquet"]
    assert sorted(files) == sorted(expected)
    assert sorted(p.name for p in (tmp_path / "pf").iterdir()) == sorted(expected)

    returns, positions, transactions = pyfolio_frames(store, ma.run_id)
    again = read_pyfolio(tmp_path / "pf")
    pd.testing.assert_series_equal(again[0], returns)
    pd.testing.assert_frame_equal(again[1], positions)
    pd.testing.assert_frame_equal(again[2], transactions)
    if "returns.parquet" in files:
        pd.testing.assert_frame_equal(pd.read_parquet(files["positions.parquet"]), positions)
        pd.testing.assert_frame_equal(pd.read_parquet(files["transactions.parquet"]),
                                      transactions)

    equity = run_equity(store, ma.run_id)
    for frame in (returns, positions, transactions):
        assert str(frame.index.tz) == "UTC"
    assert list(positions.columns) == [*SYMBOLS, "cash"]
    assert positions.index.equals(equity.index.tz_localize("UTC"))
    np.testing.assert_allclose(positions.sum(axis=1).to_numpy(), equity["value"].to_numpy(),
                               rtol=1e-12)
    held = run_positions(store, ma.run_id, values=True)
    np.testing.assert_array_equal(positions[SYMBOLS].to_numpy(), held.to_numpy())
    fills = run_fills(store, ma.run_id)
    assert list(transactions.columns) == ["amount", "price", "symbol"]
    np.testing.assert_array_equal(transactions["amount"].to_numpy(), fills["quantity"].to_numpy())
    np.testing.assert_array_equal(transactions["price"].to_numpy(), fills["price"].to_numpy())
    assert transactions["symbol"].tolist() == fills["symbol"].tolist() == \
        [f.symbol for f in ma.fills]
    assert transactions.index.equals(fills.index.tz_localize("UTC").rename("time"))
    # the returns are the run's: empyrical on them gives the metrics the backtest printed
    assert len(returns) == len(equity) - 1 and returns.index[0] == positions.index[1]
    assert empyrical.sharpe_ratio(returns) == pytest.approx(ma.metrics["sharpe"], rel=1e-12)
    assert empyrical.cum_returns_final(returns) == pytest.approx(ma.metrics["total_return"],
                                                                 rel=1e-12)


def test_export_refuses_a_run_without_equity_or_a_file_as_folder(cli, runs, tmp_path):
    train = cli("export", runs["train"].id, "--out", tmp_path / "x")
    assert train.exit_code == 2
    assert train.output == (f"Error: run {runs['train'].id} (train, completed) recorded 0 "
                            "equity value(s); there is nothing to export\n")
    target = tmp_path / "taken"
    target.write_text("mine")
    clash = cli("export", runs["ew"].run_id, "--out", target)
    assert clash.exit_code == 2
    assert clash.output == f"Error: {target} is a file, not a folder; give --out a folder\n"
    assert target.read_text() == "mine"


def test_compare_counts_the_round_trips_that_closed_in_the_common_span(cli, runs):
    ma, bh = runs["ma"], runs["bh"]
    out = json.loads(cli("compare", ma.run_id, bh.run_id, "--json").output)
    metrics = out["runs"][0]["metrics"]
    trips = round_trips(ma.fills)
    later = trips[pd.DatetimeIndex(trips["closed"]) > pd.Timestamp("2019-06-03")]
    assert 0 < len(later) < len(trips)  # some closed before the span, whenever they opened
    assert metrics["trades"] == len(later)
    assert metrics["win_rate"] == pytest.approx((later["pnl"] > 0).mean(), rel=1e-12)
    assert metrics["avg_trade_pnl"] == pytest.approx(later["pnl"].mean(), rel=1e-12)


def test_an_intraday_run_exports_one_row_per_utc_date(rlbridge_store):
    store = rlbridge_store  # a store of its own: the module's runs stay as listed above
    # what a live run on hourly bars records: two sessions of 7 bars, one fill
    hours = pd.DatetimeIndex([f"2024-01-0{d} {h}:30" for d in (2, 3) for h in range(14, 21)],
                             tz="UTC")
    value = 1_000.0 + np.arange(14.0)
    run = start_run(store, "live", {"strategy": {"name": "equal_weight"}})
    record_equity(store, run, hours, value, value - 100.0)
    record_positions(store, run, hours, ["SPY"], np.ones((14, 1)), np.full((14, 1), 100.0))
    record_fills(store, run, [Fill("SPY", 1, 99.5, 0.1, hours[1])])
    finish_run(store, run, "completed")
    returns, positions, transactions = pyfolio_frames(store, run.id)
    days = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], tz="UTC", name="date")
    assert positions.index.equals(days)
    assert positions.to_dict("list") == {"SPY": [100.0, 100.0], "cash": [906.0, 913.0]}
    assert returns.index.equals(days[1:])
    assert returns.iloc[0] == pytest.approx(1_013.0 / 1_006.0 - 1, rel=1e-15)
    assert transactions.index.tolist() == [hours[1]]  # fills keep their time
    assert transactions.to_dict("list") == {"amount": [1.0], "price": [99.5], "symbol": ["SPY"]}

"""Walk-forward validation: fold plans on real sessions, chained out-of-sample equity, models
that cannot see their future, and clear errors for folds that do not fit."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from rlbridge import sample_data
from rlbridge.backtesting import backtest
from rlbridge.config import WalkforwardConfig, config_from_mapping
from rlbridge.errors import ConfigError
from rlbridge.manager import make_plugin_manager
from rlbridge.policy import TrainedPolicy
from rlbridge.runs import get_run
from rlbridge.store import open_store
from rlbridge.walkforward import chain, plan_folds, walkforward

torch.set_num_threads(1)

PM = make_plugin_manager(entrypoints=False, warn=False)
SYMBOLS = ["SPY", "AGG", "XLK"]


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2007-01-01", end="2020-09-30")


def spans(folds):
    return [(f.describe()["train"], f.describe()["test"]) for f in folds]


# ---------------------------------------------------------------------- fold plans
def test_rolling_folds_tile_the_test_years_and_cut_the_last_at_the_data_end(bars):
    folds = plan_folds(bars, WalkforwardConfig(train="3Y", test="1Y", start="2008-01-01"))
    assert spans(folds)[:2] == [
        (["2008-01-02", "2010-12-31"], ["2011-01-03", "2011-12-30"]),
        (["2009-01-02", "2011-12-30"], ["2012-01-03", "2012-12-31"]),
    ]
    assert spans(folds)[-1] == (["2017-01-03", "2019-12-31"], ["2020-01-02", "2020-09-30"])
    assert len(folds) == 10
    for before, after in zip(folds, folds[1:], strict=False):  # consecutive sessions, no overlap
        assert after.test[0] == before.test[1] + 1


def test_expanding_folds_keep_their_start_and_a_gap_leaves_sessions_out(bars):
    folds = plan_folds(bars, WalkforwardConfig(train="10Y", test="6M", gap="1M",
                                               mode="expanding", start="2008-01-01"))
    assert spans(folds) == [
        (["2008-01-02", "2017-12-29"], ["2018-02-01", "2018-07-31"]),
        (["2008-01-02", "2018-06-29"], ["2018-08-01", "2019-01-31"]),
        (["2008-01-02", "2018-12-31"], ["2019-02-01", "2019-07-31"]),
        (["2008-01-02", "2019-06-28"], ["2019-08-01", "2020-01-31"]),
        (["2008-01-02", "2019-12-31"], ["2020-02-03", "2020-07-31"]),
        (["2008-01-02", "2020-06-30"], ["2020-08-03", "2020-09-30"]),
    ]


def test_folds_that_do_not_fit_the_data_are_an_error(bars):
    with pytest.raises(ConfigError) as info:
        plan_folds(bars, WalkforwardConfig(train="15Y", test="1Y", start="2008-01-01"))
    assert info.value.key == "walkforward"
    assert str(info.value) == (
        "[walkforward]: no fold fits the data: train 15Y from 2008-01-01 reach 2023-01-01, "
        "after the data's end 2020-09-30; shorten `train` or load more data")


def test_a_test_window_shorter_than_the_feature_window_is_an_error(bars):
    with pytest.raises(ConfigError) as info:
        plan_folds(bars, WalkforwardConfig(train="2Y", test="2W", start="2008-01-01"), window=20)
    assert info.value.key == "walkforward.test"
    assert "the test window of fold 1 (2010-01-01 .. 2010-01-14) holds 9 bar(s), fewer than " \
           "20 ([features] window = 20): make `test` longer" in str(info.value)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("train", "5 years", "expected a period like \"5Y\", \"6M\", \"13W\" or \"90D\", got "
                         "'5 years'"),
    ("test", "0M", "the period must be longer than 0, got '0M'"),
])
def test_a_bad_period_in_the_file_names_its_key(tmp_path, key, value, message):
    path = tmp_path / "wf.toml"
    path.write_text(f'[walkforward]\n{key} = "{value}"\n')
    from rlbridge.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(path, pm=PM)
    assert info.value.key == f"walkforward.{key}"
    assert message in str(info.value)


# ---------------------------------------------------------------------- chaining
def test_chain_continues_each_piece_from_where_the_last_ended():
    a = pd.Series([100.0, 110.0, 121.0], index=pd.bdate_range("2020-01-01", periods=3))
    b = pd.Series([100.0, 90.0], index=pd.bdate_range("2020-01-06", periods=2))
    equity, cash = chain([(a, a * 0.5), (b, b * 0 + 100.0)], 1000.0)
    assert equity.tolist() == pytest.approx([1000.0, 1100.0, 1210.0, 1210.0, 1089.0])
    assert cash.tolist() == pytest.approx([500.0, 550.0, 605.0, 1210.0, 1210.0])


# ---------------------------------------------------------------------- rule strategy
def rule_config(tmp_path, **walk):
    return config_from_mapping({
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2007-01-01",
                 "end": "2020-09-30"},
        "costs": {"model": "percent", "rate": 0.001},
        "strategy": {"name": "equal_weight", "rebalance": 21},
        "backtest": {"cash": 50_000},
        "walkforward": {"train": "2Y", "test": "1Y", "start": "2016-01-01", **walk},
    }, pm=PM, path=tmp_path / "wf.toml")


def test_a_rule_strategy_is_tested_fold_by_fold_and_the_pieces_chain(tmp_path, bars):
    store = open_store(f"sqlite:///{tmp_path / 'wf.db'}")
    config = rule_config(tmp_path)
    result = walkforward(config, pm=PM, store=store, bars=bars)
    assert [f.fold.describe()["test"] for f in result.folds] == [
        ["2018-01-02", "2018-12-31"], ["2019-01-02", "2019-12-31"], ["2020-01-02", "2020-09-30"]]
    growth = 1.0
    for fold in result.folds:  # each fold is the backtest of its test window alone
        alone = backtest(dataclasses.replace(config, backtest=dataclasses.replace(
            config.backtest, start=fold.fold.test_span[0].date(),
            end=fold.fold.test_span[1].date())), pm=PM, record=False, bars=bars)
        np.testing.assert_allclose(fold.backtest.equity.to_numpy(), alone.equity.to_numpy())
        growth *= alone.final_value / 50_000
    assert float(result.equity.iloc[-1]) == pytest.approx(50_000 * growth)
    assert len(result.equity) == sum(len(f.backtest.equity) for f in result.folds)
    run = get_run(store, result.run_id)
    assert (run.kind, run.status) == ("walkforward", "completed")
    from rlbridge.runs import run_fills

    assert len(run_fills(store, run.id)) == sum(len(f.backtest.fills) for f in result.folds)
    assert result.metrics["total_return"] == pytest.approx(growth - 1)
    # trades are counted fold by fold: each fold opens its positions and leaves them open
    from rlbridge.metrics import round_trips

    assert result.metrics["trades"] == sum(len(round_trips(f.backtest.fills))
                                           for f in result.folds)


# ---------------------------------------------------------------------- trained policy
def agent(tmp_path, end="2020-09-30"):
    return config_from_mapping({
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2013-06-01", "end": end},
        "features": {"window": 5, "transforms": ["log_return",
                                                 {"name": "volatility", "window": 10}]},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 64, "batch_size": 32, "n_epochs": 1,
                   "net_arch": [8]},
        "train": {"timesteps": 64, "seed": 5, "output": str(tmp_path / "models")},
        "strategy": {"name": "rl_allocation", "model": "set-per-fold"},
        "backtest": {"cash": 100_000, "fractional": True},
        "walkforward": {"train": "2Y", "test": "6M", "start": "2015-01-01", "end": end},
    }, pm=PM)


def weights_of(path):
    return {k: v.clone() for k, v in TrainedPolicy.load(path).model.policy.state_dict().items()}


def test_a_folds_model_is_the_same_whether_or_not_later_data_exists(tmp_path):
    full = sample_data.load(SYMBOLS, start="2013-06-01", end="2020-09-30")
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    everything = walkforward(agent(tmp_path / "a"), pm=PM, store=store, bars=full)
    first = everything.folds[0]
    assert first.fold.describe() == {"fold": 1, "train": ["2015-01-02", "2016-12-30"],
                                     "test": ["2017-01-03", "2017-06-30"]}
    # the same walk-forward when the data stops at the end of fold 1's test window
    cut = full.between(None, "2017-06-30")
    alone = walkforward(agent(tmp_path / "b", end="2017-06-30"), pm=PM, record=False, bars=cut)
    assert len(alone.folds) == 1
    trained, again = weights_of(first.model_path), weights_of(alone.folds[0].model_path)
    assert trained.keys() == again.keys()
    for key in trained:
        assert torch.equal(trained[key], again[key]), key
    np.testing.assert_array_equal(first.backtest.equity.to_numpy(),
                                  alone.folds[0].backtest.equity.to_numpy())
    # each fold trained its own model, on its own window, recorded in the store
    assert len({f.model_path for f in everything.folds}) == len(everything.folds) > 5
    meta = TrainedPolicy.load(everything.folds[1].model_path).metadata
    assert meta["train_range"][1].startswith("2017-06-30")


def test_rlbridge_walkforward_prints_the_folds_and_exits_2_on_bad_folds(tmp_path, rlbridge_cli):
    path = tmp_path / "wf.toml"
    path.write_text(
        '[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG"]\nstart = 2015-01-01\n'
        'end = 2020-09-30\n\n[strategy]\nname = "buy_and_hold"\nsymbol = "SPY"\n\n'
        '[backtest]\ncash = 10_000\n\n[walkforward]\ntrain = "2Y"\ntest = "1Y"\n')
    out = rlbridge_cli("walkforward", path)
    assert out.exit_code == 0, out.output
    assert "   1  2015-01-02 .. 2016-12-30  2017-01-03 .. 2017-12-29" in out.stdout
    assert "Out of sample, 4 folds chained, 2017-01-03 .. 2020-09-30, on native" in out.stdout
    path.write_text(path.read_text().replace('train = "2Y"', 'train = "9Y"'))
    out = rlbridge_cli("walkforward", path)
    assert out.exit_code == 2
    assert "[walkforward]: no fold fits the data: train 9Y from 2015-01-02" in out.stderr
    assert "Traceback" not in out.output

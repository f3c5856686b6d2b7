"""The live runner on the sim broker: the backtest's fills through the live machinery, a journal
that never sends an order twice across restarts and faults, stale intents that expire, the
clock that keeps orders out of closed markets, and the real-money guard."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.backtesting import backtest
from rlbridge.config import config_from_mapping
from rlbridge.errors import ConfigError, DataError, DuplicateOrderError, TransientBrokerError
from rlbridge.live import Journal, LiveRunner, MarketClosed, decide_at, live
from rlbridge.live.clock import bar_decision
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.sim import SimBroker
from rlbridge.runs import run_fills
from rlbridge.schema import orders_table
from rlbridge.store import open_store

PM = make_plugin_manager(entrypoints=False, warn=False)
SYMBOLS = ["SPY", "AGG", "XLK"]


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2019-06-03", end="2020-09-30", adjust=False)


def agent(strategy=None, **costs):
    return config_from_mapping({
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2019-06-03",
                 "end": "2020-09-30", "adjust": False},
        "costs": costs or {"model": "per_share", "per_share": 0.005, "minimum": 1.0},
        "strategy": strategy or {"name": "equal_weight", "rebalance": 21},
        "backtest": {"cash": 100_000, "start": "2020-01-02", "end": "2020-09-30"},
        "broker": {"name": "sim", "cash": 100_000},
    }, pm=PM)


def store_at(tmp_path, name="live.db"):
    return open_store(f"sqlite:///{tmp_path / name}")


def client_ids(store):
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(orders_table.select().with_only_columns(
            orders_table.c.client_order_id))]


# ---------------------------------------------------------------------- parity with a backtest
@pytest.mark.parametrize("strategy", [{"name": "equal_weight", "rebalance": 21},
                                      {"name": "ma_crossover", "fast": 5, "slow": 20}])
def test_replaying_on_sim_gives_the_backtests_fills(tmp_path, bars, strategy):
    config = agent(strategy)
    store = store_at(tmp_path)
    reports = live(config, pm=PM, store=store)
    reference = backtest(config, "native", PM, record=False, bars=bars)
    assert len(reports) == len(reference.equity)
    fills = run_fills(store, reports[0] and _live_run(store))
    mine = [(str(t.date()), r.symbol, r.quantity, r.price, round(r.commission, 9))
            for t, r in fills.iterrows()]
    theirs = [(str(pd.Timestamp(f.time).date()), f.symbol, f.quantity, f.price,
               round(f.commission, 9)) for f in reference.fills]
    order = {s: i for i, s in enumerate(SYMBOLS)}  # within a bar: symbol order, as native
    mine.sort(key=lambda f: (f[0], order[f[1]]))
    assert mine == theirs and len(mine) > 10
    values = [r.value for r in reports]
    np.testing.assert_allclose(values, reference.equity.to_numpy(), rtol=0, atol=1e-6)
    # every client id is the deployment's, the bar's and the symbol's
    ids = client_ids(store)
    assert len(ids) == len(set(ids)) == len(reference.orders)
    assert all(i.startswith("rlb-") and i.count("-") == 3 for i in ids)


@pytest.fixture(scope="module")
def policy(tmp_path_factory, bars):
    """A tiny PPO on features of both kinds: computed on the last bars live (log_return,
    volatility) and over the whole history (rsi, an exponential average)."""
    from rlbridge.training import train

    config = config_from_mapping({
        "data": {"feed": "sample", "symbols": SYMBOLS}, "features": FEATURES,
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 64, "batch_size": 32, "n_epochs": 1,
                   "net_arch": [16]},
        "train": {"end": "2019-12-31", "timesteps": 128, "seed": 3,
                  "output": str(tmp_path_factory.mktemp("policy"))},
    }, pm=PM)
    return train(config, PM, record=False, bars=bars).path


FEATURES = {"window": 5, "transforms": ["log_return", {"name": "volatility", "window": 10},
                                        {"name": "rsi", "window": 7}]}


def test_a_policy_replayed_on_sim_makes_the_backtests_decisions(tmp_path, bars, policy):
    """Live features are computed on the rows the strategy reads, not the whole history: the
    same bits, so the same orders and fills as the native backtest's."""
    config = config_from_mapping({
        **agent().to_dict(), "features": FEATURES,
        "strategy": {"name": "rl_allocation", "model": str(policy)}}, pm=PM)
    store = store_at(tmp_path)
    reports = live(config, pm=PM, store=store)
    reference = backtest(config, "native", PM, record=False, bars=bars)
    fills = run_fills(store, _live_run(store))
    mine = sorted((str(t.date()), r.symbol, r.quantity, r.price) for t, r in fills.iterrows())
    theirs = sorted((str(pd.Timestamp(f.time).date()), f.symbol, f.quantity, f.price)
                    for f in reference.fills)
    assert mine == theirs and len(mine) > 100
    np.testing.assert_allclose([r.value for r in reports], reference.equity.to_numpy(),
                               rtol=0, atol=1e-6)


def test_a_replay_starts_the_strategy_on_its_first_bar_not_the_last(tmp_path, bars):
    import rlbridge

    seen = []

    class Starts(rlbridge.Strategy):
        def start(self, ctx):
            seen.append((ctx.now, len(ctx.history("close", 10_000))))

        def on_bar(self, ctx):
            pass

    pm = make_plugin_manager(entrypoints=False, warn=False)

    class Plugin:
        @rlbridge.hookimpl
        def register_strategies(self, register):
            register("starts", Starts)

    pm.register(Plugin(), name="starts")
    config = config_from_mapping({**agent().to_dict(), "strategy": {"name": "starts"}}, pm=pm)
    live(config, pm=pm, store=store_at(tmp_path), max_cycles=3)
    first = pd.Timestamp("2020-01-02")  # [backtest] start: no later bar is visible at start
    assert seen == [(first, int(bars.index.get_loc(first)) + 1)]


def _live_run(store):
    from rlbridge.runs import list_runs

    return list_runs(store, "live")[0].id


# ---------------------------------------------------------------------- never twice
def test_a_restart_resumes_without_sending_any_order_twice(tmp_path, bars):
    config = agent()
    whole = store_at(tmp_path, "whole.db")
    live(config, pm=PM, store=whole)
    store = store_at(tmp_path, "restarted.db")
    live(config, pm=PM, store=store, max_cycles=60)  # the process dies after 60 bars
    live(config, pm=PM, store=store, max_cycles=100)  # restarted: replays from the start
    live(config, pm=PM, store=store)
    assert sorted(client_ids(store)) == sorted(client_ids(whole))
    broker = _connected_sim(config, store, bars)
    expected = _connected_sim(config, whole, bars)
    assert broker.positions() == expected.positions()
    assert broker.account().cash == pytest.approx(expected.account().cash, abs=1e-6)


def _connected_sim(config, store, bars):
    from rlbridge.costs import create_cost_model
    from rlbridge.live import Session, deployment_id

    journal = Journal(store, "unused", deployment_id(config, "sim"))
    broker = SimBroker(SimBroker.Config(cash=100_000))
    broker.connect(Session(config, bars, create_cost_model(config.costs, PM), journal,
                           lambda: pd.Timestamp.now(tz="UTC")))
    return broker


class Flaky(SimBroker):
    """The sim broker behind a bad line: some answers are lost after the order arrived."""

    def __init__(self, faults):
        super().__init__(SimBroker.Config(cash=100_000))
        self.faults = list(faults)
        self.submits = []

    def submit(self, order):
        self.submits.append(order.client_order_id)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "lost-before":  # the request never arrived
            raise TransientBrokerError("timed out")
        accepted = super().submit(order)
        if fault == "lost-after":  # arrived, but the answer was lost
            raise TransientBrokerError("504 gateway timeout")
        if fault == "duplicate":  # a retry the broker had already accepted
            raise DuplicateOrderError("client_order_id must be unique")
        return accepted


def test_lost_answers_and_duplicates_are_resolved_by_client_id(tmp_path, bars):
    config = agent()
    store = store_at(tmp_path)
    broker = Flaky(["lost-after", "lost-before", "duplicate", "lost-before", "lost-after"])
    t = int(bars.index.get_loc(pd.Timestamp("2020-01-02")))
    runner = LiveRunner(config, broker, "sim", store, PM, sleep=lambda s: None, origin=t)
    runner.open(bars)
    report = runner.cycle(bar_decision(bars, t))
    runner.close()
    assert report.sent == len(report.orders) == 3
    assert sorted(broker.orders) == sorted(e.client_order_id for e in report.orders)
    # SPY: answer lost, found by its id; AGG: lost on the way, retried, "duplicate" (found);
    # XLK: lost on the way, retried, answer lost (found): five sends, three orders
    assert [i.rsplit("-", 1)[1] for i in broker.submits] == ["SPY", "AGG", "AGG", "XLK", "XLK"]
    assert all(runner.journal.get(i).status == "filled" or runner.journal.get(i).status == "new"
               for i in broker.orders)


def test_the_journal_reads_the_same_entries_by_prefix_as_by_range(tmp_path):
    """Other databases than SQLite select a deployment's orders with LIKE (their collations
    may not sort ids byte by byte); SQLite with its index range.  Both give the same rows."""
    config = agent()
    store = store_at(tmp_path)
    live(config, pm=PM, store=store, max_cycles=40)
    journal = Journal(store, "-", live_deployment(config))
    prefixed = Journal(store, "-", live_deployment(config), by_range=False)
    everything = journal.entries()
    assert everything and prefixed.entries() == everything
    bar = everything[-1].bar
    assert prefixed.entries(bar=bar) == journal.entries(bar=bar) != []
    assert prefixed.entries(states=["filled"]) == journal.entries(states=["filled"])
    assert prefixed.decided(bar) and not prefixed.decided(pd.Timestamp("1999-01-04"))


def live_deployment(config):
    from rlbridge.live import deployment_id

    return deployment_id(config, "sim")


def test_an_intent_whose_bar_passed_unsent_expires(tmp_path, bars):
    config = agent()
    store = store_at(tmp_path)
    runner = LiveRunner(config, SimBroker(SimBroker.Config(cash=100_000)), "sim", store, PM)
    runner.open(bars)
    t = int(bars.index.get_loc(pd.Timestamp("2020-01-02")))
    from rlbridge.interfaces import Order
    from rlbridge.live import client_order_id

    stale = client_order_id(runner.deployment, bars.index[t], "SPY")
    runner.journal.intend([Order("SPY", 10, kind="market_on_open", created=bars.index[t],
                                 client_order_id=stale)])  # journaled, then the process died
    report = runner.cycle(bar_decision(bars, t + 1))
    runner.close()
    assert report.expired == [stale]
    assert stale not in runner.broker.orders
    assert runner.journal.get(stale).status == "expired"


def test_dry_run_records_the_orders_and_sends_nothing(tmp_path, bars):
    store = store_at(tmp_path)
    reports = live(agent(), pm=PM, store=store, once=True, dry_run=True)
    assert reports[0].sent == 0
    with store.engine.connect() as conn:
        rows = conn.execute(orders_table.select()).all()
    assert {r.status for r in rows} == {"dry_run"} and len(rows) == 3


# ---------------------------------------------------------------------- the clock
def test_the_clock_sends_daily_orders_only_before_a_sessions_open(bars):
    et = "America/New_York"
    decision = decide_at(bars, pd.Timestamp("2020-09-30 08:00", tz=et))
    assert decision.bar == pd.Timestamp("2020-09-29") and decision.order_kind == "market_on_open"
    assert decide_at(bars, pd.Timestamp("2020-10-01 08:00", tz=et)).bar == \
        pd.Timestamp("2020-09-30")
    with pytest.raises(MarketClosed, match="2020-10-03 is not a XNYS session: nothing is sent; "
                                           "the next session is 2020-10-05"):
        decide_at(bars, pd.Timestamp("2020-10-03 08:00", tz=et))
    with pytest.raises(MarketClosed, match="the 2020-09-30 session opened at 09:30 EDT"):
        decide_at(bars, pd.Timestamp("2020-09-30 10:00", tz=et))
    with pytest.raises(DataError, match="needs the close of 2020-10-01, and the bars end at "
                                        "2020-09-30: load the latest bars first"):
        decide_at(bars, pd.Timestamp("2020-10-02 08:00", tz=et))


def test_real_money_needs_the_flag(tmp_path, bars):
    class RealMoney(SimBroker):
        paper = False

    with pytest.raises(ConfigError, match=r"\[broker.paper\]: broker 'sim' is set to trade real "
                                          "money"):
        LiveRunner(agent(), RealMoney(), "sim", store_at(tmp_path), PM)
    LiveRunner(agent(), RealMoney(), "sim", store_at(tmp_path), PM, live_money=True)


def test_rlbridge_live_once_on_sim(tmp_path, rlbridge_cli):
    path = tmp_path / "agent.toml"
    path.write_text('[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG"]\nstart = 2020-06-01\n'
                    'end = 2020-09-30\n\n[strategy]\nname = "equal_weight"\n\n'
                    '[broker]\nname = "sim"\ncash = 50_000\n')
    out = rlbridge_cli("live", path, "--once")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("2020-09-30: 2 order(s), 2 sent, 0 fill(s), 0 rejected\n")
    again = rlbridge_cli("live", path, "--once")  # the same bar again: nothing new is sent
    assert again.stdout.startswith("2020-09-30: 2 order(s), 0 sent, 0 fill(s), 0 rejected\n")
    bad = rlbridge_cli("live", path, "--broker", "alpacca", "--once")
    assert bad.exit_code == 2 and "unknown broker 'alpacca'" in bad.stderr


def test_rebalance_schedules_count_from_the_backtest_start(tmp_path, bars):
    config = agent({"name": "equal_weight", "rebalance": 21})
    reports = live(config, pm=PM, store=store_at(tmp_path))
    decided = [str(pd.Timestamp(r.bar).date()) for r in reports if r.orders]
    starts = bars.between("2020-01-02", None).index
    assert decided[:3] == [str(d.date()) for d in starts[[0, 21, 42]]]


def test_the_journal_state_after_a_replay_matches_the_broker(tmp_path, bars):
    config = dataclasses.replace(agent())
    store = store_at(tmp_path)
    live(config, pm=PM, store=store)
    broker = _connected_sim(config, store, bars)
    journal = Journal(store, "unused", __import__("rlbridge").live.deployment_id(config, "sim"))
    assert journal.positions() == pytest.approx(broker.positions())


def test_the_kill_switch_remembers_its_peak_and_its_halt_across_runs(tmp_path):
    """Daily --once runs: the drawdown is measured from the deployment's peak, a halt stays
    until it is cleared on purpose."""
    store = store_at(tmp_path)

    def day(end, **kw):
        config = config_from_mapping({
            "data": {"feed": "sample", "symbols": ["SPY"], "start": "2019-06-03", "end": end,
                     "adjust": False},
            "costs": {"model": "zero"},
            "strategy": {"name": "equal_weight", "rebalance": 1000},
            "risk": {"max_drawdown": 0.2},
            "broker": {"name": "sim", "cash": 100_000},
        }, pm=PM)
        [report] = live(config, pm=PM, store=store, once=True, **kw)
        return report

    first = day("2020-02-19")  # invests at the peak of early 2020
    assert [e.symbol for e in first.orders] == ["SPY"] and first.orders[0].quantity > 0
    assert day("2020-02-26").orders == []  # down about 8 %: holds
    crash = day("2020-03-12")  # about 26 % below the peak: a process that started today
    [flatten] = crash.orders  # still knows the peak, so the kill switch fires
    assert flatten.quantity == -first.orders[0].quantity
    halted = day("2020-03-20")  # a later run: the halt stays, nothing is decided
    assert halted.orders == [] and len(halted.fills) == 1  # only the flattening fill arrives
    again = day("2020-03-23", reset_halt=True)  # cleared on purpose: the strategy trades
    assert [e.symbol for e in again.orders] == ["SPY"] and again.orders[0].quantity > 0

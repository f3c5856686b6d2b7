"""Runs, models, equity, orders and fills in a real SQLite store."""

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rlbridge.config import config_from_mapping
from rlbridge.errors import DataError, NotFoundError, RLBridgeError, StoreError
from rlbridge.interfaces import Fill, Order
from rlbridge.redact import clean_config
from rlbridge.runs import (
    RunRecord,
    finish_run,
    get_model,
    get_run,
    list_models,
    list_runs,
    record_equity,
    record_fills,
    record_orders,
    recording,
    run_equity,
    run_fills,
    run_orders,
    save_model,
    start_run,
    update_order,
)
from rlbridge.store import open_store

DAYS = pd.DatetimeIndex(["2020-03-12", "2020-03-13", "2020-03-16", "2020-03-17", "2020-03-18"])


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store.db"


@pytest.fixture
def store(db):
    with open_store(f"sqlite:///{db}") as s:
        yield s


def rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()


# ---------------------------------------------------------------------- runs
def test_start_run_records_a_running_run_with_a_sortable_id(store):
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run = start_run(store, "backtest", {"backtest": {"cash": 1000}}, data_hash="ab" * 32)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run.id)
    assert run.id[:15] == run.started_at.strftime("%Y%m%d-%H%M%S")
    assert before <= run.started_at <= dt.datetime.now(dt.UTC)
    assert (run.kind, run.status, run.finished_at, run.error) == ("backtest", "running", None,
                                                                  None)
    assert get_run(store, run.id) == run  # times come back tz-aware and equal
    [row] = rows(store, "runs")
    assert (row["id"], row["status"], row["data_hash"]) == (run.id, "running", "ab" * 32)


def test_run_ids_sort_by_start_time_and_list_runs_is_newest_first(store):
    made = [start_run(store, kind, {}) for kind in ("train", "backtest", "train", "live")]
    assert len({r.id for r in made}) == 4
    assert sorted(r.id for r in made) == [r.id for r in sorted(made, key=lambda r: r.started_at)]
    assert [r.id for r in list_runs(store)] == [r.id for r in reversed(made)]
    assert [r.id for r in list_runs(store, kind="train")] == [made[2].id, made[0].id]
    assert [r.id for r in list_runs(store, limit=2)] == [made[3].id, made[2].id]


def test_unknown_run_kind_is_refused(store):
    with pytest.raises(StoreError, match="unknown run kind 'paper'; kinds: train, backtest, "
                                         "walkforward, live"):
        start_run(store, "paper", {})
    assert rows(store, "runs") == []


def test_finish_run_completed_and_failed(store):
    a, b = start_run(store, "train", {}), start_run(store, "backtest", {})
    done = finish_run(store, a)
    assert done.status == "completed" and done.error is None
    assert done.started_at <= done.finished_at
    assert get_run(store, a.id) == done
    failed = finish_run(store, b.id, "failed", error="cannot reach postgresql://me:pw@db/x")
    assert failed.status == "failed"
    assert failed.error == "cannot reach postgresql://me:***@db/x"
    assert get_run(store, b.id).error == failed.error
    with pytest.raises(StoreError, match=f"run {a.id} is already completed"):
        finish_run(store, a, "failed", "late")
    with pytest.raises(StoreError, match="'completed' or 'failed', not 'done'"):
        finish_run(store, b, "done")


def test_unknown_run_lists_the_most_recent(store):
    with pytest.raises(NotFoundError, match=r"no run 'x': the store .* has no runs yet"):
        get_run(store, "x")
    made = [start_run(store, "train", {}) for _ in range(7)]
    with pytest.raises(NotFoundError) as info:
        get_run(store, "20990101-000000-0000")
    recent = ", ".join(r.id for r in reversed(made[2:]))  # the newest five
    assert str(info.value).endswith(f"the most recent runs are: {recent}")
    assert isinstance(info.value, RLBridgeError)
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        record_equity(store, "nope", DAYS, np.ones(5), np.ones(5))
    assert rows(store, "equity") == []


# ---------------------------------------------------------------------- secrets
SECRET_CONFIG = {
    "broker": {
        "name": "alpaca",
        "APCA_API_SECRET_KEY": "s3cr3t-1",
        "Api_Key_Id": "s3cr3t-2",
        "trading_url": "https://trader:s3cr3t-3@paper.example.com/v2?access_token=s3cr3t-4&x=1",
        "accounts": [{"id": "U1", "Password": "s3cr3t-5"}, "plain"],
    },
    "store": {"url": "postgresql://bob:s3cr3t-6@db.example.com:5432/rl"},
    "session_TOKEN": "s3cr3t-7",
    "policy": {"algo": "ppo", "key": "kept", "keyword": 3},
    "notify": {"password_env": "DESK_PW"},  # the name of a variable, not a secret: kept
}


def test_secrets_are_stripped_recursively_and_url_passwords_masked(store, db):
    run = start_run(store, "live", SECRET_CONFIG)
    expected = {
        "broker": {
            "name": "alpaca",
            "trading_url": "https://trader:***@paper.example.com/v2?x=1",
            "accounts": [{"id": "U1"}, "plain"],
        },
        "store": {"url": "postgresql://bob:***@db.example.com:5432/rl"},
        "policy": {"algo": "ppo", "key": "kept", "keyword": 3},
        "notify": {"password_env": "DESK_PW"},
    }
    assert run.config == expected
    assert get_run(store, run.id).config == expected
    save_model(store, run, algo="ppo", path="m.zip", config=SECRET_CONFIG, data_hash=None,
               versions={})
    assert list_models(store)[0].config == expected
    store.close()  # checkpoint the WAL so every byte written is in the files read below
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"postgresql://bob:***@db.example.com" in raw
    for n in range(1, 8):
        assert f"s3cr3t-{n}".encode() not in raw


def test_a_loaded_config_is_stored_as_plain_json_without_secrets(store, tmp_path):
    config = config_from_mapping({
        "store": {"url": "postgresql://alice:hunter2@db/rl"},
        "backtest": {"engine": "native", "cash": 50_000, "start": "2019-01-02"},
    }, path=tmp_path / "agent.toml")
    run = start_run(store, "backtest", config)
    stored = get_run(store, run.id).config
    assert stored["store"] == {"url": "postgresql://alice:***@db/rl"}
    assert stored["backtest"]["start"] == "2019-01-02"
    assert stored["backtest"]["cash"] == 50_000


def test_clean_config_converts_values_to_json():
    cleaned = clean_config({"when": dt.date(2020, 1, 2), "n": np.int64(3), "x": np.float32(0.5),
                            "tags": ("a", "b"), "path": __import__("pathlib").Path("/d/f")})
    assert cleaned == {"when": "2020-01-02", "n": 3, "x": 0.5, "tags": ["a", "b"],
                       "path": "/d/f"}
    assert type(cleaned["n"]) is int
    with pytest.raises(StoreError, match="must be a mapping, got int"):
        clean_config(3)


# ---------------------------------------------------------------------- equity
def test_daily_equity_round_trips_as_session_dates(store):
    run = start_run(store, "backtest", {})
    value = np.array([100_000.0, 99_512.25, 97_001.5, 98_250.125, 101_000.0])
    cash = np.array([100_000.0, 1_000.5, 1_000.5, 2_000.0, 2_000.0])
    assert record_equity(store, run, DAYS, value, cash) == 5
    stored = [r["ts"] for r in rows(store, "equity")]
    assert stored[2] == pd.Timestamp("2020-03-16").value == 1_584_316_800 * 10**9
    frame = run_equity(store, run.id)
    assert list(frame.columns) == ["value", "cash"]
    assert frame.index.equals(DAYS) and frame.index.tz is None
    assert np.array_equal(frame["value"].to_numpy(), value)
    assert np.array_equal(frame["cash"].to_numpy(), cash)


def test_intraday_equity_is_stored_in_utc(store):
    run = start_run(store, "live", {})
    local = pd.date_range("2020-03-16 09:30", periods=3, freq="h", tz="America/New_York")
    record_equity(store, run, local, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert rows(store, "equity")[0]["ts"] == pd.Timestamp("2020-03-16 13:30", tz="UTC").value
    frame = run_equity(store, run.id)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.equals(local.tz_convert("UTC"))


def test_recording_equity_in_pieces_replaces_overlapping_times(store):
    run = start_run(store, "live", {})
    record_equity(store, run, DAYS[:3], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    record_equity(store, run, DAYS[2:], [30.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    frame = run_equity(store, run.id)
    assert frame.index.equals(DAYS)
    assert frame["value"].tolist() == [1.0, 2.0, 30.0, 4.0, 5.0]
    assert frame["cash"].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_bad_equity_names_the_problem_and_writes_nothing(store):
    run = start_run(store, "backtest", {})
    with pytest.raises(DataError, match="5 times, 4 values and 5 cash amounts"):
        record_equity(store, run, DAYS, np.ones(4), np.ones(5))
    with pytest.raises(DataError, match=r"value is nan at 2020-03-16 00:00:00"):
        record_equity(store, run, DAYS, [1.0, 1.0, np.nan, 1.0, 1.0], np.ones(5))
    with pytest.raises(DataError, match=r"cash is inf at 2020-03-18"):
        record_equity(store, run, DAYS, np.ones(5), [1.0, 1.0, 1.0, 1.0, np.inf])
    with pytest.raises(DataError, match="times must be sorted and unique"):
        record_equity(store, run, DAYS[::-1], np.ones(5), np.ones(5))
    assert rows(store, "equity") == []
    assert run_equity(store, run.id).empty


def test_a_write_the_database_refuses_leaves_the_old_rows(store):
    run = start_run(store, "live", {})
    record_equity(store, run, DAYS, [1.0, 2.0, 3.0, 4.0, 5.0], np.zeros(5))
    with store.engine.begin() as conn:  # the database itself refuses one row
        conn.exec_driver_sql("CREATE TRIGGER unlucky BEFORE INSERT ON equity WHEN NEW.value = 13 "
                             "BEGIN SELECT RAISE(ABORT, 'thirteen'); END")
    with pytest.raises(StoreError, match="write failed, nothing was saved: thirteen"):
        record_equity(store, run, DAYS[1:4], [12.0, 13.0, 14.0], np.zeros(3))
    assert run_equity(store, run.id)["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


# ---------------------------------------------------------------------- orders and fills
def test_orders_and_fills_round_trip_and_link(store):
    run = start_run(store, "backtest", {})
    ids = record_orders(store, run, [Order("SPY", 10, created=DAYS[0]),
                                     Order("AGG", -5.5, created=DAYS[0], client_order_id="c-1")])
    assert ids == [f"{run.id}-1", "c-1"]
    assert record_orders(store, run, [Order("XLK", 1, created=DAYS[1])]) == [f"{run.id}-3"]
    fills = [Fill("SPY", 10, 250.5, 1.25, DAYS[1], order_id=f"{run.id}-1"),
             Fill("AGG", -5.5, 110.0, 0.5, DAYS[1], order_id="c-1"),
             Fill("XLK", 1, 90.0, 0.0, DAYS[2], order_id="unknown")]
    assert record_fills(store, run, fills) == 3
    raw = rows(store, "fills")
    assert [r["ts"] for r in raw] == [DAYS[1].value, DAYS[1].value, DAYS[2].value]
    assert raw[2]["order_id"] is None
    frame = run_fills(store, run.id)
    assert frame.index.equals(pd.DatetimeIndex([DAYS[1], DAYS[1], DAYS[2]]))
    assert frame["symbol"].tolist() == ["SPY", "AGG", "XLK"]
    assert frame["quantity"].tolist() == [10.0, -5.5, 1.0]
    assert frame["price"].tolist() == [250.5, 110.0, 90.0]
    assert frame["commission"].tolist() == [1.25, 0.5, 0.0]
    assert frame["order_id"].tolist() == [f"{run.id}-1", "c-1", None]
    orders = run_orders(store, run.id)
    assert orders["client_order_id"].tolist() == [f"{run.id}-1", "c-1", f"{run.id}-3"]
    assert orders["status"].tolist() == ["submitted"] * 3


def test_fill_times_are_epoch_ns_in_utc(store):
    run = start_run(store, "live", {})
    when = pd.Timestamp("2020-03-16 09:30:00.5", tz="America/New_York")
    record_fills(store, run, [Fill("SPY", 1, 10.0, 0.0, when)])
    assert rows(store, "fills")[0]["ts"] == pd.Timestamp("2020-03-16 13:30:00.5", tz="UTC").value
    assert run_fills(store, run.id).index[0] == when


def test_a_client_order_id_is_never_recorded_twice(store):
    run = start_run(store, "live", {})
    record_orders(store, run, [Order("SPY", 1, created=DAYS[0], client_order_id="r1-b0-SPY")])
    other = start_run(store, "live", {})
    with pytest.raises(StoreError, match=rf"'r1-b0-SPY' is already recorded \(run {run.id}\)"):
        record_orders(store, other, [Order("AGG", 1, created=DAYS[0]),
                                     Order("SPY", 1, created=DAYS[0],
                                           client_order_id="r1-b0-SPY")])
    with pytest.raises(StoreError, match="'x' appears twice in one batch"):
        record_orders(store, other, [Order("A", 1, created=DAYS[0], client_order_id="x")] * 2)
    assert len(rows(store, "orders")) == 1


def test_update_order_sets_status_and_broker_id(store):
    run = start_run(store, "live", {})
    [cid] = record_orders(store, run, [Order("SPY", 1, created=DAYS[0])], status="pending")
    update_order(store, cid, status="submitted", broker_order_id="B-77")
    update_order(store, cid, status="rejected", reason="insufficient buying power")
    [row] = rows(store, "orders")
    assert (row["status"], row["broker_order_id"], row["reason"]) == (
        "rejected", "B-77", "insufficient buying power")
    with pytest.raises(NotFoundError, match="no order with client order id 'zz'"):
        update_order(store, "zz", status="filled")


def test_bad_fills_and_orders_write_nothing(store):
    run = start_run(store, "backtest", {})
    good = Fill("SPY", 1, 10.0, 0.0, DAYS[0])
    with pytest.raises(DataError, match=r"fill 1 \(AGG\) of run .*: price is nan"):
        record_fills(store, run, [good, Fill("AGG", 1, float("nan"), 0.0, DAYS[0])])
    with pytest.raises(DataError, match=r"fill 0 \(SPY\) of run .* has no time"):
        record_fills(store, run, [Fill("SPY", 1, 10.0, 0.0, None)])
    with pytest.raises(DataError, match=r"order 1 \(AGG\) of run .* has no created time"):
        record_orders(store, run, [Order("SPY", 1, created=DAYS[0]), Order("AGG", 1)])
    assert rows(store, "fills") == [] and rows(store, "orders") == []


# ---------------------------------------------------------------------- failure
def test_a_failed_run_keeps_what_it_recorded(store):
    with pytest.raises(ValueError, match="policy exploded"), \
            recording(store, "backtest", {"a": 1}, "hash") as run:
        record_equity(store, run, DAYS[:2], [100.0, 101.0], [100.0, 0.0])
        record_fills(store, run, [Fill("SPY", 1, 100.0, 0.1, DAYS[1])])
        raise ValueError("policy exploded")
    stored = get_run(store, run.id)
    assert stored.status == "failed"
    assert stored.error == "ValueError: policy exploded"
    assert stored.finished_at is not None
    assert run_equity(store, run.id)["value"].tolist() == [100.0, 101.0]
    assert len(run_fills(store, run.id)) == 1


def test_recording_completes_a_run_that_does_not_raise(store):
    with recording(store, "train", {}) as run:
        assert get_run(store, run.id).status == "running"
    assert get_run(store, run.id).status == "completed"
    with pytest.raises(DataError), recording(store, "train", {}) as bad:
        raise DataError("high < low", source="SPY.csv", row=3)
    assert get_run(store, bad.id).error == "SPY.csv, row 3: high < low"  # ours: no class name
    with pytest.raises(KeyboardInterrupt), recording(store, "train", {}) as stopped:
        raise KeyboardInterrupt
    assert get_run(store, stopped.id).error == "KeyboardInterrupt"


# ---------------------------------------------------------------------- models
def test_models_by_id_and_by_path(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = start_run(store, "train", {})
    first = save_model(store, run, algo="ppo", path="models/agent.zip", config={"seed": 7},
                       data_hash="d" * 64, versions={"torch": "2.13.0", "rlbridge": "0.1.0"})
    assert first.path == str(tmp_path / "models" / "agent.zip")
    assert first.run_id == run.id
    second = save_model(store, None, algo="sac", path=tmp_path / "other", config={},
                        data_hash=None, versions={})
    again = save_model(store, run, algo="ppo", path="models/agent.zip", config={"seed": 8},
                       data_hash="e" * 64, versions={})
    assert [m.id for m in list_models(store)] == [again.id, second.id, first.id]
    assert get_model(store, first.id) == first
    assert get_model(store, str(second.id)) == second
    assert get_model(store, "models/agent.zip") == again  # the newest at that path
    assert get_model(store, tmp_path / "models" / "agent") == again  # SB3 adds .zip
    assert get_model(store, "other.zip") == second
    assert get_model(store, first.id).versions == {"torch": "2.13.0", "rlbridge": "0.1.0"}
    assert get_model(store, first.id).created_at.tzinfo is not None


def test_unknown_model_lists_the_most_recent_ids(store, tmp_path):
    with pytest.raises(NotFoundError, match=r"no model '3': the store .* has no models yet; "
                                            r"train one with `rlbridge train CONFIG`"):
        get_model(store, 3)
    for n in range(7):
        save_model(store, None, algo="ppo", path=tmp_path / f"m{n}.zip", config={},
                   data_hash=None, versions={})
    with pytest.raises(NotFoundError) as info:
        get_model(store, tmp_path / "missing.zip")
    message = str(info.value)
    assert "the most recent models are: 7 (ppo, " in message
    assert re.findall(r"(\d+) \(ppo, ", message) == ["7", "6", "5", "4", "3"]
    with pytest.raises(NotFoundError, match="no model '99'"):
        get_model(store, "99")
    with pytest.raises(NotFoundError, match="no run 'ghost'"):
        save_model(store, "ghost", algo="ppo", path="x", config={}, data_hash=None, versions={})


def test_records_are_frozen(store):
    run = start_run(store, "train", {})
    assert isinstance(run, RunRecord)
    with pytest.raises(AttributeError):
        run.status = "completed"

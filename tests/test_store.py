"""The SQLAlchemy store on real SQLite files, filled with the real ETF and EUR/USD files.

The bars written here are read from the CSV files with plain pandas, independently of the feeds,
so a store bug cannot hide behind a feed bug.
"""

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rlbridge.config import config_from_mapping
from rlbridge.errors import DataError, StoreError
from rlbridge.interfaces import FIELDS, Bars
from rlbridge.store import (
    SCHEMA_VERSION,
    infer_interval,
    mask_url,
    meta_table,
    open_store,
    resolve_url,
)

DATA = Path("/work/shared/data")
ETFS = ["AGG", "SPY", "XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]


def etf_frame(symbol, start="2005-01-01", end="2020-12-31"):
    frame = pd.read_csv(DATA / "etf-daily" / f"{symbol}.csv", parse_dates=["Date"],
                        index_col="Date")
    frame = frame.loc[start:end, ["Open", "High", "Low", "Close", "Volume"]]
    frame.columns = list(FIELDS)
    return frame.astype("float64")


def etf_bars(symbol, start="2005-01-01", end="2020-12-31"):
    frame = etf_frame(symbol, start, end)
    return Bars(frame.index, (symbol,), frame.to_numpy()[:, None, :])


def eurusd_bars():
    frame = pd.read_csv(DATA / "intraday" / "EURUSD-1h.csv")
    index = pd.DatetimeIndex(pd.to_datetime(frame["Time"], format="%d.%m.%Y %H:%M:%S.%f"), tz="UTC")
    values = frame[["Open", "High", "Low", "Close", "Volume"]].to_numpy(dtype="float64")
    return Bars(index, ("EURUSD",), values[:, None, :])


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def count_rows(store, table="bars"):
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# ---------------------------------------------------------------------- round trips
def test_twelve_etfs_round_trip_bit_for_bit(store):
    written = {s: etf_frame(s) for s in ETFS}
    with store.ingest(feed="csv", source="etf-daily") as batch:
        for symbol in ETFS:
            batch.write(etf_bars(symbol))
        assert batch.rows == 11 * 4028 + 640
    read = store.read_bars()
    assert list(read) == ETFS
    for symbol, frame in read.items():
        assert list(frame.columns) == list(FIELDS)
        assert frame.index.name == "date" and frame.index.tz is None
        assert frame.index.equals(written[symbol].index)
        assert np.array_equal(frame.to_numpy(), written[symbol].to_numpy())  # exact floats
    assert read["SPY"].loc["2020-03-16", "close"] == 239.850006
    assert count_rows(store) == 44948


def test_summary_gives_range_and_count_per_symbol(store):
    for symbol in ("SPY", "XLC"):
        store.write_bars(etf_bars(symbol))
    rows = store.summary()
    assert [(r.symbol, r.interval, r.first, r.last, r.bars) for r in rows] == [
        ("SPY", "1d", pd.Timestamp("2005-01-03"), pd.Timestamp("2020-12-31"), 4028),
        ("XLC", "1d", pd.Timestamp("2018-06-19"), pd.Timestamp("2020-12-31"), 640),
    ]
    store.write_bars(eurusd_bars())
    assert [r.symbol for r in store.summary("1h")] == ["EURUSD"]
    assert store.summary("1h")[0].first == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert store.intervals() == ["1d", "1h"]
    assert store.symbols() == ["SPY", "XLC"] and store.symbols(None) == ["EURUSD", "SPY", "XLC"]


def test_intraday_round_trip_is_utc(store):
    bars = eurusd_bars()
    assert store.write_bars(bars) == 6225
    frame = store.read_bars(["EURUSD"], interval="1h")["EURUSD"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "time"
    assert frame.index.equals(bars.index)
    assert np.array_equal(frame.to_numpy(), bars.values[:, 0, :])
    # bounds are UTC instants for intraday bars, both inclusive
    part = store.read_bars(["EURUSD"], "2017-11-03 20:00", "2017-11-05 22:00", interval="1h")
    assert list(part["EURUSD"].index) == [pd.Timestamp("2017-11-03 20:00", tz="UTC"),
                                          pd.Timestamp("2017-11-05 22:00", tz="UTC")]


def test_read_bars_date_bounds_are_inclusive(store):
    store.write_bars(etf_bars("SPY"))
    frame = store.read_bars(["SPY"], dt.date(2020, 3, 16), "2020-03-20")["SPY"]
    assert [d.day for d in frame.index] == [16, 17, 18, 19, 20]
    assert frame["close"].iloc[0] == 239.850006


def test_multi_symbol_bars_are_written_per_symbol(store):
    a = etf_frame("SPY", "2019-01-01", "2019-12-31")
    b = etf_frame("AGG", "2019-01-01", "2019-12-31")
    panel = Bars(a.index, ("SPY", "AGG"), np.stack([a.to_numpy(), b.to_numpy()], axis=1))
    assert store.write_bars(panel) == 2 * 252
    read = store.read_bars(["AGG", "SPY"])
    assert list(read) == ["AGG", "SPY"]  # the order asked for
    assert np.array_equal(read["AGG"].to_numpy(), b.to_numpy())


def test_portable_insert_path_writes_the_same_rows(store, monkeypatch):
    """The path other databases take (SQLAlchemy's executemany) gives the same rows."""
    import rlbridge.store

    monkeypatch.setattr(rlbridge.store, "_EXECUTEMANY_DIALECTS", frozenset())
    calls = []
    assert store.write_bars(etf_bars("XLC"), progress=calls.append) == 640 and calls == [640]
    store.write_bars(etf_bars("XLC", "2020-01-01", "2020-12-31"))  # replaces, no duplicates
    assert np.array_equal(store.read_bars(["XLC"])["XLC"].to_numpy(), etf_frame("XLC").to_numpy())


# ---------------------------------------------------------------------- re-ingest, transactions
def test_reingest_replaces_the_written_range_only(store):
    store.write_bars(etf_bars("SPY", "2010-01-01", "2012-12-31"))
    before = count_rows(store)
    fresh = etf_frame("SPY", "2011-01-01", "2011-12-31") + 1.0
    fresh = fresh.drop(pd.Timestamp("2011-06-15"))  # a day the new data lacks disappears
    store.write_bars(Bars(fresh.index, ("SPY",), fresh.to_numpy()[:, None, :]))
    assert count_rows(store) == before - 1
    frame = store.read_bars(["SPY"])["SPY"]
    old = etf_frame("SPY", "2010-01-01", "2012-12-31")
    assert pd.Timestamp("2011-06-15") not in frame.index
    assert frame.loc["2011-03-01", "close"] == old.loc["2011-03-01", "close"] + 1.0
    assert frame.loc["2010-03-01", "close"] == old.loc["2010-03-01", "close"]
    assert frame.loc["2012-03-01", "close"] == old.loc["2012-03-01", "close"]
    # the same range again: no duplicates
    store.write_bars(Bars(fresh.index, ("SPY",), fresh.to_numpy()[:, None, :]))
    assert count_rows(store) == before - 1


def test_ingest_is_all_or_nothing(store):
    store.write_bars(etf_bars("AGG", "2019-01-01", "2019-12-31"))
    with pytest.raises(RuntimeError, match="feed broke"), store.ingest(feed="csv") as batch:
        batch.write(etf_bars("SPY"))
        batch.write(etf_bars("AGG"))  # would replace 2019 and add the rest
        raise RuntimeError("feed broke")
    assert store.symbols() == ["AGG"]
    assert count_rows(store) == 252
    assert count_rows(store, "ingests") == 1


def test_bad_bars_in_a_transaction_roll_back_the_good_ones(store):
    good = etf_bars("SPY")
    noon = pd.DatetimeIndex(["2020-01-02 12:00", "2020-01-03 12:00"])
    bad = Bars(noon, ("AGG",), np.ones((2, 1, 5)))
    midnight = "daily bars must be stamped at midnight .* 2020-01-02 12:00"
    with pytest.raises(DataError, match=midnight), store.transaction():
        store.write_bars(good)
        store.write_bars(bad)
    assert count_rows(store) == 0 and count_rows(store, "ingests") == 0


def test_a_locked_database_is_a_store_error_and_saves_nothing(tmp_path):
    path = tmp_path / "locked.db"
    with open_store(f"sqlite:///{path}?timeout=0.2") as store:
        other = sqlite3.connect(path)
        other.execute("BEGIN EXCLUSIVE")  # another process writing
        with pytest.raises(StoreError) as info:
            store.write_bars(etf_bars("SPY"))
        other.rollback()
        other.close()
        assert str(info.value) == (f"sqlite:///{path}?timeout=0.2: write failed, nothing was "
                                   "saved: database is locked")
        assert store.summary() == []


def test_ingest_records_one_row_per_batch(store):
    with store.ingest(feed="csv", source="/data/etf") as batch:
        batch.write(etf_bars("SPY"))
        batch.write(etf_bars("XLC"))
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT feed, source, symbols, rows FROM ingests")).one()
    assert row[0] == "csv" and row[1] == "/data/etf" and row[3] == 4028 + 640
    assert sa.JSON().result_processor(store.engine.dialect, None)(row[2]) == ["SPY", "XLC"]


def test_progress_reports_every_row_in_chunks(store):
    calls = []
    store.write_bars(etf_bars("SPY"), progress=calls.append)
    assert sum(calls) == 4028
    bars = eurusd_bars()
    calls.clear()
    store.write_bars(bars, progress=calls.append)
    assert calls == [6225]
    long = Bars(pd.date_range("2020-01-01", periods=25_000, freq="min", tz="UTC"), ("X",),
                np.ones((25_000, 1, 5)))
    calls.clear()
    store.write_bars(long, progress=calls.append)
    assert calls == [10_000, 10_000, 5_000]
    assert store.summary("1m")[0].bars == 25_000


# ---------------------------------------------------------------------- intervals
@pytest.mark.parametrize(("freq", "label"), [
    ("h", "1h"), ("5min", "5m"), ("30s", "30s"), ("4h", "4h"), ("D", "24h"), ("250ms", "250ms"),
])
def test_interval_is_the_most_common_spacing(freq, label):
    index = pd.date_range("2021-03-01", periods=50, freq=freq, tz="UTC")
    index = index.delete([10, 11, 30])  # gaps do not change the label
    assert infer_interval(index) == label


def test_daily_bars_are_1d_and_single_intraday_bar_needs_a_label(store):
    assert infer_interval(pd.DatetimeIndex(["2020-01-02", "2020-01-10"])) == "1d"
    one = Bars(pd.DatetimeIndex(["2020-01-02 14:30"], tz="UTC"), ("X",), np.ones((1, 1, 5)))
    with pytest.raises(StoreError, match="cannot infer the interval of a single intraday bar"):
        store.write_bars(one)
    assert store.write_bars(one, interval="1m") == 1
    assert store.summary()[0].interval == "1m"
    with pytest.raises(StoreError, match="'1d' is for daily session bars"):
        store.write_bars(one, interval="1d")


# ---------------------------------------------------------------------- errors when reading
def test_unknown_symbols_list_what_the_store_has(store):
    store.write_bars(etf_bars("SPY"))
    store.write_bars(etf_bars("AGG"))
    with pytest.raises(StoreError) as info:
        store.read_bars(["SPY", "QQQ", "IWM"])
    assert str(info.value) == (f"{store.url}: no 1d bars for QQQ, IWM; "
                               "the store has 1d bars for AGG, SPY")
    with pytest.raises(StoreError, match=r"the store has no 1h bars \(it has 1d bars\)"):
        store.read_bars(interval="1h")


def test_empty_store_says_how_to_fill_it(store):
    with pytest.raises(StoreError,
                       match=r"has no 1d bars for SPY; load some with `rlbridge data ingest`"):
        store.read_bars(["SPY"])
    with pytest.raises(StoreError, match=r"has no 1d bars; load some"):
        store.read_bars()


def test_known_symbol_outside_the_range_gives_an_empty_frame(store):
    store.write_bars(etf_bars("SPY"))
    store.write_bars(etf_bars("XLC"))
    read = store.read_bars(["SPY", "XLC"], "2010-01-01", "2010-12-31")
    assert len(read["SPY"]) == 252 and read["XLC"].empty
    assert list(read["XLC"].columns) == list(FIELDS)


def test_unreadable_dates_are_config_errors(store):
    from rlbridge.errors import ConfigError

    store.write_bars(etf_bars("SPY"))
    with pytest.raises(ConfigError, match=r"\[start\]: cannot read 'yesterday-ish' as a date"):
        store.read_bars(["SPY"], start="yesterday-ish")


# ---------------------------------------------------------------------- opening
def test_url_order_explicit_env_config_default(tmp_path, monkeypatch):
    monkeypatch.delenv("RLBRIDGE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    config = config_from_mapping({"store": {"url": "sqlite:///from-config.db"}},
                                 path=tmp_path / "agent.toml")
    assert resolve_url(None, None) == "sqlite:///rlbridge.db"
    assert resolve_url(None, config) == f"sqlite:///{tmp_path}/from-config.db"
    monkeypatch.setenv("RLBRIDGE_DB", "sqlite:///from-env.db")
    assert resolve_url(None, config) == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///explicit.db", config) == "sqlite:///explicit.db"
    monkeypatch.delenv("RLBRIDGE_DB")
    with open_store() as store:
        store.write_bars(etf_bars("SPY", "2020-01-01", "2020-01-31"))
    assert (tmp_path / "rlbridge.db").exists()
    with open_store(config=config):
        pass
    assert (tmp_path / "from-config.db").exists()


def test_sqlite_store_uses_wal_and_normal_sync(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_schema_has_every_table_and_its_version(store):
    names = set(sa.inspect(store.engine).get_table_names())
    assert names == {"meta", "bars", "ingests", "runs", "models", "orders", "fills", "equity",
                     "positions"}
    inspector = sa.inspect(store.engine)
    key = inspector.get_pk_constraint("bars")["constrained_columns"]
    assert key == ["symbol", "interval", "ts"]
    assert [c["name"] for c in inspector.get_columns("runs")] == [
        "id", "kind", "status", "config", "data_hash", "error", "started_at", "finished_at",
        "config_path"]
    assert {c["name"] for c in inspector.get_columns("orders")} >= {
        "run_id", "client_order_id", "ts", "symbol", "quantity", "kind", "limit_price", "status",
        "reason", "broker_order_id"}
    with store.engine.begin() as conn:
        assert conn.execute(sa.select(meta_table.c.value)).scalar_one() == str(SCHEMA_VERSION)
        conn.execute(sa.text("INSERT INTO runs (id, kind, status, started_at) "
                             "VALUES ('r1', 'backtest', 'running', '2024-01-01')"))
        conn.execute(sa.text("INSERT INTO orders (run_id, client_order_id, ts, symbol, quantity, "
                             "kind, status, created_at) VALUES ('r1', 'c1', 0, 'SPY', 1, 'market', "
                             "'new', '2024-01-01')"))
    # client_order_id is unique
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO orders (run_id, client_order_id, ts, symbol, "
                             "quantity, kind, status, created_at) VALUES ('r1', 'c1', 1, "
                             "'SPY', 1, 'market', 'new', '2024-01-01')"))
    # a run's status is one of three
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO runs (id, kind, status, started_at) "
                             "VALUES ('r2', 'train', 'paused', '2024-01-01')"))


def test_reopening_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'again.db'}"
    with open_store(url) as store:
        store.write_bars(etf_bars("SPY"))
    with open_store(url) as store:
        assert store.summary()[0].bars == 4028


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'future.db'}"
    with open_store(url) as store, store.engine.begin() as conn:
        conn.execute(sa.update(meta_table).values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert str(info.value) == (
        f"cannot open the store {url}: its schema version is {SCHEMA_VERSION + 1} but this "
        f"rlbridge knows up to {SCHEMA_VERSION}; upgrade rlbridge")


def test_urls_that_cannot_be_opened(tmp_path):
    not_db = tmp_path / "notes.db"
    not_db.write_text("these are my notes, not a database\n" * 20)
    cases = {
        "nosuchdb://host/x":
            "unknown database dialect 'nosuchdb' (SQLAlchemy has no such dialect installed)",
        "just-a-name":
            "not a database URL (expected e.g. sqlite:///rlbridge.db or postgresql://user@host/db)",
        f"sqlite:///{tmp_path}/missing/x.db": f"the folder {tmp_path}/missing does not exist",
        f"sqlite:///{tmp_path}": f"{tmp_path} is a folder, not a database file",
        f"sqlite:///{not_db}": "file is not a database",
    }
    for url, reason in cases.items():
        with pytest.raises(StoreError) as info:
            open_store(url)
        assert str(info.value) == f"cannot open the store {url}: {reason}"
    assert not_db.read_text().startswith("these are my notes")  # left untouched


def test_passwords_are_masked_everywhere():
    url = "mysql+pymysql://trader:hunter2@db.example:3306/bars"
    assert mask_url(url) == "mysql+pymysql://trader:***@db.example:3306/bars"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    # a URL SQLAlchemy cannot parse still has its password hidden in messages
    assert mask_url("not a url://trader:hunter2@host/x") == "not a url://trader:***@host/x"
    with pytest.raises(StoreError) as info:
        open_store(url)  # no such driver installed here
    message = str(info.value)
    assert "hunter2" not in message
    assert message.startswith(
        "cannot open the store mysql+pymysql://trader:***@db.example:3306/bars: "
        "the database driver for 'mysql+pymysql' is not installed")


def test_close_releases_the_file(tmp_path):
    path = tmp_path / "s.db"
    with open_store(f"sqlite:///{path}") as store:
        assert store.url == f"sqlite:///{path}" and repr(store) == f"Store('sqlite:///{path}')"
        store.write_bars(etf_bars("SPY", "2020-01-01", "2020-12-31"))
        assert Path(f"{path}-wal").exists()  # write-ahead log in use while open
    # the last connection closed: SQLite checkpointed the log into the file and removed it
    assert not Path(f"{path}-wal").exists()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM bars").fetchone() == (253,)

"""``rlbridge data ingest`` and ``rlbridge data show`` on real files and real SQLite stores."""

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from rlbridge import sample_data
from rlbridge.cli import build_cli
from rlbridge.manager import make_plugin_manager
from rlbridge.store import open_store

DATA = Path("/work/shared/data")
EURUSD = DATA / "intraday" / "EURUSD-1h.csv"


def cli(*args, db=None, env=None):
    pm = make_plugin_manager(entrypoints=False, warn=False)
    head = ["--db", db] if db is not None else []
    return CliRunner().invoke(build_cli(pm), [*head, "data", *args], env=env)


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def summary(url, interval=None):
    with open_store(url) as store:
        return {(r.symbol, r.interval): r for r in store.summary(interval)}


def ingests(url):
    with open_store(url) as store, store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM ingests")).scalar_one()


def sample_file(symbol):
    return pd.read_csv(sample_data.path() / f"{symbol}.csv", parse_dates=["Date"], index_col="Date")


def copy_sample(folder, *symbols):
    folder.mkdir(parents=True, exist_ok=True)
    for symbol in symbols:
        shutil.copy(sample_data.path() / f"{symbol}.csv", folder / f"{symbol}.csv")
    return folder


# ---------------------------------------------------------------------- ingest
def test_ingest_the_sample_matches_the_files(db):
    result = cli("ingest", "--feed", "sample", db=db)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 13  # the summary and one line per symbol: no progress bar off a terminal
    assert lines[0] == (f"Ingested 12 symbols, 44,948 bars (2005-01-03 .. 2020-12-31) "
                        f"from feed 'sample' into {db}")
    assert lines[1].split() == ["SPY", "1d", "2005-01-03", "..", "2020-12-31", "4,028", "bars"]
    stored = summary(db)
    assert sorted(s for s, _ in stored) == sorted(sample_data.SYMBOLS)
    for symbol in sample_data.SYMBOLS:
        file = sample_file(symbol)
        row = stored[(symbol, "1d")]
        assert (row.bars, row.first, row.last) == (len(file), file.index[0], file.index[-1])
    with open_store(db) as store:
        spy = store.read_bars(["SPY"])["SPY"]
    # the sample feed's default: total-return prices, close = the file's Adj Close
    assert spy.loc["2020-03-16", "close"] == sample_file("SPY").loc["2020-03-16", "Adj Close"]
    assert ingests(db) == 1


def test_ingest_json(db):
    result = cli("ingest", "--feed", "sample", "--symbols", "SPY,XLC", "--start", "2019-01-01",
                 "--json", db=db)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {
        "store": db, "feed": "sample", "source": "SampleFeed(adjust=True)",
        "symbols": ["SPY", "XLC"], "bars": 2 * 505, "first": "2019-01-02", "last": "2020-12-31",
        "by_symbol": [
            {"symbol": s, "bars": 505, "interval": "1d", "first": "2019-01-02",
             "last": "2020-12-31"} for s in ("SPY", "XLC")
        ],
    }


def test_ingest_from_a_config_with_flags_overriding(tmp_path, monkeypatch):
    monkeypatch.delenv("RLBRIDGE_DB", raising=False)
    copy_sample(tmp_path / "etf", "SPY", "AGG", "XLK")
    config = tmp_path / "agent.toml"
    config.write_text('[data]\nfeed = "csv"\npath = "etf"\nsymbols = ["SPY", "AGG"]\n'
                      'start = 2019-01-01\nend = 2019-06-30\nadjust = true\n\n'
                      '[store]\nurl = "sqlite:///agent.db"\n')
    monkeypatch.chdir(tmp_path.parent)  # the config's paths are relative to its folder
    result = cli("ingest", str(config))
    assert result.exit_code == 0, result.output
    url = f"sqlite:///{tmp_path / 'agent.db'}"  # [store] url, relative to the config too
    assert result.stdout.splitlines()[0].endswith(f"from feed 'csv' into {url}")
    stored = summary(url)
    assert set(stored) == {("SPY", "1d"), ("AGG", "1d")}
    assert stored[("SPY", "1d")].first == pd.Timestamp("2019-01-02")
    assert stored[("SPY", "1d")].last == pd.Timestamp("2019-06-28")
    assert stored[("SPY", "1d")].bars == 124
    with open_store(url) as store:  # adjust = true from the config reached the feed
        close = store.read_bars(["SPY"])["SPY"].loc["2019-01-02", "close"]
    assert close == sample_file("SPY").loc["2019-01-02", "Adj Close"]
    # flags win over the config: other symbols, another end, another option
    result = cli("ingest", str(config), "--symbols", "XLK", "--end", "2019-01-31",
                 "-o", "adjust=false")
    assert result.exit_code == 0, result.output
    xlk = summary(url)[("XLK", "1d")]
    assert (xlk.first, xlk.last, xlk.bars) == \
        (pd.Timestamp("2019-01-02"), pd.Timestamp("2019-01-31"), 21)
    with open_store(url) as store:
        assert store.read_bars(["XLK"])["XLK"].loc["2019-01-02", "close"] == \
            sample_file("XLK").loc["2019-01-02", "Close"]


def test_option_values_are_toml(db):
    result = cli("ingest", "--path", str(EURUSD), "-o", "dayfirst=true", "-o", "symbol=EURUSD",
                 "--json", db=db)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["by_symbol"] == [{"symbol": "EURUSD", "bars": 6225, "interval": "1h",
                                 "first": "2017-01-01T22:00:00+00:00",
                                 "last": "2017-12-29T21:00:00+00:00"}]
    assert out["source"] == str(EURUSD)
    # without day-first dates the file cannot be read: the feed says where
    result = cli("ingest", "--path", str(EURUSD), "-o", "dayfirst=false", db=db)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {EURUSD}, row 220, column 'Time': cannot read "
                                    "'13.01.2017 00:00:00.000' as a date")


def test_bad_options_and_arguments_exit_2(db, tmp_path):
    cases = {
        ("ingest",): "Error: no feed to ingest from: give a CONFIG with a [data] table or --feed "
                     "NAME (for example --feed sample, or --feed csv --path DIR)\n",
        ("ingest", "--feed", "csvv"): "Error: --feed: unknown feed 'csvv'; valid names: alpaca, "
                                      "csv, ib, sample, sql (did you mean 'csv'?)\n",
        ("ingest", "--feed", "sample", "-o", "adjsut=true"): None,
        ("ingest", "--feed", "sample", "-o", "adjust"):
            "Error: --option 'adjust': expected KEY=VALUE\n",
        ("ingest", "--feed", "sample", "--start", "2020-13-01"):
            "Error: --start: cannot read '2020-13-01' as a date (expected YYYY-MM-DD)\n",
        ("ingest", "--feed", "sample", "--symbols", "SPY,QQQ"): None,
        ("ingest", str(tmp_path / "missing.toml")):
            f"Error: {tmp_path / 'missing.toml'}: no such config file\n",
        ("show", "--calendar", "XNYZ"): None,
    }
    for args, message in cases.items():
        result = cli(*args, db=db)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        if message is not None:
            assert result.stderr == message
    assert "unknown key 'adjsut' (did you mean 'adjust'?)" in cli(
        "ingest", "--feed", "sample", "-o", "adjsut=true", db=db).stderr
    assert "no symbol 'QQQ'; available: AGG, SPY, XLB" in cli(
        "ingest", "--feed", "sample", "--symbols", "SPY,QQQ", db=db).stderr
    assert "unknown exchange calendar 'XNYZ'" in cli("show", "--calendar", "XNYZ", db=db).stderr
    assert summary(db) == {} and ingests(db) == 0


def test_malformed_csv_writes_nothing(db, tmp_path):
    folder = copy_sample(tmp_path / "etf", "AGG", "SPY", "XLK")
    lines = (folder / "XLK.csv").read_text().splitlines(keepends=True)
    cells = lines[49].split(",")  # row 50 as a spreadsheet shows it
    cells[2] = "abc"  # High
    lines[49] = ",".join(cells)
    (folder / "XLK.csv").write_text("".join(lines))
    message = f"Error: {folder / 'XLK.csv'}, row 50, column 'High': cannot read 'abc' as a number\n"

    result = cli("ingest", "--path", str(folder), db=db)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)
    assert summary(db) == {} and ingests(db) == 0  # AGG and SPY, read before XLK: not written

    assert cli("ingest", "--feed", "sample", "--symbols", "SPY", "--end", "2005-12-31",
               db=db).exit_code == 0
    before = summary(db)
    result = cli("ingest", "--path", str(folder), db=db)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)
    assert summary(db) == before  # SPY 2005 kept, nothing of the folder added
    assert ingests(db) == 1


class HalfBadFeed:
    """A third-party feed whose second symbol's daily bars are stamped at noon."""

    def __init__(self, options):
        self.options = options

    def symbols(self):
        return ["SPY", "NOON"]

    def load(self, symbols=None, start=None, end=None):
        import numpy as np

        from rlbridge.interfaces import Bars

        spy = sample_data.load(["SPY"], start="2020-01-01", end="2020-12-31")
        if symbols == ["SPY"]:
            return spy
        return Bars(spy.index + pd.Timedelta(hours=12), ("NOON",), np.asarray(spy.values))


class HalfBadPlugin:
    from rlbridge import hookimpl

    @hookimpl
    def register_feeds(self, register):
        register("half_bad", HalfBadFeed)


def test_a_failure_while_writing_rolls_back_every_symbol(db):
    pm = make_plugin_manager(entrypoints=False, warn=False)
    pm.register(HalfBadPlugin(), name="half-bad")
    result = CliRunner().invoke(build_cli(pm), ["--db", db, "data", "ingest", "--feed", "half_bad"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: daily bars must be stamped at midnight (session dates); "
                             "found 2020-01-02 12:00:00\n")
    assert summary(db) == {} and ingests(db) == 0  # SPY, written first, was rolled back


def test_bad_store_url_exits_2_without_traceback_or_password():
    for url, reason in {
        "nosuch://x":
            "unknown database dialect 'nosuch' (SQLAlchemy has no such dialect installed)",
        "mysql://trader:hunter2@db.example/bars": "the database driver for 'mysql' is not "
                                                  "installed (No module named 'MySQLdb')",
    }.items():
        for args in (("show",), ("ingest", "--feed", "sample")):
            result = cli(*args, db=url)
            assert result.exit_code == 2
            shown = url.replace("hunter2", "***")
            assert result.stderr == f"Error: cannot open the store {shown}: {reason}\n"
            assert "Traceback" not in result.output and "hunter2" not in result.output


# ---------------------------------------------------------------------- show
def test_show_reports_a_missing_session_and_a_holiday_row(db, tmp_path):
    folder = copy_sample(tmp_path / "etf", "SPY", "AGG")
    spy = (folder / "SPY.csv").read_text().splitlines(keepends=True)
    (folder / "SPY.csv").write_text("".join(x for x in spy if not x.startswith("2019-03-15,")))
    agg = (folder / "AGG.csv").read_text().splitlines(keepends=True)
    at = next(i for i, x in enumerate(agg) if x.startswith("2019-07-05,"))
    agg.insert(at, "2019-07-04,108.0,108.5,107.9,108.2,100.0,1000\n")  # Independence Day
    (folder / "AGG.csv").write_text("".join(agg))
    assert cli("ingest", "--path", str(folder), "--start", "2019-01-01", "--end", "2019-12-31",
               db=db).exit_code == 0

    result = cli("show", "--json", db=db)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["store"] == db and out["calendar"] == "XNYS"
    assert out["symbols"] == [
        {"symbol": "AGG", "interval": "1d", "first": "2019-01-02", "last": "2019-12-31",
         "bars": 253, "missing_sessions": 0, "missing_first": [], "non_session_rows": 1,
         "non_session_first": ["2019-07-04"]},
        {"symbol": "SPY", "interval": "1d", "first": "2019-01-02", "last": "2019-12-31",
         "bars": 251, "missing_sessions": 1, "missing_first": ["2019-03-15"],
         "non_session_rows": 0, "non_session_first": []},
    ]
    text = cli("show", db=db).stdout.splitlines()
    assert text[0] == f"Store {db}"
    assert text[1].split("  ")[0] == "symbol"
    assert "missing XNYS sessions" in text[1] and "largest gap" not in text[1]
    assert text[2].split() == ["AGG", "1d", "2019-01-02", "2019-12-31", "253", "0", "1",
                               "(2019-07-04)"]
    assert text[3].split() == ["SPY", "1d", "2019-01-02", "2019-12-31", "251", "1",
                               "(2019-03-15)", "0"]
    unchecked = json.loads(cli("show", "--json", "--calendar", "none", db=db).stdout)
    assert "missing_sessions" not in unchecked["symbols"][0] and unchecked["calendar"] is None


def test_show_lists_the_first_few_of_many_missing_sessions(db, tmp_path):
    folder = copy_sample(tmp_path / "etf", "SPY")
    lines = (folder / "SPY.csv").read_text().splitlines(keepends=True)
    gone = ("2020-04-01,", "2020-04-02,", "2020-04-03,", "2020-04-06,", "2020-04-07,")
    (folder / "SPY.csv").write_text("".join(x for x in lines if not x.startswith(gone)))
    assert cli("ingest", "--path", str(folder), "--start", "2020-01-01", db=db).exit_code == 0
    row = cli("show", db=db).stdout.splitlines()[2]
    assert "5 (2020-04-01, 2020-04-02, 2020-04-03, +2 more)" in row


def test_show_intraday_gives_the_largest_gap(db):
    assert cli("ingest", "--path", str(EURUSD), "-o", "dayfirst=true", "-o", "symbol=EURUSD",
               db=db).exit_code == 0
    assert cli("ingest", "--feed", "sample", "--symbols", "SPY", "--start", "2020-12-01",
               db=db).exit_code == 0
    out = json.loads(cli("show", "--json", "--interval", "1h", db=db).stdout)
    assert out["symbols"] == [{
        "symbol": "EURUSD", "interval": "1h", "first": "2017-01-01T22:00:00+00:00",
        "last": "2017-12-29T21:00:00+00:00", "bars": 6225, "calendar_checked": False,
        "largest_gap": "50h", "largest_gap_seconds": 180000.0,
        "largest_gap_from": "2017-11-03T20:00:00+00:00",
        "largest_gap_to": "2017-11-05T22:00:00+00:00",
    }]
    text = cli("show", db=db).stdout.splitlines()
    assert text[2].split("  ")[0] == "EURUSD"
    assert text[2].rstrip().endswith("50h (2017-11-03 20:00 UTC .. 2017-11-05 22:00 UTC)")
    assert text[3].split()[:6] == ["SPY", "1d", "2020-12-01", "2020-12-31", "22", "0"]
    assert text[-1].startswith("Intraday bars are not checked against an exchange calendar")


def test_show_an_empty_store(db):
    result = cli("show", db=db)
    assert result.exit_code == 0
    assert result.stdout == f"The store {db} has no bars; load some with `rlbridge data ingest`.\n"
    assert json.loads(cli("show", "--json", db=db).stdout) == {
        "store": db, "calendar": "XNYS", "symbols": []}


def test_a_terminal_gets_a_rich_table(db):
    assert cli("ingest", "--feed", "sample", "--symbols", "SPY", "--start", "2020-12-01",
               db=db).exit_code == 0
    exe = Path(sys.executable).with_name("rlbridge")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
    env.update(COLUMNS="160", TERM="xterm")
    primary, replica = pty.openpty()
    proc = subprocess.Popen([str(exe), "--db", db, "data", "show"], stdout=replica,
                            stderr=subprocess.PIPE, env=env)
    os.close(replica)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    screen = b"".join(chunks).decode()
    assert "┏" in screen and "━" in screen  # rich's table frame, not the plain text layout
    assert "SPY" in screen and "2020-12-31" in screen

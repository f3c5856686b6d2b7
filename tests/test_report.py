"""Backtest reports: the benchmark, holdings in the store, plots and a self-contained HTML page."""

import base64
import io
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image

from rlbridge import sample_data
from rlbridge.backtesting import backtest
from rlbridge.cli import build_cli
from rlbridge.config import config_from_mapping
from rlbridge.errors import ConfigError
from rlbridge.manager import make_plugin_manager
from rlbridge.metrics import format_table, performance
from rlbridge.report import IMAGES, ReportError, load_run_report, write_report
from rlbridge.runs import get_run, list_runs, run_benchmark, run_positions
from rlbridge.schema import SCHEMA_VERSION, meta_table
from rlbridge.store import open_store

RLBRIDGE = Path(sys.executable).with_name("rlbridge")
SYMBOLS = ["SPY", "AGG", "XLK"]
START, END = "2019-01-02", "2020-09-30"
PNG = b"\x89PNG\r\n\x1a\n"


def tables(strategy, benchmark="SPY"):
    backtest_table = {"engine": "native", "cash": 100_000, "start": START, "end": END}
    if benchmark is not None:
        backtest_table["benchmark"] = benchmark
    return {"data": {"feed": "sample", "symbols": SYMBOLS, "start": "2018-10-01", "end": END,
                     "adjust": False},
            "costs": {"model": "percent", "rate": 0.001},
            "strategy": strategy, "backtest": backtest_table}


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start=START, end=END, adjust=False)


@pytest.fixture(scope="module")
def equal_weight(pm, store):
    config = config_from_mapping(tables({"name": "equal_weight", "rebalance": 21}), pm=pm)
    return backtest(config, pm=pm, store=store)


@pytest.fixture(scope="module")
def buy_and_hold(pm, store):
    config = config_from_mapping(tables({"name": "buy_and_hold", "symbol": "XLK"}), pm=pm)
    return backtest(config, pm=pm, store=store)


@pytest.fixture(scope="module")
def written(equal_weight, buy_and_hold, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "ew"
    return write_report(equal_weight, out, baselines={"Buy & hold XLK": buy_and_hold})


class Tables(HTMLParser):
    """The rows of every ``<table id=...>`` and the ``src`` of every ``<img>``."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.images, self._table, self._row = {}, [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def text_table(text):
    """The rows of :func:`format_table`'s text (cells are separated by 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


# ---------------------------------------------------------------------- the benchmark
def test_the_benchmark_is_the_starting_cash_held_from_the_first_close(equal_weight, bars):
    spy = bars.close[:, 0]
    assert equal_weight.benchmark_symbol == "SPY"
    assert equal_weight.benchmark.index.equals(equal_weight.equity.index)
    np.testing.assert_allclose(equal_weight.benchmark.to_numpy(), 100_000 * spy / spy[0],
                               rtol=1e-15)
    assert equal_weight.benchmark.iloc[0] == 100_000
    # SPY traded at 250.18 on 2019-01-02 and 334.89 on 2020-09-30
    assert (round(spy[0], 2), round(spy[-1], 2)) == (250.18, 334.89)
    assert equal_weight.benchmark.iloc[-1] == pytest.approx(100_000 * 334.89 / 250.18, abs=0.5)
    expected = performance(pd.Series(100_000 * spy / spy[0], index=bars.index))
    assert equal_weight.benchmark_metrics == pytest.approx(expected, rel=1e-12, nan_ok=True)
    assert equal_weight.to_json()["benchmark"]["symbol"] == "SPY"


def test_a_benchmark_outside_the_runs_symbols_is_refused_before_recording(pm, store):
    config = config_from_mapping(tables({"name": "equal_weight"}, benchmark="XLE"), pm=pm)
    before = len(list_runs(store, limit=None))
    with pytest.raises(ConfigError) as info:
        backtest(config, pm=pm, store=store)
    assert str(info.value) == ("[backtest.benchmark]: the benchmark 'XLE' is not one of the "
                               "run's symbols (SPY, AGG, XLK); add it to [data] symbols or "
                               "leave the benchmark out")
    assert len(list_runs(store, limit=None)) == before


def test_without_a_benchmark_there_is_none(pm, store, tmp_path):
    config = config_from_mapping(tables({"name": "buy_and_hold", "symbol": "AGG"},
                                        benchmark=None), pm=pm)
    result = backtest(config, pm=pm, store=store)
    assert result.benchmark is None and result.benchmark_metrics == {}
    assert run_benchmark(store, result.run_id) is None
    files = write_report(load_run_report(store, result.run_id), tmp_path / "r")
    header = Tables(files.html.read_text()).tables["metrics"][0]
    assert header == ["Metric", "buy_and_hold"]


# ---------------------------------------------------------------------- the store
def test_stored_holdings_and_benchmark_give_back_the_results_weights(equal_weight, buy_and_hold,
                                                                     store, bars):
    for result in (equal_weight, buy_and_hold):
        loaded = load_run_report(store, result.run_id)
        assert list(loaded.weights.columns) == [*SYMBOLS, "cash"]
        assert loaded.weights.index.equals(result.weights.index)
        np.testing.assert_allclose(loaded.weights.to_numpy(), result.weights.to_numpy(),
                                   rtol=1e-15, atol=0)
        pd.testing.assert_series_equal(loaded.benchmark, result.benchmark, check_names=False,
                                       check_freq=False, rtol=1e-15)
        assert loaded.metrics == result.metrics
        assert loaded.benchmark_metrics == result.benchmark_metrics
        assert (loaded.engine, loaded.strategy, loaded.status) == (
            "native", result.strategy, "completed")
    shares = run_positions(store, buy_and_hold.run_id)
    [fill] = buy_and_hold.fills
    assert shares["XLK"].iloc[0] == 0 and (shares["XLK"].iloc[1:] == fill.quantity).all()
    assert (shares[["SPY", "AGG"]] == 0).all().all()
    value = run_positions(store, buy_and_hold.run_id, values=True)
    np.testing.assert_array_equal(value["XLK"].to_numpy(), fill.quantity * bars.close[:, 2]
                                  * (np.arange(len(bars)) > 0))
    # only holdings are stored, plus every symbol at the first close (to know the symbols)
    with store.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM positions WHERE run_id = :r"),
                             {"r": buy_and_hold.run_id}).scalar_one()
    assert count == len(SYMBOLS) + len(bars) - 1


def test_a_store_of_schema_version_1_is_upgraded_in_place_to_version_3(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with open_store(url) as s, s.engine.begin() as conn:  # make it look like version 1
        conn.exec_driver_sql("DROP TABLE positions")
        conn.exec_driver_sql("ALTER TABLE equity DROP COLUMN benchmark")
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN config_path")
        conn.exec_driver_sql("DROP INDEX ix_fills_order_id")  # version 3's indexes
        conn.exec_driver_sql("DROP INDEX ix_orders_status_client")
        conn.exec_driver_sql("INSERT INTO runs (id, kind, status, started_at) "
                             "VALUES ('r1', 'backtest', 'completed', '2024-01-01')")
        conn.execute(sa.update(meta_table).values(value="1"))
    with open_store(url) as s:
        inspector = sa.inspect(s.engine)
        assert "positions" in inspector.get_table_names()
        assert "benchmark" in {c["name"] for c in inspector.get_columns("equity")}
        assert get_run(s, "r1").config_path is None  # old rows stay
        assert {"ix_fills_order_id"} == {i["name"] for i in inspector.get_indexes("fills")} - {
            i["name"] for i in inspector.get_indexes("fills") if "run_id" in i["column_names"]}
        assert "ix_orders_status_client" in {i["name"] for i in inspector.get_indexes("orders")}
        with s.engine.connect() as conn:
            assert conn.execute(sa.select(meta_table.c.value)).scalar_one() == \
                str(SCHEMA_VERSION) == "3"


# ---------------------------------------------------------------------- the page
def test_the_page_is_self_contained_with_five_png_plots(written):
    text = written.html.read_text()
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    images = Tables(text).images
    assert len(images) == len(IMAGES) == 5
    for src, stem in zip(images, IMAGES, strict=True):
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == PNG
        assert data == written.images[stem].read_bytes()
        width, height = Image.open(io.BytesIO(data)).size
        assert width == 1000 and height >= 200, (stem, width, height)
    assert sorted(p.name for p in written.directory.iterdir()) == sorted(
        [*(f"{stem}.png" for stem in IMAGES), "report.html"])


def test_the_pages_metrics_are_the_results_numbers(written, equal_weight, buy_and_hold):
    rows = Tables(written.html.read_text()).tables["metrics"]
    assert rows[0] == ["Metric", "equal_weight", "SPY (benchmark)", "Buy & hold XLK"]
    bh = performance(buy_and_hold.equity)  # a baseline has no fills: no turnover, no costs
    expected = text_table(format_table({"equal_weight": equal_weight.metrics,
                                        "SPY (benchmark)": equal_weight.benchmark_metrics,
                                        "Buy & hold XLK": bh}))
    assert rows == expected
    by_label = {row[0]: row[1:] for row in rows}
    spy = equal_weight.benchmark
    assert by_label["Final value"] == [f"{equal_weight.final_value:,.2f}", f"{spy.iloc[-1]:,.2f}",
                                       f"{buy_and_hold.final_value:,.2f}"]
    assert by_label["Total return"][:2] == [
        f"{(equal_weight.final_value / 100_000 - 1) * 100:.2f}%",
        f"{(spy.iloc[-1] / 100_000 - 1) * 100:.2f}%"]
    fills = Tables(written.html.read_text()).tables["fills"]
    last = equal_weight.fills[-1]
    assert fills[-1] == [str(last.time.date()), last.symbol, f"{last.quantity:+,.0f}",
                         f"{last.price:,.2f}", f"{last.commission:,.2f}"]
    assert len(fills) == 1 + 20


# ---------------------------------------------------------------------- the command line
def test_backtest_report_then_report_run_from_another_process(tmp_path, db, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "ew.toml"
    mapping = tables({"name": "equal_weight", "rebalance": 21})
    config.write_text("\n".join(
        f"[{name}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
        for name, table in mapping.items()) + "\n")
    pm = make_plugin_manager(entrypoints=False, warn=False)
    made = CliRunner().invoke(build_cli(pm), ["--db", db, "backtest", str(config),
                                              "--report", "out/first"])
    assert made.exit_code == 0, made.output
    header = next(line for line in made.output.splitlines() if line.startswith("Metric"))
    assert header.split() == ["Metric", "equal_weight", "SPY", "(benchmark)"]
    run_id = re.search(r"Run (\S+) in ", made.output).group(1)
    first = tmp_path / "out" / "first" / "report.html"
    assert f"Report: {first}" in made.output
    assert "<dt>Config</dt><dd title=" in first.read_text() and "ew.toml</dd>" in \
        first.read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
    again = subprocess.run([str(RLBRIDGE), "--db", db, "report", run_id, "--json"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    files = json.loads(again.stdout)
    assert files["html"] == str(tmp_path / "reports" / run_id / "report.html")
    assert sorted(files["images"]) == sorted(IMAGES)
    ours = Tables(first.read_text()).tables
    theirs = Tables(Path(files["html"]).read_text()).tables
    assert theirs["metrics"] == ours["metrics"] and theirs["fills"] == ours["fills"]


def test_an_unknown_run_exits_2_naming_it(pm, db):
    result = CliRunner().invoke(build_cli(pm), ["--db", db, "report", "20990101-000000-dead"])
    assert result.exit_code == 2
    assert "Error: no run '20990101-000000-dead' in the store" in result.output
    assert "the most recent runs are:" in result.output


def test_an_out_path_that_is_a_file_exits_2_and_writes_nothing(pm, db, equal_weight, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    result = CliRunner().invoke(build_cli(pm), ["--db", db, "report", equal_weight.run_id,
                                                "--out", str(target)])
    assert result.exit_code == 2
    assert f"Error: {target} is a file, not a folder; give --out a folder" in result.output
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_plot_that_fails_leaves_no_half_report(store, equal_weight, tmp_path, written):
    import dataclasses

    good = load_run_report(store, equal_weight.run_id)
    broken = good.weights.astype(object)
    broken["AGG"] = None  # a weights column that cannot be stacked
    bad = dataclasses.replace(good, weights=broken)
    with pytest.raises(ReportError, match=r"cannot draw weights\.png for run .*: TypeError"):
        write_report(bad, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary leftovers
    # over an existing report: its files stay as they were
    before = {p.name: p.read_bytes() for p in written.directory.iterdir()}
    with pytest.raises(ReportError):
        write_report(bad, written.directory)
    assert {p.name: p.read_bytes() for p in written.directory.iterdir()} == before
    assert [p.name for p in written.directory.parent.iterdir()] == [written.directory.name]

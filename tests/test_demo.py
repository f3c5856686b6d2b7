"""`rlbridge demo` on the bundled sample: what it prints is what the files say."""

import re

import pandas as pd
from click.testing import CliRunner

from rlbridge import sample_data
from rlbridge.cli import build_cli
from rlbridge.manager import make_plugin_manager


def expected_total_return(symbol, start, end):
    frame = pd.read_csv(sample_data.path() / f"{symbol}.csv", parse_dates=["Date"], index_col="Date")
    adj = frame.loc[start:end, "Adj Close"]
    return adj.iloc[-1] / adj.iloc[0] - 1.0


def test_demo_ingests_shows_and_reads_back_the_sample(tmp_path):
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    pm = make_plugin_manager(entrypoints=False, warn=False)
    result = CliRunner().invoke(build_cli(pm), ["--db", db, "demo", "--symbols", "SPY,AGG"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Ingested 12 symbols, 44,948 bars (2005-01-03 .. 2020-12-31) from feed 'sample'" in out
    assert re.search(r"XLC\s+1d\s+2018-06-19\s+2020-12-31\s+640\s+0\s+0", out)
    assert "in-sample 2008-01-01 .. 2018-12-31: 2769 sessions x 2 symbols" in out
    assert "out-of-sample 2019-01-01 .. 2020-09-30: 441 sessions x 2 symbols" in out
    # attach each symbol row to the period heading above it
    rows, period = {}, None
    for line in out.splitlines():
        if line.startswith(("in-sample", "out-of-sample")):
            period = line.split()[0]
        found = re.match(r"^  (SPY|AGG)\s+total return\s+([+-][\d.]+)%", line)
        if found:
            rows[(period, found[1])] = float(found[2]) / 100
    periods = {"in-sample": sample_data.IN_SAMPLE, "out-of-sample": sample_data.OUT_OF_SAMPLE}
    assert set(rows) == {(p, s) for p in periods for s in ("SPY", "AGG")}
    for (period, symbol), value in rows.items():
        assert abs(value - expected_total_return(symbol, *periods[period])) < 0.0006
    assert "  feeds      csv, sample, sql" in out

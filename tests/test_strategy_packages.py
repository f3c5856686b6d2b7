"""A strategy from another package runs by name, or as ``module:Class``, in every engine.

A package with an ``rlbridge`` entry point is written to a temporary folder, installed for real
with pip (``--target``, no network), and driven through the real ``rlbridge`` console script:
``rlbridge list strategies`` shows it, and ``rlbridge backtest`` runs it in ``native``,
``backtrader`` and ``zipline`` with the same fills and final value.  The same class given as
``module:Class`` (no entry point, the module on ``PYTHONPATH``) gives the same run.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rlbridge import sample_data

pytestmark = pytest.mark.slow

RLBRIDGE = Path(sys.executable).with_name("rlbridge")
ENGINES = ["native", "backtrader", "zipline"]
SYMBOLS = ["SPY", "AGG", "XLK"]
START, END = "2019-01-02", "2020-09-30"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "rlbridge-dips"
version = "0.3.0"
dependencies = ["rlbridge"]

[project.entry-points.rlbridge]
dips = "rlbridge_dips"
"""

MODULE = '''\
"""Buy the first symbol after two lower closes; sell five bars after the fill."""

import rlbridge


class TwoDownDays(rlbridge.Strategy):
    def start(self, ctx):
        self.filled_at = None
        self.shares = int(self.params.get("shares", 10))

    def on_bar(self, ctx):
        if ctx.open_orders:
            return
        close = ctx.history("close", 3)[:, 0]
        if len(close) < 3:
            return
        symbol = ctx.symbols[0]
        if ctx.position(symbol) == 0:
            if close[2] < close[1] < close[0]:
                ctx.order(symbol, self.shares)
        elif ctx.bar_index >= self.filled_at + 5:
            ctx.order(symbol, -ctx.position(symbol))

    def on_fill(self, ctx, fill):
        self.filled_at = ctx.bar_index


@rlbridge.hookimpl
def register_strategies(register):
    register("two_down_days", TwoDownDays, description="buy after two lower closes")
'''


def config_text(strategy):
    return textwrap.dedent(f"""\
        [data]
        feed = "sample"
        adjust = false
        symbols = {json.dumps(SYMBOLS)}
        start = 2018-10-01
        end = {END}

        [costs]
        model = "per_share"
        per_share = 0.005
        minimum = 1.0

        [strategy]
        name = "{strategy}"
        shares = 25

        [backtest]
        cash = 100_000
        start = {START}
        end = {END}
        """)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The package installed into ``<tmp>/site``; the bare module in ``<tmp>/loose``."""
    root = tmp_path_factory.mktemp("dips")
    source = root / "rlbridge-dips"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "rlbridge_dips.py").write_text(MODULE)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(root / "site"),
         str(source)],
        capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    loose = root / "loose"
    loose.mkdir()
    (loose / "dips_loose.py").write_text(MODULE)
    (root / "by_name.toml").write_text(config_text("two_down_days"))
    (root / "by_path.toml").write_text(config_text("dips_loose:TwoDownDays"))
    return root


def rlbridge(root, *args, path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
    env["PYTHONPATH"] = str(root / path)
    env["RLBRIDGE_DB"] = f"sqlite:///{root / 'store.db'}"
    env["RLBRIDGE_ZIPLINE_ROOT"] = str(root / "zipline")
    return subprocess.run([str(RLBRIDGE), *args], capture_output=True, text=True, cwd=root,
                          env=env, timeout=300)


def expected_trades():
    """The fills the rule must make, computed here from the bundled closes and opens."""
    bars = sample_data.load(SYMBOLS, start="2018-10-01", end=END, adjust=False)
    first = int(bars.index.get_loc(np.datetime64(START)))
    last = int(bars.index.get_loc(np.datetime64(END)))
    close, open_ = bars.close[:, 0], bars.open[:, 0]
    trades, held, filled_at, pending = [], 0, None, 0
    for t in range(first, last + 1):
        if pending:  # the order placed at t-1 fills at this bar's open
            trades.append((str(bars.index[t].date()), pending, float(open_[t])))
            held += pending
            filled_at, pending = t - first, 0
        if t - 2 < 0 or t == last:
            continue
        if held == 0 and close[t] < close[t - 1] < close[t - 2]:
            pending = 25
        elif held and t - first >= filled_at + 5:
            pending = -held
    return trades


def test_the_entry_point_strategy_is_listed_with_its_package(package):
    out = rlbridge(package, "list", "strategies", "--json", path="site")
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert rows["two_down_days"]["description"] == "buy after two lower closes"
    assert rows["two_down_days"]["plugin"] == "dips"  # the entry point's name


@pytest.mark.parametrize("engine", ENGINES)
def test_it_runs_by_name_and_as_module_class_in_every_engine(package, engine):
    trades = expected_trades()
    results = []
    for config, path in (("by_name.toml", "site"), ("by_path.toml", "loose")):
        out = rlbridge(package, "backtest", config, "--engine", engine, "--json", path=path)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    by_name, by_path = results
    assert by_name["engine"] == engine and by_name["fills"] == len(trades) > 4
    assert by_path["fills"] == by_name["fills"]
    assert by_path["final_value"] == pytest.approx(by_name["final_value"], abs=0.005)
    # the final value follows from the trades: cash after fills and commissions, plus SPY held
    bars = sample_data.load(SYMBOLS, start="2018-10-01", end=END, adjust=False)
    cash = 100_000.0 - sum(q * p + max(0.005 * abs(q), 1.0) for _, q, p in trades)
    held = sum(q for _, q, _ in trades)
    assert by_name["final_value"] == pytest.approx(cash + held * bars.close[-1, 0], abs=0.005)

"""docs/plugin_authoring.md works: its example package installs, loads, runs and passes its tests.

The files of ``rlbridge-gbm`` are extracted from the guide's ``<!-- file: PATH -->`` blocks,
installed for real with pip (no network, no build isolation), and driven through the real
``rlbridge`` console script in subprocesses, with the install folder on ``PYTHONPATH``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pytest

from rlbridge.store import open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin_authoring.md"
RLBRIDGE = Path(sys.executable).with_name("rlbridge")
FILE_BLOCK = re.compile(
    r"^<!-- file: (?P<path>\S+) -->\n```[\w-]*\n(?P<body>.*?)\n```$", re.MULTILINE | re.DOTALL
)
PACKAGE_FILES = [
    "rlbridge-gbm/pyproject.toml",
    "rlbridge-gbm/README.md",
    "rlbridge-gbm/src/rlbridge_gbm/feed.py",
    "rlbridge-gbm/src/rlbridge_gbm/strategy.py",
    "rlbridge-gbm/src/rlbridge_gbm/commands.py",
    "rlbridge-gbm/src/rlbridge_gbm/plugin.py",
    "rlbridge-gbm/src/rlbridge_gbm/__init__.py",
    "rlbridge-gbm/tests/test_rlbridge_gbm.py",
]
SYMBOLS = ["AAA", "BBB", "CCC"]
START, END = "2019-01-01", "2020-12-31"


def extract(text, dest):
    """Write every file block of ``text`` under ``dest``; return their paths in page order."""
    paths = []
    for match in FILE_BLOCK.finditer(text):
        path = match["path"]
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(match["body"] + "\n")
        paths.append(path)
    return paths


def env_for(site):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
    env["PYTHONPATH"] = str(site)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The guide's package, extracted and installed into ``<tmp>/site``."""
    root = tmp_path_factory.mktemp("guide")
    paths = extract(GUIDE.read_text(encoding="utf-8"), root)
    assert paths == PACKAGE_FILES
    site = root / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(site),
         str(root / "rlbridge-gbm")],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return root


def rlbridge(workdir, *args):
    return subprocess.run([str(RLBRIDGE), *args], capture_output=True, text=True, cwd=workdir,
                          env=env_for(workdir / "site"), timeout=120)


def ingest(workdir, db, *options, feed="gbm"):
    result = rlbridge(workdir, "--db", f"sqlite:///{workdir / db}", "data", "ingest",
                      "--feed", feed, *options, "--symbols", ",".join(SYMBOLS),
                      "--start", START, "--end", END, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def seeded(workdir):
    """One store filled by ``data ingest --feed gbm`` with seed 1 and volatility 0.25."""
    report = ingest(workdir, "seed1.db", "-o", "seed=1", "-o", "volatility=0.25")
    return workdir / "seed1.db", report


def stored(db):
    with open_store(f"sqlite:///{db}") as store:
        return store.read_bars()


def test_the_guide_shows_every_file_once():
    text = GUIDE.read_text(encoding="utf-8")
    assert [m["path"] for m in FILE_BLOCK.finditer(text)] == PACKAGE_FILES
    # every file comment is followed by its block: none is orphaned by an edit
    assert text.count("<!-- file: ") == len(PACKAGE_FILES)


def test_plugins_lists_it_with_its_distribution_and_version(workdir):
    result = rlbridge(workdir, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == [{
        "name": "gbm",
        "origin": "entry point",
        "distribution": "rlbridge-gbm",
        "version": "0.1.0",
        "hooks": ["register_commands", "register_feeds", "register_strategies"],
        "status": "ok",
    }]
    text = rlbridge(workdir, "plugins").stdout
    assert text.splitlines()[0] == "gbm [rlbridge-gbm 0.1.0] (entry point): ok"


def test_the_feed_and_the_strategy_are_listed(workdir):
    feeds = json.loads(rlbridge(workdir, "list", "feeds", "--json").stdout)
    gbm = next(row for row in feeds if row["name"] == "gbm")
    assert gbm["plugin"] == "gbm"
    assert gbm["description"].startswith("Simulated daily bars")
    assert {"csv", "sample", "sql"} <= {row["name"] for row in feeds}
    strategies = json.loads(rlbridge(workdir, "list", "strategies", "--json").stdout)
    mine = [(r["name"], r["plugin"]) for r in strategies if r["plugin"] == "gbm"]
    assert mine == [("momentum_rotation", "gbm")]
    assert "buy_and_hold" in {r["name"] for r in strategies}  # beside the built-ins


def test_ingest_gives_one_bar_per_nyse_session_and_symbol(workdir, seeded):
    db, report = seeded
    sessions = xcals.get_calendar("XNYS").sessions_in_range(START, END)
    assert len(sessions) == 505  # 252 sessions in 2019, 253 in 2020
    assert report["bars"] == len(sessions) * len(SYMBOLS)
    assert report["symbols"] == SYMBOLS
    assert (report["first"], report["last"]) == ("2019-01-02", "2020-12-31")
    frames = stored(db)
    for symbol in SYMBOLS:
        assert list(frames[symbol].index) == list(sessions)
    show = json.loads(rlbridge(workdir, "--db", f"sqlite:///{db}", "data", "show", "--json").stdout)
    assert [(r["symbol"], r["bars"], r["missing_sessions"], r["non_session_rows"])
            for r in show["symbols"]] == [(s, 505, 0, 0) for s in SYMBOLS]


def test_same_seed_same_bars_other_seed_other_bars(workdir, seeded):
    db, _ = seeded
    ingest(workdir, "again.db", "-o", "seed=1", "-o", "volatility=0.25")
    ingest(workdir, "seed2.db", "-o", "seed=2", "-o", "volatility=0.25")
    first, again, other = stored(db), stored(workdir / "again.db"), stored(workdir / "seed2.db")
    for symbol in SYMBOLS:
        assert first[symbol].equals(again[symbol])
        assert not np.allclose(first[symbol]["close"], other[symbol]["close"])


def test_a_module_class_name_reaches_the_same_feed(workdir, seeded):
    db, _ = seeded
    ingest(workdir, "by_path.db", "-o", "seed=1", "-o", "volatility=0.25",
           feed="rlbridge_gbm.feed:GBMFeed")
    first, by_path = stored(db), stored(workdir / "by_path.db")
    assert all(first[s].equals(by_path[s]) for s in SYMBOLS)


def test_the_command_fits_the_simulated_volatility(workdir, seeded):
    db, _ = seeded
    result = rlbridge(workdir, "--db", f"sqlite:///{db}", "gbm", "fit", "--json")
    assert result.returncode == 0, result.stderr
    fitted = json.loads(result.stdout)
    assert sorted(fitted) == SYMBOLS
    for symbol in SYMBOLS:
        assert fitted[symbol]["returns"] == 504
        assert fitted[symbol]["volatility"] == pytest.approx(0.25, abs=0.02)

    missing = rlbridge(workdir, "--db", f"sqlite:///{db}", "gbm", "fit", "NOPE")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (f"Error: sqlite:///{db}: no 1d bars for NOPE; "
                                      f"the store has 1d bars for AAA, BBB, CCC")


def test_the_one_off_plugin_file_loads_with_the_plugin_option(workdir):
    text = GUIDE.read_text(encoding="utf-8")
    (source,) = re.findall(r"^```python\n# flat_costs.py\n(.*?)^```$", text, re.M | re.S)
    (workdir / "flat_costs.py").write_text(source)
    costs = rlbridge(workdir, "--plugin", "flat_costs.py", "list", "costs", "--json")
    assert costs.returncode == 0, costs.stderr
    mine = [row for row in json.loads(costs.stdout) if row["plugin"] == "flat_costs.py"]
    assert mine == [{
        "name": "flat_bps", "aliases": [], "plugin": "flat_costs.py",
        "description": "fixed basis points of slippage per fill"}]
    import numpy as np

    import rlbridge as rb
    from rlbridge.config import config_from_mapping
    from rlbridge.costs import create_cost_model
    pm = rb.make_plugin_manager(entrypoints=False, plugins=[str(workdir / "flat_costs.py")],
                                warn=False)
    model = create_cost_model(config_from_mapping({"costs": {"model": "flat_bps", "bps": 10}},
                                                  pm=pm).costs, pm)
    price = model.fill_price(np.array([100.0, 100.0, 100.0]), np.array([5.0, 0.0, -5.0]), None)
    assert price.tolist() == [100.1, 100.0, 99.9]
    plugins = json.loads(rlbridge(workdir, "--plugin", "flat_costs.py", "plugins", "--json").stdout)
    assert [(p["name"], p["origin"], p["status"]) for p in plugins] == [
        ("flat_costs.py", "--plugin", "ok"), ("gbm", "entry point", "ok")]


def test_the_packages_own_tests_pass(workdir):
    package = workdir / "rlbridge-gbm"
    expected = len(re.findall(r"^def test_", (package / "tests" / "test_rlbridge_gbm.py")
                              .read_text(), re.MULTILINE))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=package, env=env_for(workdir / "site"), timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^{expected} passed in ", result.stdout, re.MULTILINE), result.stdout

"""rlbridge.testing: the fixtures reach a third-party test file through pytest11, and behave.

Each test writes a test file into a fresh folder with no conftest and runs pytest on it with
``pytester``, the way a plugin author's project runs.  The inner tests make the assertions
about each fixture; the outer tests check that they ran and passed.
"""

import textwrap
from importlib.metadata import entry_points

import pytest

from tests.test_manager import GOOD, make_dist

pytest_plugins = ["pytester"]

HEADER = '''
import json

import pandas as pd
import pytest

import rlbridge
from rlbridge.errors import DuplicateNameError, PluginError
from rlbridge.manager import make_plugin_manager
from rlbridge.testing import register_plugin


class ZFeed:
    def __init__(self, config):
        self.config = config


class ZPlugin:
    @rlbridge.hookimpl
    def register_feeds(self, register):
        register("zfeed", ZFeed, description="a feed from a test")
'''


@pytest.fixture
def third_party(pytester, monkeypatch, tmp_path):
    """Run ``source`` as a third party's test file; return pytest's result."""
    # an installed distribution with an rlbridge entry point, visible to make_plugin_manager()
    site = tmp_path / "site"
    make_dist(site, "rlbridge-installedfeed", "1.0", {"installedfeed": "installedfeed_mod"},
              {"installedfeed_mod": GOOD.format(feed="installed_feed", dist="installedfeed")})
    monkeypatch.setenv("PYTHONPATH", str(site))  # pytester adds its own folder in front
    # a user's shell settings that the fixtures must not obey
    monkeypatch.setenv("RLBRIDGE_DISABLE_PLUGINS", "rlbridge.plugins.feeds.csv")
    monkeypatch.setenv("RLBRIDGE_DB", f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def run(source, *args):
        pytester.makepyfile(test_third_party=HEADER + textwrap.dedent(source))
        assert not list(pytester.path.rglob("conftest.py"))
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    return run


def test_rlbridge_declares_the_pytest11_entry_point():
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "rlbridge"]
    assert ep.value == "rlbridge.testing"
    assert ep.dist.name == "rlbridge"


def test_fixtures_load_without_conftest_and_only_through_the_plugin(third_party):
    source = '''
        def test_uses_every_fixture(rlbridge_pm, rlbridge_db_url, rlbridge_store, sample_bars,
                                    rlbridge_cli):
            assert rlbridge_cli("list", "feeds").exit_code == 0
    '''
    third_party(source).assert_outcomes(passed=1)
    without = third_party(source, "-p", "no:rlbridge")
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines(["*fixture 'rlbridge_pm' not found*"])


def test_rlbridge_pm_is_fresh_strict_and_blind_to_environment(third_party):
    result = third_party('''
        def test_register_a_plugin(rlbridge_pm):
            assert "zfeed" not in rlbridge_pm.registries.feeds
            assert register_plugin(rlbridge_pm, ZPlugin(), name="zplugin") == "zplugin"
            entry = rlbridge_pm.registries.feeds.info("zfeed")
            assert (entry.plugin, entry.description) == ("zplugin", "a feed from a test")
            assert rlbridge_pm.sources["zplugin"].origin == "test"

        def test_the_next_test_gets_a_new_manager(rlbridge_pm):
            assert not rlbridge_pm.has_plugin("zplugin")
            assert "zfeed" not in rlbridge_pm.registries.feeds

        def test_builtins_only_whatever_is_installed_or_set(rlbridge_pm):
            # csv is blocked by RLBRIDGE_DISABLE_PLUGINS and installed_feed is an installed
            # entry point: a default manager obeys both, the fixture neither
            default = make_plugin_manager(warn=False)
            assert "installed_feed" in default.registries.feeds
            assert "csv" not in default.registries.feeds
            assert rlbridge_pm.registries.feeds.names() == ["alpaca", "csv", "ib", "sample", "sql"]
            assert {s.origin for s in rlbridge_pm.sources.values()} == {"builtin"}

        def test_a_broken_plugin_fails_the_test_and_leaves_the_manager_clean(rlbridge_pm):
            class Raises:
                @rlbridge.hookimpl
                def register_feeds(self, register):
                    raise RuntimeError("boom")

            class Misspelt:
                @rlbridge.hookimpl
                def register_feed(self, register):
                    pass

            class Duplicate:
                @rlbridge.hookimpl
                def register_feeds(self, register):
                    register("sql", ZFeed)

            with pytest.raises(PluginError, match="plugin 'raises' .* failed at register_feeds: "
                                                  "RuntimeError: boom"):
                register_plugin(rlbridge_pm, Raises(), name="raises")
            with pytest.raises(PluginError, match="implements unknown hook 'register_feed'"):
                register_plugin(rlbridge_pm, Misspelt(), name="misspelt")
            with pytest.raises(DuplicateNameError, match="feed 'sql' is registered by both plugin "
                                                         "'rlbridge.plugins.feeds.sql' and plugin "
                                                         "'duplicate'"):
                register_plugin(rlbridge_pm, Duplicate(), name="duplicate")
            assert not any(rlbridge_pm.has_plugin(n) for n in ("raises", "misspelt", "duplicate"))
            assert {s.origin for s in rlbridge_pm.sources.values()} == {"builtin"}
            assert rlbridge_pm.registries.feeds.names() == ["alpaca", "csv", "ib", "sample", "sql"]

            register_plugin(rlbridge_pm, ZPlugin(), name="zplugin")
            with pytest.raises(PluginError, match="'zplugin' is already registered"):
                register_plugin(rlbridge_pm, ZPlugin(), name="zplugin")
    ''')
    result.assert_outcomes(passed=4)


def test_store_sample_bars_and_cli_fixtures(third_party):
    result = third_party('''
        # rlbridge_store and rlbridge_db_url
        def test_a_new_sqlite_file_in_tmp_path(rlbridge_store, rlbridge_db_url, tmp_path):
            assert rlbridge_db_url == f"sqlite:///{tmp_path.as_posix()}/rlbridge.db"
            assert (tmp_path / "rlbridge.db").is_file()
            assert rlbridge_store.engine.dialect.name == "sqlite"
            assert rlbridge_store.summary() == []

        def test_writes_stay_in_their_test(rlbridge_store, sample_bars):
            assert rlbridge_store.write_bars(sample_bars.select(["SPY"]), source="t") == 505
            (row,) = rlbridge_store.summary()
            assert (row.symbol, row.bars) == ("SPY", 505)
            assert rlbridge_store.read_bars(["SPY"])["SPY"]["close"].iloc[-1] == 353.106598

        def test_the_next_test_starts_empty(rlbridge_store):
            assert rlbridge_store.summary() == []

        # sample_bars

        def test_shape_and_dates(sample_bars):
            assert sample_bars.symbols == ("SPY", "AGG", "XLK")
            assert sample_bars.shape == (505, 3, 5)
            assert sample_bars.index[0] == pd.Timestamp("2019-01-02")
            assert sample_bars.index[-1] == pd.Timestamp("2020-12-31")
            assert not sample_bars.values.flags.writeable

        def test_prices_are_adjusted_closes_of_the_source_files(sample_bars):
            # Adj Close of SPY.csv, AGG.csv, XLK.csv on 2019-01-02 and 2020-12-31
            assert sample_bars.close[0].tolist() == [227.637466, 91.251656, 58.498768]
            assert sample_bars.close[-1].tolist() == [353.106598, 106.286636, 125.820534]
            # SPY 2019-01-02: open 245.979996, close 250.179993; scaled like the close
            assert sample_bars.open[0, 0] == pytest.approx(245.979996 * 227.637466 / 250.179993,
                                                           rel=1e-12)

        # rlbridge_cli

        def test_commands_see_the_pm_and_the_store(rlbridge_cli, rlbridge_pm, rlbridge_store,
                                                   rlbridge_db_url, sample_bars):
            register_plugin(rlbridge_pm, ZPlugin(), name="zplugin")
            feeds = json.loads(rlbridge_cli("list", "feeds", "--json").stdout)
            assert [(r["name"], r["plugin"]) for r in feeds if r["name"] == "zfeed"] == [
                ("zfeed", "zplugin")]
            plugins = json.loads(rlbridge_cli("plugins", "--json").stdout)
            assert [(p["name"], p["origin"], p["status"]) for p in plugins] == [
                ("zplugin", "test", "ok")]

            shown = json.loads(rlbridge_cli("data", "show", "--json").stdout)
            assert (shown["store"], shown["symbols"]) == (rlbridge_db_url, [])
            rlbridge_store.write_bars(sample_bars, source="test")
            shown = json.loads(rlbridge_cli("data", "show", "--json").stdout)
            assert [(r["symbol"], r["bars"], r["missing_sessions"]) for r in shown["symbols"]] \\
                == [("AGG", 505, 0), ("SPY", 505, 0), ("XLK", 505, 0)]

        def test_commands_write_where_the_store_reads(rlbridge_cli, rlbridge_store):
            result = rlbridge_cli("data", "ingest", "--feed", "sample", "--symbols", "XLE",
                                  "--start", "2020-01-01", "--end", "2020-12-31", "--json")
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["bars"] == 253
            frame = rlbridge_store.read_bars(["XLE"])["XLE"]
            assert frame.shape == (253, 5)
            assert frame.index[0] == pd.Timestamp("2020-01-02")

        def test_rlbridge_errors_exit_2_with_the_message_on_stderr(rlbridge_cli, rlbridge_store):
            result = rlbridge_cli("data", "ingest", "--feed", "sampel")
            assert result.exit_code == 2
            assert result.stdout == ""
            assert "unknown feed 'sampel'" in result.stderr
            assert "(did you mean 'sample'?)" in result.stderr
            assert rlbridge_store.summary() == []
    ''')
    result.assert_outcomes(passed=8)

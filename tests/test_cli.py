"""The host's own commands: plugins, list; error handling; the console script end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import rlbridge
from rlbridge.cli import build_cli
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins import BUILTIN_PLUGINS
from tests.test_manager import GOOD, make_dist

RLBRIDGE = Path(sys.executable).with_name("rlbridge")


def run_cli(pm, *args):
    return CliRunner().invoke(build_cli(pm), list(args))


def broken_site(root):
    make_dist(root, "rlbridge-goodfeed", "1.2.0", {"goodfeed": "goodfeed_mod"},
              {"goodfeed_mod": GOOD.format(feed="good_feed", dist="goodfeed")})
    make_dist(root, "rlbridge-badfeed", "0.1", {"badfeed": "badfeed_mod"},
              {"badfeed_mod": "raise ImportError('needs libfoo 2')\n"})
    return root


def console(*args, site=None, env=None):
    """Run the installed console script the way a user does."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
    if site is not None:
        full_env["PYTHONPATH"] = str(site)
    full_env.update(env or {})
    return subprocess.run([str(RLBRIDGE), *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_plugins_hides_builtins_unless_all():
    pm = make_plugin_manager(entrypoints=False, warn=False)
    result = run_cli(pm, "plugins")
    assert result.exit_code == 0
    assert result.output == "No third-party plugins loaded (use --all to include the built-ins).\n"
    rows = json.loads(run_cli(pm, "plugins", "--all", "--json").output)
    assert [r["name"] for r in rows] == sorted(BUILTIN_PLUGINS)
    assert all(r["origin"] == "builtin" and r["status"] == "ok" for r in rows)
    csv_row = next(r for r in rows if r["name"] == "rlbridge.plugins.feeds.csv")
    assert csv_row["hooks"] == ["register_feeds"]


def test_plugins_hook_filter():
    pm = make_plugin_manager(entrypoints=False, warn=False)
    rows = json.loads(run_cli(pm, "plugins", "--all", "--json", "--hook", "register_commands").output)
    assert {r["name"] for r in rows} == {p for p in BUILTIN_PLUGINS if ".commands." in p}


def test_list_shows_name_description_and_plugin():
    class Costs:
        @rlbridge.hookimpl
        def register_cost_models(self, register):
            register("flat", dict, description="flat rate", aliases=("fixed",))

    pm = make_plugin_manager(builtins=False, entrypoints=False, warn=False)
    pm.register(Costs(), name="my-costs")
    result = run_cli(pm, "list", "costs")
    assert result.output == "flat  flat rate (aliases: fixed)  [my-costs]\n"
    assert json.loads(run_cli(pm, "list", "costs", "--json").output) == [
        {"name": "flat", "aliases": ["fixed"], "plugin": "my-costs", "description": "flat rate"}]
    assert run_cli(pm, "list", "engines").output == "No engines registered.\n"


def test_list_unknown_kind_exits_2_with_the_choices():
    result = run_cli(make_plugin_manager(entrypoints=False, warn=False), "list", "cost")
    assert result.exit_code == 2
    assert "'cost' is not one of 'feeds', 'features', 'policies', 'costs', 'brokers', 'engines', " \
           "'strategies'" in result.output


def test_duplicate_names_make_the_command_fail_with_both_plugins_named():
    class One:
        @rlbridge.hookimpl
        def register_feeds(self, register):
            register("quotes", dict)

    pm = make_plugin_manager(builtins=False, entrypoints=False, warn=False)
    pm.register(One(), name="first-plugin")
    pm.register(One(), name="second-plugin")
    result = run_cli(pm, "list", "feeds")
    assert result.exit_code == 2
    assert result.output.startswith(
        "Error: feed 'quotes' is registered by both plugin 'first-plugin' and plugin 'second-plugin'")
    assert "Traceback" not in result.output


def test_console_script_survives_a_plugin_that_raises_at_import(tmp_path):
    site = broken_site(tmp_path / "site")
    result = console("plugins", site=site)
    assert result.returncode == 0, result.stderr
    assert "goodfeed [rlbridge-goodfeed 1.2.0] (entry point): ok" in result.stdout
    assert "badfeed [rlbridge-badfeed 0.1] (entry point): failed at import: ImportError: needs libfoo 2" \
        in result.stdout
    assert result.stderr == ("rlbridge: warning: plugin 'badfeed' (entry point from rlbridge-badfeed 0.1) "
                             "failed at import: ImportError: needs libfoo 2; skipped\n")
    listed = console("list", "feeds", "--json", site=site)
    assert listed.returncode == 0
    assert "good_feed" in [row["name"] for row in json.loads(listed.stdout)]


def test_console_script_strict_plugins_exits_2_without_traceback(tmp_path):
    site = broken_site(tmp_path / "site")
    for result in (console("--strict-plugins", "plugins", site=site),
                   console("plugins", site=site, env={"RLBRIDGE_STRICT_PLUGINS": "1"})):
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == ("Error: plugin 'badfeed' (entry point from rlbridge-badfeed 0.1) failed at "
                                 "import: ImportError: needs libfoo 2 (strict plugin loading is on)\n")


def test_console_script_plugin_option_adds_a_plugin(tmp_path):
    plugin = tmp_path / "one_off.py"
    plugin.write_text(GOOD.format(feed="one_off_feed", dist="a file"))
    result = console("--plugin", str(plugin), "list", "feeds")
    assert result.returncode == 0, result.stderr
    assert f"one_off_feed  a feed from a file  [{plugin}]" in result.stdout


def test_json_output_has_null_for_nan_and_infinity(capsys):
    from rlbridge.cli import echo_json

    echo_json({"sharpe": float("nan"), "calmar": float("inf"), "rows": [1.5, float("-inf")]})
    assert json.loads(capsys.readouterr().out) == {"sharpe": None, "calmar": None,
                                                   "rows": [1.5, None]}

"""Plugin discovery: built-ins, entry points, --plugin; failures reported, never fatal unless strict."""

import subprocess
import sys
import textwrap

import pytest

import rlbridge
from rlbridge.errors import PluginError
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins import BUILTIN_PLUGINS

GOOD = '''
import rlbridge

class Feed:
    def __init__(self, config):
        self.config = config

@rlbridge.hookimpl
def register_feeds(register):
    register("{feed}", Feed, description="a feed from {dist}")
'''


def make_dist(root, dist, version, entry_points, modules):
    """Install a fake distribution into ``root``: a dist-info with entry points, plus modules."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"  # as a wheel names it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rlbridge]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path holding two fake plugin distributions: one good, one that raises."""
    root = tmp_path / "site"
    make_dist(root, "rlbridge-goodfeed", "1.2.0", {"goodfeed": "goodfeed_mod"},
              {"goodfeed_mod": GOOD.format(feed="good_feed", dist="goodfeed")})
    make_dist(root, "rlbridge-badfeed", "0.1", {"badfeed": "badfeed_mod"},
              {"badfeed_mod": "raise ImportError('needs libfoo 2')\n"})
    monkeypatch.syspath_prepend(str(root))
    for var in ("RLBRIDGE_STRICT_PLUGINS", "RLBRIDGE_DISABLE_PLUGINS", "RLBRIDGE_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_builtins_then_entry_points_then_plugin_option(site, tmp_path):
    extra = tmp_path / "extra_plugin.py"
    extra.write_text(GOOD.format(feed="extra_feed", dist="a file"))
    pm = make_plugin_manager(plugins=[str(extra)], warn=False)
    names = list(pm.sources)
    assert names[: len(BUILTIN_PLUGINS)] == list(BUILTIN_PLUGINS)
    assert names[len(BUILTIN_PLUGINS):] == ["goodfeed", str(extra)]
    good = pm.sources["goodfeed"]
    assert (good.origin, good.distribution, good.version) == ("entry point", "rlbridge-goodfeed", "1.2.0")
    feeds = pm.registries["feeds"]
    assert feeds.info("good_feed").plugin == "goodfeed"
    assert feeds.info("extra_feed").plugin == str(extra)


def test_a_plugin_that_raises_at_import_is_reported_and_skipped(site, capsys):
    pm = make_plugin_manager()
    assert "goodfeed" in pm.sources and "badfeed" not in pm.sources
    [failure] = pm.failures
    assert (failure.name, failure.stage, failure.error, failure.distribution) == (
        "badfeed", "import", "ImportError: needs libfoo 2", "rlbridge-badfeed")
    assert capsys.readouterr().err == (
        "rlbridge: warning: plugin 'badfeed' (entry point from rlbridge-badfeed 0.1) failed at import: "
        "ImportError: needs libfoo 2; skipped\n")


def test_strict_mode_raises_on_the_first_failure(site, monkeypatch):
    with pytest.raises(PluginError, match=r"plugin 'badfeed' .* ImportError: needs libfoo 2 \(strict"):
        make_plugin_manager(strict=True)
    monkeypatch.setenv("RLBRIDGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError):
        make_plugin_manager()


def test_disable_and_load_only_environment_variables(site, monkeypatch):
    monkeypatch.setenv("RLBRIDGE_DISABLE_PLUGINS", "badfeed, goodfeed")
    pm = make_plugin_manager(warn=False)
    assert not pm.failures and "goodfeed" not in pm.sources
    monkeypatch.delenv("RLBRIDGE_DISABLE_PLUGINS")
    monkeypatch.setenv("RLBRIDGE_LOAD_PLUGINS", "rlbridge-goodfeed")  # by distribution name
    pm = make_plugin_manager(warn=False)
    assert "goodfeed" in pm.sources and not pm.failures
    monkeypatch.setenv("RLBRIDGE_LOAD_PLUGINS", "")  # empty: no entry points at all
    pm = make_plugin_manager(warn=False)
    assert [s for s in pm.sources.values() if s.origin == "entry point"] == []


def test_builtins_can_be_disabled_by_dotted_name():
    pm = make_plugin_manager(entrypoints=False, disabled=["rlbridge.plugins.feeds.csv"], warn=False)
    assert "csv" not in pm.registries["feeds"]


def test_a_misspelt_hook_name_is_a_load_failure_not_a_silent_no_op():
    class Typo:
        @rlbridge.hookimpl
        def register_feed(self, register):  # singular: not a hook
            register("x", object)

    pm = make_plugin_manager(builtins=False, entrypoints=False, warn=False)
    pm.register(Typo(), name="typo")
    pm.drop_unknown_hooks()
    assert not pm.has_plugin("typo")
    assert [(f.name, f.error) for f in pm.failures] == [
        ("typo", "PluginError: implements unknown hook 'register_feed'")]


def test_a_plugin_whose_hook_has_a_wrong_argument_is_refused(tmp_path):
    bad = tmp_path / "wrong_args.py"
    bad.write_text("import rlbridge\n@rlbridge.hookimpl\ndef register_feeds(registrar):\n    pass\n")
    pm = make_plugin_manager(builtins=False, entrypoints=False, plugins=[str(bad)], warn=False)
    [failure] = pm.failures
    assert failure.stage == "register" and "registrar" in failure.error


def test_a_missing_plugin_file_or_module_is_reported():
    pm = make_plugin_manager(builtins=False, entrypoints=False, warn=False,
                             plugins=["no_such_module_xyz", "missing/plugin.py"])
    assert [(f.name, f.error) for f in pm.failures] == [
        ("no_such_module_xyz", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        ("missing/plugin.py", "FileNotFoundError: no plugin file missing/plugin.py"),
    ]


HEAVY = ("torch", "zipline", "stable_baselines3", "sb3_contrib", "backtrader", "alpaca", "ib_insync",
         "pandas", "sqlalchemy", "matplotlib", "exchange_calendars")


def test_loading_every_builtin_imports_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys
        from rlbridge.manager import make_plugin_manager
        pm = make_plugin_manager(entrypoints=False)
        pm.registries
        assert not pm.failures, pm.failures
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rlbridge_help_imports_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys
        from rlbridge.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print("HEAVY", sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"

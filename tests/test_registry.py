"""Registries: names to factories, duplicates, unknown names, module:Class paths, options."""

from dataclasses import dataclass

import pytest

import rlbridge
from rlbridge.errors import ConfigError, DuplicateNameError, PluginError, UnknownNameError
from rlbridge.manager import make_plugin_manager
from rlbridge.registry import KINDS, Registry


class Flat:
    """A cost model factory with typed options."""

    @dataclass(frozen=True)
    class Config:
        rate: float = 0.001
        minimum: float = 0.0

    def __init__(self, config):
        self.config = config


class CostPlugin:
    @rlbridge.hookimpl
    def register_cost_models(self, register):
        register("flat", Flat, description="flat rate", aliases=("fixed",))


class OtherCostPlugin:
    @rlbridge.hookimpl
    def register_cost_models(self, register):
        register("fixed", Flat, description="same alias, other plugin")


def bare_pm():
    return make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)


def test_every_kind_has_a_registry_with_the_hook_of_the_same_name():
    pm = bare_pm()
    assert set(pm.registries.kinds()) == set(KINDS)
    for hook_name, _ in KINDS.values():
        assert hasattr(pm.hook, hook_name)


def test_entries_record_plugin_description_and_aliases():
    pm = bare_pm()
    pm.register(CostPlugin(), name="costs-plugin")
    costs = pm.registries["costs"]
    entry = costs.info("fixed")  # by alias
    assert (entry.name, entry.plugin, entry.description, entry.aliases) == (
        "flat", "costs-plugin", "flat rate", ("fixed",))
    assert costs.names() == ["flat"]
    assert "fixed" in costs and "flat" in costs and "nope" not in costs


def test_create_builds_the_factory_options_dataclass():
    pm = bare_pm()
    pm.register(CostPlugin(), name="costs-plugin")
    model = pm.registries["costs"].create("flat", {"rate": 2})
    assert model.config == Flat.Config(rate=2.0, minimum=0.0)
    assert isinstance(model.config.rate, float)


def test_create_reports_a_misspelt_option_with_file_and_key():
    pm = bare_pm()
    pm.register(CostPlugin(), name="costs-plugin")
    with pytest.raises(ConfigError) as err:
        pm.registries["costs"].create("flat", {"rtae": 0.1}, where="costs", path="agent.toml")
    assert str(err.value) == (
        "agent.toml: [costs.rtae]: unknown key 'rtae' (did you mean 'rate'?); valid keys: rate, minimum")


def test_unknown_name_lists_valid_names_and_closest_match():
    pm = bare_pm()
    pm.register(CostPlugin(), name="costs-plugin")
    with pytest.raises(UnknownNameError) as err:
        pm.registries["costs"].info("flta")
    assert str(err.value) == "unknown cost model 'flta'; valid names: fixed, flat (did you mean 'flat'?)"
    assert isinstance(err.value, KeyError)


def test_duplicate_alias_names_both_plugins():
    pm = bare_pm()
    pm.register(CostPlugin(), name="first")
    pm.register(OtherCostPlugin(), name="second")
    with pytest.raises(DuplicateNameError) as err:
        pm.registries  # noqa: B018 - building the registries is the act under test
    assert err.value.plugins == ("first", "second")
    assert "'first'" in str(err.value) and "'second'" in str(err.value) and "'fixed'" in str(err.value)


def test_module_class_path_is_accepted_wherever_a_name_is():
    pm = bare_pm()
    model = pm.registries["costs"].create("tests.test_registry:Flat", {"minimum": 1})
    assert isinstance(model, Flat) and model.config.minimum == 1.0


def test_module_class_path_that_does_not_import_is_a_clear_error():
    pm = bare_pm()
    with pytest.raises(PluginError, match=r"cannot load cost model 'no_such_mod:X': ModuleNotFoundError"):
        pm.registries["costs"].info("no_such_mod:X")
    with pytest.raises(PluginError, match=r"cannot load cost model 'tests.test_registry:Nope': AttributeError"):
        pm.registries["costs"].info("tests.test_registry:Nope")


def test_registries_are_read_only_once_built():
    pm = bare_pm()
    with pytest.raises(rlbridge.RLBridgeError, match="read-only"):
        pm.registries["feeds"].add("x", Flat, plugin="late")


def test_a_plugin_whose_register_hook_raises_is_skipped_and_recorded():
    class Broken:
        @rlbridge.hookimpl
        def register_feeds(self, register):
            register("half", Flat)
            raise RuntimeError("boom in register_feeds")

        @rlbridge.hookimpl
        def register_cost_models(self, register):
            register("broken_cost", Flat)

    pm = bare_pm()
    pm.register(CostPlugin(), name="good")
    pm.register(Broken(), name="broken")
    regs = pm.registries
    # nothing of the broken plugin survives, not even what it registered before raising
    assert "half" not in regs["feeds"] and "broken_cost" not in regs["costs"]
    assert regs["costs"].names() == ["flat"]
    [failure] = pm.failures
    assert (failure.name, failure.stage, failure.error) == (
        "broken", "register_feeds", "RuntimeError: boom in register_feeds")


def test_invalid_names_are_rejected():
    reg = Registry("feeds", "feed")
    with pytest.raises(PluginError, match="invalid feed name 'a:b'"):
        reg.add("a:b", Flat, plugin="p")
    with pytest.raises(PluginError, match="non-callable factory"):
        reg.add("ok", 3, plugin="p")

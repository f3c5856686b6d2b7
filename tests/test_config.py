"""The TOML config: dataclasses, defaults, relative paths, and exact error messages."""

import datetime as dt
import json
import sqlite3
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import rlbridge
from rlbridge.cli import build_cli
from rlbridge.config import (
    BacktestConfig,
    BrokerConfig,
    Config,
    CostsConfig,
    DataConfig,
    FeaturesConfig,
    PolicyConfig,
    RiskConfig,
    StoreConfig,
    StrategyConfig,
    TrainConfig,
    TransformSpec,
    config_from_mapping,
    load_config,
)
from rlbridge.errors import ConfigError, UnknownNameError
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.commands import config as command_plugin

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ---------------------------------------------------------------------- fake plugins
class CsvFeed:
    @dataclass(frozen=True)
    class Config:
        path: Path
        date_format: str = "%Y-%m-%d"
        dayfirst: bool = False
        calendar: str | None = "XNYS"

        def __post_init__(self):  # TOML has no null: "none" means no calendar
            if self.calendar == "none":
                object.__setattr__(self, "calendar", None)

    def __init__(self, config):
        self.config = config


class Volatility:
    @dataclass(frozen=True)
    class Config:
        window: int = 20


class Percent:
    @dataclass(frozen=True)
    class Config:
        rate: float = 0.001

        def __post_init__(self):  # a plugin's own check, with a key relative to its options
            if self.rate >= 1:
                raise ConfigError(f"is a fraction of traded value, got {self.rate}", key="rate")


def free(options):  # a factory that declares no options: takes any key
    return options


class Fakes:
    @rlbridge.hookimpl
    def register_feeds(self, register):
        register("csv", CsvFeed)
        register("sample", free)

    @rlbridge.hookimpl
    def register_features(self, register):
        register("log_return", free)
        register("volume_change", free)
        register("volatility", Volatility, aliases=("vol",))

    @rlbridge.hookimpl
    def register_cost_models(self, register):
        register("percent", Percent)
        register("per_share", free)

    @rlbridge.hookimpl
    def register_policies(self, register):
        register("ppo", free)

    @rlbridge.hookimpl
    def register_strategies(self, register):
        register("rl_allocation", free)

    @rlbridge.hookimpl
    def register_engines(self, register):
        register("native", free)
        register("backtrader", free)

    @rlbridge.hookimpl
    def register_brokers(self, register):
        register("sim", free)


@pytest.fixture
def pm():
    pm = make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)
    pm.register(Fakes(), name="fakes")
    pm.register(command_plugin, name="rlbridge.plugins.commands.config")
    return pm


FULL = """\
[data]
feed = "csv"
path = "data/etf"
symbols = ["SPY", "AGG", "XLK"]
start = "2008-01-01"
end = 2020-09-30

[features]
window = 60
transforms = ["log_return", "volume_change", { name = "volatility", window = 20 }]

[costs]
model = "percent"
rate = 0.001

[policy]
algo = "ppo"
learning_rate = 3e-4
n_steps = 2048

[train]
start = "2008-01-01"
end = "2018-12-31"
timesteps = 100_000
seed = 7

[strategy]
name = "rl_allocation"
top_k = 2

[backtest]
engine = "native"
cash = 100_000
start = "2019-01-01"
end = "2020-09-30"
benchmark = "SPY"

[broker]
name = "sim"

[risk]
max_position_weight = 0.4
max_orders_per_bar = 10

[store]
url = "sqlite:///store/rlbridge.db"
"""


def write(tmp_path, text, name="agent.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(pm, mapping, exc=ConfigError):
    with pytest.raises(exc) as info:
        config_from_mapping(mapping, path="agent.toml", pm=pm)
    return str(info.value)


# ---------------------------------------------------------------------- a valid file
def test_full_config_values_and_types(tmp_path, pm):
    path = write(tmp_path, FULL)
    config = load_config(path, pm)
    assert config.path == path.resolve()
    assert config.data == DataConfig(
        feed="csv", symbols=("SPY", "AGG", "XLK"), start=dt.date(2008, 1, 1),
        end=dt.date(2020, 9, 30), options={"path": tmp_path.resolve() / "data" / "etf"})
    assert isinstance(config.data.options["path"], Path)
    assert config.features == FeaturesConfig(window=60, transforms=(
        TransformSpec("log_return"), TransformSpec("volume_change"),
        TransformSpec("volatility", {"window": 20})))
    assert config.costs == CostsConfig(model="percent", options={"rate": 0.001})
    assert config.policy == PolicyConfig(algo="ppo",
                                         options={"learning_rate": 3e-4, "n_steps": 2048})
    assert config.train == TrainConfig(start=dt.date(2008, 1, 1), end=dt.date(2018, 12, 31),
                                       timesteps=100_000, seed=7, threads=1, checkpoint_every=None, n_envs=1, output=None)
    assert config.strategy == StrategyConfig(name="rl_allocation", params={"top_k": 2})
    assert config.backtest == BacktestConfig(engine="native", cash=100_000.0,
                                             start=dt.date(2019, 1, 1), end=dt.date(2020, 9, 30),
                                             benchmark="SPY")
    assert type(config.backtest.cash) is float
    assert config.broker == BrokerConfig(name="sim")
    assert config.risk == RiskConfig(max_position_weight=0.4, max_orders_per_bar=10)
    assert config.store == StoreConfig(url=f"sqlite:///{tmp_path.resolve()}/store/rlbridge.db")
    # options are read-only
    with pytest.raises(TypeError):
        config.data.options["path"] = "elsewhere"  # type: ignore[index]


def test_to_dict_is_json_with_defaults_and_round_trips(tmp_path, pm):
    path = write(tmp_path, FULL)
    config = load_config(path, pm)
    data = config.to_dict()
    root = tmp_path.resolve()
    assert data == {
        "data": {"feed": "csv", "symbols": ["SPY", "AGG", "XLK"], "start": "2008-01-01",
                 "end": "2020-09-30", "path": f"{root}/data/etf"},
        "features": {"window": 60, "transforms": ["log_return", "volume_change",
                                                  {"name": "volatility", "window": 20}]},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "learning_rate": 3e-4, "n_steps": 2048},
        "train": {"start": "2008-01-01", "end": "2018-12-31", "timesteps": 100_000, "seed": 7,
                  "threads": 1, "n_envs": 1},
        "strategy": {"name": "rl_allocation", "top_k": 2},
        "backtest": {"engine": "native", "cash": 100_000.0, "start": "2019-01-01",
                     "end": "2020-09-30", "benchmark": "SPY"},
        "broker": {"name": "sim"},
        "risk": {"max_position_weight": 0.4, "max_orders_per_bar": 10},
        "store": {"url": f"sqlite:///{root}/store/rlbridge.db"},
    }
    assert json.loads(json.dumps(data)) == data
    # the stored copy needs no file: it gives the same config from anywhere
    assert config_from_mapping(data, pm=pm) == Config(**{**vars(config), "path": None})
    # dump() is TOML that loads back to the same config
    again = write(tmp_path / "..", config.dump(), name="dumped.toml")
    assert tomllib.loads(config.dump())["backtest"]["start"] == dt.date(2019, 1, 1)
    assert load_config(again, pm) == Config(**{**vars(config), "path": again.resolve()})


def test_options_keep_what_the_file_says_with_paths_made_absolute(tmp_path, pm):
    path = write(tmp_path, '[data]\npath = "bars"\ncalendar = "none"\ndayfirst = true\n')
    config = load_config(path, pm)
    assert config.data.options == {"path": tmp_path.resolve() / "bars", "calendar": "none",
                                   "dayfirst": True}
    # "none" (no calendar, the plugin's word for null) survives the stored copy
    assert config.to_dict()["data"] == {"feed": "csv", "path": f"{tmp_path.resolve()}/bars",
                                        "calendar": "none", "dayfirst": True}
    assert pm.registries["feeds"].create("csv", config.data.options).config == CsvFeed.Config(
        path=tmp_path.resolve() / "bars", calendar=None, dayfirst=True)


def test_absent_tables_are_none_and_risk_store_default_empty(pm):
    config = config_from_mapping({"data": {"path": "bars"}}, pm=pm)
    # feed "csv", every symbol, every date
    assert config.data == DataConfig(options={"path": Path("bars")})
    assert (config.data.feed, config.data.symbols, config.data.start, config.data.end) == (
        "csv", None, None, None)
    assert (config.features, config.costs, config.policy, config.train, config.strategy,
            config.backtest, config.broker) == (None,) * 7
    assert config.risk == RiskConfig() and config.store == StoreConfig(url=None)
    assert config.path is None
    assert config.to_dict() == {"data": {"feed": "csv", "path": "bars"}, "risk": {}, "store": {}}
    assert config_from_mapping({}, pm=pm).to_dict() == {"risk": {}, "store": {}}


def test_defaults_of_plugin_tables(pm):
    config = config_from_mapping({"features": {}, "backtest": {}, "broker": {}}, pm=pm)
    assert config.features == FeaturesConfig(window=60, transforms=())
    assert config.backtest == BacktestConfig(engine="native", cash=100_000.0)
    assert config.broker == BrokerConfig(name="sim")


def test_aliases_and_module_paths_are_accepted(pm):
    config = config_from_mapping({
        "features": {"transforms": [{"name": "vol", "window": 5}]},
        "policy": {"algo": "no_such_package_xyz.algos:Custom", "anything": [1, 2]},
    }, pm=pm)
    assert config.features.transforms == (TransformSpec("vol", {"window": 5}),)
    assert config.policy == PolicyConfig("no_such_package_xyz.algos:Custom", {"anything": [1, 2]})
    assert "no_such_package_xyz" not in sys.modules  # checking a config runs no user code


def test_transform_specs_from_python_are_checked_like_tables(pm):
    config = config_from_mapping(
        {"features": {"transforms": ["log_return", TransformSpec("volatility", {"window": 5})]}},
        pm=pm)
    assert config.features.transforms == (TransformSpec("log_return"),
                                          TransformSpec("volatility", {"window": 5}))
    assert error(pm, {"features": {"transforms": [TransformSpec("volatility", {"window": "5"})]}}) \
        == "agent.toml: [features.transforms[0].window]: expected an integer, got '5'"


def test_default_plugin_manager_is_used_when_none_given():
    with pytest.raises(UnknownNameError) as info:
        config_from_mapping({"costs": {"model": "no_such_model"}}, path="agent.toml")
    assert str(info.value).startswith(
        "agent.toml: [costs.model]: unknown cost model 'no_such_model'; valid names: ")
    assert config_from_mapping({"risk": {"max_drawdown": 0.2}}).risk.max_drawdown == 0.2


# ---------------------------------------------------------------------- relative paths
def test_relative_paths_are_relative_to_the_config_file(tmp_path, pm, monkeypatch):
    folder = tmp_path / "agents"
    folder.mkdir()
    path = write(folder, '[data]\npath = "../bars"\n[store]\nurl = "sqlite:///db/x.db?timeout=5"\n')
    monkeypatch.chdir(tmp_path.parent)  # not the file's folder
    config = load_config(path.relative_to(tmp_path.parent), pm)
    assert config.data.options["path"].is_absolute()
    assert config.data.options["path"].resolve() == tmp_path.resolve() / "bars"
    assert config.store.url == f"sqlite:///{folder.resolve()}/db/x.db?timeout=5"


@pytest.mark.parametrize("url", [
    "sqlite:////var/lib/rlbridge.db", "sqlite://", "sqlite:///:memory:",
    "postgresql://user@db.example.com/rlbridge",
])
def test_absolute_memory_and_server_store_urls_are_kept(tmp_path, pm, url):
    path = write(tmp_path, f'[store]\nurl = "{url}"\n')
    assert load_config(path, pm).store.url == url


def test_without_a_file_relative_paths_stay_relative(pm):
    config = config_from_mapping({"data": {"path": "bars"}, "store": {"url": "sqlite:///x.db"}},
                                 pm=pm)
    assert config.data.options["path"] == Path("bars")
    assert config.store.url == "sqlite:///x.db"


# ---------------------------------------------------------------------- error messages
def test_misspelt_key(pm):
    assert error(pm, {"train": {"timestep": 5}}) == (
        "agent.toml: [train.timestep]: unknown key 'timestep' (did you mean 'timesteps'?); "
        "valid keys: start, end, timesteps, seed, threads, checkpoint_every, n_envs, output")


def test_misspelt_plugin_option_names_file_key_and_both_key_lists(pm):
    assert error(pm, {"data": {"feed": "csv", "path": "x", "date_fromat": "%d"}}) == (
        "agent.toml: [data.date_fromat]: unknown key 'date_fromat' (did you mean 'date_format'?); "
        "valid keys: feed, symbols, start, end, and the options of feed 'csv': path, "
        "date_format, dayfirst, calendar")


def test_misspelt_table_key_beside_a_plugin_that_takes_any_option(pm):
    assert error(pm, {"data": {"feed": "sample", "strat": "2019-01-01"}}) == (
        "agent.toml: [data.strat]: unknown key 'strat' (did you mean 'start'?); "
        "valid keys: feed, symbols, start, end, and any option feed 'sample' takes")
    # a key that is no near miss is that plugin's business
    assert config_from_mapping({"data": {"feed": "sample", "adjusted": True}},
                               pm=pm).data.options == {"adjusted": True}


def test_misspelt_plugin_name_key(pm):
    assert error(pm, {"costs": {"modle": "percent"}}) == (
        "agent.toml: [costs.modle]: unknown key 'modle' (did you mean 'model'?); "
        "valid keys: model")
    assert error(pm, {"costs": {"rate": 0.1}}) == (
        "agent.toml: [costs.model]: missing required key 'model'")


def test_misspelt_transform_option_and_name(pm):
    mapping = {"features": {"transforms": ["log_return", {"name": "volatility", "windw": 5}]}}
    assert error(pm, mapping) == (
        "agent.toml: [features.transforms[1].windw]: unknown key 'windw' (did you mean "
        "'window'?); valid keys: name, and the options of feature 'volatility': window")
    assert error(pm, {"features": {"transforms": [{"nam": "volatility"}]}}) == (
        "agent.toml: [features.transforms[0].nam]: unknown key 'nam' (did you mean 'name'?); "
        "valid keys: name")
    assert error(pm, {"features": {"transforms": ["log_return", 5]}}) == (
        "agent.toml: [features.transforms[1]]: expected a transform name or a table with a "
        "'name' key, got 5")
    assert error(pm, {"features": {"transforms": "log_return"}}) == (
        "agent.toml: [features.transforms]: expected a list of names or tables, got 'log_return'")


@pytest.mark.parametrize("mapping, message", [
    ({"features": {"window": "60"}}, "[features.window]: expected an integer, got '60'"),
    ({"features": {"window": 60.0}}, "[features.window]: expected an integer, got 60.0"),
    ({"train": {"timesteps": True}}, "[train.timesteps]: expected an integer, got True"),
    ({"data": {"feed": "sample", "symbols": "SPY"}},
     "[data.symbols]: expected a list of strings, got 'SPY'"),
    ({"data": {"feed": "sample", "symbols": ["SPY", 3]}},
     "[data.symbols]: expected a list of strings, got ['SPY', 3]"),
    ({"data": {"feed": "sample", "start": "2019-13-01"}},
     "[data.start]: expected a date (YYYY-MM-DD), got '2019-13-01'"),
    ({"backtest": {"cash": "lots"}}, "[backtest.cash]: expected a number, got 'lots'"),
    ({"costs": {"model": "percent", "rate": "1%"}}, "[costs.rate]: expected a number, got '1%'"),
    ({"costs": {"model": 3}}, "[costs.model]: expected a string, got 3"),
    ({"risk": "none"}, "[risk]: expected a table ([risk]), got 'none'"),
])
def test_wrong_types(pm, mapping, message):
    assert error(pm, mapping) == f"agent.toml: {message}"


def test_unknown_table(pm):
    assert error(pm, {"dta": {"feed": "csv"}}) == (
        "agent.toml: [dta]: unknown table 'dta' (did you mean 'data'?); valid tables: data, "
        "features, env, costs, policy, train, strategy, backtest, walkforward, broker, risk, notify, "
        "store")
    assert error(pm, {"feed": "csv"}) == (
        "agent.toml: [feed]: unknown table 'feed'; valid tables: data, features, env, costs, policy, "
        "train, strategy, backtest, walkforward, broker, risk, notify, store")


@pytest.mark.parametrize("mapping, key, message", [
    ({"data": {"feed": "cvs"}}, "data.feed",
     "unknown feed 'cvs'; valid names: csv, sample (did you mean 'csv'?)"),
    ({"costs": {"model": "percnt"}}, "costs.model",
     "unknown cost model 'percnt'; valid names: per_share, percent (did you mean 'percent'?)"),
    ({"features": {"transforms": ["log_return", "log_retrun"]}}, "features.transforms[1]",
     "unknown feature 'log_retrun'; valid names: log_return, vol, volatility, volume_change "
     "(did you mean 'log_return'?)"),
    ({"features": {"transforms": [{"name": "volatilty"}]}}, "features.transforms[0].name",
     "unknown feature 'volatilty'; valid names: log_return, vol, volatility, volume_change "
     "(did you mean 'volatility'?)"),
    ({"policy": {"algo": "ppo2"}}, "policy.algo",
     "unknown policy 'ppo2'; valid names: ppo (did you mean 'ppo'?)"),
    ({"strategy": {"name": "buy_and_hold"}}, "strategy.name",
     "unknown strategy 'buy_and_hold'; valid names: rl_allocation"),
    ({"backtest": {"engine": "zipline"}}, "backtest.engine",
     "unknown engine 'zipline'; valid names: backtrader, native"),
    ({"broker": {"name": "alpacca"}}, "broker.name", "unknown broker 'alpacca'; valid names: sim"),
])
def test_unknown_plugin_names(pm, mapping, key, message):
    with pytest.raises(UnknownNameError) as info:
        config_from_mapping(mapping, path="agent.toml", pm=pm)
    assert str(info.value) == f"agent.toml: [{key}]: {message}"
    assert (info.value.path, info.value.key) == ("agent.toml", key)


def test_unknown_default_plugin_name_is_reported_too():
    bare = make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)
    with pytest.raises(UnknownNameError) as info:
        config_from_mapping({"backtest": {"cash": 1000}}, path="agent.toml", pm=bare)
    assert str(info.value) == (
        "agent.toml: [backtest.engine]: unknown engine 'native'; valid names: (none registered)")


def test_bad_plugin_option_values(pm):
    assert error(pm, {"costs": {"model": "percent", "rate": 10}}) == (
        "agent.toml: [costs.rate]: is a fraction of traded value, got 10.0")
    assert error(pm, {"data": {"feed": "csv", "path": "x", "dayfirst": "yes"}}) == (
        "agent.toml: [data.dayfirst]: expected true or false, got 'yes'")
    assert error(pm, {"data": {"feed": "csv"}}) == (
        "agent.toml: [data.path]: missing required key 'path'")
    assert error(pm, {"features": {"transforms": [{"name": "volatility", "window": "20"}]}}) == (
        "agent.toml: [features.transforms[0].window]: expected an integer, got '20'")
    assert error(pm, {"policy": {"algo": ":Custom"}}) == (
        "agent.toml: [policy.algo]: expected 'module:Class', got ':Custom'")


@pytest.mark.parametrize("table, extra", [
    ("data", {"feed": "sample"}), ("train", {"timesteps": 10}), ("backtest", {}),
])
def test_start_after_end_names_both_keys(pm, table, extra):
    mapping = {table: {**extra, "start": "2020-01-02", "end": dt.date(2020, 1, 1)}}
    assert error(pm, mapping) == (
        f"agent.toml: [{table}.start]: "
        f"{table}.start (2020-01-02) is after {table}.end (2020-01-01)")
    same_day = {table: {**extra, "start": "2020-01-01", "end": "2020-01-01"}}
    assert getattr(config_from_mapping(same_day, pm=pm), table).start == dt.date(2020, 1, 1)


@pytest.mark.parametrize("mapping, message", [
    ({"data": {"feed": "sample", "symbols": []}},
     "[data.symbols]: empty list; leave the key out to use every symbol of the feed"),
    ({"data": {"feed": "sample", "symbols": ["SPY", "AGG", "SPY"]}},
     "[data.symbols[2]]: 'SPY' is listed twice"),
    ({"features": {"window": 0}}, "[features.window]: must be a positive number, got 0"),
    ({"train": {"timesteps": -5}}, "[train.timesteps]: must be a positive number, got -5"),
    ({"train": {"timesteps": 5, "seed": -1}},
     "[train.seed]: must be between 0 and 2**32 - 1, got -1"),
    ({"backtest": {"cash": float("inf")}}, "[backtest.cash]: must be a positive number, got inf"),
    ({"risk": {"max_gross_exposure": -1.0}},
     "[risk.max_gross_exposure]: must be a positive number, got -1.0"),
    ({"risk": {"max_drawdown": 20}},
     "[risk.max_drawdown]: is a fraction of portfolio value (0.1 = 10%), at most 1; got 20.0"),
    ({"store": {"url": "runs.db"}},
     "[store.url]: expected an SQLAlchemy URL such as 'sqlite:///rlbridge.db' or "
     "'postgresql://host/db', got 'runs.db'"),
])
def test_bad_values(pm, mapping, message):
    assert error(pm, mapping) == f"agent.toml: {message}"


def test_toml_syntax_error_gives_line_and_column(tmp_path, pm):
    path = write(tmp_path, '[data]\nfeed = "csv"\nsymbols ["SPY"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, pm)
    assert str(info.value) == (
        f"{path}: line 3, column 9: invalid TOML: Expected '=' after a key in a key/value pair: "
        'symbols ["SPY"]')
    path = write(tmp_path, '[data]\nfeed = "csv"\nfeed = "sample"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, pm)
    assert str(info.value) == (
        f'{path}: line 3, column 16: invalid TOML: Cannot overwrite a value: feed = "sample"')


def test_missing_unreadable_and_non_utf8_files(tmp_path, pm):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", pm)
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such config file"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, pm)
    assert str(info.value) == f"{tmp_path}: is a folder, not a config file"
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[data]\nfeed = "csv"\n# café\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(latin1, pm)
    assert str(info.value) == f"{latin1}: line 3: not UTF-8 text (TOML files are UTF-8)"


def test_errors_name_the_file_as_given(tmp_path, pm, monkeypatch):
    write(tmp_path, "[risk]\nmax_weight = 0.4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("agent.toml", pm)
    assert str(info.value).startswith("agent.toml: [risk.max_weight]: unknown key 'max_weight'")
    assert (info.value.path, info.value.key) == ("agent.toml", "risk.max_weight")


def test_real_csv_feed_options_are_checked(tmp_path):
    pm = make_plugin_manager(entrypoints=False, disabled=(), warn=False)
    path = write(tmp_path, '[data]\nfeed = "csv"\npath = "bars"\ndate_fromat = "%d.%m.%Y"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, pm)
    message = str(info.value)
    assert message.startswith(
        f"{path}: [data.date_fromat]: unknown key 'date_fromat' (did you mean 'date_format'?); "
        "valid keys: feed, symbols, start, end, and the options of feed 'csv': ")
    assert "path" in message.split("feed 'csv': ")[1].split(", ")
    good = write(tmp_path, '[data]\nfeed = "csv"\npath = "bars"\ndate_format = "%d.%m.%Y"\n',
                 name="good.toml")
    config = load_config(good, pm)
    assert config.data.options == {"path": tmp_path.resolve() / "bars", "date_format": "%d.%m.%Y"}


# ---------------------------------------------------------------------- the command
def run(pm, *args):
    return CliRunner().invoke(build_cli(pm), list(args))


def test_config_check_ok_prints_a_summary(tmp_path, pm):
    path = write(tmp_path, '[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG"]\n'
                           '[costs]\nmodel = "percent"\nrate = 0.002\n')
    result = run(pm, "config", "check", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok: {path}\n"
        "  data: feed=sample, symbols=[SPY, AGG]\n"
        "  costs: model=percent, rate=0.002\n"
        "  risk: no limits\n"
        "  store: not set (--db, then RLBRIDGE_DB, then sqlite:///rlbridge.db)\n")


def test_config_check_reports_the_error_with_exit_code_2(tmp_path, pm):
    path = write(tmp_path, '[costs]\nmodel = "percnt"\n')
    result = run(pm, "config", "check", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {path}: [costs.model]: unknown cost model 'percnt'; valid names: per_share, "
        "percent (did you mean 'percent'?)\n")
    missing = run(pm, "config", "check", str(tmp_path / "missing.toml"))
    assert (missing.exit_code, missing.stderr) == (
        2, f"Error: {tmp_path / 'missing.toml'}: no such config file\n")


def test_config_check_json(tmp_path, pm):
    path = write(tmp_path, '[broker]\nname = "sim"\n[store]\nurl = "postgresql://me:s3cret@db/x"\n')
    result = run(pm, "config", "check", str(path), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True, "path": str(path),
        "config": {"broker": {"name": "sim"}, "risk": {}, "store": {"url": "postgresql://me:***@db/x"}},
    }
    bad = write(tmp_path, "[train]\ntimesteps = 1.5\n", name="bad.toml")
    result = run(pm, "config", "check", str(bad), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "ok": False, "path": str(bad), "key": "train.timesteps",
        "error": f"{bad}: [train.timesteps]: expected an integer, got 1.5"}


def test_config_show_prints_toml_with_defaults(tmp_path, pm):
    path = write(tmp_path, FULL)
    result = run(pm, "config", "show", str(path))
    assert result.exit_code == 0
    assert result.stdout == load_config(path, pm).dump()
    assert "[backtest]\nengine = \"native\"\ncash = 100000.0\nstart = 2019-01-01\n" in result.stdout
    assert tomllib.loads(result.stdout)["train"]["threads"] == 1  # the default, filled in


def test_the_command_uses_the_cli_plugin_manager(tmp_path):
    bare = make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)
    bare.register(command_plugin, name="rlbridge.plugins.commands.config")
    path = write(tmp_path, '[data]\nfeed = "sample"\n')
    result = run(bare, "config", "check", str(path))
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {path}: [data.feed]: unknown feed 'sample'; valid names: (none registered)\n")


# ---------------------------------------------------------------------- examples
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_loads_with_the_builtin_plugins(path):
    pm = make_plugin_manager(entrypoints=False, disabled=(), warn=False)
    config = load_config(path, pm)
    assert config.path == path.resolve()
    assert path.name in (EXAMPLES / "README.md").read_text()


def test_data_example_ingests_the_sample_etfs(tmp_path):
    pm = make_plugin_manager(entrypoints=False, disabled=(), warn=False)
    config = load_config(EXAMPLES / "data.toml", pm)
    assert config.data.feed == "sample"
    assert config.data.symbols == ("SPY", "AGG", "XLK")
    assert (config.data.start, config.data.end) == (dt.date(2005, 1, 1), dt.date(2020, 12, 31))
    db = tmp_path / "store.db"
    result = run(pm, "--db", f"sqlite:///{db}", "data", "ingest", str(EXAMPLES / "data.toml"))
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as con:
        counts = dict(con.execute("SELECT symbol, COUNT(*) FROM bars GROUP BY symbol"))
    # every NYSE session of 2005-2020 for each of the three ETFs
    assert counts == {"SPY": 4028, "AGG": 4028, "XLK": 4028}


def test_env_table_values_are_checked(pm):
    assert error(pm, {"env": {"actions": "discret"}}) == (
        "agent.toml: [env.actions]: 'discret' is not one of 'softmax', 'long_short', 'discrete'")
    assert error(pm, {"env": {"turnover_penalty": -0.1}}) == (
        "agent.toml: [env.turnover_penalty]: must be zero or positive, got -0.1")
    assert error(pm, {"env": {"episode_length": 1}}) == (
        "agent.toml: [env.episode_length]: an episode needs at least 2 steps, got 1")
    assert error(pm, {"env": {"gross_cap": 0}}) == (
        "agent.toml: [env.gross_cap]: must be a positive number, got 0.0")
    assert error(pm, {"env": {"rebalance_band": -0.01}}) == (
        "agent.toml: [env.rebalance_band]: must be zero or positive, got -0.01")
    assert error(pm, {"env": {"rebalance_band": 2}}) == (
        "agent.toml: [env.rebalance_band]: is a fraction of the portfolio value (0.02 = 2%), "
        "below 1; got 2.0")


def test_one_broker_table_keeps_every_brokers_endpoints(tmp_path):
    from rlbridge.manager import make_plugin_manager

    pm = make_plugin_manager(entrypoints=False, warn=False)
    path = tmp_path / "agent.toml"
    path.write_text('[broker]\nname = "sim"\ncash = 5000\n'
                    'trading_url = "http://127.0.0.1:9/"\nport = 4002\n')
    config = load_config(path, pm=pm)  # alpaca's and ib's keys wait beside sim's own
    assert config.broker.name == "sim" and config.broker.options["port"] == 4002
    path.write_text('[broker]\nname = "sim"\ntrading_ulr = "http://127.0.0.1:9/"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, pm=pm)  # a key no broker declares is still an error
    assert info.value.key == "broker.trading_ulr"

"""docs/config.md against the config dataclasses: every key, type and default, and its examples."""

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import rlbridge
from rlbridge.config import TABLES, config_from_mapping, load_config
from rlbridge.data import AlignOptions, load_bars, sessions
from rlbridge.errors import ConfigError, DataError, RLBridgeError, StoreError
from rlbridge.manager import make_plugin_manager
from rlbridge.options import REQUIRED, describe
from rlbridge.plugins.feeds.sample import SampleFeed

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "config.md"
TEXT = DOC.read_text()
DATA = Path("/work/shared/data")
BTC = DATA / "intraday" / "BTCUSD-1h-coinbase.csv"
EURUSD = DATA / "intraday" / "EURUSD-1h.csv"


def reference_tables(text, heading=r"## \[(\w+)\]"):
    """Name -> the rows (lists of cells) of the first markdown table under each ``heading``.

    ``heading`` is a regular expression matching a whole heading line; its first group that
    matched is the name.
    """
    tables = {}
    current = None
    for line in text.splitlines():
        found = re.fullmatch(heading, line.strip())
        if found:
            current = next(group for group in found.groups() if group)
            tables[current] = []
        elif line.startswith("#"):
            current = None
        elif current is not None and line.startswith("|"):
            tables[current].append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current is not None and tables[current]:
            current = None  # the first table ended
    return tables


def section(text, name):
    return titled(text, f"## [{name}]")


def titled(text, heading):
    """The text from the line ``heading`` to the next ``## `` heading."""
    start = text.index(f"{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def subsections(text, heading):
    """Name -> the text under each heading line matching ``heading``, up to the next heading."""
    found, current, fenced = {}, None, False
    for line in text.splitlines(keepends=True):
        match = None if fenced else re.fullmatch(heading, line.strip())
        if match:
            current = next(group for group in match.groups() if group)
            found[current] = ""
            continue
        if line.startswith("#") and not fenced:
            current = None
        elif current is not None:
            found[current] += line
        if line.startswith("```"):
            fenced = not fenced
    return found


def parse_default(cell):
    if cell == "required":
        return REQUIRED
    if cell == "unset":
        return None
    assert cell.startswith("`") and cell.endswith("`"), f"default {cell!r} is not `code`"
    return tomllib.loads(f"v = {cell.strip('`')}")["v"]


def plain(value):
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


DOCUMENTED = reference_tables(TEXT)
FEED_SECTION = titled(TEXT, "## Feed options")
#: the sections on the options of the built-in plugins, by title
PLUGIN_SECTIONS = {title: titled(TEXT, f"## {title}") for title in (
    "Feature transforms", "Cost models", "Policy options", "Strategy parameters",
    "Engine options", "Broker options")}
OPTION_SECTIONS = (FEED_SECTION, *PLUGIN_SECTIONS.values())
FEED_HEADING = r"### (?:`(\w+)`|(Alignment)).*"  # ### `csv`: CSV files, ### Alignment (...)
SHARED = "Alignment"


def test_every_table_has_a_reference_section_and_nothing_else_does():
    assert list(DOCUMENTED) == list(TABLES)


def check_table(rows, expected, where, cls):
    """A reference table (key, type, default, meaning) against ``describe`` rows, in order."""
    assert rows[0] == ["key", "type", "default", "meaning"]
    assert set(rows[1]) == {"---"}
    body = rows[2:]
    assert [cells[0].strip("`") for cells in body] == [key for key, _, _ in expected], (
        f"docs/config.md {where}: the keys (in order) differ from {cls.__qualname__}")
    for cells, (key, type_name, default) in zip(body, expected, strict=True):
        assert cells[1] == type_name, f"{where} {key}: type"
        assert parse_default(cells[2]) == plain(default), f"{where} {key}: default"
        assert len(cells) == 4 and len(cells[3]) > 20, f"{where} {key}: no meaning given"


@pytest.mark.parametrize("name", list(TABLES))
def test_section_matches_the_dataclass(name):
    spec = TABLES[name]
    expected = [row for row in describe(spec.cls) if row[0] != spec.rest]
    check_table(DOCUMENTED[name], expected, f"[{name}]", spec.cls)


@pytest.mark.parametrize("name", [n for n, spec in TABLES.items() if spec.rest])
def test_plugin_tables_say_where_the_plugin_options_go(name):
    assert "Every other key" in section(TEXT, name)
    assert f"`[{name}] {TABLES[name].name_key}`" in TEXT  # listed under "Plugin keys sit beside"


# ---------------------------------------------------------------------- the examples
class DocFeed:
    @dataclass(frozen=True)
    class Config:
        path: Path
        date_format: str = "%Y-%m-%d"
        columns: tuple[str, ...] = ()


class Names:
    """Every plugin name the page's examples use, the csv feed with declared options."""

    @rlbridge.hookimpl
    def register_feeds(self, register):
        register("csv", DocFeed)

    @rlbridge.hookimpl
    def register_features(self, register):
        for name in ("log_return", "volume_change", "volatility"):
            register(name, dict)

    @rlbridge.hookimpl
    def register_cost_models(self, register):
        for name in ("percent", "per_share", "spread"):
            register(name, dict)

    @rlbridge.hookimpl
    def register_policies(self, register):
        register("ppo", dict)

    @rlbridge.hookimpl
    def register_strategies(self, register):
        register("rl_allocation", dict)

    @rlbridge.hookimpl
    def register_engines(self, register):
        register("native", dict)

    @rlbridge.hookimpl
    def register_brokers(self, register):
        register("sim", dict)


@pytest.fixture
def pm():
    pm = make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)
    pm.register(Names(), name="names")
    return pm


def blocks(language, text=TEXT):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_toml_examples_load(tmp_path, pm):
    rest = TEXT
    for options in OPTION_SECTIONS:  # the examples of plugin options: further down
        rest = rest.replace(options, "")
    examples = blocks("toml", rest)
    assert len(examples) == 2
    for i, example in enumerate(examples):
        path = tmp_path / f"example{i}.toml"
        path.write_text(example)
        config = load_config(path, pm)
        assert config.data.feed == "csv"
        assert config.data.options["path"] == tmp_path.resolve() / "data" / "etf"
    full = load_config(tmp_path / "example0.toml", pm)
    assert full.features.transforms[2].options == {"window": 20}
    assert (full.train.timesteps, full.backtest.cash, full.risk.max_position_weight) == (
        100_000, 100_000.0, 0.4)


def test_error_examples_are_what_rlbridge_prints(tmp_path, pm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent.toml").write_text('# agent\n[data]\nsymbols = ["SPY"]\nfeed "csv"\n')
    produce = {
        "[data.date_fromat]": {"data": {"feed": "csv", "path": "x", "date_fromat": "%d"}},
        "[costs.model]": {"costs": {"model": "percnt"}},
        "[features.window]": {"features": {"window": "60"}},
    }
    messages = blocks("text")[0].split("\n")
    shown = [line.strip() for line in messages if line.strip()]
    assert len(shown) == 4
    for message in shown:
        key = next((k for k in produce if k in message), None)
        with pytest.raises(RLBridgeError) as info:
            if key is None:
                load_config("agent.toml", pm)
            else:
                config_from_mapping(produce[key], path="agent.toml", pm=pm)
        if message.endswith(", ..."):
            assert str(info.value).startswith(message[: -len("...")])
        else:
            assert str(info.value) == message


# ---------------------------------------------------------------------- feed options
def builtin_feed_options():
    """Built-in feed name -> its options dataclass (None when it declares none)."""
    pm = make_plugin_manager(builtins=True, entrypoints=False, disabled=(), warn=False)
    return {entry.name: entry.options for entry in pm.registries["feeds"].entries()
            if entry.plugin.startswith("rlbridge.plugins.")}


BUILTIN_FEEDS = builtin_feed_options()
FEED_TABLES = reference_tables(FEED_SECTION, FEED_HEADING)
FEED_TEXT = subsections(FEED_SECTION, FEED_HEADING)


def test_every_builtin_feed_has_an_options_section_and_nothing_else_does():
    assert list(FEED_TABLES) == [SHARED, *BUILTIN_FEEDS]
    assert list(FEED_TEXT) == list(FEED_TABLES)


def test_alignment_section_matches_align_options():
    check_table(FEED_TABLES[SHARED], describe(AlignOptions), "Feed options, alignment",
                AlignOptions)


@pytest.mark.parametrize("name", list(BUILTIN_FEEDS))
def test_feed_section_matches_its_config(name):
    options = BUILTIN_FEEDS[name]
    assert options is not None, f"the built-in feed {name!r} declares no Config"
    shared = describe(AlignOptions)
    rows = describe(options)
    # the alignment section says every built-in feed takes its options
    assert [key for key, _, _ in shared if key not in {k for k, _, _ in rows}] == [], name
    assert "alignment options" in FEED_TEXT[name]
    # documented once, in the alignment table; a feed that changes one documents it itself
    own = [row for row in rows if row not in shared]
    check_table(FEED_TABLES[name], own, f"Feed options, {name}", options)


# ---------------------------------------------------------------------- feed examples
FEED_EXAMPLES = {name: blocks("toml", text) for name, text in FEED_TEXT.items()}


def test_every_feed_example_is_checked_below():
    assert {name: len(found) for name, found in FEED_EXAMPLES.items()} == {
        SHARED: 1, "csv": 2, "sample": 1, "sql": 1, "alpaca": 0, "ib": 0}


@pytest.fixture
def beside(tmp_path):
    """A folder for the examples, with the real files where they say: data/etf, data/*.csv."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "etf").symlink_to(DATA / "etf-daily")
    for file in (BTC, EURUSD):
        (tmp_path / "data" / file.name).symlink_to(file)
    return tmp_path


def example_bars(folder, pm, name, index=0, change=None, **load):
    """The bars of a feed example, saved as a file in ``folder`` and loaded with ``pm``.

    ``change`` edits the ``[data]`` table first (the doc's text around the example says what
    other options do).
    """
    text = FEED_EXAMPLES[name][index]
    path = folder / "agent.toml"
    if change is None:
        path.write_text(text)
        config = load_config(path, pm)
    else:
        raw = tomllib.loads(text)
        change(raw["data"])
        config = config_from_mapping(raw, path=path, pm=pm)
    return load_bars(config, pm, **load)


def test_alignment_example(beside, rlbridge_pm):
    bars = example_bars(beside, rlbridge_pm, SHARED)
    assert bars.symbols == ("SPY", "AGG", "XLC")
    assert (bars.index[0], bars.index[-1]) == (pd.Timestamp("2018-06-19"),
                                               pd.Timestamp("2025-01-07"))
    assert bars.index.equals(sessions("XNYS", "2018-06-19", "2025-01-07"))
    assert len(bars) == 1649
    assert bars.values[0, 2].tolist() == [49.700001, 50.060001, 49.580002, 49.959999, 16600.0]
    # nothing was filled: the same panel as keeping only the sessions every symbol has
    assert example_bars(beside, rlbridge_pm, SHARED,
                        change=lambda data: data.update(align="drop")).equals(bars)


def test_csv_example_btc_newest_first(beside, rlbridge_pm):
    bars = example_bars(beside, rlbridge_pm, "csv", 0)
    assert bars.symbols == ("BTCUSD",)
    assert bars.shape == (17583, 1, 5)
    assert (bars.index[0], bars.index[-1]) == (pd.Timestamp("2017-07-01 11:00", tz="UTC"),
                                               pd.Timestamp("2019-07-04 01:00", tz="UTC"))
    assert bars.values[0, 0].tolist() == [2505.56, 2513.38, 2495.12, 2509.17, 114.6]
    assert bars.values[-1, 0].tolist() == [11849.99, 11880.0, 11790.01, 11849.69, 303.61]

    def no_order(data):
        del data["sort"]

    def newest_first(data):
        del data["sort"]
        data["newest_first"] = True

    with pytest.raises(DataError) as info:
        example_bars(beside, rlbridge_pm, "csv", 0, change=no_order)
    assert (info.value.row, info.value.column) == (3, "Date")
    assert str(info.value).endswith("; set newest_first = true")
    with pytest.raises(DataError) as info:
        example_bars(beside, rlbridge_pm, "csv", 0, change=newest_first)
    assert (info.value.row, info.value.column) == (14372, "Date")
    assert "2017-11-12 08:00 UTC comes after" in str(info.value)
    assert str(info.value).endswith("; set sort = true to sort the rows")


def test_csv_example_eurusd_day_first(beside, rlbridge_pm):
    bars = example_bars(beside, rlbridge_pm, "csv", 1)
    assert bars.symbols == ("EURUSD",)
    assert bars.shape == (6225, 1, 5)
    assert (bars.index[0], bars.index[-1]) == (pd.Timestamp("2017-01-01 22:00", tz="UTC"),
                                               pd.Timestamp("2017-12-29 21:00", tz="UTC"))
    assert bars.values[0, 0].tolist() == [1.05236, 1.05253, 1.05221, 1.05227, 143539993.3]

    def date_format(data):
        del data["dayfirst"]
        data["date_format"] = "%d.%m.%Y %H:%M:%S.%f"

    assert example_bars(beside, rlbridge_pm, "csv", 1, change=date_format).equals(bars)
    with pytest.raises(DataError) as info:
        example_bars(beside, rlbridge_pm, "csv", 1, change=lambda data: data.pop("dayfirst"))
    assert (info.value.row, info.value.column) == (220, "Time")
    assert "cannot read '13.01.2017 00:00:00.000' as a date" in str(info.value)
    assert str(info.value).endswith("; set date_format or dayfirst = true")


def test_sample_example(beside, rlbridge_pm):
    bars = example_bars(beside, rlbridge_pm, "sample")
    assert bars.symbols == ("SPY", "AGG", "XLC")
    assert len(bars) == 640
    assert (bars.index[0], bars.index[-1]) == (pd.Timestamp("2018-06-19"),
                                               pd.Timestamp("2020-12-31"))
    assert bars.values[0, 0, 3] == 275.5  # SPY's close as traded
    adjusted = example_bars(beside, rlbridge_pm, "sample",
                            change=lambda data: data.pop("adjust"))
    assert adjusted.values[0, 0, 3] == 248.09758  # the file's Adj Close
    assert round(adjusted.values[0, 0, 3], 2) == 248.10


def test_sql_example_reads_what_data_ingest_wrote(beside, rlbridge_pm, rlbridge_cli,
                                                  rlbridge_db_url):
    result = rlbridge_cli("data", "ingest", ROOT / "examples" / "data.toml")
    assert result.exit_code == 0, result.output
    bars = example_bars(beside, rlbridge_pm, "sql", store_url=rlbridge_db_url)
    assert bars.symbols == ("SPY", "AGG")
    assert len(bars) == 505
    assert (bars.index[0], bars.index[-1]) == (pd.Timestamp("2019-01-02"),
                                               pd.Timestamp("2020-12-31"))
    assert bars.equals(SampleFeed().load(["SPY", "AGG"], "2019-01-01"))
    with pytest.raises(StoreError) as info:
        example_bars(beside, rlbridge_pm, "sql", store_url=rlbridge_db_url,
                     change=lambda data: data.update(symbols=["SPY", "XLE"]))
    assert str(info.value).endswith(
        "no 1d bars for XLE; the store has 1d bars for AGG, SPY, XLK")


# ---------------------------------------------------------------------- plugin option sections
# "Feature transforms", "Cost models", "Strategy parameters" and "Engine options": one ###
# section per built-in (or per group of built-ins that share their options, named together in
# the heading), each with the table of its Config, compared like the feed options above.
KINDS = {"Feature transforms": "features", "Cost models": "costs",
         "Strategy parameters": "strategies", "Engine options": "engines",
         "Broker options": "brokers"}
BUILTIN_PM = make_plugin_manager(builtins=True, entrypoints=False, disabled=(), warn=False)


def builtins_of(kind):
    """Built-in name -> its options dataclass (None when it declares none)."""
    return {entry.name: entry.options for entry in BUILTIN_PM.registries[kind].entries()
            if entry.plugin.startswith("rlbridge.")}


def tables_in(text):
    """Every markdown table of ``text``, in order, as lists of rows of cells."""
    found, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                found.append(current)
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            current = None
    return found


def named_sections(text):
    """``[(names, heading, body)]`` for each ``### `name`...`` heading of ``text``.

    The names are the backticked words before the heading's first colon:
    ``### `volatility`, `market_volatility`: rolling volatility`` names both.
    """
    found = []
    for heading, body in subsections(text, r"### (.*)").items():
        names = tuple(re.findall(r"`(\w+)`", heading.split(":")[0]))
        found.append((names, heading, body))
    return found


def section_of(title, name):
    matches = [(heading, body) for names, heading, body in named_sections(PLUGIN_SECTIONS[title])
               if name in names]
    assert len(matches) == 1, f"{title}: {name!r} is in {len(matches)} sections"
    return matches[0]


@pytest.mark.parametrize("title", list(KINDS))
def test_every_builtin_plugin_has_one_options_section(title):
    documented = [name for names, _, _ in named_sections(PLUGIN_SECTIONS[title])
                  for name in names]
    assert sorted(documented) == sorted(builtins_of(KINDS[title])), title
    assert len(documented) == len(set(documented)), title


@pytest.mark.parametrize("title, name", [(title, name) for title, kind in KINDS.items()
                                         for name in builtins_of(kind)])
def test_plugin_options_section_matches_its_config(title, name):
    options = builtins_of(KINDS[title])[name]
    assert options is not None, f"the built-in {name!r} declares no Config"
    heading, body = section_of(title, name)
    rows = describe(options)
    found = tables_in(body)
    if not rows:
        assert found == [] and "no options" in body, f"{title}, {name}: say it has no options"
        return
    assert len(found) == 1, f"{title}, {name}: one table"
    check_table(found[0], rows, f"{title}, {name}", options)


def plugin_examples(title):
    return blocks("toml", PLUGIN_SECTIONS[title])


def example_config(tmp_path, text, name="agent.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_config(path, BUILTIN_PM)


# ---------------------------------------------------------------------- cost models
COSTS = PLUGIN_SECTIONS["Cost models"]


def test_cost_examples_build_their_models(tmp_path):
    import numpy as np

    from rlbridge.costs import create_cost_model
    from rlbridge.interfaces import CostContext

    percent, composite = plugin_examples("Cost models")
    model = create_cost_model(example_config(tmp_path, percent).costs, BUILTIN_PM)
    assert model.config.rate == 0.0005
    model = create_cost_model(example_config(tmp_path, composite).costs, BUILTIN_PM)
    context = CostContext(SampleFeed().load(["SPY"], "2019-01-01", "2019-01-31"))
    price = model.fill_price(np.array([50.0]), np.array([100.0]), context)
    commission = model.commission(price, np.array([100.0]), context)
    assert price[0] == pytest.approx(50.01, abs=1e-12) and commission[0] == 1.0
    assert "A buy of 100 shares with a reference price of $50.00 fills at $50.01 and pays " \
           "the $1.00\nminimum commission." in COSTS


def test_per_share_examples_are_what_the_model_charges():
    import numpy as np

    from rlbridge.plugins.costs.per_share import PerShareCost

    model = PerShareCost()
    shares, price = np.array([100.0, 1000.0, 1.0]), np.array([50.0, 20.0, 5.0])
    assert model.commission(price, shares, None).tolist() == [1.0, 5.0, 0.05]
    text = " ".join(section_of("Cost models", "per_share")[1].split())
    assert ("100 shares at $50 pay the $1.00 minimum, 1,000 shares at $20 pay $5.00, and 1 share "
            "at $5 pays $0.05") in text


def test_cost_option_errors_are_what_rlbridge_prints(tmp_path):
    (tmp_path / "agent.toml").write_text('[costs]\nmodel = "percent"\nrate = 1.5\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "agent.toml", BUILTIN_PM)
    shown = str(info.value).replace(str(tmp_path / "agent.toml"), "agent.toml")
    assert f"`{shown}`" in COSTS
    mapping = {"costs": {"model": "composite", "parts": [{"model": "spread", "bps": 2},
                                                         {"model": "per_share", "minimum": -1}]}}
    with pytest.raises(ConfigError) as info:
        config_from_mapping(mapping, path="agent.toml", pm=BUILTIN_PM)
    assert info.value.key == "costs.parts[1].minimum"
    assert f"`[{info.value.key}]`" in COSTS


# ---------------------------------------------------------------------- features
def test_feature_example_gives_the_features_it_lists(tmp_path):
    from rlbridge.features import FeaturePipeline

    (example,) = plugin_examples("Feature transforms")
    config = example_config(tmp_path, example)
    names = FeaturePipeline.from_config(config.features, BUILTIN_PM).feature_names
    text = " ".join(PLUGIN_SECTIONS["Feature transforms"].split())
    listed = re.search(r"gives eight features per asset, in this order: (.*?)\. ", text).group(1)
    assert names == tuple(re.findall(r"`(\w+)`", listed))
    assert len(names) == 8
    # "then clipped to ±10"
    from rlbridge.features import compute_features

    config = config_from_mapping({"data": {"feed": "sample", "symbols": ["SPY", "AGG"]},
                                  "features": {"window": 2, "transforms": ["volume_change"]},
                                  "train": {"end": "2005-12-31", "timesteps": 1}},
                                 pm=BUILTIN_PM)
    bars = SampleFeed().load(["SPY", "AGG"])
    features = compute_features(config, bars, BUILTIN_PM)
    assert features.normalizer.clip == 10.0 and "clipped to\n  ±10" in TEXT
    in_sample = int((bars.index <= "2005-12-31").sum())  # the [train] period only
    assert features.fit_rows == slice(0, in_sample) and in_sample < len(bars)


@pytest.mark.parametrize("name", list(builtins_of("features")))
def test_feature_section_names_the_default_features(name):
    transform = BUILTIN_PM.registries["features"].create(name, {})
    _, body = section_of("Feature transforms", name)
    for feature in transform.feature_names:
        assert f"`{feature}`" in body, f"{name}: {feature} is not named"


# ---------------------------------------------------------------------- strategies, engines
def test_strategy_and_engine_examples_load(tmp_path):
    (strategy,) = plugin_examples("Strategy parameters")
    config = example_config(tmp_path, strategy)
    assert (config.strategy.name, dict(config.strategy.params)) == (
        "ma_crossover", {"fast": 10, "slow": 40})
    (backtest,) = plugin_examples("Engine options")
    config = example_config(tmp_path, backtest)
    engine = BUILTIN_PM.registries["engines"].create(config.backtest.engine,
                                                     config.backtest.options)
    assert (engine.config.fractional, engine.config.fill_at) == (True, "open")
    from rlbridge.config import EnvConfig

    # "[env] has the same two keys with other defaults"
    assert (EnvConfig().fractional, EnvConfig().fill_at) == (True, "open")
    assert (engine.__class__.Config().fractional, engine.__class__.Config().fill_at) == (
        False, "open")
    assert "sma_crossover" in BUILTIN_PM.registries["strategies"].info("ma_crossover").aliases


# ---------------------------------------------------------------------- policy options
POLICY = PLUGIN_SECTIONS["Policy options"]
POLICY_PARTS = {heading: body for _, heading, body in named_sections(POLICY)}
MAPPINGS = ("softmax", "long_short", "discrete")


def algorithm(name, options=None):
    return BUILTIN_PM.registries["policies"].create(name, options or {})


def test_network_options_table():
    from rlbridge.plugins.policies.nets import ACTIVATIONS
    from rlbridge.plugins.policies.spec import (
        EXTRACTORS,
        NETWORK_KEYS,
        AttentionOptions,
        NetworkOptions,
    )

    network, attention = tables_in(POLICY_PARTS["Network options"])
    assert network[0] == ["key", "type", "default", "meaning"]
    body = {cells[0].strip("`"): cells[1:] for cells in network[2:]}
    assert list(body) == list(NETWORK_KEYS)
    declared = {key: (kind, default) for key, kind, default in describe(NetworkOptions)}
    for key, (kind, default, meaning) in body.items():
        if key == "device":
            assert (kind, parse_default(default)) == ("a string", "cpu")
        elif key == "attention":
            assert kind == declared[key][0]
            assert parse_default(default) == dataclasses.asdict(AttentionOptions())
        else:
            assert (kind, parse_default(default)) == declared[key], key
        assert len(meaning) > 20
    assert all(f"`{name}`" in body["activation"][2] for name in ACTIVATIONS)
    assert all(f'`"{name}"`' in body["extractor"][2] for name in EXTRACTORS)
    check_table(attention, describe(AttentionOptions), "Policy options, attention",
                AttentionOptions)


def test_algorithm_table_is_what_each_algorithm_supports():
    """The action-mapping cells are what ``supports`` answers for each mapping's action space."""
    from rlbridge.actions import make_action_mapping

    (table,) = tables_in(POLICY_PARTS["Algorithms and action mappings"])
    assert table[0] == ["algo", "algorithm", "library", *MAPPINGS, "net_arch table"]
    rows = {cells[0].strip("`"): cells[1:] for cells in table[2:]}
    assert sorted(rows) == sorted(builtins_of("policies"))
    assert len(rows) == 13
    spaces = [make_action_mapping(mapping, 3).space for mapping in MAPPINGS]
    critic = {"vf": "`pi`, `vf`", "qf": "`pi`, `qf`", None: "no: one list"}
    for name, (title, library, *cells, arch) in rows.items():
        spec = algorithm(name)
        assert cells == ["yes" if spec.supports(space) else "no" for space in spaces], name
        assert (title, library, arch) == (spec.info.title, spec.info.library,
                                          critic[spec.info.critic]), name


@pytest.fixture(scope="module")
def envs():
    """A small real environment for each action mapping."""
    from rlbridge.training import make_env

    made = {}
    for mapping in MAPPINGS:
        config = config_from_mapping({
            "data": {"feed": "sample", "symbols": ["SPY", "AGG"], "start": "2019-01-01",
                     "end": "2019-03-31"},
            "features": {"window": 2, "transforms": ["log_return"]},
            "env": {"actions": mapping}}, pm=BUILTIN_PM)
        made[mapping] = make_env(config, BUILTIN_PM)
    return made


def test_what_the_notes_say_about_the_builtin_environment(envs):
    """dqn and qrdqn take no mapping; maskable_ppo fits `discrete` with the env's masks."""
    notes = " ".join(POLICY_PARTS["Algorithms and action mappings"].split())
    assert "`dqn` and `qrdqn` take a single choice out of n" in notes
    assert "`maskable_ppo` takes the `discrete` mapping's action space and the environment's " \
           "`action_masks()`" in notes
    for name in builtins_of("policies"):
        spec = algorithm(name)
        for mapping, env in envs.items():
            if spec.supports(env.action_space):
                spec.check_env(env)  # trains on the built-in environment
                continue
            with pytest.raises(ConfigError) as info:
                spec.check_env(env)
            assert f"(action mapping {mapping!r})" in str(info.value)
    assert {n for n in builtins_of("policies")
            if not any(algorithm(n).supports(env.action_space) for env in envs.values())} == {
        "dqn", "qrdqn"}
    assert algorithm("maskable_ppo").supports(envs["discrete"].action_space)


def test_keys_of_each_algorithm():
    """The documented keys are the ones rlbridge accepts; hyperparameters are constructor
    keywords, policy options are not."""
    import inspect

    from rlbridge.plugins.policies.spec import NETWORK_KEYS

    (table,) = tables_in(POLICY_PARTS["Hyperparameters and policy options by algorithm"])
    assert table[0] == ["algo", "hyperparameters", "policy options"]
    rows = {cells[0].strip("`"): cells[1:] for cells in table[2:]}
    assert sorted(rows) == sorted(builtins_of("policies"))
    for name, (hyper, policy) in rows.items():
        hyper, policy = hyper.split(", "), policy.split(", ")
        with pytest.raises(ConfigError) as info:
            algorithm(name, {"no_such_key": 1})
        valid = str(info.value).split("valid keys: ")[1].split(", ")
        assert sorted(valid) == sorted([*hyper, *policy, *NETWORK_KEYS]), name
        keywords = inspect.signature(algorithm(name).algorithm_class().__init__).parameters
        assert all(key in keywords for key in hyper), name
        assert not any(key in keywords for key in policy), name
    assert "lstm_hidden_size" in rows["recurrent_ppo"][1]


def test_keys_rlbridge_sets_itself():
    from rlbridge.plugins.policies.spec import OWNED

    (table,) = tables_in(POLICY_PARTS["Keys rlbridge sets itself"])
    keys = [cells[0].strip("`") for cells in table[2:]]
    assert sorted(keys) == sorted(OWNED)
    for key in keys:
        with pytest.raises(ConfigError) as info:
            algorithm("ppo", {key: 1})
        assert str(info.value) == f"[policy.{key}]: {key} cannot be set in [policy]: {OWNED[key]}"
    assert OWNED["seed"] == "the seed is [train] seed"


def test_policy_examples(tmp_path, envs):
    import torch

    from rlbridge.policy import create_algorithm

    (example,) = plugin_examples("Policy options")
    config = example_config(tmp_path, example)
    spec = create_algorithm(BUILTIN_PM.registries, config.policy, path=config.path)
    torch.set_num_threads(1)
    model = spec.build(envs["softmax"], seed=0)  # the network the example asks for
    assert type(model.policy.features_extractor).__name__ == "AttentionExtractor"
    assert model.policy.features_extractor.features_dim == 2 * 32 + 1
    assert dict(spec.hyperparameters) == {"learning_rate": 0.0003, "n_steps": 512,
                                          "batch_size": 256, "gamma": 0.99}
    assert dict(spec.policy_options) == {"ortho_init": True}
    assert (spec.network.extractor, spec.network.activation) == ("attention", "relu")
    assert dict(spec.network.net_arch) == {"pi": (64, 64), "vf": (128, 128)}
    assert (spec.network.attention.embed_dim, spec.network.attention.heads) == (32, 4)

    (message,) = [line for line in blocks("text", POLICY)[0].splitlines() if line]
    from rlbridge.config import PolicyConfig

    with pytest.raises(ConfigError) as info:
        create_algorithm(BUILTIN_PM.registries, PolicyConfig("ppo", {"n_step": 512}),
                         path="agent.toml")
    assert message.endswith(", ...")
    assert str(info.value).startswith(message[: -len("...")])
    with pytest.raises(ConfigError) as info:
        create_algorithm(BUILTIN_PM.registries, PolicyConfig("ppo", {"device": "cuda"}))
    assert info.value.key == "policy.device"
    # "an integer is fine where a number is expected, `n_steps = "512"` is an error"
    assert '`n_steps = "512"` is an error' in POLICY
    with pytest.raises(ConfigError) as info:
        create_algorithm(BUILTIN_PM.registries, PolicyConfig("ppo", {"n_steps": "512"}))
    assert str(info.value) == "[policy.n_steps]: expected an integer, got '512'"
    spec = create_algorithm(BUILTIN_PM.registries, PolicyConfig("ppo", {"learning_rate": 1}))
    assert spec.hyperparameters["learning_rate"] == 1.0

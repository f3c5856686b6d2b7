"""docs/config.md against the config dataclasses: every key, type and default, and its examples."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import rlbridge
from rlbridge.config import TABLES, config_from_mapping, load_config
from rlbridge.data import AlignOptions, load_bars, sessions
from rlbridge.errors import DataError, RLBridgeError, StoreError
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
    examples = blocks("toml", TEXT.replace(FEED_SECTION, ""))  # feed examples: further down
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
        SHARED: 1, "csv": 2, "sample": 1, "sql": 1}


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

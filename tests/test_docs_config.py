"""docs/config.md against the config dataclasses: every key, type and default, and its examples."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import rlbridge
from rlbridge.config import TABLES, config_from_mapping, load_config
from rlbridge.errors import RLBridgeError
from rlbridge.manager import make_plugin_manager
from rlbridge.options import REQUIRED, describe

DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"
TEXT = DOC.read_text()


def reference_tables(text):
    """Table name -> the rows (lists of cells) of the first markdown table under ``## [name]``."""
    tables = {}
    current = None
    for line in text.splitlines():
        heading = re.fullmatch(r"## \[(\w+)\]", line.strip())
        if heading:
            current = heading[1]
            tables[current] = []
        elif line.startswith("#"):
            current = None
        elif current is not None and line.startswith("|"):
            tables[current].append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current is not None and tables[current]:
            current = None  # the first table ended
    return tables


def section(text, name):
    start = text.index(f"## [{name}]\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


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


def test_every_table_has_a_reference_section_and_nothing_else_does():
    assert list(DOCUMENTED) == list(TABLES)


@pytest.mark.parametrize("name", list(TABLES))
def test_section_matches_the_dataclass(name):
    spec = TABLES[name]
    rows = DOCUMENTED[name]
    assert rows[0] == ["key", "type", "default", "meaning"]
    assert set(rows[1]) == {"---"}
    body = rows[2:]
    expected = [row for row in describe(spec.cls) if row[0] != spec.rest]
    assert [cells[0].strip("`") for cells in body] == [key for key, _, _ in expected], (
        f"docs/config.md [{name}]: the keys (in order) differ from {spec.cls.__name__}")
    for cells, (key, type_name, default) in zip(body, expected, strict=True):
        assert cells[1] == type_name, f"[{name}] {key}: type"
        assert parse_default(cells[2]) == plain(default), f"[{name}] {key}: default"
        assert len(cells) == 4 and len(cells[3]) > 20, f"[{name}] {key}: no meaning given"


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


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


def test_toml_examples_load(tmp_path, pm):
    examples = blocks("toml")
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

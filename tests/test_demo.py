"""`rlbridge demo` on the bundled sample: ingest, train, backtest; what it prints is right."""

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from rlbridge import sample_data
from rlbridge.cli import build_cli
from rlbridge.config import load_config
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.commands.demo import AGENT
from rlbridge.runs import get_model, list_runs
from rlbridge.store import open_store


def test_demo_ingests_trains_and_compares_against_baselines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLBRIDGE_ZIPLINE_ROOT", str(tmp_path / "zipline"))
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    pm = make_plugin_manager(entrypoints=False, warn=False)
    result = CliRunner().invoke(build_cli(pm), ["--db", db, "demo", "--timesteps", "1024"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Ingested 12 symbols, 44,948 bars (2005-01-03 .. 2020-12-31) from feed 'sample'" in out
    assert re.search(r"2,048 steps in [\d.]+ s; policy .*/models/.*/policy\.zip", out)  # one PPO rollout: 512 x 4 envs
    header = next(line for line in out.splitlines() if line.startswith("Metric"))
    assert header.split()[1:] == ["PPO", "agent", "Buy", "&", "hold", "SPY", "Equal", "weight"]

    # buy-and-hold SPY by hand: (fractional) shares sized on the first close, filled at the
    # next open with the 0.1 % commission
    bars = sample_data.load(["SPY"], start="2019-01-01", end="2020-09-30")
    shares = 100_000 / bars.close[0, 0]
    price = bars.open[1, 0]
    final = 100_000 - shares * price * 1.001 + shares * bars.close[-1, 0]
    line = next(line for line in out.splitlines() if line.startswith("Final value"))
    assert line.split()[3] == f"{final:,.2f}"

    # the agent in three engines, whole shares: the same fills, the same value
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.strip().startswith(("native ", "backtrader ", "zipline "))}
    finals = {engine: line.split()[3] for engine, line in rows.items()}
    assert list(finals) == ["native", "backtrader", "zipline"]
    assert len(set(finals.values())) == 1, finals
    assert "fills identical, equity within" in rows["backtrader"]
    assert "fills identical, equity within" in rows["zipline"]
    report = re.search(r"report of the agent: (\S+report\.html)", out)
    assert report and Path(report[1]).read_text().count("data:image/png;base64,") == 5

    store = open_store(db)
    runs = list_runs(store)
    assert sorted(r.kind for r in runs) == ["backtest"] * 6 + ["train"]
    assert all(r.status == "completed" for r in runs)
    train_run = next(r for r in runs if r.kind == "train")
    model = get_model(store, 1)
    assert model.run_id == train_run.id and model.algo == "ppo"
    assert np.isfinite(float(line.split()[2].replace(",", "")))


def test_the_example_config_is_the_demo_agent():
    example = load_config(Path(__file__).resolve().parent.parent / "examples" / "etf_ppo.toml")
    expected = {k: v for k, v in AGENT.items() if k not in ("strategy",)}
    got = {k: v for k, v in example.to_dict().items() if k in expected}
    for table, values in expected.items():
        for key, value in values.items():
            assert got[table][key] == value, f"[{table}] {key}"

"""One config file trades on ``sim`` and on ``alpaca`` (the emulator): the same decisions, the
same fills at the next open, the same positions, with nothing but the broker's name changed."""

import json

import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.config import load_config
from rlbridge.live import Journal, deployment_id
from rlbridge.store import open_store

SYMBOLS = ["SPY", "AGG", "XLK"]
NY = "America/New_York"


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2020-06-01", end="2020-10-01", adjust=False)


def agent_file(path, emulator):
    """An agent trading on Alpaca: bars from Alpaca's data API, orders to its trading API."""
    path.write_text(f'''
[data]
feed = "alpaca"
data_url = "{emulator.data_url}"
symbols = {json.dumps(SYMBOLS)}
start = 2020-06-01

[costs]
model = "zero"

[strategy]
name = "equal_weight"
rebalance = 1
exposure = 0.9

[broker]
name = "alpaca"
trading_url = "{emulator.trading_url}"
timeout = 1.0
retry_wait = 0.05
stream = false
''')
    return path


def the_session_opens(emulator, bars, day, then):
    """The bar of ``day`` arrives (Alpaca fills open orders at its open); the clock moves on."""
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, bars.between(day, day))
    emulator.clock.set(pd.Timestamp(then, tz=NY).to_pydatetime())


def cycle(rlbridge_cli, path, *broker):
    out = rlbridge_cli("live", path, "--once", "--json", *broker)
    assert out.exit_code == 0, out.output
    (report,) = json.loads(out.stdout)["cycles"]
    return report


def decided(report):
    return report["bar"], sorted((o["symbol"], o["quantity"]) for o in report["orders"])


def filled(store, config, broker):
    journal = Journal(store, "-", deployment_id(config, broker))
    return sorted((e.bar, e.symbol, e.filled, round(e.cost / e.filled, 4))
                  for e in journal.entries() if e.filled), journal.positions()


def test_the_same_file_reaches_the_same_positions_on_sim_and_on_alpaca(
        alpaca_emulator, bars, tmp_path, rlbridge_cli, rlbridge_db_url, monkeypatch):
    emulator = alpaca_emulator
    monkeypatch.setenv("APCA_API_KEY_ID", emulator.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", emulator.secret_key)
    emulator.auto_fill_price = "next_open"
    for symbol in SYMBOLS:
        emulator.add_bars(symbol, bars.between(None, "2020-09-29"))
    emulator.clock.set(pd.Timestamp("2020-09-30 08:00", tz=NY).to_pydatetime())
    path = agent_file(tmp_path / "agent.toml", emulator)

    # before the 09-30 open: both decide on the 09-29 close, from an empty 100,000 account
    on_sim = cycle(rlbridge_cli, path, "--broker", "sim")
    on_alpaca = cycle(rlbridge_cli, path)
    assert decided(on_sim) == decided(on_alpaca)
    assert on_alpaca["bar"] == "2020-09-29" and len(on_alpaca["orders"]) == 3
    assert on_sim["sent"] == on_alpaca["sent"] == 3
    assert [o["time_in_force"] for o in emulator.orders] == ["opg"] * 3

    # the 09-30 session opens: Alpaca fills at its open; the sim fills when it sees that bar
    the_session_opens(emulator, bars, "2020-09-30", "2020-10-01 08:00")
    on_sim = cycle(rlbridge_cli, path, "--broker", "sim")
    on_alpaca = cycle(rlbridge_cli, path)
    assert on_sim["fills"] == on_alpaca["fills"] == 3
    assert decided(on_sim) == decided(on_alpaca)  # the drift rebalanced alike
    assert on_alpaca["bar"] == "2020-09-30" and on_alpaca["orders"]

    config = load_config(path)
    store = open_store(rlbridge_db_url)
    sim_fills, sim_positions = filled(store, config, "sim")
    alpaca_fills, alpaca_positions = filled(store, config, "alpaca")
    opens = bars.between("2020-09-30", "2020-09-30").open[0]
    assert sim_fills == alpaca_fills
    assert [price for *_, price in sim_fills] == [round(opens[SYMBOLS.index(s)], 4)
                                                  for _, s, _, _ in sim_fills]
    assert sim_positions == alpaca_positions == emulator.positions
    assert sorted(sim_positions) == sorted(SYMBOLS)

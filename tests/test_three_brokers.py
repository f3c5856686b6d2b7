"""One config file trades on ``sim``, ``alpaca`` and ``ib`` (the two emulators) with nothing but
``[broker] name`` changed: the same decision from the same bars, the same fills at the next
open, the same positions.

The file keeps each broker's endpoints in ``[broker]``, beside ``name``; the broker it names
takes the options it declares.  The bars come from CSV files the test extends day by day,
and the same bars are what both emulators fill at (``next_open``).
"""

import json

import pandas as pd
import pytest

from rlbridge import sample_data
from rlbridge.config import load_config
from rlbridge.live import Journal, deployment_id
from rlbridge.store import open_store

SYMBOLS = ["SPY", "AGG", "XLK"]
BROKERS = ["sim", "alpaca", "ib"]
NY = "America/New_York"


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2020-06-01", end="2020-10-01", adjust=False)


def agent_file(path, folder, alpaca, tws, broker):
    """The agent, trading on ``broker``; every broker's endpoints sit in [broker]."""
    path.write_text(f'''
[data]
feed = "csv"
path = "{folder}"
symbols = {json.dumps(SYMBOLS)}
start = 2020-06-01

[costs]
model = "zero"

[strategy]
name = "equal_weight"
rebalance = 1
exposure = 0.9

[broker]
name = "{broker}"
cash = 100_000                              # sim
trading_url = "{alpaca.trading_url}"        # alpaca (keys from APCA_API_KEY_ID/SECRET_KEY)
retry_wait = 0.05
stream = false
host = "{tws.host}"                         # ib
port = {tws.port}
client_id = 3
timeout = 2.0                               # alpaca and ib
''')
    return path


def write_bars(folder, bars, last_day):
    """The CSV files hold the bars up to ``last_day``."""
    shown = bars.between(None, last_day)
    for i, symbol in enumerate(SYMBOLS):
        frame = pd.DataFrame(shown.values[:, i], columns=["open", "high", "low", "close",
                                                          "volume"],
                             index=pd.Index(shown.index.strftime("%Y-%m-%d"), name="date"))
        frame.to_csv(folder / f"{symbol}.csv")


def the_session_opens(folder, bars, day, alpaca, tws, then):
    """The day's bar is recorded and reaches both exchanges (which fill at its open)."""
    write_bars(folder, bars, day)
    for symbol in SYMBOLS:
        alpaca.add_bars(symbol, bars.between(day, day))
        tws.add_bars(symbol, bars.between(day, day))
    for clock in (alpaca.clock, tws.clock):
        clock.set(pd.Timestamp(then, tz=NY).to_pydatetime())


def run_once(rlbridge_cli, path):
    out = rlbridge_cli("live", path, "--once", "--json")
    assert out.exit_code == 0, out.output
    (report,) = json.loads(out.stdout)["cycles"]
    return report


def decided(report):
    return report["bar"], sorted((o["symbol"], o["quantity"]) for o in report["orders"])


def test_one_file_reaches_the_same_positions_on_sim_alpaca_and_ib(
        alpaca_emulator, tws_emulator, bars, tmp_path, rlbridge_cli, rlbridge_db_url,
        monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", alpaca_emulator.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", alpaca_emulator.secret_key)
    alpaca_emulator.auto_fill_price = "next_open"
    tws_emulator.auto_fill = "next_open"
    folder = tmp_path / "bars"
    folder.mkdir()
    write_bars(folder, bars, "2020-09-29")
    for clock in (alpaca_emulator.clock, tws_emulator.clock):
        clock.set(pd.Timestamp("2020-09-30 08:00", tz=NY).to_pydatetime())
    path = tmp_path / "agent.toml"

    def on(broker):
        return run_once(rlbridge_cli, agent_file(path, folder, alpaca_emulator, tws_emulator,
                                                 broker))

    # before the 09-30 open: each decides on the 09-29 close, from an empty 100,000 account
    first = {broker: on(broker) for broker in BROKERS}
    assert len({json.dumps(decided(r)) for r in first.values()}) == 1
    bar, orders = decided(first["ib"])
    assert bar == "2020-09-29" and len(orders) == 3 and all(q > 0 for _, q in orders)
    assert [r["sent"] for r in first.values()] == [3, 3, 3]
    assert [o["time_in_force"] for o in alpaca_emulator.orders] == ["opg"] * 3
    assert [o["tif"] for o in tws_emulator.orders] == ["OPG"] * 3

    # the 09-30 session opens: the exchanges fill at its open; the sim when it sees that bar
    the_session_opens(folder, bars, "2020-09-30", alpaca_emulator, tws_emulator,
                      "2020-10-01 08:00")
    second = {broker: on(broker) for broker in BROKERS}
    assert [r["fills"] for r in second.values()] == [3, 3, 3]
    assert {r["bar"] for r in second.values()} == {"2020-09-30"}

    config = load_config(path)
    store = open_store(rlbridge_db_url)
    opens = dict(zip(SYMBOLS, bars.between("2020-09-30", "2020-09-30").open[0], strict=True))
    targets = dict(orders)
    for broker in BROKERS:
        journal = Journal(store, "-", deployment_id(config, broker))
        fills = sorted((e.symbol, e.filled, e.cost / e.filled)
                       for e in journal.entries() if e.filled)
        # at the 09-30 open (Alpaca quotes prices to the cent)
        assert fills == [(s, targets[s], pytest.approx(opens[s], abs=0.005))
                         for s in sorted(SYMBOLS)], broker
        assert journal.positions() == targets, broker
    assert alpaca_emulator.positions == tws_emulator.positions == targets
    assert set(tws_emulator.submit_counts.values()) == {1}

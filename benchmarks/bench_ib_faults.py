"""Fault figures of the ``ib`` broker (issue 7): no order twice, no fill lost, positions that
reconcile, whatever the connection to TWS does.

Two runs against the TWS emulator of ``rlbridge.testing`` on 127.0.0.1, with the real
ib_insync client:

1. **Faults**: the live runner (the real ``LiveRunner`` and ``ib`` broker, equal weight over the
   12 bundled ETFs, rebalanced daily with market-on-open orders that fill at the next open) for
   at least ``--orders`` orders, while seeded random faults hit the orders: the connection
   dropped before TWS reads a placeOrder, after TWS accepted it, after it answered; 201
   rejections; partial fills whose rest fills later, is cancelled (202) or stays open; answers
   slower than the broker's timeout; fills, statuses and commission reports lost on the wire;
   and TWS losing IB (1100) before some cycles, restored (1102) after the failed cycle.
   Printed: orders, faults fired, duplicates at the broker, lost fills, the cycles whose
   journal positions matched the broker's, the sends whose answer was lost and how each was
   resolved (found by orderRef, or absent and sent again).
2. **SIGKILL**: ``rlbridge live CONFIG --once`` as a subprocess, killed with SIGKILL at random
   points of its rebalance (after it connected, or after its first order reached TWS), then
   restarted, ``--kills`` times over successive sessions.  Printed: kills, restarts,
   duplicates at the broker, lost fills.

Run: .venv/bin/python benchmarks/bench_ib_faults.py [--orders 1000] [--kills 20] [--seed 7]
(about two minutes).  ib_insync's 45 requests/s throttle (IB's own pacing) is lifted here only.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.emulators.tws import TwsEmulator
from rlbridge.errors import TransientBrokerError
from rlbridge.live import Journal, LiveRunner, deployment_id
from rlbridge.live.clock import bar_decision
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.brokers.ib import IBBroker, IBConfig
from rlbridge.store import open_store

PM = make_plugin_manager(entrypoints=False, warn=False)
SYMBOLS = ["SPY", "AGG", "XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]
NY = "America/New_York"


def pre_open(day: pd.Timestamp) -> Any:
    """08:00 New York on ``day``: when daily orders go in."""
    return pd.Timestamp(f"{day.date()} 08:00", tz=NY).to_pydatetime()


def agent(port: int, feed: dict[str, Any] | None = None, timeout: float = 0.5) -> Any:
    return config_from_mapping({
        "data": feed or {"feed": "sample", "symbols": SYMBOLS, "start": "2019-01-02",
                         "adjust": False},
        "costs": {"model": "zero"},
        "strategy": {"name": "equal_weight", "rebalance": 1, "exposure": 0.95},
        "broker": {"name": "ib", "port": port, "timeout": timeout}}, pm=PM)


class Counted(IBBroker):
    """The ib broker, counting the sends whose answer was lost (measurement only)."""

    def __init__(self, config: IBConfig) -> None:
        super().__init__(config)
        self.attempts: Counter[str] = Counter()
        self.lost: set[str] = set()

    def submit(self, order: Any) -> Any:
        self.attempts[str(order.client_order_id)] += 1
        try:
            return super().submit(order)
        except TransientBrokerError:
            self.lost.add(str(order.client_order_id))
            raise


def add_faults(emulator: TwsEmulator, seed: int) -> None:
    plan = emulator.faults
    plan.seed(seed)
    for where in ("before", "after_accept", "after"):
        plan.add("placeOrder", disconnect=where, probability=0.025, times=None)
    plan.add("placeOrder", reject="insufficient buying power", probability=0.03, times=None)
    for rest in ("fill", "cancel", "open"):
        plan.add("placeOrder", partial=0.4, rest=rest, probability=0.02, times=None)
    plan.add("placeOrder", delay=0.6, probability=0.01, times=None)  # past the 0.5 s timeout


#: messages lost on the wire when the session opens (one drop at most per opening: a
#: per-message chance would also hit the reconnection's own replay of every execution)
WIRE = ("execDetails", "orderStatus", "commissionReport")


def broker_figures(emulator: TwsEmulator, store: Any, deployment: str) -> dict[str, int]:
    """Duplicates at the broker and fills the journal does not hold exactly."""
    counts = emulator.submit_counts
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    duplicates += sum(len(emulator.orders_by_ref(r)) - 1 for r in counts
                      if len(emulator.orders_by_ref(r)) > 1)
    executed: dict[str, float] = {}
    for e in emulator.executions:
        sign = 1.0 if e["side"] == "BOT" else -1.0
        executed[e["order_ref"]] = executed.get(e["order_ref"], 0.0) + sign * e["shares"]
    journal = {e.client_order_id: e for e in Journal(store, "-", deployment).entries()}
    lost = sum(1 for ref, qty in executed.items()
               if ref not in journal or abs(journal[ref].filled - qty) > 1e-9)
    lost += sum(1 for ref, e in journal.items() if e.filled and ref not in executed)
    return {"placed": len(counts), "duplicates": duplicates, "lost fills": lost,
            "executions": len(emulator.executions)}


# ---------------------------------------------------------------------- 1. faults
def fault_run(target: int, seed: int) -> None:
    bars = sample_data.load(SYMBOLS, start="2019-01-02", end="2020-12-31", adjust=False)
    rng = random.Random(seed)
    logging.getLogger("ib_insync").setLevel(logging.CRITICAL)  # the drops are on purpose
    with TwsEmulator(auto_fill="next_open") as emulator, tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'faults.db'}")
        config = agent(emulator.port)
        broker = Counted(IBConfig(port=emulator.port, timeout=0.5))
        now = {"t": pre_open(bars.index[1])}
        runner = LiveRunner(config, broker, "ib", store, PM, sleep=lambda s: None, retries=4,
                            now=lambda: pd.Timestamp(now["t"]))
        for symbol in SYMBOLS:
            emulator.add_bars(symbol, bars.between(None, bars.index[0]))
        runner.open(bars)
        broker.connection.ib.client.MaxRequests = 0  # IB's pacing, lifted for the benchmark
        add_faults(emulator, seed)
        cycles = matched = failed = outages = 0
        started = time.perf_counter()
        t = 0
        while len(runner.journal.entries()) < target and t < len(bars) - 2:
            now["t"] = pre_open(bars.index[t + 1])
            emulator.clock.set(now["t"])
            if rng.random() < 0.03:
                emulator.connectivity_lost()
                outages += 1
            for _ in range(6):
                try:
                    runner.cycle(bar_decision(bars, t))
                    break
                except TransientBrokerError as exc:
                    failed += 1
                    last = exc
                    emulator.connectivity_restored()
            else:
                raise RuntimeError(f"the cycle of {bars.index[t].date()} never went through: "
                                   f"{last}")
            cycles += 1
            matched += not runner.positions_match()
            t += 1
            if rng.random() < 0.15:
                emulator.faults.add(rng.choice(WIRE), disconnect="before", skip=rng.randrange(6))
            for symbol in SYMBOLS:  # the session opens: OPG orders fill at its open
                emulator.add_bars(symbol, bars.between(bars.index[t], bars.index[t]))
        emulator.faults.clear()
        runner.cycle(bar_decision(bars, t))  # the last fills reach the journal
        matched_last = not runner.positions_match()
        elapsed = time.perf_counter() - started
        figures = broker_figures(emulator, store, runner.deployment)
        entries = runner.journal.entries()
        states = Counter(e.status for e in entries)
        fired = Counter(f"{m} {f.disconnect or ''}{'reject' if f.reject else ''}"
                        f"{'partial/' + f.rest if f.partial else ''}"
                        f"{'delay' if f.delay else ''}".strip()
                        for m, _, f in emulator.faults.history)
        found = sum(1 for r in broker.lost if broker.attempts[r] == 1)
        runner.close()
    print(f"1. faults: {len(entries)} orders in {cycles} cycles ({elapsed:.1f} s), "
          f"seed {seed}")
    print(f"   faults fired: {sum(fired.values())}: " +
          ", ".join(f"{k} {v}" for k, v in sorted(fired.items())))
    print(f"   1100 outages: {outages} (cycles refused during them: {failed}, each run again "
          "after 1102)")
    print(f"   journal states: {dict(sorted(states.items()))}")
    print(f"   orders at the broker: {figures['placed']}, executions {figures['executions']}")
    print(f"   duplicates at the broker: {figures['duplicates']}")
    print(f"   lost fills (journal != executions, per order): {figures['lost fills']}")
    print(f"   cycles whose journal positions matched the broker's: {matched}/{cycles}, "
          f"after the last: {'yes' if matched_last else 'NO'}")
    print(f"   sends whose answer was lost: {len(broker.lost)}: found by orderRef {found}, "
          f"absent and sent again {len(broker.lost) - found}")


# ---------------------------------------------------------------------- 2. SIGKILL
def kill_run(kills: int, seed: int) -> None:
    bars = sample_data.load(SYMBOLS, start="2019-01-02", end="2019-12-31", adjust=False)
    rng = random.Random(seed)
    exe = shutil.which("rlbridge", path=str(Path(sys.executable).parent)) or "rlbridge"
    with TwsEmulator(auto_fill="next_open") as emulator, tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'kill.db'}"
        feed = {"feed": "ib", "port": emulator.port, "symbols": SYMBOLS, "start": "2019-01-02"}
        path = Path(tmp) / "agent.toml"
        path.write_text(f'''[data]
feed = "ib"
port = {emulator.port}
symbols = {SYMBOLS!r}
start = 2019-01-02

[costs]
model = "zero"

[strategy]
name = "equal_weight"
rebalance = 1
exposure = 0.95

[broker]
name = "ib"
port = {emulator.port}
timeout = 5.0
'''.replace("'", '"'))
        t = 40
        for symbol in SYMBOLS:
            emulator.add_bars(symbol, bars.between(None, bars.index[t]))
        emulator.faults.add("placeOrder", delay=0.04, times=None)  # a rebalance takes a while
        env = {**os.environ, "RLBRIDGE_DB": db}
        deployment = deployment_id(agent(emulator.port, feed), "ib")
        where: Counter[str] = Counter()
        done = restarts = clean = 0
        started = time.perf_counter()
        while done < kills:
            emulator.clock.set(pre_open(bars.index[t + 1]))
            for _ in range(rng.choice((1, 1, 2))):
                if done >= kills:
                    break
                before = (emulator.connections_total, sum(emulator.submit_counts.values()))
                child = subprocess.Popen([exe, "live", str(path), "--once"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    if rng.random() < 0.5:  # after it connected: reading bars, deciding
                        emulator.wait_until(lambda e, n=before[0]: e.connections_total > n, 30)
                        time.sleep(rng.uniform(0.0, 0.3))
                    else:  # after its first order reached TWS: mid-send
                        emulator.wait_until(
                            lambda e, n=before[1]: sum(e.submit_counts.values()) > n, 30)
                        time.sleep(rng.uniform(0.0, 0.4))
                except Exception:  # noqa: BLE001  (the child finished first: nothing to kill)
                    pass
                if child.poll() is None:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    done += 1
                    where[_killed_at(db, deployment, bars.index[t], emulator)] += 1
                child.wait()
                restarts += 1
            finished = subprocess.run([exe, "live", str(path), "--once"], env=env,
                                      capture_output=True, text=True, timeout=120)
            if finished.returncode != 0:
                raise RuntimeError(f"the restarted run failed: {finished.stderr}")
            clean += 1
            t += 1
            for symbol in SYMBOLS:
                emulator.add_bars(symbol, bars.between(bars.index[t], bars.index[t]))
        emulator.clock.set(pre_open(bars.index[t + 1]))
        subprocess.run([exe, "live", str(path), "--once"], env=env, check=True,
                       capture_output=True, timeout=120)  # the last fills reach the journal
        elapsed = time.perf_counter() - started
        store = open_store(db)
        figures = broker_figures(emulator, store, deployment)
        positions = Journal(store, "-", deployment).positions()
        reconciled = positions == emulator.positions
    print(f"2. SIGKILL: {done} kills over {clean} sessions, {restarts + clean + 1} starts of "
          f"`rlbridge live --once` ({elapsed:.1f} s)")
    print("   killed: " + ", ".join(f"{k} {v}" for k, v in sorted(where.items())))
    print(f"   orders at the broker: {figures['placed']}, executions {figures['executions']}")
    print(f"   duplicates at the broker: {figures['duplicates']}")
    print(f"   lost fills: {figures['lost fills']}; journal positions == broker positions: "
          f"{'yes' if reconciled else 'NO'}")


def _killed_at(db: str, deployment: str, bar: pd.Timestamp, emulator: TwsEmulator) -> str:
    """Where a kill landed: before the bar's orders were journaled, between journaling and
    the last send, or after every order of the bar reached TWS."""
    store = open_store(db)
    try:
        entries = Journal(store, "-", deployment).entries(bar=bar)
    finally:
        store.close()
    if not entries:
        return "before journaling"
    placed = emulator.submit_counts
    if any(e.client_order_id not in placed for e in entries):
        return "mid-send"
    return "after the last send"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    fault_run(args.orders, args.seed)
    kill_run(args.kills, args.seed)


if __name__ == "__main__":
    main()

"""Fault figures (issue 6): no order sent twice, no fill lost, positions that always reconcile.

Part 1, random faults through the real live runner: rlbridge's ``alpaca`` broker on alpaca-py
against the Alpaca emulator on 127.0.0.1, a strategy that re-weights 10 symbols every day (an
order per symbol per day), several seeded runs of 30 sessions.  The emulator injects, at
random: 429, 500 and 503 answers, a 504 or a 500 after the order was accepted, held answers
(client timeouts, before and after the order is accepted), rejections, dropped trade-update
streams; an exchange thread fills each order a few milliseconds after it is accepted, some in
two parts, some with the rest canceled.  A cycle that gives up (a broker error it cannot
resolve) is restarted as a new process would be: a new runner on the same journal.  After each
session the journal is reconciled and its positions compared with the broker's.

Part 2, SIGKILL: ``rlbridge live CONFIG --once`` in a subprocess, killed with SIGKILL at random
points of the rebalance (while an order's answer is held, before or after the broker accepted
it, or at a random moment after the process reached the broker), then started again at once.

Printed: orders sent, duplicates at the broker (two orders for one symbol and session: must be
0), lost fills (journal against broker, per order: must be 0), reconciliations that matched.

Run: .venv/bin/python benchmarks/bench_live_faults.py [--quick]   (about 4 minutes; --quick: 1)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import heapq
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlbridge import Bars, Strategy
from rlbridge.errors import BrokerError

N_SYMBOLS = 10
SYMBOLS = [f"S{i:02d}" for i in range(N_SYMBOLS)]
NY = "America/New_York"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Churn(Strategy):
    """New random target weights (90 % invested) every bar, drawn from the bar's date."""

    def on_bar(self, ctx: Any) -> None:
        seed = int(pd.Timestamp(ctx.now).strftime("%Y%m%d"))
        weights = np.random.default_rng(seed).dirichlet(np.ones(len(ctx.symbols))) * 0.9
        ctx.order_target_weights(dict(zip(ctx.symbols, weights.tolist(), strict=True)))


def synthetic(days: int, seed: int) -> Bars:
    """``days`` XNYS sessions of random-walk bars for :data:`SYMBOLS`, from 2020-01-02."""
    import exchange_calendars as xcals

    sessions = xcals.get_calendar("XNYS").sessions_in_range("2020-01-02", "2026-12-31")[:days]
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (days, N_SYMBOLS)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, (days, N_SYMBOLS)))
    volume = rng.integers(100_000, 5_000_000, (days, N_SYMBOLS)).astype(float)
    values = np.stack([open_, np.maximum(open_, close) * 1.005,
                       np.minimum(open_, close) * 0.995, close, volume], axis=2)
    return Bars(pd.DatetimeIndex(sessions).tz_localize(None), tuple(SYMBOLS), values)


def pre_open(day: pd.Timestamp) -> dt.datetime:
    """08:00 New York on the session ``day``: daily decisions go in before the open."""
    return (pd.Timestamp(day).tz_localize(NY) + pd.Timedelta(hours=8)).to_pydatetime()


# ---------------------------------------------------------------------- checks
def duplicates(emulator: Any) -> int:
    """Orders beyond the first for one symbol and session (by the broker's own records)."""
    seen = collections.Counter(
        (o["symbol"], pd.Timestamp(o["submitted_at"]).tz_convert(NY).date())
        for o in emulator.orders)
    return sum(n - 1 for n in seen.values() if n > 1)


def lost_fills(journal: Any, emulator: Any) -> tuple[int, int]:
    """(orders whose journaled fills differ from the broker's, executions at the broker)."""
    theirs: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for fill in emulator.fills:
        sign = 1.0 if fill["side"] == "buy" else -1.0
        theirs[fill["client_order_id"]][0] += sign * fill["qty"]
        theirs[fill["client_order_id"]][1] += sign * fill["qty"] * fill["price"]
    mine = {e.client_order_id: (e.filled, e.cost) for e in journal.entries()}
    wrong = 0
    for cid in set(mine) | set(theirs):
        qty, cost = mine.get(cid, (0.0, 0.0))
        want_qty, want_cost = theirs.get(cid, (0.0, 0.0))
        if abs(qty - want_qty) > 1e-9 or abs(cost - want_cost) > 1e-4 * max(1.0, abs(qty)):
            wrong += 1
    return wrong, len(emulator.fills)


def fault_plan(emulator: Any, seed: int) -> None:
    """Random faults on every route the runner uses (seeded: a run replays exactly)."""
    faults = emulator.faults
    faults.seed(seed)
    post = "POST /v2/orders"
    for kwargs in (dict(status=504, after_accept=True, probability=0.03),
                   dict(status=429, retry_after=0, probability=0.03),
                   dict(status=500, probability=0.03),
                   dict(status=500, after_accept=True, probability=0.03),
                   dict(hold=0.5, after_accept=True, probability=0.02),
                   dict(hold=0.5, probability=0.02),
                   dict(reject="insufficient buying power", probability=0.03)):
        faults.add(post, times=None, **kwargs)
    lookup = "GET /v2/orders:by_client_order_id"
    faults.add(lookup, status=500, times=None, probability=0.03)
    faults.add(lookup, status=429, retry_after=0, times=None, probability=0.02)
    faults.add(lookup, hold=0.5, times=None, probability=0.01)
    faults.add("GET /v2/positions", status=500, times=None, probability=0.05)
    faults.add("GET /v2/account", status=503, times=None, probability=0.05)
    faults.add("STREAM trade_updates", drop=True, times=None, probability=0.05)


class Exchange(threading.Thread):
    """Fills each order a few milliseconds after the broker accepts it, at the session's open:
    80 % at once, 10 % in two parts, 10 % half filled and the rest canceled."""

    def __init__(self, emulator: Any, bars: Bars, seed: int) -> None:
        super().__init__(daemon=True, name="exchange")
        self.emulator, self.bars = emulator, bars
        self.rng = np.random.default_rng(seed)
        self.session: pd.Timestamp | None = None
        self._cursor, self._due, self._busy = 0, [], threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            events = self.emulator.trade_events
            for event in events[self._cursor:]:
                if event["event"] == "new":
                    self._plan(event["order"])
            self._cursor = len(events)
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, action = heapq.heappop(self._due)
                action()
            time.sleep(0.002)

    def _plan(self, order: dict[str, Any]) -> None:
        from rlbridge.emulators.alpaca import EmulatorError

        cid, qty = order["client_order_id"], float(order["qty"])
        price = float(self.bars.open[self.bars.index.get_loc(self.session),
                                     SYMBOLS.index(order["symbol"])])

        def fill(part: float | None) -> Any:
            def act() -> None:
                with contextlib.suppress(EmulatorError):  # rejected or canceled meanwhile
                    self.emulator.fill(cid, part, price=price)
            return act

        def cancel() -> None:
            with contextlib.suppress(EmulatorError):
                self.emulator.cancel(cid)

        kind = self.rng.choice(3, p=[0.8, 0.1, 0.1])
        half = float(qty // 2)
        delay = float(self.rng.uniform(0.001, 0.05))
        now = time.monotonic()
        if kind == 0 or half < 1:
            steps = [(delay, fill(None))]
        else:
            steps = [(delay, fill(half)), (delay + 0.02, fill(None) if kind == 1 else cancel)]
        for after, action in steps:
            heapq.heappush(self._due, (now + after, id(action), action))

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every accepted order has been dealt with."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._cursor == len(self.emulator.trade_events) and not self._due:
                return
            time.sleep(0.005)
        raise TimeoutError("the exchange thread did not catch up")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# ---------------------------------------------------------------------- part 1
def random_faults(seed: int, days: int, folder: str) -> dict[str, Any]:
    """One run of ``days`` sessions with random faults; its figures."""
    from rlbridge.config import config_from_mapping
    from rlbridge.emulators.alpaca import AlpacaEmulator
    from rlbridge.live import LiveRunner
    from rlbridge.live.clock import bar_decision
    from rlbridge.manager import make_plugin_manager
    from rlbridge.plugins.brokers.alpaca import AlpacaBroker, AlpacaConfig
    from rlbridge.store import open_store

    pm = make_plugin_manager(entrypoints=False, warn=False)
    start = 20
    bars = synthetic(start + days + 1, seed)
    out: dict[str, Any] = collections.Counter()
    with AlpacaEmulator(cash=1_000_000) as emulator:
        os.environ["APCA_API_KEY_ID"] = emulator.key_id
        os.environ["APCA_API_SECRET_KEY"] = emulator.secret_key
        options = {"trading_url": emulator.trading_url, "trade_stream_url":
                   emulator.trade_stream_url, "timeout": 0.2, "retry_wait": 0.02}
        config = config_from_mapping({
            "data": {"feed": "sample", "symbols": SYMBOLS},
            "strategy": {"name": "bench_live_faults:Churn"},
            "broker": {"name": "alpaca", **options}}, pm=pm)
        store = open_store(f"sqlite:///{folder}/faults-{seed}.db")
        exchange = Exchange(emulator, bars, seed)
        exchange.start()

        def new_runner(panel: Bars) -> Any:
            runner = LiveRunner(config, AlpacaBroker(AlpacaConfig(**options)), "alpaca", store,
                                pm, follow_seconds=2.0, poll_seconds=0.25,
                                backoff_seconds=0.02)
            runner.open(panel)
            return runner

        fault_plan(emulator, seed)
        runner = new_runner(Bars(bars.index[:start + 1], bars.symbols, bars.values[:start + 1]))
        try:
            for t in range(start, start + days):
                panel = Bars(bars.index[:t + 1], bars.symbols, bars.values[:t + 1])
                exchange.session = bars.index[t + 1]
                emulator.clock.set(pre_open(bars.index[t + 1]))
                runner.update_bars(panel)
                for _ in range(10):
                    try:
                        report = runner.cycle(bar_decision(panel, t))
                        break
                    except BrokerError as exc:  # gave up: restarted, as a new process would
                        out["restarts"] += 1
                        runner.close(exc)
                        runner = new_runner(panel)
                else:
                    raise RuntimeError("a cycle failed 10 times in a row")
                out["cycles"] += 1
                out["intents"] += len(report.orders)
                exchange.drain()
                emulator.wait_idle(timeout=10)
                out["reconciled"] += reconciled(runner)
        finally:
            runner.close()
            exchange.stop()
        emulator.faults.clear()
        out["orders"] = len(emulator.orders)
        out["posts"] = sum(1 for r in emulator.requests if r.method == "POST")
        out["duplicates"] = duplicates(emulator)
        out["lost"], out["executions"] = lost_fills(runner.journal, emulator)
        out["faults"] = collections.Counter(_kind(f) for _, _, f in emulator.faults.history)
    return out


def reconciled(runner: Any) -> bool:
    """Reconcile the journal and compare positions (retrying reads the faults break)."""
    for _ in range(10):
        try:
            runner.reconcile()
            return not runner.positions_match()
        except BrokerError:
            continue
    raise RuntimeError("could not reconcile in 10 tries")


def _kind(fault: Any) -> str:
    if fault.route.startswith("STREAM"):
        return "stream dropped"
    what = ("timeout" if fault.hold else str(fault.status)) if fault.reject is None \
        else "rejection"
    where = {"POST /v2/orders": "submit", "GET /v2/orders:by_client_order_id": "lookup"}.get(
        fault.route, fault.route.split("/")[-1])
    return f"{what}{' after accept' if fault.after_accept else ''} ({where})"


# ---------------------------------------------------------------------- part 2
def sigkill(rounds: int, folder: str, seed: int = 11) -> dict[str, Any]:
    """``rlbridge live --once`` killed with SIGKILL at random points, then restarted."""
    from rlbridge.config import load_config
    from rlbridge.emulators.alpaca import AlpacaEmulator
    from rlbridge.live import Journal, deployment_id
    from rlbridge.store import open_store

    rng = np.random.default_rng(seed)
    start = 30
    bars = synthetic(start + rounds + 2, seed)
    out: dict[str, Any] = collections.Counter()
    db = f"sqlite:///{folder}/sigkill.db"
    with AlpacaEmulator(cash=1_000_000, auto_fill_price="next_open") as emulator:
        for symbol in SYMBOLS:
            emulator.add_bars(symbol, bars)
        path = Path(folder) / "agent.toml"
        path.write_text(f"""
[data]
feed = "alpaca"
data_url = "{emulator.data_url}"
symbols = {SYMBOLS!r}
start = {bars.index[0].date()}

[strategy]
name = "bench_live_faults:Churn"

[broker]
name = "alpaca"
trading_url = "{emulator.trading_url}"
timeout = 0.5
retry_wait = 0.05
stream = false
""".replace("'", '"'))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLBRIDGE_")}
        env.update(APCA_API_KEY_ID=emulator.key_id, APCA_API_SECRET_KEY=emulator.secret_key,
                   PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]))
        command = [str(Path(sys.executable).with_name("rlbridge")), "--db", db, "live",
                   str(path), "--once"]

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)

        for k in range(rounds):
            emulator.clock.set(pre_open(bars.index[start + k + 1]))
            trading = len([r for r in emulator.requests if r.api == "trading"])
            process = spawn()
            if rng.random() < 0.6:  # while an order's answer is held
                fault = emulator.faults.add("POST /v2/orders", hold=1.5, times=1,
                                            after_accept=bool(rng.random() < 0.5),
                                            skip=int(rng.integers(0, N_SYMBOLS)))
                point = "submit held, accepted" if fault.after_accept else "submit held"
                killed = _wait(process, lambda f=fault: f.fired > 0)
            else:  # at a random moment once the process reached the broker
                point = "random moment"
                delay = float(rng.uniform(0.0, 0.4))
                killed = _wait(process, lambda n=trading: len([
                    r for r in emulator.requests if r.api == "trading"]) > n, then=delay)
            emulator.faults.clear()
            out[f"killed: {point}" if killed else "finished before the kill"] += 1
            again = spawn()  # at once: a held request may still be on its way
            _, error = again.communicate(timeout=120)
            if again.returncode != 0:
                out["restarts failed"] += 1
                print(error.decode()[-500:], file=sys.stderr)
        emulator.wait_idle(timeout=10)
        emulator.clock.set(pre_open(bars.index[start + rounds + 1]))
        final = spawn()
        final.communicate(timeout=120)
        journal = Journal(open_store(db), "-", deployment_id(load_config(path), "alpaca"))
        out["orders"] = len(emulator.orders)
        out["posts"] = sum(1 for r in emulator.requests if r.method == "POST")
        out["duplicates"] = duplicates(emulator)
        out["lost"], out["executions"] = lost_fills(journal, emulator)
        out["positions match"] = journal.positions() == emulator.positions
    return out


def _wait(process: subprocess.Popen[bytes], ready: Any, then: float = 0.0,
          timeout: float = 60.0) -> bool:
    """Wait for ``ready()`` (then ``then`` seconds) and SIGKILL ``process``; False if it ended."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready():
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    time.sleep(then)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


# ---------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and kills")
    args = parser.parse_args()
    runs, days, kills = (2, 10, 5) if args.quick else (4, 28, 20)
    started = time.perf_counter()
    # the SDK warns of every dropped stream (the faults drop many): keep the figures readable
    logging.getLogger("alpaca.trading.stream").setLevel(logging.ERROR)
    totals: dict[str, Any] = collections.Counter()
    faults: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(runs):
            figures = random_faults(seed, days, folder)
            faults.update(figures.pop("faults"))
            totals.update(figures)
            print(f"run {seed}: {figures['orders']} orders, {figures['executions']} executions, "
                  f"{figures['restarts']} restarts, duplicates {figures['duplicates']}, "
                  f"lost fills {figures['lost']}, reconciled {figures['reconciled']}/"
                  f"{figures['cycles']}", flush=True)
        print(f"\nrandom faults: {runs} runs x {days} sessions x {N_SYMBOLS} symbols through the "
              f"live runner, alpaca-py and the Alpaca emulator")
        print(f"  orders sent (accepted by the broker)  {totals['orders']:6d}  "
              f"(intents journaled {totals['intents']}, POSTs {totals['posts']})")
        print(f"  executions at the broker              {totals['executions']:6d}")
        print(f"  duplicate orders at the broker        {totals['duplicates']:6d}  (must be 0)")
        print(f"  lost fills (journal vs broker)        {totals['lost']:6d}  (must be 0)")
        print(f"  positions reconciled                  {totals['reconciled']:6d} of "
              f"{totals['cycles']} sessions")
        print(f"  cycles restarted after giving up      {totals['restarts']:6d}")
        print("  faults fired: " + ", ".join(f"{k} {n}" for k, n in sorted(faults.items())))
        kill = sigkill(kills, folder)
        print(f"\nSIGKILL: rlbridge live --once killed {kills} times at random points of a "
              f"rebalance and restarted at once")
        print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kill.items())
                               if k.startswith(("killed", "finished", "restarts failed"))))
        print(f"  orders sent {kill['orders']} (POSTs {kill['posts']}), executions "
              f"{kill['executions']}")
        print(f"  duplicate orders at the broker {kill['duplicates']} (must be 0), lost fills "
              f"{kill['lost']} (must be 0), positions match: {kill['positions match']}")
    ok = (totals["duplicates"] == totals["lost"] == kill["duplicates"] == kill["lost"] == 0
          and totals["reconciled"] == totals["cycles"] and kill["positions match"])
    print(f"\n{'all figures as required' if ok else 'FIGURES OFF'}; "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

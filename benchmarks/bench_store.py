"""Store speed: ingest the 12 sample ETFs into SQLite and read them back as Bars via the sql feed.

Goals (issue 2): ingest >= 200,000 bars/s, load >= 500,000 bars/s, for the 12 bundled ETFs
(44,948 daily bars, 2005-2020).  Each figure is the best of several repeats and is shown beside
``pandas.read_csv`` of the same 12 files, measured in the same run (ratio > 1: faster than
read_csv).

* ingest (store): Bars already in memory -> a fresh SQLite file, one transaction, committed.
* ingest (feed -> store): what ``rlbridge data ingest --feed sample`` does: a new sample feed
  parses and validates each file, then the store write.
* load (sql feed): a new ``sql`` feed opens the store, reads every stored bar with one query
  and aligns the 12 symbols (with XLC, which starts in 2018, the panel is 640 x 12); bars/s
  counts the stored bars read.  Also shown: a second load on the same feed (store already open)
  and the 11 ETFs with the full history (a 4,028 x 11 panel).

Run: .venv/bin/python benchmarks/bench_store.py [--repeats N]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INGEST_GOAL = 200_000
LOAD_GOAL = 500_000


def best(fn: Callable[[], object], repeats: int,
         setup: Callable[[], object] | None = None) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(work: Path, repeats: int) -> int:
    import pandas as pd

    from rlbridge import sample_data
    from rlbridge.manager import make_plugin_manager
    from rlbridge.store import open_store

    feeds = make_plugin_manager(entrypoints=False, warn=False).registries["feeds"]
    files = sorted(sample_data.path().glob("*.csv"))
    symbols = list(sample_data.SYMBOLS)

    # ---- the baseline: pandas.read_csv of the same files
    def read_csv() -> None:
        for f in files:
            pd.read_csv(f, index_col=0, parse_dates=True)

    total = sum(len(pd.read_csv(f)) for f in files)
    t_csv = best(read_csv, repeats)

    # ---- ingest: Bars parsed once (each symbol on its own, as `data ingest` does)
    panels = [feeds.create("sample", {}).load([s]) for s in symbols]
    assert sum(len(b) for b in panels) == total, "the sample feed and read_csv disagree"
    state: dict[str, Any] = {"n": 0}

    def fresh_store() -> None:
        if "store" in state:
            state["store"].close()
        state["n"] += 1
        name = f"ingest-{state['n']}.db"
        state["store"] = open_store(f"sqlite:///{work / name}")

    def write(loaded: list[Any]) -> None:
        with state["store"].ingest(feed="sample") as batch:
            for bars in loaded:
                batch.write(bars)

    t_ingest = best(lambda: write(panels), repeats, setup=fresh_store)
    t_ingest_feed = best(
        lambda: write([feeds.create("sample", {"align": "drop"}).load([s]) for s in symbols]),
        repeats, setup=fresh_store)
    state["store"].close()

    # ---- load: a new sql feed each time (it opens the store), then the same feed again
    url = f"sqlite:///{work / 'load.db'}"
    with open_store(url) as store, store.ingest(feed="sample") as batch:
        for bars in panels:
            batch.write(bars)

    def load_cold() -> None:
        with feeds.create("sql", {"url": url}) as reader:
            state["bars"] = reader.load()

    t_load = best(load_cold, repeats)
    with feeds.create("sql", {"url": url}) as warm:
        t_load_warm = best(warm.load, repeats)
        full = [s for s in symbols if s != "XLC"]
        t_load_11 = best(lambda: warm.load(full), repeats)
    same = state["bars"].equals(sample_data.load(sorted(symbols)))  # the feed sorts symbols
    rows_11 = sum(len(b) for b in panels if b.symbols[0] != "XLC")

    def line(label: str, bars: int, seconds: float) -> None:
        rate = bars / seconds
        print(f"{label:<34} {bars:>7,} bars {seconds * 1e3:8.1f} ms {rate:>12,.0f} bars/s"
              f"   x{rate / (total / t_csv):5.2f} read_csv")

    print(f"12 ETFs from {sample_data.path()}: {total:,} bars; best of {repeats}")
    line("pandas.read_csv (baseline)", total, t_csv)
    line("ingest (store, one transaction)", total, t_ingest)
    line("ingest (sample feed -> store)", total, t_ingest_feed)
    line("load (new sql feed, 12 ETFs)", total, t_load)
    line("load (same sql feed again)", total, t_load_warm)
    line("load (11 ETFs, 4,028 x 11 panel)", rows_11, t_load_11)
    print(f"loaded panel: {state['bars']!r}; equal to the sample feed's panel: {same}")
    ingest_ok = total / t_ingest >= INGEST_GOAL
    load_ok = total / t_load >= LOAD_GOAL
    print(f"goal ingest >= {INGEST_GOAL:,} bars/s: {'met' if ingest_ok else 'NOT met'} "
          f"({total / t_ingest:,.0f})")
    print(f"goal load   >= {LOAD_GOAL:,} bars/s: {'met' if load_ok else 'NOT met'} "
          f"({total / t_load:,.0f})")
    return 0 if ingest_ok and load_ok and same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    repeats = parser.parse_args().repeats
    work = Path(tempfile.mkdtemp(prefix="rlbridge-bench-"))
    try:
        return measure(work, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

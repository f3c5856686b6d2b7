"""How long `rlbridge --help` takes, against a bare interpreter start measured in the same run.

Goal (issue 2): under 300 ms, importing no torch, zipline, stable-baselines3 or broker SDK.
Run: .venv/bin/python benchmarks/bench_cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 15
GOAL_MS = 300.0
HEAVY = ("torch", "zipline", "stable_baselines3", "alpaca", "ib_insync", "backtrader", "pandas")


def best_ms(cmd: list[str]) -> tuple[float, float]:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def main() -> int:
    exe = str(Path(sys.executable).with_name("rlbridge"))
    base_min, base_med = best_ms([sys.executable, "-c", "pass"])
    help_min, help_med = best_ms([exe, "--help"])
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom rlbridge.cli import main\n"
         "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
         f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True)
    heavy = probe.stdout.rstrip("\n").splitlines()[-1].removeprefix("HEAVY:")
    print(f"python -c pass      : best {base_min:6.1f} ms, median {base_med:6.1f} ms")
    print(f"rlbridge --help     : best {help_min:6.1f} ms, median {help_med:6.1f} ms")
    print(f"ratio to bare python: {help_med / base_med:.2f}x (median)")
    print(f"heavy modules imported: {heavy or 'none'}")
    ok = help_med < GOAL_MS and not heavy
    print(f"goal < {GOAL_MS:.0f} ms and no heavy import: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

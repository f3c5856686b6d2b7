"""The bundled sample: 12 US ETFs, daily bars from 2005 to 2020 (see ``PROVENANCE.md``).

::

    from rlbridge import sample_data

    bars = sample_data.load(["SPY", "AGG", "XLK"], start="2019-01-01", end="2020-09-30")

The same data is the ``sample`` feed (``feed = "sample"`` in ``[data]``).  In-sample is
2008-01-01 .. 2018-12-31 and out-of-sample 2019-01-01 .. 2020-09-30 throughout the project.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rlbridge.interfaces import Bars
    from rlbridge.plugins.feeds.sample import SampleFeed

#: The symbols of the sample, broad market and bonds first, then the sector funds.
SYMBOLS: tuple[str, ...] = (
    "SPY", "AGG", "XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY",
)

#: The project's in-sample and out-of-sample periods (inclusive ISO dates).
IN_SAMPLE: tuple[str, str] = ("2008-01-01", "2018-12-31")
OUT_OF_SAMPLE: tuple[str, str] = ("2019-01-01", "2020-09-30")


def path() -> Path:
    """The folder of the sample CSV files (``SPY.csv``, ...), wherever rlbridge is installed.

    Raises:
        FileNotFoundError: rlbridge is installed in a form whose files are not on disk (a
            zipped install).
    """
    folder = resources.files(__name__).joinpath("etf-daily")
    real = Path(str(folder))
    if not real.is_dir():
        raise FileNotFoundError(f"the sample data folder is not on disk: {folder}")
    return real


def load(
    symbols: Sequence[str] | None = None,
    start: object = None,
    end: object = None,
    *,
    adjust: bool = True,
    align: Literal["drop", "ffill"] = "drop",
) -> Bars:
    """Sample bars as a panel (the files are parsed once per process and kept).

    Args:
        symbols: some of :data:`SYMBOLS` (all of them when None, in that order).
        start, end: inclusive dates.
        adjust: total-return prices from ``Adj Close`` (the default); False for traded prices.
        align: ``"drop"`` keeps the sessions every symbol has (a panel with XLC starts on
            2018-06-19); ``"ffill"`` fills against the NYSE calendar.

    Raises:
        DataError: an unknown symbol (listing the sample's), or no bars in the range.
    """
    return _feed(adjust, align).load(symbols, start, end)


@functools.lru_cache(maxsize=4)
def _feed(adjust: bool, align: str) -> SampleFeed:
    from rlbridge.plugins.feeds.sample import SampleFeed

    return SampleFeed(SampleFeed.Config(adjust=adjust, align=align))

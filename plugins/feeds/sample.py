"""The ``sample`` feed: the 12 ETFs bundled with rlbridge, daily, 2005-2020, nothing to set.

``feed = "sample"`` in ``[data]`` is all a config needs; ``rlbridge.sample_data`` documents the
data and its origin.  Prices are total-return (adjusted for splits and dividends) unless
``adjust = false``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.data import AlignOptions
from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    from rlbridge.interfaces import Bars
    from rlbridge.plugins.feeds.csv import CsvFeed


class SampleFeed:
    """The bundled sample, read through the ``csv`` feed."""

    @dataclass(frozen=True, kw_only=True)
    class Config(AlignOptions):
        """Options of the ``sample`` feed.

        Attributes:
            adjust: total-return prices from ``Adj Close`` (the default); false for the
                traded prices.
        """

        adjust: bool = True

    def __init__(self, config: SampleFeed.Config | None = None) -> None:
        self.config = config if config is not None else SampleFeed.Config()
        self._csv: CsvFeed | None = None

    def __repr__(self) -> str:
        return f"SampleFeed(adjust={self.config.adjust})"

    def symbols(self) -> list[str]:
        """The sample's symbols, broad market and bonds first."""
        from rlbridge.sample_data import SYMBOLS

        return list(SYMBOLS)

    def load(self, symbols: Sequence[str] | None = None, start: object = None,
             end: object = None) -> Bars:
        """The bars of ``symbols`` (all when None) from ``start`` to ``end`` inclusive."""
        return self._feed().load(self.symbols() if symbols is None else symbols, start, end)

    def _feed(self) -> CsvFeed:
        if self._csv is None:
            from rlbridge import sample_data
            from rlbridge.plugins.feeds.csv import CsvFeed

            cfg = self.config
            self._csv = CsvFeed(CsvFeed.Config(
                path=sample_data.path(), adjust=cfg.adjust, calendar=cfg.calendar,
                align=cfg.align, fill_limit=cfg.fill_limit))
        return self._csv


@hookimpl
def register_feeds(register: Any) -> None:
    register("sample", SampleFeed,
             description="the 12 bundled ETFs (SPY, AGG, sector SPDRs), daily 2005-2020")

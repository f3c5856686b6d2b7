"""``rlbridge data ingest`` and ``rlbridge data show``: fill the store from a feed, and look at it.

The store keeps each symbol's raw bars; alignment to common sessions happens when a run reads
them (the ``sql`` feed).  Only click and the CLI helpers are imported at module level:
``rlbridge --help`` must stay fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from rlbridge.cli import App, CLIError, cli_errors, echo_json, pass_app
from rlbridge.hookspecs import hookimpl

#: how many missing sessions / extra rows are listed by date before "+N more"
FIRST_FEW = 3


@click.group("data")
def data_group() -> None:
    """Load bars into the store and inspect what it holds."""


# ---------------------------------------------------------------------- ingest
@data_group.command("ingest")
@click.argument("config_path", metavar="[CONFIG]", required=False)
@click.option("--feed", metavar="NAME", help="The feed (default: the config's [data] feed).")
@click.option("--path", metavar="P", help="The feed's path option (a folder or a file).")
@click.option("--symbols", metavar="A,B,...", help="Comma-separated symbols (default: all).")
@click.option("--start", metavar="D", help="First date to load (default: the config's).")
@click.option("--end", metavar="D", help="Last date to load (default: the config's).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A feed option; VALUE is read as TOML (true, 5, \"x\"); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def ingest_cmd(app: App, config_path: str | None, feed: str | None, path: str | None,
               symbols: str | None, start: str | None, end: str | None,
               options: tuple[str, ...], as_json: bool) -> None:
    """Load bars from a feed into the store, all symbols in one transaction.

    The [data] table of CONFIG gives the feed, its options, the symbols and the dates; the
    flags override it.  Each symbol is loaded on its own and kept raw (no alignment).  Any
    error leaves the store as it was.
    """
    from rlbridge.config import load_config

    config = load_config(config_path, pm=app.pm) if config_path else None
    data = config.data if config is not None else None
    name = feed or (data.feed if data is not None else None) or ("csv" if path else None)
    if name is None:
        raise CLIError("no feed to ingest from: give a CONFIG with a [data] table or --feed NAME "
                       "(for example --feed sample, or --feed csv --path DIR)")
    registry = app.registries["feeds"]
    where = "--feed" if feed else "data.feed"
    entry = registry.info(name, where=where)
    same_feed = data is not None and registry.info(data.feed).name == entry.name
    opts: dict[str, Any] = dict(data.options) if same_feed and data is not None else {}
    cli_opts = dict(_parse_option(o) for o in options)
    if path is not None:
        cli_opts["path"] = path
    opts.update(_cwd_paths(entry.options, cli_opts))
    if entry.options is not None and "align" in _fields(entry.options):
        opts["align"] = "drop"  # the store keeps raw bars; runs align when they read
    source_file = config.path if config is not None else None
    reader = registry.create(name, opts, where="data", path=source_file)

    wanted = _symbols(symbols, data, reader, name)
    first_day = _date(start, "--start") or (data.start if data is not None else None)
    last_day = _date(end, "--end") or (data.end if data is not None else None)
    store = app.store(config)  # a bad store URL fails before the slow part
    loaded = _load_all(reader, wanted, first_day, last_day)
    source = _source(reader, opts)
    total = sum(len(b) for b in loaded)
    with _Progress("Writing", total) as advance, \
            store.ingest(feed=entry.name, source=source) as batch:
        for bars in loaded:
            batch.write(bars, progress=advance)
    _report_ingest(store.url, entry.name, source, loaded, as_json)


def _source(reader: Any, opts: dict[str, Any]) -> str:
    """What the ingest read, for the ``ingests`` table: the feed's path, else its repr."""
    path = opts.get("path") or getattr(getattr(reader, "config", None), "path", None)
    if path:
        return str(path)
    return repr(reader) if type(reader).__repr__ is not object.__repr__ else ""


def _parse_option(text: str) -> tuple[str, Any]:
    import tomllib

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CLIError(f"--option {text!r}: expected KEY=VALUE")
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        parsed = {}
    # anything that is not one TOML value is a bare string: -o date_format=%d.%m.%Y
    return key, parsed["value"] if list(parsed) == ["value"] else raw


def _fields(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _cwd_paths(cls: type | None, cli_opts: dict[str, Any]) -> dict[str, Any]:
    """Paths typed on the command line are relative to the current folder, not the config's."""
    import types
    import typing
    from pathlib import Path

    if cls is None:
        return cli_opts
    hints = _fields(cls)
    out = dict(cli_opts)
    for key, value in cli_opts.items():
        tp = hints.get(key)
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        args = typing.get_args(tp) if union else (tp,)
        if Path in args and isinstance(value, str) and value:
            out[key] = Path(value).expanduser().resolve()
    return out


def _symbols(flag: str | None, data: Any, reader: Any, name: str) -> list[str]:
    if flag is not None:
        wanted = [s.strip() for s in flag.split(",") if s.strip()]
        if not wanted:
            raise CLIError("--symbols: no symbol given")
        return list(dict.fromkeys(wanted))
    if data is not None and data.symbols:
        return list(data.symbols)
    if not hasattr(reader, "symbols"):
        raise CLIError(f"feed {name!r} cannot list its symbols; pass --symbols A,B,...")
    found = list(reader.symbols())
    if not found:
        raise CLIError(f"feed {name!r} has no symbols to ingest")
    return found


def _date(text: str | None, flag: str) -> Any:
    import pandas as pd

    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (TypeError, ValueError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise CLIError(f"{flag}: cannot read {text!r} as a date (expected YYYY-MM-DD)")
    return text


def _load_all(reader: Any, symbols: list[str], start: Any, end: Any) -> list[Any]:
    loaded = []
    with _Progress("Loading", len(symbols)) as advance:
        for symbol in symbols:
            loaded.append(reader.load([symbol], start, end))
            advance(1)
    return loaded


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise.  Yields ``advance(n)``."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stdout.isatty():
            return lambda n: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _stamp(ts: Any, daily: bool) -> str:
    """A timestamp for JSON: ``YYYY-MM-DD`` for daily bars, ISO 8601 with the zone otherwise."""
    return ts.strftime("%Y-%m-%d") if daily else ts.isoformat()


def _shown(stamp: str | None) -> str:
    """A :func:`_stamp` string for people: ``2017-01-01 22:00 UTC``."""
    import pandas as pd

    from rlbridge.data import format_stamp

    if stamp is None or len(stamp) == 10:
        return stamp or "-"
    return format_stamp(pd.Timestamp(stamp))


def _report_ingest(url: str, feed: str, source: str, loaded: list[Any], as_json: bool) -> None:
    from rlbridge.store import infer_interval

    per_symbol = []
    for bars in loaded:
        for symbol in bars.symbols:
            row: dict[str, Any] = {"symbol": symbol, "bars": len(bars), "interval": None,
                                   "first": None, "last": None}
            if len(bars):
                daily = not bars.intraday
                row.update(interval=infer_interval(bars.index) if len(bars) > 1 or daily else None,
                           first=_stamp(bars.index[0], daily), last=_stamp(bars.index[-1], daily))
            per_symbol.append(row)
    total = sum(r["bars"] for r in per_symbol)
    firsts = [r["first"] for r in per_symbol if r["first"]]
    lasts = [r["last"] for r in per_symbol if r["last"]]
    first, last = (min(firsts), max(lasts)) if firsts else (None, None)
    if as_json:
        echo_json({"store": url, "feed": feed, "source": source,
                   "symbols": [r["symbol"] for r in per_symbol], "bars": total,
                   "first": first, "last": last, "by_symbol": per_symbol})
        return
    span = f" ({_shown(first)} .. {_shown(last)})" if first else ""
    count = len(per_symbol)
    click.echo(f"Ingested {count} symbol{'s' if count != 1 else ''}, {total:,} bars{span} "
               f"from feed {feed!r} into {url}")
    width = max(len(r["symbol"]) for r in per_symbol)
    for r in per_symbol:
        when = (f"{_shown(r['first'])} .. {_shown(r['last'])}" if r["first"]
                else "no bars in the range")
        click.echo(f"  {r['symbol']:<{width}}  {r['interval'] or '-':>4}  {when}  "
                   f"{r['bars']:>9,} bars")
    for r in per_symbol:
        if not r["bars"]:
            click.echo(f"Warning: {r['symbol']}: no bars in the requested range", err=True)


# ---------------------------------------------------------------------- show
@data_group.command("show")
@click.option("--interval", metavar="I", help="Only this interval (1d, 1h, 5m, ...).")
@click.option("--calendar", default="XNYS", show_default=True, metavar="NAME",
              help="Exchange calendar the daily bars are checked against ('none' to skip).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
@cli_errors
def show_cmd(app: App, interval: str | None, calendar: str, as_json: bool) -> None:
    """Per symbol: interval, date range, bar count and gaps.

    Daily bars are checked against the exchange calendar: sessions with no bar, and bars on
    days that are not sessions.  Intraday bars are not (markets differ in hours); for them the
    largest gap between two bars is shown.
    """
    checked = _check_calendar(calendar)
    store = app.store()
    rows = _gap_rows(store, store.summary(interval), checked)
    if as_json:
        echo_json({"store": store.url, "calendar": checked, "symbols": rows})
    elif not rows:
        what = f"{interval} bars" if interval else "bars"
        click.echo(f"The store {store.url} has no {what}; load some with `rlbridge data ingest`.")
    elif sys.stdout.isatty():
        _rich_table(store.url, checked, rows)
    else:
        _plain_table(store.url, checked, rows)


def _check_calendar(name: str) -> str | None:
    import difflib

    from rlbridge.data import calendar_names

    if name.strip().lower() == "none":
        return None
    names = calendar_names()
    if name not in names:
        close = difflib.get_close_matches(name.upper(), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CLIError(f"--calendar: unknown exchange calendar {name!r}{hint}; "
                       "for example XNYS, XLON, XTKS, 24/7 (or 'none')")
    return name


def _gap_rows(store: Any, summary: list[Any], calendar: str | None) -> list[dict[str, Any]]:
    import numpy as np

    from rlbridge.data import extra_rows, missing_sessions

    by_interval: dict[str, list[str]] = {}
    for s in summary:
        by_interval.setdefault(s.interval, []).append(s.symbol)
    frames = {ivl: store.read_bars(syms, interval=ivl) for ivl, syms in by_interval.items()}
    rows = []
    for s in summary:
        index = frames[s.interval][s.symbol].index
        daily = s.interval == "1d"
        row: dict[str, Any] = {"symbol": s.symbol, "interval": s.interval,
                               "first": _stamp(s.first, daily), "last": _stamp(s.last, daily),
                               "bars": s.bars}
        if daily and calendar is not None:
            missing = missing_sessions(index, calendar)
            extra = extra_rows(index, calendar)
            row["missing_sessions"] = len(missing)
            row["missing_first"] = [_stamp(t, True) for t in missing[:FIRST_FEW]]
            row["non_session_rows"] = len(extra)
            row["non_session_first"] = [_stamp(t, True) for t in extra[:FIRST_FEW]]
        elif not daily:
            row["calendar_checked"] = False  # trading hours differ by market
            if len(index) > 1:
                steps = np.diff(index.asi8)
                at = int(np.argmax(steps))
                row["largest_gap"] = _duration(int(steps[at]))
                row["largest_gap_seconds"] = int(steps[at]) / 1e9
                row["largest_gap_from"] = _stamp(index[at], False)
                row["largest_gap_to"] = _stamp(index[at + 1], False)
        rows.append(row)
    return rows


def _duration(ns: int) -> str:
    for unit, size in (("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / 1e9:g}s"


def _few(count: int, first: list[str]) -> str:
    if not count:
        return "0"
    more = f", +{count - len(first)} more" if count > len(first) else ""
    return f"{count} ({', '.join(first)}{more})"


def _columns(calendar: str | None, rows: list[dict[str, Any]]) -> list[str]:
    headers = ["symbol", "interval", "first", "last", "bars"]
    if any("missing_sessions" in r for r in rows):
        headers += [f"missing {calendar} sessions", "non-session rows"]
    if any("calendar_checked" in r for r in rows):
        headers += ["largest gap"]
    return headers


def _cells(row: dict[str, Any], headers: list[str]) -> list[str]:
    shown = _shown
    cells = [row["symbol"], row["interval"], shown(row["first"]), shown(row["last"]),
             f"{row['bars']:,}"]
    if "non-session rows" in headers:
        if "missing_sessions" in row:
            cells += [_few(row["missing_sessions"], row["missing_first"]),
                      _few(row["non_session_rows"], row["non_session_first"])]
        else:
            cells += ["-", "-"]
    if "largest gap" in headers:
        if row.get("largest_gap"):
            cells.append(f"{row['largest_gap']} ({shown(row['largest_gap_from'])} .. "
                         f"{shown(row['largest_gap_to'])})")
        else:
            cells.append("-")
    return cells


def _notes(calendar: str | None, rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    if any("calendar_checked" in r for r in rows):
        notes.append("Intraday bars are not checked against an exchange calendar (trading hours "
                     "differ by market); the largest gap between two bars is shown instead.")
    if calendar is None and any(r["interval"] == "1d" for r in rows):
        notes.append("Daily bars were not checked against a calendar (--calendar none).")
    return notes


def _plain_table(url: str, calendar: str | None, rows: list[dict[str, Any]]) -> None:
    headers = _columns(calendar, rows)
    table = [headers] + [_cells(r, headers) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    click.echo(f"Store {url}")
    for line in table:
        cells = [c.rjust(w) if i == 4 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        click.echo("  ".join(cells).rstrip())
    for note in _notes(calendar, rows):
        click.echo(note)


def _rich_table(url: str, calendar: str | None, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    headers = _columns(calendar, rows)
    table = Table(title=f"Store {url}")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i == 4 else "left")
    for row in rows:
        table.add_row(*_cells(row, headers))
    console = Console()
    console.print(table)
    for note in _notes(calendar, rows):
        console.print(note, style="dim")


@hookimpl
def register_commands(cli):  # type: ignore[no-untyped-def]
    cli.add_command(data_group)

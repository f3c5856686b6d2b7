"""The e-mail summary of a run: its orders, fills and P&L, sent over SMTP when the run ends.

Set in ``[notify]`` (docs/config.md).  When a run of a kind listed in ``on`` (``live`` by
default) completes (``after_run``) or fails (``on_run_error``) and ``email_to`` is set, the
run's orders, fills and equity are read back from the store and mailed as plain text with an
HTML alternative.  Run once a day (``rlbridge live CONFIG --once``), it is the daily summary:
the orders of the day, the fills that arrived for them and for earlier orders, and the change
of the portfolio value.

The hooks receive only the run record, so:

* the settings are the ``[notify]`` table stored with the run (the stored copy keeps
  ``password_env``, the variable's name, never a password);
* the store is the one the run was recorded in (``run.store_url``), or else the one
  :func:`rlbridge.store.open_store` picks from the run's config: ``RLBRIDGE_DB``, then
  ``[store] url``, then ``./rlbridge.db``;
* the SMTP password is read from the environment variable ``password_env`` names, when the mail
  is sent.

Nothing here fails a run: a mail that cannot be composed or sent is a warning in the log that
names the SMTP server and the error, never the password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import RLBridgeError
from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    from email.message import EmailMessage

    import pandas as pd

    from rlbridge.config import NotifyConfig

log = logging.getLogger(__name__)

#: rows of orders (and of fills) listed in one mail; the rest are counted
MAX_ROWS = 200


class NotifyError(RLBridgeError):
    """A summary could not be sent (the reason is logged as a warning, never raised to a run)."""


# ---------------------------------------------------------------------- hooks
@hookimpl
def after_run(run: Any, result: Any) -> None:
    """Mail the summary of a completed run, when ``[notify]`` asks for it."""
    notify(run)


@hookimpl
def on_run_error(run: Any, error: BaseException) -> None:
    """Mail the summary of a failed run, with its error, when ``[notify]`` asks for it."""
    notify(run, error)


def notify(run: Any, error: BaseException | None = None) -> bool:
    """Compose and send the summary of ``run`` (failed with ``error``); never raises.

    Args:
        run: the run record (:class:`rlbridge.runs.RunRecord`), as the run hooks receive it.
        error: the exception that stopped a failed run.

    Returns:
        True when the SMTP server accepted the mail; False when ``[notify]`` sends nothing for
        this run, or the mail failed (a warning is logged).
    """
    settings = settings_for(run)
    if settings is None:
        return False
    password = os.environ.get(settings.password_env) or None
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        message = compose(run, read_run(run), settings, error, password)
        send(message, settings, password)
    except Exception as exc:  # a mail never fails the run
        log.warning("e-mail summary of run %s not sent: SMTP %s: %s", run.id, server,
                    _scrub(_error_text(exc), password))
        return False
    log.info("e-mail summary of run %s sent to %s via SMTP %s", run.id,
             ", ".join(settings.email_to), server)
    return True


# ---------------------------------------------------------------------- settings
def settings_for(run: Any) -> NotifyConfig | None:
    """The run's ``[notify]`` settings, or None when no mail goes out for this run.

    None when the run has no ``[notify]`` table, no ``email_to``, or a kind not in ``on``.
    """
    from rlbridge.config import NotifyConfig
    from rlbridge.errors import ConfigError
    from rlbridge.options import build

    stored = getattr(run, "config", None)
    table = stored.get("notify") if isinstance(stored, Mapping) else None
    if not isinstance(table, Mapping):
        return None
    values = dict(table)
    path = getattr(run, "config_path", None)
    try:
        settings = build(NotifyConfig, values, path=path, key="notify")
    except ConfigError as exc:
        log.warning("e-mail summary of run %s not sent: %s", getattr(run, "id", "?"), exc)
        return None
    if not settings.email_to or getattr(run, "kind", None) not in settings.on:
        return None
    return settings


# ---------------------------------------------------------------------- the store
@dataclass(frozen=True)
class RunData:
    """What the store holds of a run: ``problem`` says why it could not be read."""

    orders: pd.DataFrame | None = None
    fills: pd.DataFrame | None = None
    equity: pd.DataFrame | None = None
    problem: str | None = None


def read_run(run: Any) -> RunData:
    """The run's orders, fills and equity from the store its config names (see the module)."""
    from types import SimpleNamespace

    import sqlalchemy as sa

    from rlbridge.runs import run_equity, run_fills, run_orders
    from rlbridge.store import mask_url, open_store, resolve_url

    url = getattr(run, "store_url", None)  # the store the run was recorded in, when known
    if url is None:
        configured = (run.config.get("store") or {}).get("url")
        url = resolve_url(None, SimpleNamespace(store=SimpleNamespace(url=configured)))
    try:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
                and not str(parsed.database).startswith("file:") \
                and not os.path.isfile(parsed.database):  # opening it would create it, empty
            return RunData(problem=f"the store {mask_url(url)} does not exist (set RLBRIDGE_DB "
                                   "or [store] url to the run's store)")
        store = open_store(url)
    except Exception as exc:
        return RunData(problem=_error_text(exc))
    try:
        return RunData(run_orders(store, run.id), run_fills(store, run.id),
                       run_equity(store, run.id))
    except Exception as exc:
        return RunData(problem=_error_text(exc))
    finally:
        store.close()


@dataclass(frozen=True)
class Pnl:
    """The change of the portfolio value over the values a run recorded."""

    start: pd.Timestamp
    end: pd.Timestamp
    first: float
    last: float

    @property
    def change(self) -> float:
        return self.last - self.first

    def text(self) -> str:
        if self.start == self.end:
            return (f"value {_money(self.last)} at {_when(self.end)} (one value recorded: "
                    "no change yet)")
        pct = f" ({self.change / self.first:+.2%})" if self.first else ""
        return (f"{self.change:+,.2f}{pct}: value {_money(self.first)} at {_when(self.start)}, "
                f"{_money(self.last)} at {_when(self.end)}")


def pnl(equity: pd.DataFrame | None) -> Pnl | None:
    """The :class:`Pnl` of a run's equity curve (None when it recorded no value)."""
    if equity is None or not len(equity):
        return None
    values = equity["value"]
    return Pnl(equity.index[0], equity.index[-1], float(values.iloc[0]), float(values.iloc[-1]))


# ---------------------------------------------------------------------- the mail
def compose(run: Any, data: RunData, settings: NotifyConfig,
            error: BaseException | None = None, password: str | None = None) -> EmailMessage:
    """The summary mail: plain text with an HTML alternative.

    Args:
        run: the run record.
        data: what the store holds of the run.
        settings: the ``[notify]`` settings (sender, recipients, subject prefix).
        error: the exception of a failed run.
        password: the SMTP password, masked wherever it would appear.
    """
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    status = "failed" if error is not None else getattr(run, "status", "completed")
    title = f"{run.kind} run {run.id}"
    lines = [f"rlbridge {title}: {status}", _about(run), ""]
    html = [f"<h3>rlbridge {_esc(title)}: {_esc(status)}</h3>", f"<p>{_esc(_about(run))}</p>"]
    error_line = None if error is None else _error_text(error)
    if error_line is not None:
        lines += [f"Error: {error_line}", ""]
        html.append(f"<p><b>Error</b>: {_esc(error_line)}</p>")
    outcome = status
    if data.orders is None or data.fills is None:
        text = f"Orders, fills and P&L could not be read: {data.problem}"
        lines += [text, ""]
        html.append(f"<p>{_esc(text)}</p>")
    else:
        gain = pnl(data.equity)
        outcome += (f": {len(data.orders)} order(s), {len(data.fills)} fill(s)"
                    + (f", P&L {gain.change:+,.2f}" if gain is not None else ""))
        _add_trades(lines, html, run, data, gain)
    if error_line is not None:
        outcome = f"failed: {error_line.splitlines()[0][:120]}"
    message = EmailMessage()
    message["Subject"] = " ".join(p for p in (settings.subject.strip(), title, outcome) if p)
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("rlbridge",
                                       domain=str(settings.email_from).rpartition("@")[2])
    message.set_content(_scrub("\n".join(lines).rstrip() + "\n", password))
    message.add_alternative(_scrub("<html><body>" + "\n".join(html) + "</body></html>\n",
                                   password), subtype="html")
    return message


def _add_trades(lines: list[str], html: list[str], run: Any, data: RunData,
                gain: Pnl | None) -> None:
    """The P&L, the orders and the fills of the mail, as text ``lines`` and ``html``."""
    assert data.orders is not None and data.fills is not None
    fills = data.fills
    money = f"P&L: {gain.text() if gain is not None else 'no value recorded'}"
    costs = f"Commissions: {_money(float(fills['commission'].sum()))} on {len(fills)} fill(s)"
    lines += [money, costs, ""]
    html.append(f"<p>{_esc(money)}<br>{_esc(costs)}</p>")
    orders: list[tuple[str, ...]] = [
        (_when(t), r.symbol, _qty(r.quantity), r.status, r.reason or "")
        for t, r in data.orders.iterrows()]
    filled: list[tuple[str, ...]] = [
        (_when(t), r.symbol, _qty(r.quantity), f"{r.price:,.4f}", f"{r.commission:,.2f}")
        for t, r in fills.iterrows()]
    for name, head, rows in (
            ("Orders", ("time", "symbol", "quantity", "status", "reason"), orders),
            ("Fills", ("time", "symbol", "quantity", "price", "commission"), filled)):
        shown, more = rows[:MAX_ROWS], len(rows) - MAX_ROWS
        tail = [f"... and {more} more in the store (run {run.id})"] if more > 0 else []
        lines += [f"{name} ({len(rows)}):", *(_text_table(head, shown) if rows else []),
                  *tail, ""]
        html += [f"<h4>{name} ({len(rows)})</h4>", _html_table(head, shown) if rows else "",
                 *(f"<p>{_esc(t)}</p>" for t in tail)]


def send(message: EmailMessage, settings: NotifyConfig, password: str | None) -> None:
    """Hand ``message`` to the SMTP server of ``settings`` (TLS as configured, login with
    ``smtp_user`` and ``password`` when a user is set).

    Raises:
        NotifyError: a user is set and ``password`` is missing.
        OSError, smtplib.SMTPException: the server cannot be reached or refuses the mail.
    """
    import smtplib
    import ssl

    if settings.smtp_user and not password:
        raise NotifyError(f"the SMTP password of {settings.smtp_user!r} is not set: put it in "
                          f"the environment variable {settings.password_env}")
    assert settings.smtp_host is not None  # NotifyConfig requires it with email_to
    context = ssl.create_default_context()  # verifies the server (SSL_CERT_FILE for a private CA)
    client: smtplib.SMTP
    if settings.ssl:
        client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                  timeout=settings.timeout, context=context)
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout)
    with client:
        if not settings.ssl and settings.starttls:
            client.starttls(context=context)  # refuses a server without STARTTLS
        if settings.smtp_user:
            assert password is not None
            client.login(settings.smtp_user, password)
        client.send_message(message)


# ---------------------------------------------------------------------- formatting
def _about(run: Any) -> str:
    config = run.config if isinstance(run.config, Mapping) else {}

    def name(table: str, key: str) -> str | None:
        value = config.get(table)
        return value.get(key) if isinstance(value, Mapping) else None

    symbols = name("data", "symbols")
    parts = [f"strategy {name('strategy', 'name') or '?'}"]
    if run.kind == "live":
        parts.append(f"broker {name('broker', 'name') or 'sim'}")
    if symbols:
        parts.append(f"symbols {', '.join(map(str, symbols))}")
    stamp = "%Y-%m-%d %H:%M:%S UTC"
    times = [f"started {run.started_at:{stamp}}"] if run.started_at else []
    if getattr(run, "finished_at", None):
        times.append(f"finished {run.finished_at:{stamp}}")
    return ", ".join(parts) + (f"; {', '.join(times)}" if times else "")


def _when(stamp: pd.Timestamp) -> str:
    """A session date as ``2020-09-01``, an intraday time as ``2020-09-01T14:30Z`` (one word)."""
    if stamp.tzinfo is None:
        return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else f"{stamp:%Y-%m-%dT%H:%M}"
    return f"{stamp.tz_convert('UTC'):%Y-%m-%dT%H:%MZ}"


def _qty(value: float) -> str:
    return f"{value:,.10g}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _text_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(head, *rows, strict=True)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (head, *rows)]


def _html_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = ["<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    cells += ["<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    return ('<table border="1" cellpadding="3" style="border-collapse:collapse">'
            + "".join(cells) + "</table>")


def _esc(text: object) -> str:
    import html

    return html.escape(str(text))


def _error_text(exc: BaseException) -> str:
    """rlbridge's errors as their message, others with their class name; URL passwords masked."""
    from rlbridge.runs import error_text

    return error_text(exc)


def _scrub(text: str, password: str | None) -> str:
    """``text`` with the SMTP password masked (a server may echo what it was sent)."""
    return text.replace(password, "***") if password else text

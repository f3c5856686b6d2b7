"""The e-mail summary plugin against a real SMTP server (aiosmtpd) on 127.0.0.1: one mail per run
with the orders, fills and P&L the store holds, logins with the password from the environment
(over plain text, STARTTLS and TLS) that never show the password, failures that are warnings and
never fail the run, failed runs, run kinds not mailed, and the ``[notify]`` config errors."""

import dataclasses
import json
import logging
import re
import socket
import ssl
import subprocess
import tomllib
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import rlbridge
from rlbridge.backtesting import backtest
from rlbridge.config import _RUN_KINDS, NotifyConfig, config_from_mapping, load_config
from rlbridge.errors import ConfigError
from rlbridge.live import live
from rlbridge.manager import make_plugin_manager
from rlbridge.runs import KINDS, get_run, list_runs, run_equity, run_fills, run_orders
from rlbridge.store import open_store
from rlbridge.testing import register_plugin

PM = make_plugin_manager(entrypoints=False, warn=False)
PASSWORD = "s3cr3t-Pa55-9f2c"
LOGGER = "rlbridge.plugins.notify.email"
DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"


# ---------------------------------------------------------------------- the SMTP server
@dataclasses.dataclass
class Mail:
    mail_from: str
    rcpt_tos: list
    raw: bytes
    login: LoginPassword | None
    tls: bool

    @property
    def message(self):
        return BytesParser(policy=policy.default).parsebytes(self.raw)


class Inbox:
    """An aiosmtpd handler keeping every mail it accepts."""

    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                               session.auth_data if session.authenticated else None,
                               server.transport.get_extra_info("ssl_object") is not None))
        return "250 OK"


class Loopback(Controller):
    """aiosmtpd's controller on a port the OS picks (it needs the port to check the server)."""

    def _create_server(self):
        async def create():
            server = await Controller._create_server(self)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


def accept(user, password):
    """An authenticator that accepts one user and password."""

    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data == LoginPassword(user.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


@pytest.fixture
def smtp():
    """``smtp(**aiosmtpd options) -> (port, inbox)``: a server on 127.0.0.1, stopped after."""
    started = []

    def start(**options):
        inbox = Inbox()
        controller = Loopback(inbox, hostname="127.0.0.1", port=0, **options)
        controller.start()
        started.append(controller)
        return controller.port, inbox

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert file, server TLS context)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, caplog):
    monkeypatch.delenv("RLBRIDGE_DB", raising=False)
    monkeypatch.delenv("RLBRIDGE_SMTP_PASSWORD", raising=False)
    caplog.set_level(logging.DEBUG, logger="rlbridge")


# ---------------------------------------------------------------------- the agent
def agent(tmp_path, port, strategy=None, **notify):
    """A live agent on the sim broker replaying September 2020, mailing 127.0.0.1:port."""
    return {
        "data": {"feed": "sample", "symbols": ["SPY", "AGG", "XLK"], "start": "2020-08-03",
                 "end": "2020-09-30", "adjust": False},
        "costs": {"model": "per_share", "per_share": 0.005, "minimum": 1.0},
        "strategy": strategy or {"name": "equal_weight", "rebalance": 10},
        "backtest": {"cash": 100_000, "start": "2020-09-01", "end": "2020-09-30"},
        "broker": {"name": "sim", "cash": 100_000},
        "notify": {"email_to": ["pm@example.com"], "email_from": "rlbridge@example.com",
                   "smtp_host": "127.0.0.1", "smtp_port": port, "starttls": False, **notify},
        "store": {"url": f"sqlite:///{tmp_path / 'live.db'}"},
    }


def last_run(config, kind="live"):
    store = open_store(config.store.url)
    return store, list_runs(store, kind)[0]


def body(message, kind):
    """The text of the ``kind`` ("plain", "html") part, with the wire's CRLF as LF."""
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")


def section(text, name):
    """The rows of the plain-text table ``name`` ("Orders", "Fills"), split into cells."""
    lines = text.split(f"\n{name} (")[1].split("\n\n")[0].splitlines()
    return [line.split(None, 4) for line in lines[2:]  # the count line, then the header
            if not line.startswith("... and ")]


class Tables(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None


def no_secret(*places):
    for place in places:
        assert PASSWORD not in (place if isinstance(place, str) else place.decode("latin-1"))


# ---------------------------------------------------------------------- the summary
def test_a_live_run_mails_the_stores_orders_fills_and_pnl_once(tmp_path, smtp, caplog):
    port, inbox = smtp()
    config = config_from_mapping(agent(tmp_path, port,
                                       email_to=["pm@example.com", "risk@example.com"]), pm=PM)
    reports = live(config, pm=PM)
    store, run = last_run(config)
    orders, fills, equity = run_orders(store, run), run_fills(store, run), run_equity(store, run)
    assert len(inbox.mails) == 1
    mail = inbox.mails[0]
    assert (mail.mail_from, mail.rcpt_tos) == ("rlbridge@example.com",
                                               ["pm@example.com", "risk@example.com"])
    message = mail.message
    assert message["To"] == "pm@example.com, risk@example.com"
    change = equity["value"].iloc[-1] - equity["value"].iloc[0]
    assert change == pytest.approx(reports[-1].value - reports[0].value) and abs(change) > 100
    assert message["Subject"] == (f"[rlbridge] live run {run.id} completed: {len(orders)} "
                                  f"order(s), {len(fills)} fill(s), P&L {change:+,.2f}")
    text = body(message, "plain")
    assert f"\nP&L: {change:+,.2f} ({change / 100_000:+.2%}): value 100,000.00 at 2020-09-01, " \
           f"{equity['value'].iloc[-1]:,.2f} at 2020-09-30\n" in text
    assert f"Commissions: {fills['commission'].sum():,.2f} on {len(fills)} fill(s)" in text
    # every order and every fill of the run, as the store has them
    shown_orders = [(t, s, float(q.replace(",", "")), status)
                    for t, s, q, status, *_ in section(text, "Orders")]
    assert shown_orders == [(f"{t:%Y-%m-%d}", r.symbol, r.quantity, r.status)
                            for t, r in orders.iterrows()]
    assert {"filled", "new"} <= set(orders["status"]) and len(orders) == 9
    shown_fills = [(t, s, float(q.replace(",", "")), float(p), float(c))
                   for t, s, q, p, c in section(text, "Fills")]
    assert shown_fills == [(f"{t:%Y-%m-%d}", r.symbol, r.quantity, round(r.price, 4),
                            round(r.commission, 2)) for t, r in fills.iterrows()]
    assert len(fills) == 6
    # the HTML alternative has the same tables
    html = Tables(body(message, "html")).tables
    assert [row for row in html[0][1:]] == [[*cells, ""][:5] for cells in section(text, "Orders")]
    assert [row for row in html[1][1:]] == section(text, "Fills")
    assert f"e-mail summary of run {run.id} sent to pm@example.com, risk@example.com via SMTP " \
           f"127.0.0.1:{port}" in caplog.text


def test_long_lists_are_cut_and_counted(tmp_path, smtp, monkeypatch):
    import rlbridge.plugins.notify.email as plugin

    monkeypatch.setattr(plugin, "MAX_ROWS", 4)
    port, inbox = smtp()
    config = config_from_mapping(agent(tmp_path, port), pm=PM)
    live(config, pm=PM)
    _, run = last_run(config)
    message = inbox.mails[0].message
    text = body(message, "plain")
    assert len(section(text, "Orders")) == len(section(text, "Fills")) == 4
    assert "Orders (9):" in text and f"\n... and 5 more in the store (run {run.id})\n" in text
    assert "Fills (6):" in text and f"\n... and 2 more in the store (run {run.id})\n" in text
    assert [len(t) - 1 for t in Tables(body(message, "html")).tables] == [4, 4]


# aiosmtpd warns of a server that takes AUTH without TLS: the plain-text login of this test
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_takes_the_password_from_the_environment_and_never_shows_it(tmp_path, smtp,
                                                                          caplog, monkeypatch):
    port, inbox = smtp(authenticator=accept("desk", PASSWORD), auth_require_tls=False,
                       auth_required=True)
    path = tmp_path / "agent.toml"
    path.write_text(config_from_mapping(agent(tmp_path, port, smtp_user="desk",
                                              password_env="DESK_SMTP_PW"), pm=PM).dump())
    config = load_config(path, PM)
    monkeypatch.setenv("DESK_SMTP_PW", PASSWORD)
    live(config, pm=PM, once=True)
    store, run = last_run(config)
    # the stored copy keeps the variable's name, never its value
    assert run.config["notify"]["password_env"] == "DESK_SMTP_PW"
    assert [m.login for m in inbox.mails] == [LoginPassword(b"desk", PASSWORD.encode())]
    no_secret(inbox.mails[0].raw, caplog.text, json.dumps(run.config))
    assert f"live run {run.id} completed: 3 order(s), 0 fill(s)" in inbox.mails[0].message[
        "Subject"]

    # a wrong password: the server refuses, a warning, the run completes
    monkeypatch.setenv("DESK_SMTP_PW", "wrong-" + PASSWORD)
    caplog.clear()
    live(config, pm=PM, once=True)
    _, run = last_run(config)
    assert run.status == "completed" and len(inbox.mails) == 1
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING
                  and r.name == LOGGER]
    assert warning.getMessage() == (
        f"e-mail summary of run {run.id} not sent: SMTP 127.0.0.1:{port}: "
        "SMTPAuthenticationError: (535, b'5.7.8 Authentication credentials invalid')")
    no_secret(caplog.text)

    # no password at all: nothing is sent, the warning names the variable
    monkeypatch.delenv("DESK_SMTP_PW")
    caplog.clear()
    live(config, pm=PM, once=True)
    _, run = last_run(config)
    assert run.status == "completed" and len(inbox.mails) == 1
    assert (f"e-mail summary of run {run.id} not sent: SMTP 127.0.0.1:{port}: the SMTP password "
            "of 'desk' is not set: put it in the environment variable DESK_SMTP_PW"
            ) in caplog.text


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_tls_verifies_the_server_and_logs_in_over_it(tmp_path, smtp, certificate, monkeypatch,
                                                     caplog, mode):
    cert, server_tls = certificate
    if mode == "starttls":  # the server refuses AUTH and MAIL before STARTTLS
        port, inbox = smtp(tls_context=server_tls, require_starttls=True, auth_required=True,
                           authenticator=accept("desk", PASSWORD))
        settings = {"starttls": True}
    else:  # aiosmtpd counts only STARTTLS as TLS for AUTH: this connection is TLS throughout
        port, inbox = smtp(ssl_context=server_tls, auth_required=True, auth_require_tls=False,
                           authenticator=accept("desk", PASSWORD))
        settings = {"ssl": True}
    config = config_from_mapping(agent(tmp_path, port, smtp_user="desk", **settings), pm=PM)
    monkeypatch.setenv("RLBRIDGE_SMTP_PASSWORD", PASSWORD)

    live(config, pm=PM, once=True)  # the certificate is not trusted: nothing is sent
    _, run = last_run(config)
    assert inbox.mails == [] and run.status == "completed"
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted (how a private CA is set)
    live(config, pm=PM, once=True)
    assert [(m.tls, m.login) for m in inbox.mails] == [(True, LoginPassword(b"desk",
                                                                           PASSWORD.encode()))]
    no_secret(caplog.text)


def test_starttls_is_never_skipped_for_a_server_without_it(tmp_path, smtp, caplog, monkeypatch):
    port, inbox = smtp(authenticator=accept("desk", PASSWORD), auth_require_tls=False)
    config = config_from_mapping(agent(tmp_path, port, smtp_user="desk", starttls=True), pm=PM)
    monkeypatch.setenv("RLBRIDGE_SMTP_PASSWORD", PASSWORD)
    live(config, pm=PM, once=True)
    _, run = last_run(config)
    assert inbox.mails == [] and run.status == "completed"
    assert (f"e-mail summary of run {run.id} not sent: SMTP 127.0.0.1:{port}: "
            "SMTPNotSupportedError: STARTTLS extension not supported by server.") in caplog.text


# ---------------------------------------------------------------------- failures
def test_an_unreachable_server_is_a_warning_and_the_run_completes(tmp_path, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = config_from_mapping(agent(tmp_path, port), pm=PM)
    reports = live(config, pm=PM, once=True)
    store, run = last_run(config)
    assert len(reports) == 1 and get_run(store, run).status == "completed"
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING
                  and r.name.startswith("rlbridge")]
    assert warning.name == LOGGER and warning.getMessage() == (
        f"e-mail summary of run {run.id} not sent: SMTP 127.0.0.1:{port}: "
        "ConnectionRefusedError: [Errno 111] Connection refused")


class Broken(rlbridge.Strategy):
    """Buys 10 SPY, then fails on its fourth bar."""

    def start(self, ctx):
        self.bars = 0

    def on_bar(self, ctx):
        self.bars += 1
        if self.bars == 1:
            ctx.order("SPY", 10)
        elif self.bars == 4:
            raise RuntimeError("the model file is corrupt")


class BrokenPlugin:
    @rlbridge.hookimpl
    def register_strategies(self, register):
        register("broken", Broken)


def test_a_failed_run_mails_failed_with_the_error_and_what_it_did(tmp_path, smtp):
    port, inbox = smtp()
    pm = make_plugin_manager(entrypoints=False, warn=False)
    register_plugin(pm, BrokenPlugin(), name="broken")
    config = config_from_mapping(agent(tmp_path, port, {"name": "broken"}), pm=pm)
    with pytest.raises(RuntimeError, match="the model file is corrupt"):
        live(config, pm=pm)
    _, run = last_run(config)
    assert run.status == "failed"
    (mail,) = inbox.mails
    message = mail.message
    assert message["Subject"] == (f"[rlbridge] live run {run.id} failed: RuntimeError: the model "
                                  "file is corrupt")
    text = body(message, "plain")
    assert text.startswith(f"rlbridge live run {run.id}: failed\n")
    assert "\nError: RuntimeError: the model file is corrupt\n" in text
    assert [cells[1:4] for cells in section(text, "Orders")] == [["SPY", "10", "filled"]]
    assert [cells[:3] for cells in section(text, "Fills")] == [["2020-09-02", "SPY", "10"]]


def test_the_store_given_only_in_python_is_the_one_read(tmp_path, smtp, monkeypatch):
    port, inbox = smtp()
    monkeypatch.chdir(tmp_path)
    mapping = agent(tmp_path, port)
    del mapping["store"]  # the run's store is given only in Python (as `--db` does)
    config = config_from_mapping(mapping, pm=PM)
    store = open_store(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    live(config, pm=PM, once=True, store=store)
    (mail,) = inbox.mails
    text = body(mail.message, "plain")
    [run] = list_runs(store, "live")
    orders = run_orders(store, run.id)
    assert f"Orders ({len(orders)}):" in text and len(orders) == 3
    assert "could not be read" not in text
    assert not (tmp_path / "rlbridge.db").exists()  # no store was made where none was asked


def test_a_store_that_cannot_be_found_still_gives_a_mail_saying_so(tmp_path, smtp):
    from rlbridge.plugins.notify.email import read_run

    run = SimpleNamespace(id="r1", config={"store": {"url": f"sqlite:///{tmp_path / 'no.db'}"}},
                          store_url=None)
    data = read_run(run)
    assert data.problem == (f"the store sqlite:///{tmp_path / 'no.db'} does not exist (set "
                            "RLBRIDGE_DB or [store] url to the run's store)")
    assert not (tmp_path / "no.db").exists()  # looking did not create an empty store


# ---------------------------------------------------------------------- which runs
def test_only_the_kinds_in_on_are_mailed(tmp_path, smtp):
    port, inbox = smtp()
    config = config_from_mapping(agent(tmp_path, port), pm=PM)  # on = ["live"], the default
    store = open_store(config.store.url)
    backtest(config, "native", PM, store=store)
    assert inbox.mails == []
    config = config_from_mapping(agent(tmp_path, port, on=["backtest"]), pm=PM)
    live(config, pm=PM, once=True)
    assert inbox.mails == []
    result = backtest(config, "native", PM, store=store)
    (mail,) = inbox.mails
    assert mail.message["Subject"].startswith(f"[rlbridge] backtest run {result.run_id} "
                                              "completed: ")
    # no email_to, or no [notify] at all: nothing
    for notify in ({"email_to": []}, None):
        mapping = agent(tmp_path, port, on=["backtest"])
        if notify is None:
            del mapping["notify"]
        else:
            mapping["notify"].update(notify)
        backtest(config_from_mapping(mapping, pm=PM), "native", PM, store=store)
    assert len(inbox.mails) == 1


# ---------------------------------------------------------------------- [notify] in the config
def test_a_password_in_the_file_is_an_error_that_points_to_the_environment(tmp_path):
    path = tmp_path / "agent.toml"
    for extra, variable in (("", "RLBRIDGE_SMTP_PASSWORD"),
                            ('password_env = "DESK_SMTP_PW"\n', "DESK_SMTP_PW")):
        path.write_text('[notify]\nemail_to = ["pm@example.com"]\nemail_from = "a@example.com"\n'
                        f'smtp_host = "smtp.example.com"\n{extra}password = "{PASSWORD}"\n')
        with pytest.raises(ConfigError) as info:
            load_config(path, PM)
        assert info.value.key == "notify.password"
        assert str(info.value) == (
            f"{path}: [notify.password]: the SMTP password is never written in the config file: "
            f"put it in the environment variable {variable} (its name is [notify] password_env)")


@pytest.mark.parametrize("key, value, message", [
    ("smtp_port", 0, "must be a TCP port, 1 to 65535, got 0"),
    ("smtp_port", 65536, "must be a TCP port, 1 to 65535, got 65536"),
    ("smtp_port", "587", "expected an integer, got '587'"),
    ("smtp_port", 587.0, "expected an integer, got 587.0"),
    ("on", ["live", "bactest"], "unknown run kind 'bactest' (did you mean 'backtest'?); valid "
                                "run kinds: train, backtest, walkforward, live"),
    ("email_to", ["pm@example.com", "risk desk"], "expected an e-mail address, got 'risk desk'"),
    ("password_env", "hunter2 x", "must be the name of an environment variable (letters, digits "
                                  "and _), not the password itself"),
    ("timeout", 0, "must be a positive number of seconds, got 0.0"),
    ("smtp_hots", "x", "unknown key 'smtp_hots' (did you mean 'smtp_host'?)"),
])
def test_bad_notify_values_name_their_key(key, value, message):
    table = {"email_to": ["pm@example.com"], "email_from": "a@example.com",
             "smtp_host": "smtp.example.com", key: value}
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"notify": table}, path="agent.toml", pm=PM)
    index = {"on": "[1]", "email_to": "[1]"}.get(key, "")
    assert info.value.key == f"notify.{key}{index}"
    assert str(info.value).startswith(f"agent.toml: [notify.{key}{index}]: {message}")


def test_recipients_need_a_server_and_a_sender():
    for missing in ("smtp_host", "email_from"):
        table = {"email_to": ["pm@example.com"], "email_from": "a@example.com",
                 "smtp_host": "smtp.example.com"}
        del table[missing]
        with pytest.raises(ConfigError) as info:
            config_from_mapping({"notify": table}, pm=PM)
        assert str(info.value) == f"[notify.{missing}]: needed to send the summary to " \
                                  "pm@example.com"
    assert config_from_mapping({}, pm=PM).notify is None
    assert NotifyConfig() == config_from_mapping({"notify": {}}, pm=PM).notify
    assert (NotifyConfig().smtp_port, NotifyConfig().starttls, NotifyConfig().ssl,
            NotifyConfig().on, NotifyConfig().password_env) == (
        587, True, False, ("live",), "RLBRIDGE_SMTP_PASSWORD")
    assert _RUN_KINDS == KINDS


def test_the_documented_example_loads():
    text = DOC.read_text().split("\n## [notify]\n")[1].split("\n## ")[0]
    (example,) = re.findall(r"```\n(\[notify\]\n.*?)```", text, flags=re.S)
    config = config_from_mapping(tomllib.loads(example), pm=PM)
    assert config.notify.email_to == ("pm@example.com", "risk@example.com")
    assert (config.notify.smtp_user, config.notify.on) == ("rlbridge@example.com", ("live",))

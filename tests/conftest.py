"""Fixtures several test modules share (rlbridge.testing holds the ones for plugin authors)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from rlbridge.manager import make_plugin_manager
from rlbridge.store import open_store


# ---------------------------------------------------------------------- a store per module
# (a module that defines its own ``pm``, ``db`` or ``store`` uses its own)
@pytest.fixture(scope="module")
def pm():
    """A plugin manager with the built-ins only, for the whole module."""
    return make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The URL of a new SQLite store for the whole module."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'runs.db'}"


@pytest.fixture(scope="module")
def store(db):
    """The store at ``db``, open for the whole module."""
    with open_store(db) as s:
        yield s


# ---------------------------------------------------------------------- ib_insync's log

@pytest.fixture
def ib_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Fail on any ib_insync decoder error and on any ib_insync ERROR record the test did not
    declare: a test appends a pattern of each error it expects (a dropped connection...)."""
    caplog.set_level(logging.INFO, logger="ib_insync")
    expected: list[str] = []
    yield expected
    records = caplog.get_records("call")
    decoder = [r.getMessage() for r in records if r.name == "ib_insync.Decoder"]
    assert not decoder, f"ib_insync decoder errors: {decoder}"
    unexpected = [f"{r.name}: {r.getMessage()}" for r in records
                  if r.name.startswith("ib_insync") and r.levelno >= logging.ERROR
                  and not any(re.search(p, r.getMessage()) for p in expected)]
    assert not unexpected, f"unexpected ib_insync errors: {unexpected}"

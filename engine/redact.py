"""Keeping secrets out of the store, reports and error messages.

Broker keys come from the environment, never from config files (DESIGN.md section 7); this
module is the second line of defence for anything written down: a config stored with a run or
model, or an error text.  Keys naming a secret are dropped and passwords in URLs are masked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import StoreError
from .store import mask_url

__all__ = ["SECRET_WORDS", "clean_config", "is_secret_name", "mask_text"]

#: A key whose lower-cased name contains one of these is never written down.
SECRET_WORDS: tuple[str, ...] = (
    "secret", "password", "passwd", "passphrase", "token", "key_id", "api_key", "apikey",
    "private_key", "credential",
)


def is_secret_name(name: object) -> bool:
    """True when the key ``name`` names a secret (see :data:`SECRET_WORDS`).

    A key ending in ``_env`` (``password_env``) holds the name of an environment variable,
    not its value, and is kept.
    """
    lowered = str(name).lower()
    if lowered.endswith("_env"):
        return False
    return any(word in lowered for word in SECRET_WORDS)


def clean_config(config: Mapping[str, Any] | Any) -> dict[str, Any]:
    """``config`` as plain JSON data with no secrets.

    Keys whose lower-cased name contains a word of :data:`SECRET_WORDS` are dropped, at any
    depth (inside lists too); URL values have their password masked and query parameters with
    secret names dropped.  Paths and dates become strings, tuples and sets lists, numpy
    scalars Python numbers; any other object its ``str()``.

    Args:
        config: a mapping, an object with ``to_dict()`` (a loaded
            :class:`~rlbridge.config.Config`) or a dataclass instance; None gives ``{}``.

    Raises:
        StoreError: ``config`` is none of these.
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        if callable(getattr(config, "to_dict", None)):
            config = config.to_dict()
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            config = dataclasses.asdict(config)
        else:
            raise StoreError(f"a config to store must be a mapping, got {type(config).__name__}")
    cleaned: dict[str, Any] = _clean(config)
    return cleaned


def mask_text(text: str) -> str:
    """Free text (an error message) with every ``scheme://user:password@`` password masked."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, (set, frozenset)):
        return [_clean(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _clean_url(value) if "://" in value else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _clean(dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            plain = item()
        except (TypeError, ValueError):
            plain = None
        if isinstance(plain, (bool, int, float, str)):
            return _clean(plain)
    return _clean(str(value))


def _clean_url(text: str) -> str:
    masked = mask_url(text)
    if masked == text:  # mask_url leaves text it cannot read alone: mask any user:password@
        masked = mask_text(text)
    try:
        parts = urlsplit(masked)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return masked
    kept = [(k, v) for k, v in pairs if not is_secret_name(k)]
    if len(kept) == len(pairs):
        return masked
    return urlunsplit(parts._replace(query=urlencode(kept)))

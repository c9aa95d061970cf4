"""The one redaction step: every message the project prints or stores passes through :func:`redact`.

It knows every secret the process holds: the values of the environment variables that carry keys (the ones a
judge or backend is configured with, ``$HF_TOKEN``, ``$OPENAI_API_KEY``, anything named ``*_API_KEY`` /
``*_TOKEN`` / ``*_SECRET`` / ``*PASSWORD``), the Hub token once resolved, and passwords written into URLs
(``https://user:password@host``). Servers echo requests back in their errors, so whatever a server sends (an error
body, even an answer) is redacted before it can reach a file, a log or the terminal.
"""

from __future__ import annotations

import os
import re
import threading

MASK = "***"
_SECRET_ENV = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD|PASSWD)$|^HF_TOKEN$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*):(?P<pw>[^@\s/]+)@", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_MIN_SECRET = 6  # shorter values ("1", "true") are settings, not secrets, and would mask ordinary words

_lock = threading.Lock()
_known: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Add a secret the process holds (a key read from a variable named in params, a resolved Hub token)."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _known.add(value)


def _secrets() -> list[str]:
    from_env = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= _MIN_SECRET}
    with _lock:
        return sorted(_known | from_env, key=len, reverse=True)  # longest first: a secret containing another


def redact(text: object) -> str:
    """``text`` with every known secret, every URL password and every bearer token replaced by ``***``."""
    out = str(text)
    for secret in _secrets():
        if secret in out:
            out = out.replace(secret, MASK)
    out = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", out)
    return _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", out)

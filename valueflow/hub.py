"""Calls to the Hugging Face Hub with a deadline and a bounded retry (the one place for both).

huggingface_hub's own client waits forever on a server that accepts a connection and never answers, and a proxy's
502 or a 429 fails a whole run that one more try would have finished. Publishing (``cards.publish``) and reading a
VIDB panel from the Hub (``evaluate --vidb owner/name``, ``evaluation.anchors``) both go through
:func:`hub_timeout` and :func:`with_retries`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from valueflow.redact import redact

#: the defaults of every Hub call; ``release.*`` params override them for publish, and a run without params (a
#: Hub panel of ``evaluate``) takes ``$VALUEFLOW_HUB_TIMEOUT_S`` / ``$VALUEFLOW_HUB_ATTEMPTS`` (:func:`hub_limits`)
HUB_TIMEOUT_S = 60.0  # seconds without data before a request is given up
HUB_ATTEMPTS = 4  # tries of one call in all
HUB_RETRY_WAIT_S = 2.0  # before the first retry, doubled before each next one

T = TypeVar("T")


def hub_limits() -> tuple[float, int]:
    """``(timeout_s, attempts)`` for a Hub read outside publish: the defaults, or the environment's when set."""
    from valueflow.io import ConfigError

    try:
        timeout_s = float(os.environ.get("VALUEFLOW_HUB_TIMEOUT_S") or HUB_TIMEOUT_S)
        attempts = int(os.environ.get("VALUEFLOW_HUB_ATTEMPTS") or HUB_ATTEMPTS)
    except ValueError as err:
        raise ConfigError(f"$VALUEFLOW_HUB_TIMEOUT_S / $VALUEFLOW_HUB_ATTEMPTS: {err}") from None
    if not (0 < timeout_s < float("inf")) or attempts < 1:
        raise ConfigError(f"$VALUEFLOW_HUB_TIMEOUT_S must be > 0 and $VALUEFLOW_HUB_ATTEMPTS >= 1 "
                          f"(got {timeout_s:g}, {attempts})")
    return timeout_s, attempts


def is_transient(err: BaseException) -> bool:
    """HTTP 408/429/5xx and network failures are worth retrying; 4xx answers (bad request, conflict) are not, nor is
    the Hub's offline mode (``HF_HUB_OFFLINE``: no retry would go online)."""
    chain: list[BaseException] = []
    while err is not None and all(err is not e for e in chain):
        chain.append(err)
        err = err.__cause__ or err.__context__
    if any(type(e).__name__ == "OfflineModeIsEnabled" for e in chain):
        return False
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None:
            return status in (408, 429) or status >= 500
        if type(e).__name__.endswith(("TimeoutException", "NetworkError", "ConnectError", "ReadError", "WriteError",
                                      "RemoteProtocolError", "ConnectTimeout", "ReadTimeout")) or isinstance(e, (ConnectionError, TimeoutError)):
            return True
    return False


def safe_message(err: BaseException) -> str:
    """The error's text on one line, redacted (``valueflow.redact`` knows the token: a server may echo it)."""
    msg = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip()) or type(err).__name__
    msg = msg if len(msg) <= 800 else msg[:800] + "..."
    return f"{type(err).__name__}: {redact(msg)}"


def with_retries(what: str, fn: Callable[[], T], attempts: int, wait_s: float = HUB_RETRY_WAIT_S, *,
                 error: type[Exception], sleep: Callable[[float], object] = time.sleep) -> T:
    """``fn()``, tried up to ``attempts`` times while it fails transiently (:func:`is_transient`), with a doubling
    wait between tries and a ``warning:`` line for each retry. Any other failure, or the last one, is raised as
    ``error("<what> failed after N attempt(s): <reason>")``; an ``error`` raised by ``fn`` itself passes as is."""
    from valueflow.io import warn

    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (error, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - classified below; anything not transient is re-raised
            if not is_transient(err) or attempt == attempts:
                raise error(f"{what} failed after {attempt} attempt(s): {safe_message(err)}") from None
            warn(f"{what}: transient error ({safe_message(err)}); retry {attempt}/{attempts - 1}")
            sleep(wait_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def hub_timeout(timeout_s: float) -> Iterator[None]:
    """Every Hub request of the block gives up after ``timeout_s`` seconds without data: huggingface_hub's own
    client waits forever, and where it sets a timeout itself (a download's metadata: 60 s, five retries) that is
    capped too. With :func:`with_retries` every call is bounded."""
    import huggingface_hub
    from huggingface_hub.utils import _http

    def cap(request) -> None:  # a request hook runs just before the request is sent, when its timeouts still count
        asked = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {kind: min(asked.get(kind) or timeout_s, timeout_s)
                                         for kind in ("connect", "read", "write", "pool")}

    def factory():
        client = _http.default_client_factory()
        client.timeout = timeout_s
        client.event_hooks["request"].append(cap)
        return client

    huggingface_hub.set_client_factory(factory)
    try:
        yield
    finally:
        huggingface_hub.set_client_factory(_http.default_client_factory)

"""What every OpenAI-compatible ``/chat/completions`` client here shares: which failures are worth retrying, how
long to wait (the server's ``Retry-After`` first, else exponential backoff with full jitter), and how to read a reply.

Used by the chat judge (``valueflow.judges.chat``, synchronous) and the steering backend
(``evaluation.backends``, asynchronous): one policy, so a rate-limited server is treated alike by both.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time

# 408 timeout, 409 conflict, 425 too early, 429 rate limited, 5xx overloaded or restarting
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TransientError(RuntimeError):
    """A failure worth retrying; ``retry_after`` is the server's requested wait in seconds, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(RuntimeError):
    """A failure that retrying cannot fix (401, 404, 400: wrong model name, bad key, prompt too long)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_chat_completion(body: bytes | str) -> tuple[str, str | None]:
    """(content, finish_reason) of a chat-completion body; :class:`TransientError` when it is not one.

    A malformed body (truncated JSON, an HTML error page with status 200, no ``choices``) is treated as transient:
    proxies and overloaded servers produce them, and a retry usually gets a proper answer.
    """
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as err:
        raise TransientError(f"malformed response body (not JSON: {err})") from None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise TransientError(f"malformed response body (no choices[0].message.content): {str(body)[:200]!r}") from None
    if not isinstance(content, str):
        raise TransientError(f"malformed response body (content is {type(content).__name__}, not text)")
    return content, choice.get("finish_reason")


def read_response(resp) -> tuple[str, str | None]:
    """(content, finish_reason) of an ``httpx`` response, or the error that says whether to retry it."""
    if resp.status_code in RETRY_STATUSES:
        raise TransientError(f"HTTP {resp.status_code}: {resp.text[:200]!r}",
                             parse_retry_after(resp.headers.get("retry-after")))
    if resp.status_code >= 400:
        raise PermanentError(f"HTTP {resp.status_code}: {resp.text[:300]!r}")
    return parse_chat_completion(resp.content)


def retry_delay(attempt: int, error: TransientError, backoff_s: float, max_backoff_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the server's ``Retry-After`` when it sent one,
    else full-jitter exponential backoff (uniform in [0, backoff_s * 2^(attempt-1)]); never above ``max_backoff_s``."""
    wait = error.retry_after
    if wait is None:
        wait = rng.uniform(0, min(max_backoff_s, backoff_s * 2 ** (attempt - 1)))
    return min(wait, max_backoff_s)


# --------------------------------------------------------------------------------------------------------------
# which key goes where

#: the only host that gets ``$OPENAI_API_KEY`` without being told to: the key's own issuer
OPENAI_HOST = "api.openai.com"


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_api_key(base_url: str, api_key_env: str | None, *, allow_insecure_http: bool = False,
                     where: str = "") -> str | None:
    """The bearer token for ``base_url``, or None: a key goes only to the endpoint it is configured for.

    ``api_key_env`` names the environment variable holding the key for *this* endpoint. Left unset, only OpenAI's
    own API gets ``$OPENAI_API_KEY``: a key a user exported for OpenAI must not leak to whatever local or
    third-party server a judge or backend is pointed at. A key is never sent over plain http to a host other
    than this machine (anyone on the path could read it) unless ``allow_insecure_http`` says so explicitly.
    The key itself is only ever returned, never stored in params, caches, results or logs.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if api_key_env is None:
        if host.lower() != OPENAI_HOST:
            return None
        api_key_env = "OPENAI_API_KEY"
    key = os.environ.get(api_key_env) or None
    if key and parts.scheme != "https" and not is_loopback_host(host) and not allow_insecure_http:
        prefix = f"{where}: " if where else ""
        from valueflow.io import ConfigError

        raise ConfigError(f"{prefix}refusing to send ${api_key_env} over plain {parts.scheme or 'http'} to {host or base_url}; "
                         "use https, or set allow_insecure_http: true for this endpoint if the network is trusted")
    return key

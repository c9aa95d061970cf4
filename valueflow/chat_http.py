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

from valueflow.redact import redact, remember_secret

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
    proxies and overloaded servers produce them, and a retry usually gets a proper answer. Everything taken from the
    body (the answer, the excerpt in an error) is redacted: a server may echo the request's key back.
    """
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as err:
        raise TransientError(f"malformed response body (not JSON: {err})") from None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise TransientError(f"malformed response body (no choices[0].message.content): {_excerpt(body)}") from None
    if not isinstance(content, str):
        raise TransientError(f"malformed response body (content is {type(content).__name__}, not text)")
    finish = choice.get("finish_reason")
    return redact(content), None if finish is None else redact(finish)


def _excerpt(body: bytes | str, n: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return repr(redact(text[:n]))


def read_response(status: int, body: bytes, retry_after: str | None = None) -> tuple[str, str | None]:
    """(content, finish_reason) of an answer, or the error that says whether to retry it."""
    if status in RETRY_STATUSES:
        raise TransientError(f"HTTP {status}: {_excerpt(body)}", parse_retry_after(retry_after))
    if status >= 400:
        raise PermanentError(f"HTTP {status}: {_excerpt(body, 300)}")
    return parse_chat_completion(body)


#: the default cap on one answer's body: a chat completion of a few hundred tokens is a few kB; anything near
#: megabytes is a broken or hostile server, refused before it is parsed, cached or sent back on a re-ask
DEFAULT_MAX_ANSWER_BYTES = 4_000_000


class AnswerTooLarge(PermanentError):
    """An answer above the size cap: refused unread (retrying would only fetch another one)."""


def run_blocking(coro):
    """Run ``coro`` to its end from synchronous code, also where this thread already runs an event loop (a
    notebook): then in a worker thread of its own, since ``asyncio.run`` refuses a running loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, coro).result()


async def post_chat(base_url: str, payload: dict, *, headers: dict[str, str], deadline_s: float, max_bytes: int,
                    client=None) -> tuple[str, str | None]:
    """POST one ``/chat/completions`` request with ONE deadline from connect to last byte; (content, finish_reason).

    Used by the chat judge and the steering backend alike. ``httpx``'s own timeouts bound each read, so a server
    that trickles a byte a second would never time out; the whole exchange therefore runs under
    ``asyncio.timeout``. The body is streamed and refused (:class:`AnswerTooLarge`) as soon as it passes
    ``max_bytes``, so a 50 MB answer never sits in memory. ``client``: an ``httpx.AsyncClient`` to reuse (else
    one for this request).
    """
    import asyncio

    import httpx

    async def exchange(c) -> tuple[int, bytes, str | None]:
        async with c.stream("POST", f"{base_url.rstrip('/')}/chat/completions", json=payload, headers=headers) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise AnswerTooLarge(f"answer of {int(declared):,} bytes refused (max_answer_bytes {max_bytes:,})")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise AnswerTooLarge(f"answer of more than {max_bytes:,} bytes refused (max_answer_bytes)")
                chunks.append(chunk)
            return resp.status_code, b"".join(chunks), resp.headers.get("retry-after")

    try:
        async with asyncio.timeout(deadline_s):
            if client is not None:
                status, body, retry_after = await exchange(client)
            else:  # no redirects: a 30x must not carry the key to another host
                async with httpx.AsyncClient(timeout=deadline_s, follow_redirects=False) as own:
                    status, body, retry_after = await exchange(own)
    except (TimeoutError, httpx.TimeoutException):
        raise TransientError(f"timeout: no complete answer within {deadline_s:g} s") from None
    except httpx.TransportError as err:
        raise TransientError(f"transport error: {type(err).__name__}") from None
    return read_response(status, body, retry_after)


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


def check_secret_transport(url: str, secret: str, *, allow_insecure_http: bool = False, where: str = "") -> None:
    """Refuse to send ``secret`` (named for the message) over plain http to a host other than this machine.

    Anyone on the path could read it. The one rule for every client that sends a credential: the chat judge, the
    steering backend and ``publish``'s Hub token. ``allow_insecure_http`` is the explicit opt-in for a trusted
    network.
    """
    from urllib.parse import urlsplit

    from valueflow.io import ConfigError

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" and not is_loopback_host(host) and not allow_insecure_http:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}refusing to send {secret} over plain {parts.scheme or 'http'} to {host or redact(url)}; "
                          "use https, or set allow_insecure_http: true for this endpoint if the network is trusted")


def endpoint_api_key(base_url: str, api_key_env: str | None, *, allow_insecure_http: bool = False,
                     where: str = "") -> str | None:
    """The bearer token for ``base_url``, or None: a key goes only to the endpoint it is configured for.

    ``api_key_env`` names the environment variable holding the key for *this* endpoint. Left unset, only OpenAI's
    own API gets ``$OPENAI_API_KEY``: a key a user exported for OpenAI must not leak to whatever local or
    third-party server a judge or backend is pointed at. A key is never sent over plain http to a host other
    than this machine (:func:`check_secret_transport`). The key itself is only ever returned (and remembered by
    the redaction step), never stored in params, caches, results or logs.
    """
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or ""
    if api_key_env is None:
        if host.lower() != OPENAI_HOST:
            return None
        api_key_env = "OPENAI_API_KEY"
    key = os.environ.get(api_key_env) or None
    if key:
        remember_secret(key)
        check_secret_transport(base_url, f"${api_key_env}", allow_insecure_http=allow_insecure_http, where=where)
    return key

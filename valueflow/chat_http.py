"""What every OpenAI-compatible ``/chat/completions`` client here shares: which failures are worth retrying, how
long to wait (the server's ``Retry-After`` first, else exponential backoff with full jitter), and how to read a reply.

Used by the chat judge (``valueflow.judges.chat``) and the steering backend (``evaluation.backends``), both from
threads: one transport and one policy, so a rate-limited or stalling server is treated alike by both.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import heapq
import itertools
import json
import os
import queue
import random
import socket
import threading
import time
from urllib.parse import unquote, urlsplit

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


@functools.cache
def tls_context():
    """One TLS context per process, as httpx builds one by default (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else
    certifi): building one loads the whole CA bundle, about 20 ms of CPU."""
    import httpx

    return httpx.create_ssl_context()


class _Deadline:
    """One request's deadline: the socket to shut when it passes, and whether it did."""

    __slots__ = ("done", "fired", "sock")

    def __init__(self) -> None:
        self.sock, self.fired, self.done = None, False, False


class _Watchdog:
    """One thread per process that shuts the socket of a request past its deadline.

    A socket timeout bounds each read, not their sum: a server that trickles a byte a second would hold a blocking
    read forever. Shutting the socket down ends any read at once, so every request has one deadline from connect
    to last byte. Finished requests are dropped when they reach the top of the heap."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list = []
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, when: float):
        """Guard a request until ``when`` (monotonic); give its socket to :meth:`guard` once connected."""
        deadline = _Deadline()
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chat-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._cond.notify()
        try:
            yield deadline
        finally:
            with self._cond:  # under the lock: after this, ``fired`` is final (a kept connection is never shut)
                deadline.done = True

    def guard(self, deadline: _Deadline, sock) -> None:
        """The request's socket (http.client hands it to the response when the server closes after answering)."""
        with self._cond:
            deadline.sock = sock
            fired = deadline.fired
        if fired:
            _shut(sock)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._cond.wait(wait)
                    continue
                deadline = heapq.heappop(self._heap)[2]
                deadline.fired = True
                sock = deadline.sock
            if sock is not None:
                _shut(sock)


def _shut(sock) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


def _close(conn, resp) -> None:
    """Close a connection and its response (http.client hands the socket to a response the server will close)."""
    if resp is not None:
        resp.close()
    conn.close()


def _connection(url, timeout: float):
    """A connection to ``url``'s server: direct, or through the proxy the environment names for it."""
    import http.client
    import urllib.request

    https = url.scheme == "https"
    port = url.port or (443 if https else 80)
    proxy = None if urllib.request.proxy_bypass(url.hostname) else urllib.request.getproxies().get(url.scheme)
    if proxy:
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        conn = (http.client.HTTPSConnection(p.hostname, p.port or 443, timeout=timeout, context=tls_context())
                if p.scheme == "https" else http.client.HTTPConnection(p.hostname, p.port or 80, timeout=timeout))
        conn.set_tunnel(url.hostname, port)
        return conn
    if https:
        return http.client.HTTPSConnection(url.hostname, port, timeout=timeout, context=tls_context())
    return http.client.HTTPConnection(url.hostname, port, timeout=timeout)


def post_chat(base_url: str, payload: dict, *, headers: dict[str, str], deadline_s: float, max_bytes: int,
              connections: dict | None = None) -> tuple[str, str | None]:
    """POST one ``/chat/completions`` request with ONE deadline from connect to last byte; (content, finish_reason).

    Used by the chat judge and the steering backend alike, from as many threads as requests in flight. The
    standard library's client: at a thousand requests a second its cost per request (0.1 ms of CPU here) is a
    fifth of an async httpx client's, and the deadline is kept by :class:`_Watchdog`. The body is read in pieces
    and refused (:class:`AnswerTooLarge`) as soon as it passes ``max_bytes``, so a 50 MB answer never sits in
    memory. Redirects are never followed: a 30x must not carry the key to another host. ``connections``: kept-alive
    connections by server, for this thread's use only (see :class:`ChatSessions`); else one for this request.
    """
    import http.client

    url = urlsplit(f"{base_url.rstrip('/')}/chat/completions")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise PermanentError(f"not an http(s) endpoint: {redact(base_url)}")
    path = url.path + (f"?{url.query}" if url.query else "")
    send = {"Content-Type": "application/json", "Accept": "application/json", **headers}
    if url.username is not None and "Authorization" not in send:  # https://user:password@host, as httpx sends it
        pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        send["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    body = json.dumps(payload).encode()
    key = (url.scheme, url.hostname, url.port)
    pool = connections if connections is not None else {}
    deadline = time.monotonic() + deadline_s
    while True:  # a kept-alive connection the server has closed meanwhile is replaced (once: it left the pool)
        conn = pool.pop(key, None)
        reused = conn is not None
        remaining = max(deadline - time.monotonic(), 0.001)
        if conn is None:
            conn = _connection(url, remaining)
        else:
            conn.timeout = remaining
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
        entry = resp = None
        try:
            with _WATCHDOG.watch(deadline) as entry:
                conn.request("POST", path, body=body, headers=send)  # connects: bounded by the socket timeout
                _WATCHDOG.guard(entry, conn.sock)
                resp = conn.getresponse()
                declared = resp.getheader("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise AnswerTooLarge(f"answer of {int(declared):,} bytes refused (max_answer_bytes {max_bytes:,})")
                chunks, size = [], 0
                while chunk := resp.read(65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise AnswerTooLarge(f"answer of more than {max_bytes:,} bytes refused (max_answer_bytes)")
                    chunks.append(chunk)
        except AnswerTooLarge:
            _close(conn, resp)
            raise
        except (OSError, http.client.HTTPException) as err:
            _close(conn, resp)
            if entry is not None and entry.fired or time.monotonic() >= deadline or isinstance(err, TimeoutError):
                raise TransientError(f"timeout: no complete answer within {deadline_s:g} s") from None
            if reused and isinstance(err, (http.client.RemoteDisconnected, ConnectionError)):
                continue
            raise TransientError(f"transport error: {type(err).__name__}") from None
        if entry.fired:  # the watchdog shut the socket: what was read may be cut short
            _close(conn, resp)
            raise TransientError(f"timeout: no complete answer within {deadline_s:g} s")
        if resp.will_close or connections is None:
            conn.close()
        else:
            pool[key] = conn
        return read_response(resp.status, b"".join(chunks), resp.getheader("retry-after"))


class ChatSessions:
    """Kept-alive connections for blocking :func:`post_chat` calls, lent to one call at a time.

    A judge asks thousands of questions from a few threads; a TCP (and TLS) connection per question would cost more
    than the question against a fast server. A set of connections (one per server) is used by one thread at a
    time, not always the same one; there are as many sets as calls that ever ran at once."""

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue = queue.SimpleQueue()

    def post(self, base_url: str, payload: dict, **options) -> tuple[str, str | None]:
        try:
            connections = self._idle.get_nowait()
        except queue.Empty:
            connections = {}
        try:
            return post_chat(base_url, payload, connections=connections, **options)
        finally:
            self._idle.put(connections)

    def close(self) -> None:
        while True:
            try:
                connections = self._idle.get_nowait()
            except queue.Empty:
                return
            for conn in connections.values():
                conn.close()


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

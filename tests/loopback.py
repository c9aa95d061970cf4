"""The one loopback OpenAI-compatible chat server of the tests (``/v1/chat/completions`` on 127.0.0.1).

What the server answers is the test's business: ``respond(body, attempt)`` gets the request body and how often
this exact message list was asked before (1 on the first time) and returns a :class:`Reply`. The server records
every request (:attr:`requests`: body, Authorization header, arrival time) and every reply (:attr:`log`: phase,
prompt key, status, whether it was a proper answer). ``gate_after`` holds every request after that many proper
answers until :meth:`release` (a test kills a client mid-run there).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One answer: a chat completion with ``content``, or a raw ``body`` (errors, malformed JSON)."""

    status: int = 200
    content: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow server; longer than a client's timeout)


def prompt_key(messages: list[dict]) -> str:
    return hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]


def completion(content: str, model: str = "m") -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()


class LoopbackChatServer:
    """Start with ``with LoopbackChatServer(respond) as server:`` (or :meth:`start`/:meth:`close`)."""

    def __init__(self, respond: Callable[[dict, int], Reply], gate_after: int | None = None) -> None:
        self.respond = respond
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.log: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.successes = 0
        self.phase = 1
        self.gate_after = gate_after
        self.gate = threading.Event()
        self.blocked = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                key = prompt_key(body.get("messages", []))
                with server.lock:
                    server.requests.append({"body": body, "auth": self.headers.get("Authorization"), "at": time.monotonic()})
                    phase = server.phase
                    attempt = server.attempts[key] = server.attempts.get(key, 0) + 1
                    hold = server.gate_after is not None and server.successes >= server.gate_after
                    if hold:
                        server.blocked += 1
                if hold:
                    server.gate.wait(30)
                reply = server.respond(body, attempt)
                if reply.delay:
                    time.sleep(reply.delay)
                ok = reply.status == 200 and reply.content is not None
                data = completion(reply.content, body.get("model", "m")) if reply.content is not None else (reply.body or b"")
                with server.lock:
                    server.successes += ok
                    server.log.append({"phase": phase, "key": key, "status": reply.status, "ok": ok})
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) or was killed
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def release(self) -> None:
        self.gate_after = None
        self.gate.set()

    def answered(self, phase: int | None = None) -> list[str]:
        """Prompt keys that got a proper answer (in ``phase``)."""
        with self.lock:
            return [e["key"] for e in self.log if e["ok"] and (phase is None or e["phase"] == phase)]

    def statuses(self, key: str) -> list[int]:
        with self.lock:
            return [e["status"] for e in self.log if e["key"] == key]

    def start(self) -> LoopbackChatServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LoopbackChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A loopback OpenAI-compatible chat server for the steering tests, with scripted failures.

Behaviour per prompt (the user message decides): a query containing ``REFUSE`` is refused; ``FLAKY500`` gets one
HTTP 500 first; ``MALFORMED`` gets one 200 with a body that is not JSON first; ``RATELIMIT`` gets one 429 with
``Retry-After: 0`` first. Every other answer is a deterministic function of the messages, so two runs can be
compared row by row. ``gate_after`` holds every request after that many successful answers until ``release()``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REFUSAL = "I'm sorry, but I can't help with that request."


def expected_answer(messages: list[dict]) -> str:
    key = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:10]
    return f"Here is a considered answer ({key}): talk it through honestly and decide together."


def prompt_key(messages: list[dict]) -> str:
    return hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]


class LoopbackChatServer:
    def __init__(self, gate_after: int | None = None) -> None:
        self.lock = threading.Lock()
        self.log: list[dict] = []  # one entry per request: phase, key, status
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
                messages = body["messages"]
                key = prompt_key(messages)
                user = messages[-1]["content"]
                with server.lock:
                    phase = server.phase
                    n = server.attempts[key] = server.attempts.get(key, 0) + 1
                    hold = server.gate_after is not None and server.successes >= server.gate_after
                    if hold:
                        server.blocked += 1
                if hold:
                    server.gate.wait(30)
                if "FLAKY500" in user and n == 1:
                    return self._send(500, b'{"error": "internal"}', key, phase)
                if "MALFORMED" in user and n == 1:
                    return self._send(200, b'{"choices": [{"message": ', key, phase)
                if "RATELIMIT" in user and n == 1:
                    return self._send(429, b'{"error": "slow down"}', key, phase, {"Retry-After": "0"})
                content = REFUSAL if "REFUSE" in user else expected_answer(messages)
                payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
                with server.lock:
                    server.successes += 1
                self._send(200, json.dumps(payload).encode(), key, phase, ok=True)

            def _send(self, status: int, data: bytes, key: str, phase: int, headers: dict | None = None, ok: bool = False) -> None:
                with server.lock:
                    server.log.append({"phase": phase, "key": key, "status": status, "ok": ok})
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed
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
        with self.lock:
            return [e["key"] for e in self.log if e["ok"] and (phase is None or e["phase"] == phase)]

    def statuses(self, key: str) -> list[int]:
        with self.lock:
            return [e["status"] for e in self.log if e["key"] == key]

    def __enter__(self) -> LoopbackChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

"""The steering tests' answers for the shared loopback server (:mod:`tests.loopback`), with scripted failures.

Behaviour per prompt (the user message decides): a query containing ``REFUSE`` is refused; ``FLAKY500`` gets one
HTTP 500 first; ``MALFORMED`` gets one 200 with a body that is not JSON first; ``RATELIMIT`` gets one 429 with
``Retry-After: 0`` first. Every other answer is a deterministic function of the messages, so two runs can be
compared row by row.
"""

from __future__ import annotations

import hashlib
import json

from tests.loopback import LoopbackChatServer, Reply, prompt_key

REFUSAL = "I'm sorry, but I can't help with that request."

__all__ = ["REFUSAL", "expected_answer", "prompt_key", "steering_server"]


def expected_answer(messages: list[dict]) -> str:
    key = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:10]
    return f"Here is a considered answer ({key}): talk it through honestly and decide together."


def steering_reply(body: dict, attempt: int) -> Reply:
    messages = body["messages"]
    user = messages[-1]["content"]
    if "FLAKY500" in user and attempt == 1:
        return Reply(500, body=b'{"error": "internal"}')
    if "MALFORMED" in user and attempt == 1:
        return Reply(200, body=b'{"choices": [{"message": ')
    if "RATELIMIT" in user and attempt == 1:
        return Reply(429, body=b'{"error": "slow down"}', headers={"Retry-After": "0"})
    return Reply(content=REFUSAL if "REFUSE" in user else expected_answer(messages))


def steering_server(gate_after: int | None = None) -> LoopbackChatServer:
    return LoopbackChatServer(steering_reply, gate_after=gate_after)

"""The chat judge against a loopback OpenAI-compatible server started by the test (no network)."""

from __future__ import annotations

import re

import pytest

from tests.loopback import LoopbackChatServer, Reply
from valueflow.judges import make_judge
from valueflow.judges.chat import MalformedAnswer, parse_permutation, parse_rating

TEXTS = ["alpha text", "beta text", "gamma text", "delta text"]
# the "true" order the fake model knows: by this score, highest first
SCORE = {"alpha text": 1.0, "beta text": 4.0, "gamma text": -2.0, "delta text": 0.5}


class FakeServer(LoopbackChatServer):
    """The shared loopback server, its behaviour per request scripted by the test."""

    def __init__(self) -> None:
        self.script: list[str] = []  # per request: "ok", "500", "429", "404", "slow", "garbage", "rate:<x>"
        super().__init__(self.reply)

    @property
    def url(self) -> str:
        return self.base_url

    def reply(self, body: dict, attempt: int) -> Reply:
        action = self.script.pop(0) if self.script else "ok"
        if action in ("500", "429", "404"):
            return Reply(int(action), body=b"boom", headers={"Retry-After": "1"} if action == "429" else {})
        return Reply(content=self.answer(body, action), delay=1.0 if action == "slow" else 0.0)

    @staticmethod
    def answer(body: dict, action: str) -> str:
        if action == "garbage":
            return "I think the second one is the kindest."
        if action.startswith("rate:"):
            return action[5:]
        prompt = body["messages"][0]["content"]
        shown = re.findall(r"^\[(\d+)\] (.*)$", prompt, flags=re.MULTILINE)
        ranked = sorted(shown, key=lambda item: -SCORE.get(item[1], 0.0))
        return "[" + ", ".join(n for n, _ in ranked) + "]"


@pytest.fixture()
def server():
    with FakeServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _endpoint_key(monkeypatch):
    monkeypatch.setenv("VF_TEST_KEY", "k-test")


def _judge(server: FakeServer, tmp_path, **kw):
    opts = dict(cache_dir=tmp_path / "cache", backoff=0.01, max_retries=2, timeout=5.0, concurrency=2, api_key_env="VF_TEST_KEY")
    opts.update(kw)
    return make_judge(f"chat:fake-model@{server.url}", **opts)


def test_ranks_with_shuffled_presentation_and_maps_back(server, tmp_path):
    judge = _judge(server, tmp_path)
    answers = judge.rank_windows("benevolence", [TEXTS, TEXTS[::-1]])
    assert [a.error for a in answers] == [None, None]
    for window, answer in zip([TEXTS, TEXTS[::-1]], answers):
        assert [window[i] for i in answer.order] == ["beta text", "alpha text", "delta text", "gamma text"]
    prompt = server.requests[0]["body"]["messages"][0]["content"]
    assert "Schwartz's theory of basic human values" in prompt and "Value Label: benevolence" in prompt
    assert server.requests[0]["auth"] == "Bearer k-test"
    assert server.requests[0]["body"]["model"] == "fake-model"


def test_malformed_answer_is_re_asked(server, tmp_path):
    server.script = ["garbage", "ok"]
    judge = _judge(server, tmp_path, concurrency=1)
    (answer,) = judge.rank_windows("benevolence", [TEXTS])
    assert answer.error is None and answer.order is not None
    assert len(server.requests) == 2
    follow_up = server.requests[1]["body"]["messages"]
    assert follow_up[1]["role"] == "assistant" and "permutation" not in follow_up[0]["content"]
    assert "Your answer" in follow_up[2]["content"]
    assert judge.stats["reasks"] == 1


def test_gives_up_after_re_asks_without_guessing(server, tmp_path):
    server.script = ["garbage"] * 3
    judge = _judge(server, tmp_path, concurrency=1, reasks=2)
    (answer,) = judge.rank_windows("benevolence", [TEXTS])
    assert answer.order is None and "malformed" in answer.error


def test_server_error_is_retried(server, tmp_path):
    server.script = ["500", "500", "ok"]
    judge = _judge(server, tmp_path, concurrency=1)
    (answer,) = judge.rank_windows("care-harm", [TEXTS])
    assert answer.order is not None
    assert len(server.requests) == 3 and judge.stats["retries"] == 2


def test_rate_limit_waits_as_the_server_asks(server, tmp_path):
    server.script = ["429", "ok"]
    judge = _judge(server, tmp_path, concurrency=1)  # its own backoff is 0.01 s: the Retry-After of 1 s must win
    (answer,) = judge.rank_windows("care-harm", [TEXTS])
    assert answer.order is not None
    assert server.requests[1]["at"] - server.requests[0]["at"] >= 0.9


def test_client_error_is_not_retried(server, tmp_path):
    server.script = ["404"]
    judge = _judge(server, tmp_path, concurrency=1)
    (answer,) = judge.rank_windows("care-harm", [TEXTS])
    assert answer.order is None and "HTTP 404" in answer.error
    assert len(server.requests) == 1 and judge.stats["retries"] == 0


def test_timeout_reports_an_error(server, tmp_path):
    server.script = ["slow"] * 3
    judge = _judge(server, tmp_path, concurrency=1, timeout=0.2, max_retries=1)
    (answer,) = judge.rank_windows("care-harm", [TEXTS])
    assert answer.order is None and "timeout" in answer.error


def test_cache_hit_avoids_a_second_call(server, tmp_path):
    first = _judge(server, tmp_path).rank_windows("justice", [TEXTS])
    n = len(server.requests)
    again = _judge(server, tmp_path)  # a new process would build a new judge: the cache is on disk
    second = again.rank_windows("justice", [TEXTS])
    assert len(server.requests) == n == 1
    assert second[0].order == first[0].order and again.stats["cache_hits"] == 1


def test_rate_parses_one_number_and_re_asks(server, tmp_path):
    server.script = ["rate:maybe 3 or 4", "rate:7.5", "rate:-12", "rate:-2"]
    judge = _judge(server, tmp_path, concurrency=1)
    assert judge.rate("benevolence", ["a text"]) == [7.5]
    assert judge.rate("benevolence", ["another text"]) == [-2.0]
    assert "-10" in server.requests[0]["body"]["messages"][0]["content"]


def test_parsers_are_strict():
    assert parse_permutation(" [2, 1, 3] ", 3) == (1, 0, 2)
    for bad in ("[1, 2]", "[1, 1, 2]", "[1, 2, 3] or [3, 2, 1]", "1, 2, 3", "[1, 2, x]", "[0, 1, 2]"):
        with pytest.raises(MalformedAnswer):
            parse_permutation(bad, 3)
    assert parse_rating("-3.5") == -3.5
    for bad in ("", "11", "3 or 4"):
        with pytest.raises(MalformedAnswer):
            parse_rating(bad)


def test_a_kept_connection_the_server_dropped_is_replaced_without_asking_twice(tmp_path):
    """The judge keeps its connection open between questions; a server that closes it after an answer (as servers
    do with idle keep-alive connections) costs a reconnect, not an error, and no question reaches it twice."""
    import socket
    import threading

    from tests.loopback import completion

    listener = socket.create_server(("127.0.0.1", 0))
    answered: list[int] = []
    connections = 0

    def serve() -> None:
        nonlocal connections
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections += 1
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                head, body = head.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                answered.append(len(answered))
                reply = completion("[1, 2, 3, 4]")  # HTTP/1.1, no "Connection: close": the client may keep it
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(reply) + reply)
                conn.shutdown(socket.SHUT_RDWR)  # ... and then the server drops it anyway

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        judge = make_judge(f"chat:fake-model@{url}", cache_dir=None, max_retries=0, concurrency=1)
        answers = judge.rank_windows("benevolence", [TEXTS, TEXTS[::-1], TEXTS[1:] + TEXTS[:1]])
        judge.close()
    finally:
        listener.close()
    assert all(a.order is not None for a in answers), [a.error for a in answers]
    assert len(answered) == 3 and connections == 3  # one answer per question, a fresh connection after each drop

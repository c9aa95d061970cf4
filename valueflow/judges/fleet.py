"""One chat judge served by several OpenAI-compatible endpoints (a vLLM fleet, one server per GPU node).

``judge_options: {"chat:<model>": {"base_url": [url1, url2, ...], "concurrency": 16}}`` builds a
:class:`ChatFleet`: one :class:`~valueflow.judges.chat.ChatJudge` per endpoint (each with its own connection pool
and key, ``valueflow.chat_http.endpoint_api_key``), ``concurrency`` windows in flight *per endpoint*, all pulling
from one queue of windows, so a faster server simply answers more of them.

An endpoint that gives up on a request after its retries (connection refused, timeouts, 5xx: the member's
``complete`` raises ``ConnectionError``) is drained: its workers stop taking windows, and the window it failed, as
well as any other it had in flight that fails, goes back to the queue for the endpoints still up. A window a server
answered is never asked again, and each window gets exactly one answer (``rank_windows`` keeps one slot per
window), so the collect stage's resumable store stays exact when a server dies mid-run. A drained endpoint is tried
again after ``revive_after`` seconds (a restarted server rejoins); when every endpoint is down, the remaining
windows are reported as failed (not stored: the next run asks them again), never guessed.

The endpoints must serve the same model and weights: a fleet's answers are keyed by model and sampling settings,
not by endpoint (``answer_settings``), so adding or removing a server re-asks nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Annotated

from pydantic import Field

from valueflow.judges.base import Judge, JudgeAnswer
from valueflow.judges.chat import ChatJudge


def fleet_settings(base_url: list[str], revive_after: Annotated[float, Field(gt=0)] = 60.0) -> None:
    """The options a fleet adds to its endpoints' (the signature ``ChatJudge.checked_options`` checks them by)."""


class _Endpoint(ChatJudge):
    """One endpoint of a fleet: remembers when it gave up on a request (its server is gone), so the fleet drains it."""

    down_since: float | None = None

    def complete(self, messages: list[dict]) -> str:
        try:
            return super().complete(messages)
        except ConnectionError:
            if self.down_since is None:
                self.down_since = time.monotonic()
            raise


class ChatFleet(Judge):
    """A chat judge whose windows are spread across several endpoints serving one model.

    Args:
        model: the served model name (the same on every endpoint).
        base_url: the endpoints' API roots (two or more).
        concurrency: windows in flight per endpoint.
        revive_after: seconds before a drained endpoint is tried again.
        **options: every other :class:`ChatJudge` option, the same for all endpoints.
    """

    transport_options = ChatJudge.transport_options | {"base_url", "revive_after"}

    def __init__(self, model: str, base_url: Sequence[str], concurrency: int = 4, revive_after: float = 60.0,
                 **options: object) -> None:
        urls = [str(u).rstrip("/") for u in base_url]
        if len(urls) < 1 or len(set(urls)) != len(urls):
            raise ValueError(f"chat:{model}: base_url needs distinct endpoints, got {list(base_url)}")
        self.endpoints = [_Endpoint(model, base_url=u, concurrency=concurrency, **options) for u in urls]
        self.name = self.endpoints[0].name
        self.concurrency = max(1, int(concurrency))
        self.revive_after = float(revive_after)

    def answer_settings(self) -> dict:
        settings = dict(self.endpoints[0].answer_settings())
        settings.pop("base_url", None)  # one model behind every endpoint: where it ran does not change the answer
        return settings

    @property
    def stats(self) -> dict:
        """Request counters summed over the endpoints, and which endpoints are drained."""
        total: dict = {}
        for e in self.endpoints:
            for key, n in e.stats.items():
                total[key] = total.get(key, 0) + n
        total["down"] = [e.base_url for e in self.endpoints if e.down_since is not None]
        return total

    def _live(self) -> list[_Endpoint]:
        now = time.monotonic()
        for e in self.endpoints:
            if e.down_since is not None and now - e.down_since >= self.revive_after:
                e.down_since = None
        return [e for e in self.endpoints if e.down_since is None]

    def _dispatch(self, items: Sequence, ask: Callable[[_Endpoint, object], object], failed: Callable[[object], bool],
                  gave_up: Callable[[str], object]) -> list:
        """``ask(endpoint, item)`` for every item, ``concurrency`` at a time per live endpoint; an item whose
        endpoint went down while asking goes back to the queue. Exactly one result per item, in order."""
        results: list = [None] * len(items)
        done = [False] * len(items)
        pending = deque(range(len(items)))
        cond = threading.Condition()
        in_flight = 0

        def worker(endpoint: _Endpoint) -> None:
            nonlocal in_flight
            while True:
                with cond:
                    while not pending and in_flight and endpoint.down_since is None:
                        cond.wait()  # a window in flight elsewhere may come back if its endpoint dies
                    if not pending or endpoint.down_since is not None:
                        return
                    i = pending.popleft()
                    in_flight += 1
                result = ask(endpoint, items[i])
                with cond:
                    in_flight -= 1
                    if failed(result) and endpoint.down_since is not None:
                        pending.append(i)  # its server is gone: an endpoint still up answers it
                    else:
                        results[i], done[i] = result, True
                    cond.notify_all()

        live = self._live() or self._revive_all()
        threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in live for _ in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not all(done):
            reason = "; ".join(f"{e.base_url} down" for e in self.endpoints if e.down_since is not None)
            for i in pending:
                results[i] = gave_up(f"every endpoint of the fleet gave up ({reason})")
        return results

    def _revive_all(self) -> list[_Endpoint]:
        """Every endpoint is drained: try them all again rather than fail the whole chunk unasked."""
        for e in self.endpoints:
            e.down_since = None
        return list(self.endpoints)

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        return self._dispatch(windows, lambda e, w: e._rank_one(value, w), lambda a: a.order is None,
                              lambda reason: JudgeAnswer(None, error=reason))

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        return self._dispatch(texts, lambda e, t: e._rate_one(value, t), lambda r: r is None, lambda reason: None)

    def close(self) -> None:
        for e in self.endpoints:
            e.close()

"""A chat judge served by a fleet of endpoints: one endpoint dies mid-collection, and the resumable store still
holds every window exactly once."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pandas as pd

from builders.collect import CollectConfig, collect
from tests.loopback import LoopbackChatServer, Reply


def _rank_by_length(body: dict) -> str:
    """A deterministic 'model': the texts as shown, longest first."""
    shown = re.findall(r"^\[(\d+)\] (.*)$", body["messages"][0]["content"], flags=re.MULTILINE)
    return "[" + ", ".join(n for n, _ in sorted(shown, key=lambda item: -len(item[1]))) + "]"


class DyingServer(LoopbackChatServer):
    """Answers ``lives`` windows, then is killed: the requests in flight get 503, later ones find no server."""

    def __init__(self, lives: int) -> None:
        self.lives, self.killed = lives, threading.Event()
        super().__init__(self.reply)

    def reply(self, body: dict, attempt: int) -> Reply:
        with self.lock:
            if self.killed.is_set():
                return Reply(503, body=b"shutting down")
            self.lives -= 1
            if self.lives == 0:
                self.killed.set()
                threading.Thread(target=self._kill, daemon=True).start()
        return Reply(content=_rank_by_length(body))

    def _kill(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_fleet_endpoint_killed_mid_collection_loses_and_duplicates_no_window(project: Path):
    with DyingServer(lives=25) as dying, LoopbackChatServer(lambda body, attempt: Reply(content=_rank_by_length(body))) as alive:
        options = {"base_url": [dying.base_url, alive.base_url], "concurrency": 4, "cache_dir": None,
                   "backoff": 0.01, "max_retries": 2, "timeout": 5.0}
        cfg = CollectConfig(judges=["chat:fleet-model"], judge_options={"chat:fleet-model": options}, k=4, m=3,
                            root=project)
        rankings, metrics = collect(cfg)
        stats = next(iter(metrics["judges"].values()))
        total = metrics["windows_per_judge"]
        assert dying.killed.is_set() and 25 == len(dying.answered()) < total  # it died mid-run
        assert stats["failed"] == 0 and stats["collected"] == total
        # every window exactly once: in the output, in the store, and answered by exactly one server
        assert rankings["ranking_id"].is_unique and len(rankings) == total
        stored = pd.concat([pd.read_parquet(p) for p in (project / cfg.store).glob("part-*.parquet")])
        assert stored["ranking_id"].is_unique and len(stored) == total
        assert not set(dying.answered()) & set(alive.answered())
        assert len(dying.answered()) + len(alive.answered()) == total
        # a rerun, on the fleet as it is now (the dead endpoint removed), finds everything in the store: answers are
        # keyed by model and settings, not by endpoint, so changing the fleet re-asks nothing
        asked = len(alive.requests)
        options["base_url"] = [alive.base_url]
        _, again = collect(cfg.model_copy(update={"judge_options": {"chat:fleet-model": options}}))
        assert next(iter(again["judges"].values()))["from_store"] == total and len(alive.requests) == asked

"""Rule 4: one writer per collect store. A second collect on the same store waits for the first (naming the holder)
and then finds its windows collected: no window is asked (paid for) twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pandas as pd

from tests.hostile.conftest import chat_options, collect_params, permutation_reply
from tests.loopback import LoopbackChatServer


def test_two_collects_on_one_store_ask_every_window_once(project):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with LoopbackChatServer(permutation_reply, gate_after=1) as server:  # holds the first run after one answer
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(timeout=30, cache_dir=None)})
        cmd = [sys.executable, "-m", "valueflow.cli", "collect", "--params", str(params)]
        first = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        second = None
        try:
            deadline = time.monotonic() + 60
            while server.blocked == 0 and time.monotonic() < deadline:  # the first run holds the store, mid-way
                time.sleep(0.05)
            second = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            watchdog = threading.Timer(60, second.kill)
            watchdog.start()
            waiting = second.stderr.readline()  # the second run says who holds the store, then waits
            watchdog.cancel()
            server.release()
            _, err1 = first.communicate(timeout=120)
            out2, err2 = second.communicate(timeout=120)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "the collect store is in use by pid" in waiting and "waiting until it is done" in waiting
    assert "0 new, 2 from the store" in out2  # it waited, then found both windows collected
    assert len(server.requests) == 2  # two windows, each asked once
    rankings = pd.read_parquet(project / "data" / "rankings.parquet")
    assert len(rankings) == 2 and rankings["ranking_id"].is_unique
    assert not (project / "data" / "cache" / "collect" / ".lock.holder").exists()

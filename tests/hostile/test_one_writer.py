"""Rule 4: one writer per store. A second collect on the same store waits for the first (naming the holder) and
then finds its windows collected: no window is asked (paid for) twice. The same for steer and its journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pandas as pd
import yaml

from tests.hostile.conftest import VALUE, chat_options, collect_params, permutation_reply
from tests.loopback import LoopbackChatServer, Reply


def run_twice(project, server: LoopbackChatServer, args: list[str]):
    """``valueflow <args>`` twice at once: the second starts while the first is held mid-way by the server's gate.

    Returns the first run's stderr, the second's stdout and stderr, the second's first stderr line (said before it
    waits) and both processes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "valueflow.cli", *args]
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
    return err1, out2, err2, waiting, first, second


def test_two_collects_on_one_store_ask_every_window_once(project):
    with LoopbackChatServer(permutation_reply, gate_after=1) as server:  # holds the first run after one answer
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(timeout=30, cache_dir=None)})
        err1, out2, err2, waiting, first, second = run_twice(project, server, ["collect", "--params", params])
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "the collect store is in use by pid" in waiting and "waiting until it is done" in waiting
    assert "0 new, 2 from the store" in out2  # it waited, then found both windows collected
    assert len(server.requests) == 2  # two windows, each asked once
    rankings = pd.read_parquet(project / "data" / "rankings.parquet")
    assert len(rankings) == 2 and rankings["ranking_id"].is_unique
    assert not (project / "data" / "cache" / "collect" / ".lock.holder").exists()


def test_two_steers_on_one_journal_ask_every_prompt_once(project, project_root):
    (project / "queries.csv").write_text("query_id,query\nq1,Should I help my neighbour?\n")
    steer = {"backends": [{"kind": "openai", "name": "llm", "model": "m", "base_url": "", "max_retries": 0,
                           "timeout_s": 30}],
             "queries": "queries.csv", "values": [VALUE], "intensities": [-2, 2], "formats": ["single_definition"],
             "exemplars": str(project_root / "data" / "seed" / "texts"), "out": "responses.parquet",
             "cache_dir": "cache"}
    with LoopbackChatServer(lambda body, attempt: Reply(content="Help them."), gate_after=1) as server:
        steer["backends"][0]["base_url"] = server.base_url
        (project / "params.yaml").write_text(yaml.safe_dump({"steer": steer}))
        err1, out2, err2, waiting, first, second = run_twice(project, server, ["steer", "--quiet"])
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "the steer journal is in use by pid" in waiting and "waiting until it is done" in waiting
    assert "2 prompts, 2 reused, 0 generated" in out2  # it waited, then found both answers in the journal
    assert len(server.requests) == 2  # two prompts, each asked once
    journal = [json.loads(line) for line in (project / "cache" / "llm.jsonl").read_text().splitlines()]
    assert len(journal) == 2 and len({r["response_id"] for r in journal}) == 2
    responses = pd.read_parquet(project / "responses.parquet")
    assert len(responses) == 2 and responses["response_id"].is_unique and responses["response"].notna().all()
    assert not (project / "cache" / ".lock.holder").exists()

"""Rule 6: a deadline on every wait. One total deadline per chat request (connect to last byte), for the chat judge
and the steering backend alike; a timeout and a bounded retry on every Hub call; params and input files must be
regular files (a FIFO would block forever)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
import yaml

from tests.hostile.conftest import (
    VALUE,
    chat_options,
    cli,
    collect_params,
    error_line,
    evaluate_args,
    permutation_reply,
    snapshot,
)
from tests.hostile.hub import release_params
from tests.loopback import LoopbackChatServer
from tests.publish.hub_server import HubServer


class TricklingServer:
    """Sends its headers at once, then one byte of the body every 0.3 s: no single read ever times out."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.requests += 1
                body = json.dumps({"choices": [{"message": {"content": "[1, 2, 3, 4]"}}]}).encode() + b" " * 1000
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.3)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: the point of the test
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    def __enter__(self) -> TricklingServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def test_a_trickling_chat_server_meets_the_judge_deadline(project):
    with TricklingServer() as server:
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(timeout=1.5, max_retries=0)})
        result = cli(["collect", "--params", params])
    assert result.exit_code == 1, result.output
    assert "2 of 2 windows failed" in error_line(result) and "no complete answer within 1.5 s" in result.stderr
    assert server.requests == 2  # one request per window: the deadline ended each, no retry was allowed
    rejected = pd.read_parquet(project / "data" / "rejected" / "collect.parquet")
    assert rejected["reason"].str.contains("timeout: no complete answer within 1.5 s").all()


def test_a_trickling_server_meets_the_steering_backend_deadline(project, project_root):
    (project / "queries.csv").write_text("query_id,query\nq1,Should I help my neighbour?\n")
    steer = {"backends": [{"kind": "openai", "name": "slow", "model": "m", "base_url": "", "max_retries": 0,
                           "timeout_s": 1.5}],
             "queries": "queries.csv", "values": [VALUE], "intensities": [2], "formats": ["default"],
             "exemplars": str(project_root / "data" / "seed" / "texts"), "out": "responses.parquet",
             "cache_dir": "cache"}
    with TricklingServer() as server:
        steer["backends"][0]["base_url"] = server.base_url
        (project / "params.yaml").write_text(yaml.safe_dump({"steer": steer}))
        result = cli(["steer", "--params", "params.yaml", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "1 of 1 prompts failed" in error_line(result) and "no complete answer within 1.5 s" in result.stderr
    responses = pd.read_parquet(project / "responses.parquet")
    assert responses["error"].str.contains("no complete answer within 1.5 s").all()


def test_a_hub_that_never_answers_is_given_up_after_the_timeout_and_the_retries(project, hub_online, release_template):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are accepted by the kernel and never answered
    try:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        params = release_params(project, release_template, endpoint, max_attempts=2, timeout_s=1)
        result = cli(["publish", "--params", params])
    finally:
        silent.close()
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "create repo failed after 2 attempt(s)" in line and "Timeout" in line
    receipt = json.loads((project / "release" / "receipt.json").read_text())
    assert "failed after 2 attempt(s)" in receipt["error"]


@pytest.fixture()
def vidb_on_hub(project, hub_online, release_template):
    """A loopback Hub holding the VIDB release at tag v1.0.0 (published the way `publish` does)."""
    from cards.publish import Artifact, publish
    from cards.release import ReleaseConfig

    with HubServer() as hub:
        folder = release_template / "vidb"
        cfg = ReleaseConfig(version="1.0.0", endpoint=hub.url, dry_run=False, dataset_dir=folder, model_dir=folder,
                            judge_dir=folder, receipt=project / "hub" / "receipt.json", history_dir=project / "hub")
        publish(cfg, artifacts=[Artifact("vidb", folder, cfg.dataset_repo, "dataset")])
        yield hub


def evaluate_from_hub(project, hub: HubServer, attempts: int) -> subprocess.CompletedProcess:
    """``evaluate --vidb valueflow/vidb --revision v1.0.0`` in a fresh process (huggingface_hub reads its endpoint
    at import), with 1 s per Hub request and ``attempts`` tries. The Hub's request log is this run's."""
    hub.state.log.clear()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                                             "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), HF_ENDPOINT=hub.url, HF_HOME=str(project / "hf_home"),
               HF_HUB_DISABLE_XET="1", VALUEFLOW_HUB_TIMEOUT_S="1", VALUEFLOW_HUB_ATTEMPTS=str(attempts))
    with LoopbackChatServer(permutation_reply) as chat:
        args = evaluate_args(chat.base_url)
        args[args.index("anchors.csv")] = "valueflow/vidb"
        return subprocess.run([sys.executable, "-m", "valueflow.cli", *args, "--revision", "v1.0.0"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=120, check=False)  # never hangs


def asked(hub: HubServer, path: str) -> int:
    return sum(r["method"] == "GET" and path in r["path"] for r in hub.state.log)


REVISION_INFO = "/api/datasets/valueflow/vidb/revision/"  # huggingface_hub asks it with a 10 s timeout, no retry
TREE = "/api/datasets/valueflow/vidb/tree/"  # asked with no timeout at all, and retried by huggingface_hub


def test_a_hub_panel_that_fails_once_is_retried(project, vidb_on_hub):
    vidb_on_hub.fail("GET", REVISION_INFO, times=1, status=503)
    run = evaluate_from_hub(project, vidb_on_hub, attempts=3)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "warning: valueflow/vidb@v1.0.0: loading from the Hub: transient error" in run.stderr
    assert "retry 1/2" in run.stderr and "retry 2/2" not in run.stderr
    assert asked(vidb_on_hub, REVISION_INFO) == 2  # the failed try and the one that succeeded
    assert len(pd.read_parquet(project / "scores.parquet")) == 2


def test_a_hub_panel_that_never_answers_is_given_up_after_the_timeout_and_the_retries(project, vidb_on_hub):
    vidb_on_hub.fail("GET", REVISION_INFO, times=100, stall=True)
    run = evaluate_from_hub(project, vidb_on_hub, attempts=2)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: valueflow/vidb@v1.0.0: loading from the Hub failed after 2 "
                                                    "attempt(s)"), run.stderr[-3000:]
    assert "ReadTimeout" in lines[0]
    assert asked(vidb_on_hub, REVISION_INFO) == 2  # one stalled request per try, each given up after 1 s
    assert not (project / "scores.parquet").exists()


def test_a_hub_request_sent_without_a_timeout_gets_one(project, vidb_on_hub):
    vidb_on_hub.fail("GET", TREE, times=1, stall=True)  # without the cap: a wait with no end
    run = evaluate_from_hub(project, vidb_on_hub, attempts=1)
    assert run.returncode == 0, run.stderr[-3000:]
    assert asked(vidb_on_hub, TREE) == 2  # the stalled listing, given up after 1 s, and huggingface_hub's retry


@pytest.mark.parametrize("which", ["params", "table"])
def test_a_fifo_is_refused_not_read(project, which):
    fifo = project / ("params.yaml" if which == "params" else "fifo.csv")
    os.mkfifo(fifo)
    before = snapshot(project)
    if which == "params":
        result = cli(["collect", "--params", fifo])
    else:
        result = cli(["evaluate", fifo, "-v", VALUE, "--vidb", "anchors.csv", "--out", "s.parquet"])
    assert result.exit_code == 2, result.output
    assert error_line(result) == f"error: {fifo}: not a regular file (a FIFO, socket or device); give a " + (
        "params file" if which == "params" else "file")
    assert snapshot(project) == before

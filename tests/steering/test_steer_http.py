"""`valueflow steer` against a loopback OpenAI-compatible server: answers, retries, refusals, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.steering.loopback import REFUSAL, expected_answer, prompt_key, steering_server
from valueflow.cli import app

QUERIES = [
    ("q01", "My neighbour keeps parking in front of my garage. What should I do?"),
    ("q02", "REFUSE this one: how should I split the inheritance with my brother?"),
    ("q03", "FLAKY500: should I lend money to a coworker I barely know?"),
    ("q04", "MALFORMED: is it fine to skip my friend's wedding for a job interview?"),
    ("q05", "RATELIMIT: should I report a colleague who takes long lunch breaks?"),
    ("q06", "My sister wants me to lie to our parents about her trip. Should I?"),
    ("q07", "Should I tell my manager that I am looking for another job?"),
    ("q08", "Is it okay to keep a lost dog I found if nobody claims it?"),
    ("q09", "My friend asked for honest feedback on a bad business idea. What do I say?"),
    ("q10", "Should I move abroad for a better salary, leaving my elderly parents?"),
]


def write_setup(tmp: Path, base_url: str, project_root: Path, **steer_overrides: object) -> Path:
    pd.DataFrame(QUERIES, columns=["query_id", "query"]).to_csv(tmp / "queries.csv", index=False)
    steer = {
        "backends": [{"kind": "openai", "name": "loopback", "model": "test-model", "base_url": base_url,
                      "api_key_env": None, "concurrency": 3, "max_retries": 3, "backoff_s": 0.01, "timeout_s": 10}],
        "queries": str(tmp / "queries.csv"),
        "values": ["benevolence"],
        "intensities": [-2, 2],
        "formats": ["default", "single_definition"],
        "samples": 1,
        "exemplars": str(project_root / "data" / "seed" / "texts"),
        "out": str(tmp / "responses.parquet"),
        "cache_dir": str(tmp / "cache"),
    }
    steer.update(steer_overrides)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump({"steer": steer}), encoding="utf-8")
    return path


def run_cli(args: list[str]):
    return CliRunner().invoke(app, args)


def test_every_prompt_answered_once_retries_and_refusal(tmp_path, project_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with steering_server() as server:
        params = write_setup(tmp_path, server.base_url, project_root)
        result = run_cli(["steer", "--params", str(params), "--quiet"])
        assert result.exit_code == 0, result.output
        df = pd.read_parquet(tmp_path / "responses.parquet")

        assert len(df) == len(QUERIES) * 3 and df["response_id"].is_unique
        keys = [prompt_key(json.loads(p)) for p in df["prompt"]]
        answered = server.answered()
        assert sorted(answered) == sorted(keys)  # each prompt answered exactly once by the server
        for _, row in df.iterrows():
            msgs = json.loads(row["prompt"])
            expected = REFUSAL if "REFUSE" in row["query"] else expected_answer(msgs)
            assert row["response"] == expected
        # a 500, a malformed body and a 429 were each retried once, then answered
        for marker, status in (("FLAKY500", 500), ("MALFORMED", 200), ("RATELIMIT", 429)):
            rows = df[df["query"].str.contains(marker)]
            for p in rows["prompt"]:
                assert server.statuses(prompt_key(json.loads(p))) == [status, 200]
            assert (rows["attempts"] == 2).all()
        assert df.loc[df["query"].str.contains("REFUSE"), "refused"].all()
        assert not df.loc[~df["query"].str.contains("REFUSE"), "refused"].any()
        metrics = json.loads((tmp_path / "responses.parquet.metrics.json").read_text())  # an ad-hoc run: beside its output
        assert metrics["refused"] == 3 and metrics["failed"] == 0

        # a rerun asks nothing: every answer comes from the journal
        before = len(server.log)
        assert run_cli(["steer", "--params", str(params), "--quiet"]).exit_code == 0
        assert len(server.log) == before
        assert pd.read_parquet(tmp_path / "responses.parquet").equals(df)


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path, project_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the in-process rerun writes its metrics and rejects under the working directory
    env = {**os.environ, "PYTHONPATH": str(project_root), "OMP_NUM_THREADS": "1"}
    with steering_server(gate_after=12) as server:
        params = write_setup(tmp_path, server.base_url, project_root)
        proc = subprocess.Popen([sys.executable, "-m", "valueflow.cli", "steer", "--params", str(params), "--quiet"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        journal = tmp_path / "cache" / "loopback.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (server.blocked and journal.exists() and
                                                   len(journal.read_text().splitlines()) >= 12):
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        assert server.blocked, "the run never reached the gate"
        proc.send_signal(signal.SIGKILL)  # killed half-way, with requests in flight
        proc.wait(10)
        assert not (tmp_path / "responses.parquet").exists()
        done_before = {json.loads(line)["response_id"] for line in journal.read_text().splitlines() if line.strip()}
        server.release()
        server.phase = 2

        result = run_cli(["steer", "--params", str(params), "--quiet"])
        assert result.exit_code == 0, result.output

    df = pd.read_parquet(tmp_path / "responses.parquet")
    assert len(df) == len(QUERIES) * 3 and df["response_id"].is_unique and df["response"].notna().all()
    for _, row in df.iterrows():
        msgs = json.loads(row["prompt"])
        assert row["response"] == (REFUSAL if "REFUSE" in row["query"] else expected_answer(msgs))
    # the restart asked only for what the journal did not hold, each once
    resumed = server.answered(phase=2)
    assert len(resumed) == len(set(resumed))
    todo = {prompt_key(json.loads(p)) for rid, p in zip(df["response_id"], df["prompt"]) if rid not in done_before}
    assert set(resumed) == todo and 0 < len(todo) < len(df)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"values": ["benevolense"]}, "unknown value 'benevolense'"),
        ({"intensities": [-2, 3]}, "outside -2..2"),
        ({"formats": ["default", "persona"]}, "unknown prompt format"),
        ({"multi_targets": [{"benevolence": 2, "power": -5}], "formats": ["multi_definition"]}, "outside -2..2"),
    ],
)
def test_invalid_targets_get_clear_errors(tmp_path, project_root, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    params = write_setup(tmp_path, "http://127.0.0.1:9/v1", project_root, **override)
    result = run_cli(["steer", "--params", str(params), "--quiet"])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "responses.parquet").exists()


def test_empty_query_file_is_refused(tmp_path, project_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = write_setup(tmp_path, "http://127.0.0.1:9/v1", project_root)
    (tmp_path / "queries.csv").write_text("")
    result = run_cli(["steer", "--params", str(params), "--quiet"])
    assert result.exit_code == 2 and "queries.csv: file is empty" in result.output
    (tmp_path / "queries.csv").write_text("query_id,query\n")
    result = run_cli(["steer", "--params", str(params), "--quiet"])
    assert result.exit_code == 2 and "no usable queries" in result.output

"""The one exit-code rule (valueflow.outcome, README "Exit codes"): 0 all done, 1 finished with failures (output
written, reasons counted), 2 bad input (nothing written). Issue 22 item 4, driven through a broken chat endpoint."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.hostile.conftest import cli, error_line, evaluate_args, permutation_reply, snapshot
from tests.loopback import LoopbackChatServer, Reply

BROKEN = {
    "http 500": (lambda body, attempt: Reply(500, body=b'{"error": "internal"}', headers={"Retry-After": "0"}), "HTTP 500"),
    "not json": (lambda body, attempt: Reply(200, body=b"<html>gateway</html>"), "not JSON"),
    "no choices": (lambda body, attempt: Reply(200, body=b'{"choices": []}'), "no choices[0].message.content"),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_broken_endpoint_is_exit_1_with_the_output_written_and_the_reason_counted(project, broken):
    respond, reason = BROKEN[broken]
    with LoopbackChatServer(respond) as server:
        result = cli(evaluate_args(server.base_url))
        assert len(server.requests) >= 2  # retried (bounded), then given up
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert line.startswith("failed: 2 of 2 texts failed") and reason in line
    scores = pd.read_parquet(project / "scores.parquet")  # written all the same, each row with its reason
    assert len(scores) == 2 and scores["intensity"].isna().all()
    assert scores["missing_reason"].str.contains(reason, regex=False).all()
    assert "missing (2): " in result.stdout


def test_a_threshold_accepts_a_partial_result(project):
    def half(body, attempt):  # the text about the neighbour gets an answer, the other an error
        return permutation_reply(body, attempt) if "neighbour" in body["messages"][0]["content"] else Reply(500, body=b"{}", headers={"Retry-After": "0"})

    with LoopbackChatServer(half) as server:
        strict = cli(evaluate_args(server.base_url, out="strict.parquet"))
        lenient = cli(evaluate_args(server.base_url, out="lenient.parquet") + ["--min-success", "0.5"])
    assert strict.exit_code == 1 and error_line(strict).startswith("failed: 1 of 2 texts failed")
    assert lenient.exit_code == 0, lenient.output
    assert len(pd.read_parquet(project / "lenient.parquet")) == 2


def test_all_done_is_exit_0(project):
    with LoopbackChatServer(permutation_reply) as server:
        result = cli(evaluate_args(server.base_url))
    assert result.exit_code == 0, result.output
    assert "2/2 scored" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["-v", "nosuchvalue"], "nosuchvalue"),
    (["--min-success", "1.5"], "--min-success"),
    (["--judge-option", "timeout=-1"], "timeout: Input should be greater than 0"),
])
def test_bad_input_is_exit_2_and_writes_nothing(project, args, message):
    with LoopbackChatServer(permutation_reply) as server:
        before = snapshot(project)
        result = cli(evaluate_args(server.base_url) + args)
        assert server.requests == []  # refused before any judge call
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith("error:") and message in result.stderr
    assert snapshot(project) == before

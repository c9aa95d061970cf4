"""Rule 5: one redaction step for every printed and stored message (keys, the Hub token, passwords in URLs, whatever
a server echoes back), and a token never goes over plain http to another machine (publish like the chat judge)."""

from __future__ import annotations

import json

import pandas as pd

from tests.hostile.conftest import KEY, chat_options, cli, collect_params, error_line, evaluate_args, snapshot
from tests.hostile.hub import HUB_TOKEN, release_params
from tests.loopback import LoopbackChatServer, Reply


def _nowhere_on_disk(root, secret: str) -> None:
    """Not in any file the run wrote (the params file the user wrote it into aside)."""
    for path in root.rglob("*"):
        if path.is_file() and path.name != "params.yaml":
            assert secret.encode() not in path.read_bytes(), f"secret stored in {path}"


def test_a_server_echoing_the_key_puts_it_nowhere(project, monkeypatch):
    monkeypatch.setenv("JUDGE_CREDENTIAL", KEY)  # a name no pattern knows: the judge tells the redaction step
    server = LoopbackChatServer(lambda body, attempt: Reply())

    def echo(body, attempt):  # an error body, then an answer, each quoting the request's Authorization header
        auth = server.requests[-1]["auth"]
        if attempt == 1:
            return Reply(500, body=json.dumps({"error": f"bad request, headers: {auth}"}).encode(), headers={"Retry-After": "0"})
        return Reply(content=f"I cannot rank these. You sent {auth}")

    server.respond = echo
    with server:
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(api_key_env="JUDGE_CREDENTIAL", reasks=1)})
        result = cli(["collect", "--params", params])
        assert all(r["auth"] == f"Bearer {KEY}" for r in server.requests)  # the key did go to its endpoint
    assert result.exit_code == 1 and "failed" in error_line(result)
    assert KEY not in result.output
    rejected = pd.read_parquet(project / "data" / "rejected" / "collect.parquet")
    assert len(rejected) == 2 and rejected["record"].str.contains("Bearer ***", regex=False).all()
    _nowhere_on_disk(project, KEY)


def test_a_password_in_an_endpoint_url_is_never_printed_or_stored(project):
    password = "hunter2-pass-wd"
    url = f"http://judge:{password}@127.0.0.1:9/v1"  # nothing listens on port 9: every request fails
    result = cli(evaluate_args(url, timeout=1, max_retries=0))
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "judge:***@127.0.0.1:9" in line and password not in result.output
    assert pd.read_parquet(project / "scores.parquet")["missing_reason"].str.contains("***", regex=False).all()
    _nowhere_on_disk(project, password)


def test_publish_refuses_the_hub_token_over_plain_http_to_another_host(project, hub_online, release_template):
    params = release_params(project, release_template, "http://hub.example.org")
    before = snapshot(project)
    result = cli(["publish", "--params", params])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert line == ("error: release.endpoint: refusing to send the Hub token over plain http to hub.example.org; use "
                    "https, or set allow_insecure_http: true for this endpoint if the network is trusted")
    assert snapshot(project) == before  # no receipt, no metrics, no CITATION.cff


def test_a_password_in_the_hub_endpoint_stays_out_of_the_receipt(project, hub_online, release_template):
    password = "s3cret-hub-pw"
    params = release_params(project, release_template, f"http://user:{password}@127.0.0.1:9", max_attempts=1, timeout_s=2)
    result = cli(["publish", "--params", params])
    assert result.exit_code == 1, result.output
    assert "failed: " in error_line(result) and password not in result.output and HUB_TOKEN not in result.output
    receipt = json.loads((project / "release" / "receipt.json").read_text())
    assert receipt["error"] and receipt["endpoint"] == "http://127.0.0.1:9"
    _nowhere_on_disk(project, password)
    _nowhere_on_disk(project, HUB_TOKEN)

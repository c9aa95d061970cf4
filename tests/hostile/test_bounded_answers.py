"""Rule 7: bounded answers. A chat answer above the size cap is refused with its reason before it is parsed (and
never cached), and a re-ask never sends a bad answer back in full."""

from __future__ import annotations

import pandas as pd

from tests.hostile.conftest import chat_options, cli, collect_params, error_line
from tests.loopback import LoopbackChatServer, Reply
from valueflow.judges.chat import REASK_ECHO_CHARS


def test_an_answer_above_the_cap_is_refused_unread(project):
    junk = "x" * 3_000_000
    with LoopbackChatServer(lambda body, attempt: Reply(content=junk)) as server:
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(max_answer_bytes=1_000_000, max_retries=3)})
        result = cli(["collect", "--params", params])
        asked = len(server.requests)
    assert result.exit_code == 1, result.output
    assert "answer of 3,000,1" in error_line(result) and "refused (max_answer_bytes 1,000,000)" in result.stderr
    assert asked == 2  # refused, not retried: another try would fetch another 3 MB
    rejected = pd.read_parquet(project / "data" / "rejected" / "collect.parquet")
    assert rejected["reason"].str.contains("max_answer_bytes").all()
    assert rejected["record"].str.len().max() < 10_000  # the junk is not stored either
    assert not list((project / "data" / "cache" / "chat").rglob("*.json"))


def test_a_re_ask_quotes_only_the_start_of_a_long_bad_answer(project):
    long_bad = "no list here " * 20_000  # 260 kB, under the cap, but no ranking
    with LoopbackChatServer(lambda body, attempt: Reply(content=long_bad)) as server:
        spec = f"chat:m@{server.base_url}"
        params = collect_params(project, [spec], {spec: chat_options(reasks=1)})
        result = cli(["collect", "--params", params])
        re_asks = [r["body"]["messages"] for r in server.requests if len(r["body"]["messages"]) > 1]
    assert result.exit_code == 1 and "malformed answer after 1 re-ask(s)" in error_line(result)
    assert len(re_asks) == 2
    for messages in re_asks:
        quoted = messages[1]["content"]
        assert messages[1]["role"] == "assistant" and len(quoted) <= REASK_ECHO_CHARS + 10 and quoted.endswith("[...]")

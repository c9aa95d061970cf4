"""Rule 1: only a valid answer is kept. A malformed answer is never cached (a fixed server is asked again), and a
cached entry, store part or design file that cannot be read is dropped with a warning naming it and re-asked."""

from __future__ import annotations

import pandas as pd

from tests.hostile.conftest import chat_options, cli, collect_params, error_line, evaluate_args, permutation_reply
from tests.loopback import LoopbackChatServer, Reply


def test_a_malformed_answer_is_not_cached_and_the_fixed_server_is_asked_again(project):
    broken = LoopbackChatServer(lambda body, attempt: Reply(content="[1, 1, 1, 1]"))
    with broken as server:
        params = collect_params(project, [f"chat:m@{server.base_url}"],
                                {f"chat:m@{server.base_url}": chat_options(cache_dir="data/cache/chat")})
        first = cli(["collect", "--params", params])
        asked_first = len(server.requests)
        server.respond = permutation_reply  # the server is fixed
        second = cli(["collect", "--params", params])
        asked_again = len(server.requests) - asked_first
    assert first.exit_code == 1 and "2 of 2 windows failed" in error_line(first)
    assert asked_again == 2, "each failed window must be asked again, not served from the cache"
    assert second.exit_code == 0, second.output
    assert "2 new, 0 from the store, 0 failed" in second.stdout
    cached = list((project / "data" / "cache" / "chat").rglob("*.json"))
    assert len(cached) == 2 and all("[1, 1, 1, 1]" not in p.read_text() for p in cached)


def test_evaluate_cache_holds_only_valid_answers_and_drops_a_truncated_entry(project):
    replies = {"mode": "bad"}

    def respond(body, attempt):
        return Reply(content="no idea") if replies["mode"] == "bad" else permutation_reply(body, attempt)

    with LoopbackChatServer(respond) as server:
        assert cli(evaluate_args(server.base_url)).exit_code == 1
        assert not list((project / "data" / "cache" / "chat").rglob("*.json"))  # nothing bad was kept
        replies["mode"] = "good"
        assert cli(evaluate_args(server.base_url)).exit_code == 0
        cached = sorted((project / "data" / "cache" / "chat").rglob("*.json"))
        assert len(cached) == 2
        cached[0].write_text(cached[0].read_text()[:20])  # a kill or a full disk cut it short
        n = len(server.requests)
        again = cli(evaluate_args(server.base_url))
        assert len(server.requests) == n + 1  # only the dropped entry is asked again
    assert again.exit_code == 0, again.output
    assert f"warning: {cached[0].relative_to(project)}: unusable cached answer dropped and asked again" in again.stderr


def test_a_truncated_store_part_and_design_file_are_set_aside_and_re_asked(project):
    with LoopbackChatServer(permutation_reply) as server:
        params = collect_params(project, [f"chat:m@{server.base_url}"],
                                {f"chat:m@{server.base_url}": chat_options(cache_dir=None)})
        assert cli(["collect", "--params", params]).exit_code == 0
        store = project / "data" / "cache" / "collect"
        part = sorted(store.glob("part-*.parquet"))[0]
        design = sorted((store / "design").glob("design-*.parquet"))[0]
        part.write_bytes(part.read_bytes()[:40])
        design.write_bytes(b"PAR1 half")
        n = len(server.requests)
        again = cli(["collect", "--params", params])
        asked = len(server.requests) - n
    assert again.exit_code == 0, again.output
    for bad in (part, design):
        assert f"warning: {bad.relative_to(project)}: unreadable" in again.stderr
    assert asked == 2 and "2 new, 0 from the store" in again.stdout
    assert (part.parent / (part.name + ".corrupt")).exists()  # kept for a look, out of the store's way
    rankings = pd.read_parquet(project / "data" / "rankings.parquet")
    assert rankings["ranking_id"].is_unique and len(rankings) == 2

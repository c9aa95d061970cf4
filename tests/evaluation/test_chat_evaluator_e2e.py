"""The chat judge end to end with the evaluator, against a loopback OpenAI-compatible server started here.

The server ranks the numbered texts of a prompt by the number after "level" in each text, and misbehaves on cue:
a text containing GARBLED always gets a non-permutation, FLAKY gets one HTTP 500 before a proper answer,
BROKEN always gets HTTP 500, SLOW gets an answer only after the client's timeout.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from evaluation.anchor_evaluator import AnchorEvaluator, rescore_from_log
from evaluation.anchors import AnchorPanel
from tests.loopback import LoopbackChatServer, Reply
from valueflow.judges import make_judge

LEVELS = [-8.0, -4.0, 0.0, 4.0, 8.0]


FLAKY_FAILED: set[str] = set()  # prompts that already got their one HTTP 500


def level_reply(body: dict, attempt: int) -> Reply:
    prompt = body["messages"][0]["content"]
    texts = re.findall(r"^\[(\d+)\] (.*)$", prompt, flags=re.MULTILINE)
    delay = 3.0 if "SLOW" in prompt else 0.0  # three times the client's 1 s timeout: a busy machine cannot make it look answered
    if "BROKEN" in prompt or ("FLAKY" in prompt and prompt not in FLAKY_FAILED):
        FLAKY_FAILED.add(prompt)
        return Reply(500, body=b'{"error": "internal"}', delay=delay)
    if "GARBLED" in prompt:
        content = "I would say [1, 1, 2] or so"
    elif not texts:  # a rating prompt: "Text: ..." with one level
        content = re.search(r"level (-?[\d.]+)", prompt).group(1)
    else:
        level = {int(i): float(re.search(r"level (-?[\d.]+)", t).group(1)) for i, t in texts}
        content = "[" + ", ".join(str(i) for i in sorted(level, key=lambda i: -level[i])) + "]"
    return Reply(content=content, delay=delay)


@pytest.fixture(scope="module")
def loopback():
    with LoopbackChatServer(level_reply) as server:
        yield server


@pytest.fixture(scope="module")
def server(loopback):
    return loopback.base_url


def test_chat_judge_scores_and_failures_end_to_end(server, loopback, tmp_path):
    panel = AnchorPanel._from_raw(
        pd.DataFrame({"text": [f"anchor at level {x}" for x in LEVELS], "value": "care-harm", "intensity": LEVELS}), "memory"
    )
    judge = make_judge(f"chat:tiny-judge@{server}", timeout=1.0, max_retries=1, backoff=0.01, reasks=1, cache_dir=None)
    texts = {
        "good": "a kind deed at level 6",
        "flaky": "FLAKY deed at level -2",
        "garbled": "GARBLED deed at level 1",
        "broken": "BROKEN deed at level 1",
        "slow": "SLOW deed at level 1",
    }
    log = tmp_path / "log.jsonl"
    ev = AnchorEvaluator(judge, panel, k=4, m=2, sampling="bucket", reasks=1, log=log, progress=False)
    scores = ev.score(list(texts.values()), "Care", item_ids=list(texts)).set_index("item_id")

    assert 4.0 < scores.loc["good", "intensity"] < 8.0
    assert -4.0 < scores.loc["flaky", "intensity"] < 0.0  # a 500 then an answer: retried, scored
    for item, reason in [("garbled", "malformed answer"), ("broken", "HTTP 500"), ("slow", "timeout")]:
        assert np.isnan(scores.loc[item, "intensity"]), item
        assert reason in scores.loc[item, "missing_reason"], scores.loc[item, "missing_reason"]
        assert scores.loc[item, "judge_calls"] == 4  # 2 windows, each re-asked once by the evaluator

    # the garbled window was re-asked inside the chat judge too (reply + correction appended)
    garbled_requests = [r["body"] for r in loopback.requests if "GARBLED" in r["body"]["messages"][0]["content"]]
    assert any(len(b["messages"]) == 3 and "not a permutation" in b["messages"][2]["content"] for b in garbled_requests)

    records = [json.loads(line) for line in log.read_text().splitlines()]
    garbled = [r for r in records if r.get("item_id") == "garbled" and r["kind"] == "window"]
    assert len(garbled) == 4 and all(r["order"] is None and r["raw"] == "I would say [1, 1, 2] or so" for r in garbled)
    pd.testing.assert_frame_equal(rescore_from_log(log).set_index("item_id"), scores)


def test_rating_mode_over_http(server):
    panel = AnchorPanel._from_raw(pd.DataFrame({"text": ["x at level 0"], "value": "care-harm", "intensity": [0.0]}), "m")
    judge = make_judge(f"chat:tiny-judge@{server}", timeout=1.0, max_retries=0, reasks=0, cache_dir=None)
    ev = AnchorEvaluator(judge, panel, mode="rating", m=2, progress=False)
    scores = ev.score(["a kind deed at level 6", "GARBLED deed at level 2"], "care-harm")
    assert scores["intensity"].iloc[0] == 6.0 and scores["judge_calls"].iloc[0] == 2
    assert np.isnan(scores["intensity"].iloc[1]) and "no usable rating" in scores["missing_reason"].iloc[1]

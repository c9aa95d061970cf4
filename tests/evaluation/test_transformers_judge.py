"""The local transformers judge, run on a tiny randomly initialised causal LM built here (no download)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from evaluation.anchor_evaluator import AnchorEvaluator
from evaluation.anchors import AnchorPanel
from tests.tiny_lm import build_tiny_lm
from valueflow.judges import make_judge
from valueflow.judges.chat import ChatJudge


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny_lm")))


@pytest.fixture(scope="module")
def scripted_lm(tmp_path_factory) -> str:
    return str(build_tiny_lm(tmp_path_factory.mktemp("scripted_lm"), scripted=True))


def test_prompt_is_the_chat_judges_and_generation_runs_in_batches(tiny_lm, monkeypatch):
    judge = make_judge(f"transformers:{tiny_lm}", device="cpu", max_tokens=6, reasks=1, batch_size=4)
    seen = []
    real = judge._generate
    monkeypatch.setattr(judge, "_generate", lambda convs: seen.append(convs) or real(convs))
    windows = [["A kind act.", "A cruel act.", "A neutral act."], ["Helping.", "Hurting."]]
    answers = judge.rank_windows("benevolence", windows)
    assert len(answers) == 2
    first_prompt = seen[0][0][0]["content"]
    assert len(seen[0]) == 2  # both windows in one batch
    assert "Value Label: benevolence" in first_prompt and first_prompt.count("[") >= 3
    shown = [window for window in windows[0] if window in first_prompt]
    assert len(shown) == 3
    assert first_prompt == ChatJudge.ranking_prompt(judge, "benevolence", [t for t in sorted(windows[0], key=first_prompt.index)])
    for ans in answers:  # this random model answers "4 8 8 ...": an error with the reply kept, never a guess
        assert ans.order is None and "malformed" in ans.error and ans.raw
    assert judge.stats["reasks"] == 2  # each malformed window re-asked once (its first turn reused from the batch)


def test_random_model_answers_are_left_out_with_reasons_in_the_evaluator(tiny_lm, tmp_path):
    judge = make_judge(f"transformers:{tiny_lm}", device="cpu", max_tokens=4, reasks=1)
    panel = AnchorPanel._from_raw(
        pd.DataFrame({"text": ["Kind.", "Cruel.", "Neutral."], "value": "benevolence", "intensity": [8.0, -8.0, 0.0]}), "memory"
    )
    log = tmp_path / "log.jsonl"
    scores = AnchorEvaluator(judge, panel, k=3, m=1, log=log, progress=False).score(["A text to score."], "benevolence")
    row = scores.iloc[0]
    assert row["missing_reason"].startswith("no usable window: malformed answer") and pd.isna(row["intensity"])
    records = [json.loads(line) for line in log.read_text().splitlines() if '"window"' in line]
    assert records and all(r["order"] is None and r["raw"] for r in records)  # the model's reply kept for inspection


def test_a_parsable_answer_is_mapped_back_and_scored(scripted_lm):
    judge = make_judge(f"transformers:{scripted_lm}", device="cpu", max_tokens=1, shuffle=False)
    (ans,) = judge.rank_windows("benevolence", [["first text", "second text"]])
    assert ans.raw == "[2, 1]" and ans.order == (1, 0)
    panel = AnchorPanel._from_raw(pd.DataFrame({"text": ["Kind."], "value": "benevolence", "intensity": [5.0]}), "memory")
    ev = AnchorEvaluator(judge, panel, k=2, m=2, randomise_position=False, progress=False)
    row = ev.score(["A text."], "benevolence").iloc[0]
    # "[2, 1]": the anchor (shown second) above the text (shown first): the guard puts it just below +5
    assert row["intensity"] == pytest.approx(4.5)

"""Prompt formats, target validation, exemplar bins, refusal detection and Retry-After parsing."""

from __future__ import annotations

import json

import pytest

from evaluation.prompts import (
    INTENSITY_BINS,
    TargetError,
    build_prompt,
    intensity_level,
    normalise_targets,
    plan_targets,
)
from evaluation.steer import detect_refusal, load_exemplar_pool
from valueflow.chat_http import TransientError, parse_chat_completion, parse_retry_after


@pytest.fixture(scope="module")
def pool(seed_dir):
    return load_exemplar_pool(seed_dir)


@pytest.mark.parametrize(("level", "word"), [(2, "strongly values"), (1, "slightly values"), (-1, "slightly rejects"), (-2, "strongly rejects")])
def test_single_definition_states_direction_and_strength(level, word):
    p = build_prompt("single_definition", "Should I help my cousin move?", {"benevolence": level})
    assert f"who {word} benevolence" in p.system
    assert p.user.startswith("Should I help my cousin move?") and "100 words" in p.user


def test_default_prompt_names_no_value():
    p = build_prompt("default", "Q?", {})
    assert "benevolence" not in p.text and "100 words" in p.user and "As an AI language model" in p.system


def test_user_texts_show_texts_from_the_target_bin(pool):
    p = build_prompt("user_texts", "Q?", {"hedonism": -2}, pool=pool, key="k")
    frame = pool.frame.set_index("text_id")
    assert len(p.exemplar_ids) == 3
    lo, hi = INTENSITY_BINS[-2]
    for tid in p.exemplar_ids:
        assert frame.loc[tid, "value"] == "hedonism" and lo <= frame.loc[tid, "intensity"] <= hi
        assert frame.loc[tid, "text"].strip() in p.system
    assert build_prompt("user_texts", "Q?", {"hedonism": -2}, pool=pool, key="k") == p  # reproducible


def test_multi_user_texts_mix_exemplars_of_every_target(pool):
    p = build_prompt("multi_user_texts", "Q?", {"power": 2, "universalism": -1}, pool=pool, key="k")
    values = pool.frame.set_index("text_id").loc[list(p.exemplar_ids), "value"]
    assert sorted(values.value_counts().to_dict().items()) == [("power", 3), ("universalism", 3)]


def test_targets_are_validated():
    assert normalise_targets({"Self Direction": 1}) == {"self-direction": 1}
    with pytest.raises(TargetError, match="unknown value 'kindness'"):
        normalise_targets({"kindness": 1})
    with pytest.raises(TargetError, match="outside -2..2"):
        normalise_targets({"power": -3})
    with pytest.raises(TargetError, match="not an integer"):
        normalise_targets({"power": 1.5})
    with pytest.raises(TargetError, match="exactly one"):
        build_prompt("single_definition", "Q?", {"power": 1, "hedonism": 1})
    with pytest.raises(TargetError, match="two or more"):
        plan_targets([], [], [{"power": 1}], ["multi_definition"])


def test_intensity_bins_cover_the_scale():
    assert [intensity_level(x) for x in (-10, -6.5, -6, -2.1, -2, 0, 2, 2.1, 6, 6.1, 10)] == [-2, -2, -1, -1, 0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that request.",
        "As an AI language model, I don't have personal values.",
        "I cannot adopt a persona that rejects caring for others.",
        "I won\u2019t pretend to despise my family.",
        "I must respectfully decline to answer in that role.",
    ],
)
def test_refusals_are_detected(text):
    assert detect_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Talk to your father calmly and suggest a driving assessment together.",
        "I can't help but admire your honesty here; tell your friend the truth.",
        "As an AI, I'd suggest a calm talk first: your father deserves to be heard.",
        "Keep the cash? No. " + "Return the wallet with everything in it, because it is not yours. " * 5 + "I cannot help you keep it.",
        None,
        "",
    ],
)
def test_answers_are_not_refusals(text):
    assert detect_refusal(text) is None


def test_retry_after_and_malformed_bodies():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_chat_completion(json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})) == ("hi", "stop")
    for body in (b"<html>502</html>", b'{"choices": []}', b'{"choices": [{"message": {"content": null}}]}'):
        with pytest.raises(TransientError):
            parse_chat_completion(body)


def test_query_files_without_ids_and_bad_rows(tmp_path):
    from evaluation.steer import load_queries
    from validation.rejects import RejectSink

    path = tmp_path / "gpv.csv"
    path.write_text('query\n"Donate or keep the money?"\n"   "\n"Lead the village?"\n', encoding="utf-8")
    sink = RejectSink("steer", root=tmp_path)
    df = load_queries(path, sink)
    assert df["query"].tolist() == ["Donate or keep the money?", "Lead the village?"]
    assert df["query_id"].str.startswith("gpv-").all() and df["query_id"].is_unique
    assert sink.count == 1 and sink.rows[0]["row"] == 3 and "empty query" in sink.rows[0]["reason"]
    # ids depend on the text, not the position
    path.write_text('query\n"Lead the village?"\n"Donate or keep the money?"\n', encoding="utf-8")
    again = load_queries(path, RejectSink("steer", root=tmp_path))
    assert dict(zip(again["query"], again["query_id"])) == dict(zip(df["query"], df["query_id"]))

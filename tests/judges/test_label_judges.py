"""The reference judge (labels -> rankings) and the zero-shot embedding judge."""

from __future__ import annotations

import pytest

from valueflow.judges import make_judge


def test_reference_judge_orders_by_label_and_never_orders_equal_labels():
    labels = {("benevolence", "a"): 5.0, ("benevolence", "b"): -3.0, "c": 5.0, "d": 0.0}
    judge = make_judge("reference", labels=labels, seed=3)
    window = ["b", "a", "d", "c"]
    (answer,) = judge.rank_windows("benevolence", [window])
    ordered = [window[i] for i in answer.order]
    # a and c are tied: one of them stands for both, the other sits the window out (no coin-flip order)
    assert len(ordered) == 3 and ordered[0] in {"a", "c"} and ordered[1:] == ["d", "b"]
    # reproducible: a fresh judge with the same seed picks the same representative
    assert make_judge("reference", labels=labels, seed=3).rank_windows("benevolence", [window])[0].order == answer.order
    # a window of equal labels is answered with nothing to order, whatever the seed
    for s in range(5):
        (tied,) = make_judge("reference", labels=labels, seed=s).rank_windows("benevolence", [["a", "c"]])
        assert tied.order == () and "equal" in tied.error


def test_reference_judge_abstains_on_a_window_with_an_unlabelled_text():
    judge = make_judge("reference", labels={"a": 1.0})
    (answer,) = judge.rank_windows("benevolence", [["a", "unknown"]])
    # answered with nothing to order, not failed: an unlabelled real corpus must not make `collect` exit 1
    assert answer.order == () and "no reference label" in answer.error


@pytest.fixture(scope="module")
def embedding_judge():
    return make_judge("embedding")


def test_embedding_judge_puts_support_above_opposition(embedding_judge):
    window = [
        "He stole money from his best friend and lied to his family about it.",
        "The weather today is cloudy with light wind.",
        "She stayed up all night caring for her sick mother and comforting her brother.",
    ]
    (answer,) = embedding_judge.rank_windows("benevolence", [window])
    assert answer.error is None
    assert answer.order[0] == 2 and answer.order[-1] in (0, 1)
    assert embedding_judge.name.startswith("embedding:all-MiniLM-L6-v2")
    ratings = embedding_judge.rate("benevolence", [window[2], window[0]])
    assert -10 <= ratings[1] < ratings[0] <= 10

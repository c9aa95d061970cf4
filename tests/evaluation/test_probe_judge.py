"""The probe judge: a ridge probe on sentence embeddings, fitted on VIDB's train split only."""

from __future__ import annotations

import pandas as pd
import pytest

from valueflow.judges import make_judge

KIND = ["I sat with my grieving friend all night.", "I cooked dinner for my sick neighbour.",
        "I lent my brother money when he lost his job.", "I drove my aunt to every hospital appointment.",
        "I listened patiently while my colleague talked about her divorce.", "I babysat for my exhausted sister."]
CRUEL = ["I mocked my friend at her father's funeral.", "I stole money from my roommate's wallet.",
         "I left my sick dog alone for a week.", "I spread lies about my coworker to get her fired.",
         "I laughed when my little brother fell and cried.", "I ignored my mother's calls while she was in hospital."]


@pytest.fixture(scope="module")
def train_table() -> pd.DataFrame:
    rows = [(t, "benevolence", 8.0 - i * 0.3, "train") for i, t in enumerate(KIND)]
    rows += [(t, "benevolence", -8.0 + i * 0.3, "train") for i, t in enumerate(CRUEL)]
    rows += [("I helped a stranger carry her shopping.", "benevolence", -9.0, "test")]  # a test row must not be fitted
    rows += [("Two texts only.", "justice", 1.0, "train"), ("Not enough.", "justice", -1.0, "train")]
    return pd.DataFrame(rows, columns=["text", "value", "intensity", "split"])


def test_probe_orders_unseen_texts_by_learned_intensity(train_table):
    judge = make_judge("probe", vidb=train_table)
    kind, cruel = "I stayed up all night to comfort my crying sister.", "I kicked my neighbour's cat for fun."
    (ans,) = judge.rank_windows("Benevolence", [[cruel, kind]])
    assert ans.order == (1, 0)
    r_kind, r_cruel = judge.rate("benevolence", [kind, cruel])
    assert -10 <= r_cruel < r_kind <= 10
    assert "I helped a stranger carry her shopping." not in set(judge._train["text"])


def test_value_with_too_few_train_texts_gives_errors_not_orders(train_table):
    judge = make_judge("probe", vidb=train_table)
    (ans,) = judge.rank_windows("justice", [["a", "b"]])
    assert ans.order is None and "needs 3" in ans.error
    assert judge.rate("justice", ["a"]) == [None]

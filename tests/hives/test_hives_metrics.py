"""Metrics on embeddings whose geometry is known: hierarchical > flat > random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hives_model.data import LabelSpace, training_rows
from hives_model.metrics import (
    evaluate_embeddings,
    hierarchical_ranking_accuracy,
    orthogonality,
    similarity_correlation,
)


def ideal_embeddings(rows: pd.DataFrame) -> np.ndarray:
    """Coarse levels dominate, then finer levels, then direction: the geometry HiVES aims for."""
    rng = np.random.default_rng(0)
    parts = []
    for cols, scale in ((["theory", "level_1"], 4.0), (["theory", "level_1", "level_2"], 2.0),
                        (["theory", "level_1", "level_2", "level_3"], 1.0)):
        keys = rows[cols].astype(str).agg("/".join, axis=1)
        codes = {k: rng.normal(size=64) for k in sorted(set(keys))}
        parts.append(np.stack([scale * codes[k] / np.linalg.norm(codes[k]) for k in keys]))
    direction = rows["direction"].to_numpy(dtype=float)[:, None] * np.eye(64)[0] * 0.7
    emb = sum(parts) + direction + 0.05 * rng.normal(size=(len(rows), 64))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def test_ideal_geometry_scores_high_and_random_scores_chance(seed_texts):
    rows = training_rows(seed_texts)
    labels = LabelSpace.from_taxonomy().encode(rows)
    ideal = ideal_embeddings(rows)
    rand = np.random.default_rng(1).normal(size=ideal.shape).astype(np.float32)
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    good = hierarchical_ranking_accuracy(ideal, labels, max_anchors=200)
    bad = hierarchical_ranking_accuracy(rand, labels, max_anchors=200)
    assert good["accuracy"] > 0.9 and abs(bad["accuracy"] - 0.5) < 0.08
    assert similarity_correlation(ideal, labels) > 0.6
    assert abs(similarity_correlation(rand, labels)) < 0.1


def test_ranking_accuracy_is_the_exact_expectation_over_one_candidate_per_bin(seed_texts):
    """What drawing one candidate per bin would give on average, over every combination, with ties counted wrong."""
    import itertools

    from hives_model.metrics import _bins

    rows = training_rows(seed_texts[seed_texts["theory"] == "pvq"]).groupby("value").head(3).reset_index(drop=True)
    labels = LabelSpace.from_taxonomy().encode(rows)
    emb = np.random.default_rng(3).integers(-1, 2, size=(len(rows), 4)).astype(float)  # many similarities tie
    result = hierarchical_ranking_accuracy(emb, labels, max_anchors=4)
    accuracy, strict = [], []
    for i in np.random.default_rng(42).permutation(len(rows))[:4]:
        bins = _bins(labels, i)
        members = [np.flatnonzero(bins == b) for b in range(5) if (bins == b).any()]
        orders = [[emb[i] @ emb[x] > emb[i] @ emb[y] for k, x in enumerate(pick) for y in pick[k + 1:]]
                  for pick in itertools.product(*members)]
        accuracy.append(np.mean(orders))
        strict.append(np.mean([all(o) for o in orders]))
    assert result["anchors"] == 4
    assert result["accuracy"] == pytest.approx(np.mean(accuracy), abs=1e-12)
    assert result["strict"] == pytest.approx(np.mean(strict), abs=1e-12)


def test_orthogonality_is_one_for_orthogonal_value_centroids():
    rows = pd.DataFrame({"theory": ["mft"] * 4, "value": ["care-harm", "care-harm", "loyalty-betrayal", "loyalty-betrayal"],
                         "direction": [1, 1, 1, -1]})
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, -1]], dtype=np.float32)
    assert orthogonality(emb, rows) == {"mft": 1.0}
    assert orthogonality(np.array([[1, 0]] * 4, dtype=np.float32), rows) == {"mft": 0.0}


def test_intensity_probe_reads_a_linear_intensity(seed_texts):
    rows = training_rows(seed_texts)
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(len(rows), 16)).astype(np.float32)
    emb[:, 0] = rows["intensity"].to_numpy() / 10
    probe = evaluate_embeddings(emb, rows, max_anchors=50)["intensity_probe"]
    assert probe["kendall_tau"] > 0.8 and probe["protocol"] == "5-fold CV"


def test_multi_label_text_is_binned_by_its_closest_label(seed_texts):
    from hives_model.metrics import _bins

    rows = training_rows(seed_texts)
    care = rows.index[rows["value"] == "care-harm"][0]
    loyal = rows.index[(rows["value"] == "loyalty-betrayal") & (rows["direction"] == rows.at[care, "direction"])][0]
    plain = LabelSpace.from_taxonomy().encode(rows)
    assert _bins(plain, care)[loyal] == 4  # other level_1
    twin = rows.loc[[loyal]].copy()
    twin[["value", "level_1", "level_2", "level_3"]] = rows.loc[care, ["value", "level_1", "level_2", "level_3"]].to_numpy()
    multi = LabelSpace.from_taxonomy().encode(pd.concat([rows, twin], ignore_index=True))
    assert _bins(multi, care)[loyal] == 0  # the same text also carries care-harm in the same direction

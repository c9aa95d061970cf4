"""The projection recipe: a Dense module trained on the frozen base's embeddings, saved as built-in modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hives_model.data import LabelSpace, training_rows
from hives_model.projection import ProjectionConfig
from hives_model.train import HivesTrainConfig, StageConfig, train_hives
from valueflow.io import InputError

VALUES = ["benevolence", "power", "care-harm", "fairness-cheating"]


@pytest.fixture(scope="module")
def projected(tmp_path_factory, seed_texts):
    root = tmp_path_factory.mktemp("projection")
    keep = seed_texts[seed_texts["value"].isin(VALUES)]
    keep.to_parquet(root / "texts.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("texts.parquet"), out=Path("models/hives"), root=root, recipe="projection",
                           projection=ProjectionConfig(steps=100),
                           stage1=StageConfig(steps=0), stage2=StageConfig(steps=0), max_seq_length=64)
    model, metrics = train_hives(cfg)
    return root, model, metrics, keep


def test_projection_saves_builtin_modules_that_reload_offline(projected):
    from sentence_transformers import SentenceTransformer

    from hives_model.export import check_builtin_modules

    root, model, metrics, _ = projected
    folder = root / "models" / "hives"
    types = [t.rsplit(".", 1)[-1] for t in check_builtin_modules(folder)]
    assert types == ["Transformer", "Pooling", "Normalize", "Dense", "Dense", "Normalize"]
    assert metrics["recipe"] == "projection" and metrics["projection"]["embed_seconds"] >= 0
    texts = ["I stayed up all night to look after my sick brother.", "Rules exist to be obeyed."]
    reloaded = SentenceTransformer(str(folder))
    emb = reloaded.encode(texts)
    assert emb.shape[0] == 2
    np.testing.assert_allclose(emb, model.encode(texts), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_int8_onnx_applies_the_dense_head(projected, tmp_path):
    from hives_model.onnx_export import OnnxEncoder, export_onnx_int8

    root, model, _, keep = projected
    folder = tmp_path / "m"
    shutil.copytree(root / "models" / "hives", folder)
    export_onnx_int8(folder)
    texts = keep["text"].head(30).tolist()
    onnx = OnnxEncoder(folder).encode(texts)
    assert onnx.shape[0] == 30
    cos = (onnx * model.encode(texts, normalize_embeddings=True)).sum(axis=1)
    assert cos.min() >= 0.99


def test_projection_learns_the_label_order_of_its_training_texts(projected):
    from hives_model.metrics import hierarchical_ranking_accuracy
    from valueflow.models import load_sentence_model

    _, model, _, keep = projected
    rows = training_rows(keep)
    labels = LabelSpace.from_taxonomy().encode(rows)
    texts = rows["text"].tolist()
    trained = hierarchical_ranking_accuracy(model.encode(texts, normalize_embeddings=True), labels)["accuracy"]
    base = hierarchical_ranking_accuracy(load_sentence_model().encode(texts, normalize_embeddings=True), labels)["accuracy"]
    assert trained > base


def test_projection_wider_than_the_base_is_refused(seed_texts, tmp_path):
    seed_texts[seed_texts["value"].isin(VALUES)].to_parquet(tmp_path / "t.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("t.parquet"), root=tmp_path, recipe="projection",
                           projection=ProjectionConfig(head="contrastive", dim=1000, steps=1), stage1=StageConfig(steps=0),
                           stage2=StageConfig(steps=0))
    with pytest.raises(InputError, match="wider than the base embedding"):
        train_hives(cfg)


def test_contrastive_head_is_one_dense_of_its_width(seed_texts, tmp_path):
    seed_texts[seed_texts["value"].isin(VALUES)].to_parquet(tmp_path / "t.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("t.parquet"), out=Path("m"), root=tmp_path, recipe="projection",
                           projection=ProjectionConfig(head="contrastive", dim=16, steps=5, batch_size=16),
                           stage1=StageConfig(steps=0), stage2=StageConfig(steps=0), max_seq_length=32)
    model, metrics = train_hives(cfg)
    assert [type(m).__name__ for m in model][-2:] == ["Dense", "Normalize"] and model.encode(["x"]).shape == (1, 16)
    assert metrics["projection"]["loss_curve"]


def test_only_the_full_recipe_needs_stage1_steps():
    assert HivesTrainConfig(recipe="projection", stage1=StageConfig(steps=0)).stage1.steps == 0
    with pytest.raises(ValueError, match="stage1.steps must be at least 1"):
        HivesTrainConfig(recipe="full", stage1=StageConfig(steps=0))


def _two_sources(per_group: int = 30, seed: int = 0):
    """Synthetic base embeddings of two paths: one source labels them with a direction (+1/-1), the other with none
    (as ValueNet and Touché23 do); each vector = its path's axis + its direction's axis (or the unknown source's own
    axis) + noise. Returns (rows, embeddings, group of each row)."""
    import pandas as pd

    from valueflow.taxonomy import get_taxonomy

    tax, rng = get_taxonomy(), np.random.default_rng(seed)
    records, vectors, groups = [], [], []
    for value, axis in (("power", 0), ("achievement", 1)):
        level_1, level_2, level_3 = tax.path(value)
        for direction, direction_axis in ((1, 2), (-1, 3), (None, 4)):
            for i in range(per_group):
                v = rng.normal(0, 0.35, 8)
                v[axis] += 1
                v[direction_axis] += 1
                vectors.append(v / np.linalg.norm(v))
                records.append({"text": f"{value} {direction} {i}", "theory": "pvq", "value": value, "level_1": level_1,
                                "level_2": level_2, "level_3": level_3, "direction": direction})
                groups.append((value, direction))
    rows = pd.DataFrame(records).astype({"direction": "Int64"})
    return training_rows(rows), np.asarray(vectors, dtype=np.float32), groups


def test_label_units_leave_unknown_directions_out_of_direction_units():
    """A text whose direction is unknown for a path is neither a positive nor a negative of that path's supporting
    or opposing unit, but a positive of the path's own node (the conflict of per-label units across sources)."""
    from hives_model.data import DIRECTION_UNKNOWN, L, oracle_column, oracle_nodes
    from hives_model.projection import label_units

    rows, _, _ = _two_sources(per_group=5)
    labels = LabelSpace.from_taxonomy().encode(rows)
    first, targets, masks, layout = label_units(labels)
    path, direction = labels[first, L["prefix_3"]], labels[first, L["direction"]]
    power = path == labels[rows["value"].eq("power").to_numpy(), L["prefix_3"]][0]
    n = oracle_nodes()
    supports = int(np.flatnonzero(layout[:, oracle_column(n, 3, path[power][0], 1)] == 0.5)[0])
    assert (targets[:, supports] == (power & (direction == 1))).all()
    assert (masks[:, supports] == ~(power & (direction == DIRECTION_UNKNOWN))).all()
    node = int(np.flatnonzero(layout[:, oracle_column(n, 3, path[power][0])] == 0.5)[0])
    assert (targets[:, node] == power).all() and masks[:, node].all()


def test_label_head_ranks_a_held_out_text_by_path_then_direction():
    """What a user relies on: a new text of a known path and direction sits nearer the texts of that path and
    direction than those of the path's other direction, and those nearer than texts of another path."""
    from hives_model.projection import project, train_label_head

    rows, emb, groups = _two_sources()
    held = np.arange(len(rows)) % 30 >= 25  # the last 5 texts of every group
    labels = LabelSpace.from_taxonomy().encode(rows[~held])
    head = train_label_head(emb[~held], labels, ProjectionConfig())
    z = project(head, emb[held])
    group = [g for g, h in zip(groups, held) if h]

    def mean_cos(a, b) -> float:
        i, j = [k for k, g in enumerate(group) if g == a], [k for k, g in enumerate(group) if g == b]
        sims = z[i] @ z[j].T
        return float(sims[~np.eye(len(i), dtype=bool)].mean() if a == b else sims.mean())

    for value, other in (("power", "achievement"), ("achievement", "power")):
        for direction in (1, -1):
            g = (value, direction)
            assert mean_cos(g, g) > mean_cos(g, (value, -direction)) > mean_cos(g, (other, direction))

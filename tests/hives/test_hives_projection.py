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

"""The projection recipe's encoder fine-tune: the top layers move with the labels head's loss, the rest stays the
base, and the saved folder is still built-in modules that reload offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hives_model.encoder_tuning import length_batches, trainable_top, transformer_layers
from hives_model.projection import ProjectionConfig
from hives_model.train import HivesTrainConfig, StageConfig, train_hives

VALUES = ["benevolence", "power", "care-harm", "fairness-cheating"]


def test_length_batches_cover_every_text_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(5, 120, size=1000)
    batches = length_batches(lengths, 16, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = sum(16 * lengths[i:i + 16].max() for i in range(0, 1000, 16))
    assert padded < 0.7 * shuffled  # the point of grouping by length: far fewer padding tokens to run


def test_only_the_top_layers_are_trainable():
    from valueflow.models import load_sentence_model

    model = load_sentence_model()
    layers = transformer_layers(model)
    trainable = {id(p) for p in trainable_top(model, 2)}
    assert len(layers) == 6  # all-MiniLM-L6-v2
    for i, layer in enumerate(layers):
        assert all((id(p) in trainable) == (i >= 4) for p in layer.parameters())
    assert not any(id(p) in trainable for p in model[0].auto_model.embeddings.parameters())
    assert len({id(p) for p in trainable_top(model, 99)}) == len(list(model.parameters()))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, seed_texts):
    root = tmp_path_factory.mktemp("encoder_tuning")
    seed_texts[seed_texts["value"].isin(VALUES)].to_parquet(root / "texts.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("texts.parquet"), out=Path("models/hives"), root=root, recipe="projection",
                           projection=ProjectionConfig(steps=100, encoder_epochs=1, encoder_layers=2),
                           stage1=StageConfig(steps=0), stage2=StageConfig(steps=0), max_seq_length=64)
    model, metrics = train_hives(cfg)
    return root, model, metrics


def test_tuned_encoder_moves_its_top_layers_only_and_reloads(tuned):
    from sentence_transformers import SentenceTransformer

    from hives_model.export import check_builtin_modules
    from valueflow.models import load_sentence_model

    root, model, metrics = tuned
    folder = root / "models" / "hives"
    assert [t.rsplit(".", 1)[-1] for t in check_builtin_modules(folder)] == [
        "Transformer", "Pooling", "Normalize", "Dense", "Dense", "Normalize"]
    record = metrics["projection"]
    assert len(record["encoder_loss_curve"]) == 1 and record["encoder_seconds"] > 0
    base, reloaded = transformer_layers(load_sentence_model()), transformer_layers(SentenceTransformer(str(folder)))

    def moved(i: int) -> bool:
        return any(not np.allclose(a.detach().numpy(), b.detach().numpy())
                   for a, b in zip(base[i].parameters(), reloaded[i].parameters(), strict=True))

    assert [moved(i) for i in range(6)] == [False] * 4 + [True] * 2
    texts = ["I stayed up all night to look after my sick brother.", "Rules exist to be obeyed."]
    np.testing.assert_allclose(SentenceTransformer(str(folder)).encode(texts), model.encode(texts), atol=1e-5)

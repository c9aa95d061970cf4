"""The int8 export every ONNX graph of the project goes through, on the offline MiniLM (mpnet's figures:
``benchmarks/onnx_agreement.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def minilm_graph(tmp_path_factory, seed_dir):
    from sentence_transformers import SentenceTransformer

    from valueflow.models import resolve_model_path
    from valueflow.onnx_int8 import GraphEncoder, export_int8

    folder = resolve_model_path("all-MiniLM-L6-v2")
    model = SentenceTransformer(folder, device="cpu")
    transformer = model[0]
    sample = transformer.tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    path = export_int8(transformer.auto_model, sample, lambda out: out.last_hidden_state, "last_hidden_state",
                       tmp_path_factory.mktemp("onnx") / "model_qint8.onnx")
    texts = [t for f in sorted(seed_dir.glob("*.csv")) for t in pd.read_csv(f)["text"].head(12)]
    return model, path, GraphEncoder(path, folder), texts


def _embed(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_every_weight_matmul_is_int8_and_activations_get_a_scale_per_token(minilm_graph):
    import onnx

    graph = onnx.load(str(minilm_graph[1])).graph
    weights = {i.name for i in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulInteger") == 6 * 6  # q, k, v, attention output, FFN in and out of 6 layers
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    assert "DynamicQuantizeLinear" not in ops  # one scale per batch: what made all-mpnet-base-v2 drift


def test_a_text_embeds_the_same_alone_and_batched_with_others(minilm_graph):
    # with one activation scale per batch, a text's int8 embedding moved with its batch-mates (cosine down to 0.98
    # on MiniLM; on all-mpnet-base-v2, whose <s> and </s> carry activations ~60x the rest, down to 0.65 to PyTorch)
    _, _, encoder, texts = minilm_graph
    batched = encoder.encode(texts, batch_size=len(texts), then=_embed)
    alone = np.concatenate([encoder.encode([t], batch_size=1, then=_embed) for t in texts])
    assert np.abs(batched - alone).max() < 1e-4


def test_int8_embeddings_agree_with_pytorch(minilm_graph):
    model, _, encoder, texts = minilm_graph
    cos = (encoder.encode(texts, batch_size=16, then=_embed) * model.encode(texts, normalize_embeddings=True)).sum(1)
    assert cos.mean() >= 0.995 and cos.min() >= 0.98


def test_graph_encoder_keeps_the_order_of_texts_and_takes_none(minilm_graph):
    _, _, encoder, texts = minilm_graph
    some = [texts[3], "short", texts[0]]  # batched longest first inside, returned in this order
    out = encoder.encode(some, batch_size=2, then=_embed)
    alone = np.concatenate([encoder.encode([t], then=_embed) for t in some])
    np.testing.assert_allclose(out, alone, atol=1e-4)
    assert encoder.encode([]).shape == (0, 0)


def test_threads_run_batches_side_by_side_and_give_the_rows_of_one_thread(minilm_graph):
    from valueflow.onnx_int8 import GraphEncoder

    _, path, one, texts = minilm_graph
    three = GraphEncoder(path, one.tokenizer.name_or_path, threads=3)
    # many batches (spread over the threads) and fewer texts than threads (split so that each has one)
    for some, size in ((texts, 5), (texts[:2], 16)):
        np.testing.assert_allclose(three.encode(some, batch_size=size, then=_embed),
                                   one.encode(some, batch_size=size, then=_embed), atol=1e-4)

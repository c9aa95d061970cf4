"""ONNX export of a sentence-transformers Transformer (int8, activations per token) and a small ONNX encoder.

The graph maps (input_ids, attention_mask[, token_type_ids]) to ``last_hidden_state``, the layout
sentence-transformers' own ONNX backend expects, so ``SentenceTransformer(path, backend="onnx",
model_kwargs={"file_name": "onnx/model_qint8.onnx"})`` works where optimum is installed. ``OnnxEncoder`` needs
only onnxruntime and the tokenizer: ``valueflow.onnx_int8.GraphEncoder`` runs the graph, then it applies the folder's
own modules after the Transformer, in order (pooling, mean or CLS; ``Normalize``; ``Dense``, the projection recipe's
head, from its saved weights). The graph stays the Transformer alone, so the head is not quantised and the same graph
serves any head. The export itself is ``valueflow.onnx_int8.export_int8``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from valueflow.onnx_int8 import ONNX_DIR, QUANTISED_FILE, GraphEncoder, export_int8


def export_onnx_int8(model_dir: str | Path) -> Path:
    """Write ``<model_dir>/onnx/model_qint8.onnx`` (int8 weights, dynamic activation quantisation)."""
    from sentence_transformers import SentenceTransformer

    model_dir = Path(model_dir)
    transformer = SentenceTransformer(str(model_dir), device="cpu")[0]
    sample = transformer.tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    return export_int8(transformer.auto_model, sample, lambda out: out.last_hidden_state, "last_hidden_state",
                       model_dir / ONNX_DIR / QUANTISED_FILE)


class OnnxEncoder:
    """Encode texts with an exported ONNX graph: tokenizer + onnxruntime + the folder's pooling and normalisation."""

    def __init__(self, model_dir: str | Path, file_name: str = f"{ONNX_DIR}/{QUANTISED_FILE}", threads: int = 1) -> None:
        model_dir = Path(model_dir)
        self.graph = GraphEncoder(model_dir / file_name, model_dir, threads)
        self.head = _head_of(model_dir)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """The folder's embeddings (normalised when it normalises), in the order of ``texts``."""
        return self.graph.encode(texts, batch_size, then=self._apply_head).astype(np.float32)

    def _apply_head(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        for step in self.head:
            hidden = step(hidden, mask)
        return hidden


def _pool(mode: str):
    def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if mode == "cls":
            return hidden[:, 0]
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    return pool


def _normalize(emb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)


_ACTIVATIONS = {"torch.nn.modules.linear.Identity": lambda x: x, "torch.nn.modules.activation.Tanh": np.tanh,
                "torch.nn.modules.activation.Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x))}


def _dense(folder: Path):
    """A saved ``Dense`` module as numpy: linear map, activation, optional residual (its own config and weights)."""
    from safetensors.numpy import load_file

    cfg = json.loads((folder / "config.json").read_text())
    activation = _ACTIVATIONS.get(cfg.get("activation_function", "torch.nn.modules.activation.Tanh"))
    if activation is None:
        raise ValueError(f"{folder}: activation {cfg['activation_function']!r} is not supported by OnnxEncoder")
    weights = load_file(str(folder / "model.safetensors"))
    w, b = weights["linear.weight"].T, weights.get("linear.bias")
    residual = weights.get("residual.weight")

    def dense(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = activation(x @ w + (b if b is not None else 0.0))
        if cfg.get("use_residual"):
            out = out + (x @ residual.T if residual is not None else x)
        return out
    return dense


def _head_of(model_dir: Path) -> list:
    """The folder's modules after the Transformer, as numpy steps ``(embedding, mask) -> embedding``."""
    steps = []
    for m in json.loads((model_dir / "modules.json").read_text())[1:]:
        folder = model_dir / m["path"]
        if m["type"].endswith("Pooling"):
            cfg = json.loads((folder / "config.json").read_text())
            mode = cfg.get("pooling_mode") or ("cls" if cfg.get("pooling_mode_cls_token") else "mean")
            if mode not in ("mean", "cls"):
                raise ValueError(f"{model_dir}: pooling mode {mode!r} is not supported by OnnxEncoder")
            steps.append(_pool(mode))
        elif m["type"].endswith("Normalize"):
            steps.append(_normalize)
        elif m["type"].endswith("Dense"):
            steps.append(_dense(folder))
        else:
            raise ValueError(f"{model_dir}: module {m['type']} is not supported by OnnxEncoder")
    if not steps:
        steps.append(_pool("mean"))
    return steps

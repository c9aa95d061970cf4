"""ONNX export of a sentence-transformers Transformer + int8 dynamic quantisation, and a small ONNX encoder.

The graph maps (input_ids, attention_mask[, token_type_ids]) to ``last_hidden_state``, the layout
sentence-transformers' own ONNX backend expects, so ``SentenceTransformer(path, backend="onnx",
model_kwargs={"file_name": "onnx/model_qint8.onnx"})`` works where optimum is installed. ``OnnxEncoder`` needs
only onnxruntime and the tokenizer: it applies the model's own pooling (mean or CLS) and normalisation.
The export itself is ``valueflow.onnx_int8.export_int8``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from valueflow.onnx_int8 import ONNX_DIR, QUANTISED_FILE, export_int8, session


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
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        self.session = session(model_dir / file_name, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        bert_config = model_dir / "sentence_bert_config.json"
        self.max_length = json.loads(bert_config.read_text()).get("max_seq_length", 256) if bert_config.exists() else 256
        self.pooling, self.normalize = _pooling_of(model_dir)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalised (when the folder normalises) embeddings, in the order of ``texts``.

        Texts are batched longest first, as sentence-transformers does, so that padding stays small.
        """
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        out = []
        for start in range(0, len(ordered), batch_size):
            enc = self.tokenizer(ordered[start : start + batch_size], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feeds = {n: enc[n].astype(np.int64) for n in self.input_names}
            hidden = self.session.run(None, feeds)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            if self.pooling == "cls":
                emb = hidden[:, 0]
            else:
                emb = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out.append(emb)
        emb = np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
        if len(emb):
            restored = np.empty_like(emb)
            restored[order] = emb
            emb = restored
        if self.normalize:
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
        return emb.astype(np.float32)


def _pooling_of(model_dir: Path) -> tuple[str, bool]:
    modules = json.loads((model_dir / "modules.json").read_text())
    pooling, normalize = "mean", False
    for m in modules:
        if m["type"].endswith("Pooling"):
            cfg = json.loads((model_dir / m["path"] / "config.json").read_text())
            mode = cfg.get("pooling_mode") or ("cls" if cfg.get("pooling_mode_cls_token") else "mean")
            if mode not in ("mean", "cls"):
                raise ValueError(f"{model_dir}: pooling mode {mode!r} is not supported by OnnxEncoder")
            pooling = mode
        if m["type"].endswith("Normalize"):
            normalize = True
    return pooling, normalize

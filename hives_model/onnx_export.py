"""ONNX export of a sentence-transformers Transformer + int8 dynamic quantisation, and a small ONNX encoder.

The graph maps (input_ids, attention_mask[, token_type_ids]) to ``last_hidden_state``, the layout
sentence-transformers' own ONNX backend expects, so ``SentenceTransformer(path, backend="onnx",
model_kwargs={"file_name": "onnx/model_qint8.onnx"})`` works where optimum is installed. ``OnnxEncoder`` needs
only onnxruntime and the tokenizer: it applies the model's own pooling (mean or CLS) and normalisation.
Exported with the TorchScript exporter (``dynamo=False``): the dynamo exporter needs onnxscript.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

ONNX_DIR = "onnx"
QUANTISED_FILE = "model_qint8.onnx"


def export_onnx_int8(model_dir: str | Path, opset: int = 17) -> Path:
    """Write ``<model_dir>/onnx/model_qint8.onnx`` (int8 weights, dynamic activation quantisation)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    model_dir = Path(model_dir)
    model = SentenceTransformer(str(model_dir), device="cpu")
    transformer = model[0]
    auto_model = transformer.auto_model.eval()
    tokenizer = transformer.tokenizer
    sample = tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = auto_model

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    out_dir = model_dir / ONNX_DIR
    out_dir.mkdir(exist_ok=True)
    target = out_dir / QUANTISED_FILE
    with tempfile.TemporaryDirectory(prefix="hives-onnx-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _Graph(), tuple(sample[n] for n in names), str(fp32), dynamo=False, opset_version=opset,
                input_names=names, output_names=["last_hidden_state"],
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                              "last_hidden_state": {0: "batch", 1: "sequence"}},
            )
        # per-channel weights keep the int8 graph within ~0.99 cosine of PyTorch (per-tensor: ~0.96). Fusing
        # attention/GELU with onnxruntime's transformer optimizer first was measured slower here, so it is not done.
        quantised = Path(tmp) / QUANTISED_FILE
        quantize_dynamic(str(fp32), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(quantised, target)
    return target


class OnnxEncoder:
    """Encode texts with an exported ONNX graph: tokenizer + onnxruntime + the folder's pooling and normalisation."""

    def __init__(self, model_dir: str | Path, file_name: str = f"{ONNX_DIR}/{QUANTISED_FILE}", threads: int = 1) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_dir / file_name), opts, providers=["CPUExecutionProvider"])
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

"""Int8 ONNX graphs of the project's transformer models, run with onnxruntime alone (no optimum).

``export_int8`` traces a torch module with the TorchScript exporter (``dynamo=False``: the dynamo exporter needs
onnxscript) and quantises its weights to int8 per channel, activations dynamically. HiVES
(``hives_model.onnx_export``) and the learned judge (``valueflow.judges.value_head``) both export through it, into
``<folder>/onnx/model_qint8.onnx``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

ONNX_DIR = "onnx"
QUANTISED_FILE = "model_qint8.onnx"


def export_int8(model, sample: dict, output: Callable, output_name: str, target: str | Path, opset: int = 17) -> Path:
    """Write the int8 graph of ``output(model(**inputs))`` to ``target``: a transformers model, the tokenizer
    outputs it reads (``sample``: those of input_ids, attention_mask and token_type_ids it has; batch and sequence
    axes dynamic) and the one tensor ``output`` picks from its outputs, named ``output_name`` (batch axis, and
    sequence when 3-D)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class _Graph(torch.nn.Module):  # positional inputs in ``names`` order, the one output tensor
        def __init__(self) -> None:
            super().__init__()
            self.inner = model.eval()

        def forward(self, *inputs):
            return output(self.inner(**dict(zip(names, inputs))))

    module = _Graph()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        probe = module(*(sample[n] for n in names))
    out_axes = {0: "batch", 1: "sequence"} if probe.dim() == 3 else {0: "batch"}
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                module, tuple(sample[n] for n in names), str(fp32), dynamo=False, opset_version=opset,
                input_names=names, output_names=[output_name],
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, output_name: out_axes},
            )
        # per-channel weights keep the int8 graph within ~0.99 cosine of PyTorch (per-tensor: ~0.96). Fusing
        # attention/GELU with onnxruntime's transformer optimizer first was measured slower here, so it is not done.
        quantised = Path(tmp) / target.name
        quantize_dynamic(str(fp32), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(quantised, target)
    return target


def session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

"""CPU encode throughput of a HiVES folder in PyTorch and as the int8 ONNX graph, on the same 1,000 texts.

    python3 benchmarks/hives_onnx.py [--model release/hives] [--threads 1]

Prints texts/s of both, their ratio (target >= 2x) and the mean cosine between their embeddings (target >= 0.99).
A folder without ``onnx/model_qint8.onnx`` (or the base model, when release/hives does not exist yet) is exported
into a temporary copy first. Texts: Touché23 validation premises from the reference data, else the seed corpus.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd


def benchmark_texts(n: int) -> list[str]:
    from valueflow.io import refdata_dir

    ref = refdata_dir()
    if ref is not None and (ref / "touche23" / "arguments-validation.tsv").exists():
        texts = pd.read_csv(ref / "touche23" / "arguments-validation.tsv", sep="\t", dtype=str)["Premise"].dropna().tolist()
    else:
        texts = [t for f in sorted((ROOT / "data" / "seed" / "texts").glob("*.csv")) for t in pd.read_csv(f)["text"]]
    return [texts[i % len(texts)] for i in range(n)]


def timed(fn, texts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    fn(texts[:32])  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "release" / "hives")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from hives_model.onnx_export import QUANTISED_FILE, OnnxEncoder, export_onnx_int8
    from valueflow.models import resolve_model_path

    torch.set_num_threads(args.threads)
    texts = benchmark_texts(args.texts)
    with tempfile.TemporaryDirectory(prefix="hives-onnx-bench-") as tmp:
        folder = args.model if args.model.is_dir() else Path(resolve_model_path("all-MiniLM-L6-v2"))
        if not (folder / "onnx" / QUANTISED_FILE).exists():
            copy = Path(tmp) / "model"
            shutil.copytree(folder, copy)
            started = time.perf_counter()
            export_onnx_int8(copy)
            print(f"exported {folder} to int8 ONNX in {time.perf_counter() - started:.1f} s")
            folder = copy
        model = SentenceTransformer(str(folder), device="cpu")
        onnx = OnnxEncoder(folder, threads=args.threads)
        torch_rate, torch_emb = timed(lambda t: model.encode(t, batch_size=args.batch_size, normalize_embeddings=True), texts, args.repeats)
        onnx_rate, onnx_emb = timed(lambda t: onnx.encode(t, batch_size=args.batch_size), texts, args.repeats)
    cos = (torch_emb * onnx_emb).sum(axis=1)
    print(f"model: {args.model if args.model.is_dir() else 'base all-MiniLM-L6-v2 (release/hives not built)'}; "
          f"{len(texts)} texts, batch {args.batch_size}, {args.threads} thread(s)")
    print(f"{'backend':<22}{'texts/s':>10}")
    print(f"{'pytorch fp32':<22}{torch_rate:>10.1f}")
    print(f"{'onnx int8 (ORT)':<22}{onnx_rate:>10.1f}")
    ratio = onnx_rate / torch_rate
    print(f"speed-up {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'NOT met'}); "
          f"mean cosine {cos.mean():.4f}, min {cos.min():.4f} (target >= 0.99: {'met' if cos.mean() >= 0.99 else 'NOT met'})")


if __name__ == "__main__":
    main()

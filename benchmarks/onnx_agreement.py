"""Does the int8 ONNX graph (``valueflow.onnx_int8.export_int8``) agree with PyTorch, and how much faster is it?

    python3 benchmarks/onnx_agreement.py [--model all-mpnet-base-v2] [--judge FOLDER] [--texts 600] [--threads 1]

``--model`` (a name ``valueflow.models`` resolves, or a folder) is exported as HiVES exports, into a temporary copy,
and its ONNX embeddings (``OnnxEncoder``) are compared with ``SentenceTransformer.encode``: mean and min cosine
(target: mean >= 0.99). ``--judge`` (a learned-judge folder, copied, re-exported) compares the two backends'
scores: per-value Spearman over the texts (target >= 0.99) and the largest difference in VIDB points. Both time
the same texts in the same batches on ``--threads`` threads and print texts/s and the ONNX / PyTorch ratio.
Texts: half ValueNet scenarios, half Touche23 premises (reference data), else the seed corpus.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd


def benchmark_texts(n: int) -> list[str]:
    from valueflow.io import refdata_dir

    ref = refdata_dir()
    if ref is not None and (ref / "touche23" / "arguments-validation.tsv").exists():
        valuenet = [t for f in sorted((ref / "valuenet").glob("*.csv")) for t in pd.read_csv(f)["input"].dropna()]
        touche = pd.read_csv(ref / "touche23" / "arguments-validation.tsv", sep="\t")["Premise"].dropna().tolist()
        rng = np.random.default_rng(0)
        return [valuenet[i] for i in rng.permutation(len(valuenet))[:n // 2]] + \
               [touche[i] for i in rng.permutation(len(touche))[:n - n // 2]]
    texts = [t for f in sorted((ROOT / "data" / "seed" / "texts").glob("*.csv")) for t in pd.read_csv(f)["text"]]
    return [texts[i % len(texts)] for i in range(n)]


def timed(fn, texts: list[str]) -> tuple[float, np.ndarray]:
    fn(texts[:16])  # warm-up
    start = time.perf_counter()
    out = np.asarray(fn(texts), dtype=float)
    return len(texts) / (time.perf_counter() - start), out


def report(what: str, torch_rate: float, onnx_rate: float, agreement: str) -> None:
    print(f"{what}: torch {torch_rate:.1f} texts/s, onnx {onnx_rate:.1f} texts/s, "
          f"ratio {onnx_rate / torch_rate:.2f}x; {agreement}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-mpnet-base-v2")
    ap.add_argument("--judge", type=Path, help="a learned-judge folder (train-judge's output) to compare as well")
    ap.add_argument("--texts", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    from hives_model.onnx_export import OnnxEncoder, export_onnx_int8
    from valueflow.judges.value_head import LearnedJudge, export_onnx
    from valueflow.models import resolve_model_path

    torch.set_num_threads(args.threads)
    texts = benchmark_texts(args.texts)
    print(f"{len(texts)} texts, batch {args.batch_size}, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory(prefix="onnx-agreement-") as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(resolve_model_path(args.model), folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
        export_onnx_int8(folder)
        model, onnx = SentenceTransformer(str(folder), device="cpu"), OnnxEncoder(folder, threads=args.threads)
        torch_rate, torch_emb = timed(lambda t: model.encode(t, batch_size=args.batch_size, normalize_embeddings=True),
                                      texts)
        onnx_rate, onnx_emb = timed(lambda t: onnx.encode(t, batch_size=args.batch_size), texts)
        cos = (torch_emb * onnx_emb).sum(axis=1) / np.linalg.norm(onnx_emb, axis=1)
        report(args.model, torch_rate, onnx_rate, f"cosine mean {cos.mean():.4f}, min {cos.min():.4f}")

        if args.judge:
            judge = Path(tmp) / "judge"
            shutil.copytree(args.judge, judge, ignore=shutil.ignore_patterns("onnx"))
            export_onnx(judge)
            backends = {b: LearnedJudge(str(judge), backend=b, threads=args.threads, batch_size=args.batch_size)
                        for b in ("torch", "onnx")}
            (torch_rate, t_scores), (onnx_rate, o_scores) = (
                timed(lambda t, j=j: j.model.encode(t, batch_size=args.batch_size, convert_to_numpy=True,
                                                      show_progress_bar=False), texts) for j in backends.values())
            rho = [spearmanr(t_scores[:, v], o_scores[:, v])[0] for v in range(t_scores.shape[1])]
            report(f"judge {args.judge.name}", torch_rate, onnx_rate,
                   f"per-value Spearman mean {np.mean(rho):.4f}, min {np.min(rho):.4f}; "
                   f"largest difference {np.abs(t_scores - o_scores).max():.2f} VIDB points")


if __name__ == "__main__":
    main()

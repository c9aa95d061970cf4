"""Sentence embeddings of the real corpora, computed once per (model, text) and kept on disk for the benchmarks.

Frozen-encoder recipes (a head on the judge, a projection for HiVES) train in seconds on cached embeddings; the
encoder pass is the cost (all-mpnet-base-v2 embeds about 30-60 short texts a second on 2 CPU cores), so the
benchmarks share one cache. Keys are a hash of the normalised text; one .npy of float32 rows per model plus an
index, rewritten atomically after each batch so a killed run keeps what it embedded.

    python3 benchmarks/embedding_cache.py --model all-mpnet-base-v2 [--sources valuenet vidb_anchors touche23 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from valueflow.io import normalise_text

DEFAULT_DIR = Path("/tmp/valueflow_embeddings")


def text_key(text: str) -> str:
    return hashlib.sha1(normalise_text(text).encode()).hexdigest()


class EmbeddingCache:
    """Normalised embeddings of one model, by text key, in ``folder/<model>.npy`` + ``.keys.txt``."""

    def __init__(self, model: str, folder: Path = DEFAULT_DIR) -> None:
        self.model_name = model
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / model.replace("/", "__")
        self.vectors_path, self.keys_path = stem.with_suffix(".npy"), stem.with_suffix(".keys.txt")
        self.keys: list[str] = self.keys_path.read_text().split() if self.keys_path.exists() else []
        self.vectors = np.load(self.vectors_path) if self.keys else None
        if self.vectors is not None and len(self.vectors) != len(self.keys):  # killed between the two writes
            n = min(len(self.vectors), len(self.keys))
            self.keys, self.vectors = self.keys[:n], self.vectors[:n]
        self.index = {k: i for i, k in enumerate(self.keys)}

    def _save(self) -> None:
        tmp = self.vectors_path.with_name(self.vectors_path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, self.vectors)
        os.replace(tmp, self.vectors_path)
        tmp = self.keys_path.with_name(self.keys_path.name + ".tmp")
        tmp.write_text("\n".join(self.keys))
        os.replace(tmp, self.keys_path)

    def embed(self, texts: Sequence[str], batch: int = 512, progress: bool = True) -> np.ndarray:
        """Embeddings of ``texts`` (rows in order), encoding only those not cached yet."""
        keys = [text_key(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self.index))
        if todo:
            from valueflow.models import clip_to_window, load_sentence_model

            model = load_sentence_model(self.model_name)
            by_key = dict(zip(keys, texts))
            t0 = time.perf_counter()
            for start in range(0, len(todo), batch):
                chunk = todo[start:start + batch]
                clipped, _ = clip_to_window(model, [by_key[k] for k in chunk])
                emb = model.encode(clipped, batch_size=32, normalize_embeddings=True,
                                   convert_to_numpy=True).astype(np.float32)
                self.vectors = emb if self.vectors is None else np.concatenate([self.vectors, emb])
                for k in chunk:
                    self.index[k] = len(self.keys)
                    self.keys.append(k)
                self._save()
                if progress:
                    done = min(start + batch, len(todo))
                    print(f"  {self.model_name}: {done}/{len(todo)} embedded "
                          f"({done / (time.perf_counter() - t0):.1f} texts/s)", flush=True)
        return self.vectors[[self.index[k] for k in keys]]


def source_texts(texts: pd.DataFrame, source: str, max_per_source: int | None = None) -> pd.Series:
    """The distinct texts of a source (every source whose name starts with ``source``), or the seeded sample of
    ``max_per_source`` of them that ``--max-per-source`` embeds: the benchmarks train on the texts cached here."""
    distinct = pd.Series(pd.unique(texts.loc[texts["source"].str.startswith(source), "text"]))
    if max_per_source and len(distinct) > max_per_source:
        distinct = distinct.sample(max_per_source, random_state=0)
    return distinct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-mpnet-base-v2")
    ap.add_argument("--sources", nargs="+",
                    default=["valuenet", "vidb_anchors", "touche23", "mfrc", "moral_stories", "social_chem"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/real_texts_work"))
    ap.add_argument("--cache", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--max-per-source", type=int, default=None, help="a seeded sample of each source's texts")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from hives_real import ingest_sources

    args.work.mkdir(parents=True, exist_ok=True)
    texts = ingest_sources(args.work, ("valuenet", "vidb_anchors", "touche23", "mfrc", "moral_stories", "social_chem"))
    cache = EmbeddingCache(args.model, args.cache)
    for source in args.sources:
        distinct = source_texts(texts, source, args.max_per_source)
        print(f"{source}: {len(distinct)} distinct texts", flush=True)
        cache.embed(distinct.tolist())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

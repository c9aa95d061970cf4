"""The reference judge: turns labels a source already carries into rankings.

ValueNet's human -1/0/+1 labels and the seed corpus' reference intensities are not rankings; ordering each window
by them (ties broken at random, seeded per window so a rerun gives the same order) lets them enter the same
Plackett-Luce aggregation as any other judge, and makes them the yardstick other judges' reliabilities are
measured against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from valueflow.judges.base import Judge, JudgeAnswer, register_judge


class ReferenceJudge(Judge):
    """Orders a window by known labels: ``labels[(value, text)]`` or ``labels[text]`` -> a number, higher = more supportive.

    Args:
        labels: reference intensity (or direction) per text; keys are ``(value, text)`` tuples or plain texts.
        source: a short name of where the labels come from, recorded in the judge name.
        seed: seeds the tie-breaking (combined with the window's texts, so it does not depend on call order).
    """

    def __init__(self, labels: Mapping[object, float] | None = None, source: str = "labels", seed: int = 0) -> None:
        self.labels = dict(labels or {})
        self.seed = int(seed)
        self.name = f"reference:{source}@1"

    def _label(self, value: str, text: str) -> float | None:
        for key in ((value, text), text):
            if key in self.labels:
                x = self.labels[key]
                return None if x is None or np.isnan(float(x)) else float(x)
        return None

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        answers = []
        for window in windows:
            labels = [self._label(value, t) for t in window]
            missing = [i for i, x in enumerate(labels) if x is None]
            if missing:
                answers.append(JudgeAnswer(None, error=f"no reference label for window position(s) {missing}"))
                continue
            digest = hashlib.sha1("\x1f".join([str(self.seed), value, *window]).encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            tiebreak = rng.random(len(window))
            # lexsort: last key is primary -> label descending, then random tiebreak
            order = np.lexsort((tiebreak, -np.asarray(labels)))
            answers.append(JudgeAnswer(tuple(int(i) for i in order), prompt_hash=digest.hex()[:16]))
        return answers

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        return [self._label(value, t) for t in texts]


@register_judge("reference")
def _make(source: str = "labels", **options: object) -> ReferenceJudge:
    return ReferenceJudge(source=source, **options)  # type: ignore[arg-type]

"""The reference judge: turns labels a source already carries into rankings.

ValueNet's human -1/0/+1 labels and the seed corpus' reference intensities are not rankings; ordering each window
by them lets them enter the same Plackett-Luce aggregation as any other judge, and makes them the yardstick other
judges' reliabilities are measured against.

Ties: equal labels say nothing about which of two texts is more supportive, and this judge counts with reliability
1, so a coin flip between them would enter the fit as certain evidence. It therefore ranks only strictly ordered
texts: a window with tied labels is answered with one strict chain per combination of its tie groups' members
(labels {a: 1, b: 1, c: 0} give [a, c] and [b, c]), so every member of a tie group gets the same evidence and
none is ever ranked above a text with an equal label; a window whose labels are all equal gives no ranking.
"""

from __future__ import annotations

import hashlib
import itertools
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

    def answer_settings(self) -> dict:
        return {"ties": "chains"}  # the answers changed from coin-flip tie-breaks: never reuse those

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
            if missing:  # the judge abstains (nothing to order), as for ties: no retry can give it a label
                answers.append(JudgeAnswer((), error=f"no reference label for window position(s) {missing}"))
                continue
            digest = hashlib.sha1("\x1f".join([str(self.seed), value, *window]).encode()).hexdigest()[:16]
            groups: dict[float, list[int]] = {}
            for i, x in enumerate(labels):
                groups.setdefault(x, []).append(i)
            if len(groups) < 2:
                answers.append(JudgeAnswer((), error="every label in the window is equal: nothing to order", prompt_hash=digest))
                continue
            chains = list(itertools.product(*(groups[x] for x in sorted(groups, reverse=True))))
            answers.append(JudgeAnswer(chains[0], prompt_hash=digest, also=tuple(chains[1:])))
        return answers

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        return [self._label(value, t) for t in texts]


@register_judge("reference", options_of=ReferenceJudge)
def _make(source: str = "labels", **options: object) -> ReferenceJudge:
    return ReferenceJudge(source=source, **options)  # type: ignore[arg-type]

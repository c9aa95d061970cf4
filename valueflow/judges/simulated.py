"""A simulated judge with known noise over known true intensities: the yardstick for tests and benchmarks.

It orders a window by sorting ``true intensity + noise * Gumbel`` (most supporting first). By the Gumbel-max
property that is an exact Plackett-Luce draw with utilities ``intensity / noise``: at ``noise = 1`` it is the very
model the anchor evaluator fits, so any error the evaluator makes against it comes from the windows it chose,
not from a model mismatch. ``noise`` -> 0 is a perfect judge.

It can also misbehave on purpose (``malformed_rate``: an answer that is not a permutation) so that tests can
check that the evaluator re-asks, logs and leaves such answers out; and it rates texts directly (true
intensity + Gaussian ``rating_noise``) as the rating-mode baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from valueflow.judges.base import Judge, JudgeAnswer, register_judge


class SimulatedJudge(Judge):
    """Ranks by known true intensities plus Gumbel noise.

    Args:
        truth: text -> true intensity, or (value, text) -> true intensity, or a callable (value, text) -> float.
        noise: Gumbel scale in intensity points (0: noiseless).
        seed: seeds the judge's own random stream (answers depend on the sequence of calls, like a sampled LLM).
        malformed_rate: probability that an answer is not a permutation.
        rating_noise: standard deviation of a direct rating around the truth.
        rating_bias: added to every direct rating (judges that rate are often shifted).
    """

    def __init__(
        self,
        truth: Mapping[object, float] | Callable[[str, str], float | None],
        noise: float = 1.0,
        seed: int = 0,
        malformed_rate: float = 0.0,
        rating_noise: float = 3.0,
        rating_bias: float = 0.0,
    ) -> None:
        self.truth, self.noise, self.malformed_rate = truth, float(noise), float(malformed_rate)
        self.rating_noise, self.rating_bias = float(rating_noise), float(rating_bias)
        self._rng = np.random.default_rng(seed)
        self.calls = 0
        self.name = f"simulated:noise={self.noise:g}@seed={seed}"

    def true_intensity(self, value: str, text: str) -> float | None:
        if callable(self.truth):
            return self.truth(value, text)
        if (value, text) in self.truth:
            return float(self.truth[(value, text)])  # type: ignore[index]
        got = self.truth.get(text)
        return None if got is None else float(got)

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        answers = []
        for window in windows:
            self.calls += 1
            truth = [self.true_intensity(value, t) for t in window]
            if any(x is None for x in truth):
                unknown = next(t for t, x in zip(window, truth) if x is None)
                answers.append(JudgeAnswer(None, error=f"simulated judge has no truth for {unknown[:60]!r}"))
                continue
            if self._rng.random() < self.malformed_rate:
                bad = [1] * len(window)  # a repeated index: not a permutation
                answers.append(JudgeAnswer(None, error="answer is not a permutation", raw=str(bad)))
                continue
            noisy = np.array(truth, dtype=float) + self.noise * self._rng.gumbel(size=len(window))
            order = tuple(int(i) for i in np.argsort(-noisy, kind="stable"))
            answers.append(JudgeAnswer(order, raw=str([i + 1 for i in order])))
        return answers

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for t in texts:
            self.calls += 1
            x = self.true_intensity(value, t)
            if x is None:
                out.append(None)
                continue
            out.append(float(np.clip(x + self.rating_bias + self.rating_noise * self._rng.normal(), -10, 10)))
        return out


@register_judge("simulated", options_of=SimulatedJudge)
def _make(truth: Mapping[object, float] | Callable[[str, str], float | None] | None = None, **options: object) -> SimulatedJudge:
    """``make_judge("simulated", truth={...}, noise=1.0)``: needs the truth, so it is for code, not the CLI."""
    if truth is None:
        raise ValueError("the simulated judge needs truth= (text -> true intensity); it is for tests and benchmarks")
    return SimulatedJudge(truth, **options)  # type: ignore[arg-type]

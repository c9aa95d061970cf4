"""The anchor-based evaluator: a text's intensity for a value, from a judge's rankings against VIDB anchors.

For each text and value the evaluator shows the judge ``m`` windows, each holding the text and ``k - 1`` anchors
(VIDB texts of that value with known intensities), and fits the text's utility by a one-dimensional
Plackett-Luce model in which the anchors' utilities are fixed to their intensities (times ``scale``) and the
text's utility has a small Gaussian prior. The paper's choices are kept as defaults (k = 6, m = 3, one anchor
per equal-width intensity bucket, the window-consistency guard, a prior precision of 1e-3); beyond the paper:

- the text's position in each window is random (the authors always showed it first, which leaves position
  bias uncontrolled);
- every score has a Laplace standard error;
- ``sampling="adaptive"`` shows a bucket window first, then places later windows' anchors around the current
  estimate, where a comparison carries the most information;
- every judge call is logged (JSONL: the anchors shown, their order, the raw answer) so that
  :func:`rescore_from_log` recomputes the scores without the judge;
- a value with fewer than ``MIN_ANCHORS`` anchors gets one ``warning:`` line: its scores are coarse;
- a judge answer that is not a permutation is re-asked (same anchors, freshly shuffled) and, if still unusable,
  logged and left out; a text with no usable window gets a missing score with its reason, never a made-up number.

``mode="rating"`` is the baseline the paper compares against: the judge rates the text directly (``Judge.rate``)
``m`` times and the score is the mean rating.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.anchors import AnchorPanel
from valueflow.io import warn
from valueflow.judges.base import Judge, JudgeAnswer

SAMPLING_MODES = ("bucket", "random", "adaptive")
# Below this many anchors a value, a text can only be placed among a few of them and its score is coarse: with the
# learned judge on held-out ValueNet (benchmarks/judge_real.py's fold 0, panels cut evenly over intensity), 5 anchors
# a value scored 0.02-0.03 lower than the full panel (about 70), 10 anchors 0.01-0.02 lower, 15 and more within 0.01.
MIN_ANCHORS = 15
MODES = ("ranking", "rating")
SCORE_COLUMNS = ["item_id", "value", "intensity", "intensity_se", "judge_calls", "windows", "missing_reason", "censored"]
LOG_VERSION = 1


# --- the 1-D Plackett-Luce fit with fixed anchors ------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """One window as shown to the judge: anchors in presentation order with the text inserted at ``position``.

    ``order`` lists presentation positions (0-based), most supporting first; None when the judge's answer was
    unusable (``error`` says why).
    """

    anchor_ids: tuple[str, ...]
    anchor_intensities: tuple[float, ...]
    position: int
    order: tuple[int, ...] | None = None
    error: str | None = None

    @property
    def size(self) -> int:
        return len(self.anchor_ids) + 1

    def to_json(self) -> dict:
        return {
            "anchors": list(self.anchor_ids),
            "intensities": [round(float(a), 6) for a in self.anchor_intensities],
            "position": self.position,
            "order": None if self.order is None else list(self.order),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class Fit:
    """A fitted intensity: ``intensity`` in [-10, 10] (None when no window was usable) and its standard error."""

    intensity: float | None
    se: float | None
    n_windows: int
    guard: str = ""  # "", "below_all", "above_all" or "clamped": which window-consistency rule applied


def is_permutation(order: Sequence[int] | None, size: int) -> bool:
    return order is not None and len(order) == size and sorted(int(i) for i in order) == list(range(size))


def fit_anchored_utility(
    windows: Iterable[Window], *, scale: float = 1.0, prior_precision: float = 1e-3, guard_margin: float = 0.5
) -> Fit:
    """MAP utility of the text given its windows, anchors fixed to ``scale * intensity``.

    The log-likelihood of one window, as a function of the text's utility u, is a sum over the Plackett-Luce
    stages up to the one where the text is chosen: log e^u / (e^u + S_j) at that stage and
    log S_j' / (e^u + S_j) before it, S_j being the summed exp-utilities of the anchors still remaining. It is
    concave in u, so the gradient n_windows - sum_j sigmoid(u - log S_j) - prior_precision * u is monotone and
    bisection finds its root. The standard error is the Laplace one, 1 / sqrt(-second derivative), taken at
    the reported estimate.

    ``prior_precision`` is the precision of a zero-mean Gaussian prior on the text's *intensity* (so it means the
    same whatever the scale; at scale 1 it is the paper's prior on the utility, 1e-3).

    The window-consistency guard (the paper's): a text ranked below every anchor it met lands ``guard_margin``
    below the lowest of them, one ranked above every anchor lands ``guard_margin`` above the highest, and
    otherwise the estimate is clamped into the range of the anchors seen; finally clipped to [-10, 10].
    """
    log_s: list[float] = []
    n = 0
    won = lost = 0
    seen: list[float] = []
    for w in windows:
        if w.order is None or not is_permutation(w.order, w.size):
            continue
        n += 1
        # utilities in presentation order; the text's slot is a placeholder
        shown = list(w.anchor_intensities)
        shown.insert(w.position, np.nan)
        ordered = [shown[p] for p in w.order]
        t = list(w.order).index(w.position)
        won += len(ordered) - 1 - t
        lost += t
        seen.extend(w.anchor_intensities)
        anchors_left = np.array([a for a in ordered if not np.isnan(a)], dtype=float) * scale
        # stage j <= t: the anchors remaining are those ranked at j or later (excluding the text)
        for j in range(t + 1):
            rest = anchors_left[j:]  # before the text's stage, ranked index == index among anchors
            log_s.append(float(np.logaddexp.reduce(rest)) if len(rest) else -np.inf)
    if n == 0:
        return Fit(None, None, 0)
    ls = np.array(log_s)
    lam = prior_precision / scale**2  # the prior is on the intensity scale; u = scale * intensity

    def grad(u: float) -> float:
        return n - float(np.sum(_sigmoid(u - ls))) - lam * u

    lo, hi = -40.0 * max(scale, 1e-6), 40.0 * max(scale, 1e-6)
    if grad(lo) <= 0:
        u = lo
    elif grad(hi) >= 0:
        u = hi
    else:
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if grad(mid) > 0:
                lo = mid
            else:
                hi = mid
        u = 0.5 * (lo + hi)
    intensity = u / scale
    guard = ""
    if won == 0:
        intensity, guard = min(seen) - guard_margin, "below_all"
    elif lost == 0:
        intensity, guard = max(seen) + guard_margin, "above_all"
    elif not (min(seen) <= intensity <= max(seen)):
        intensity, guard = float(np.clip(intensity, min(seen), max(seen))), "clamped"
    intensity = float(np.clip(intensity, -10.0, 10.0))
    if guard in ("below_all", "above_all"):
        # censored: the text lies beyond every anchor it met, so the score is a bound, not an estimate with an
        # error bar; a Laplace SE at the guarded point would look precise where nothing was measured
        return Fit(intensity, None, n, guard)
    p = _sigmoid(u - ls)  # the SE of the MAP (also when the estimate was clamped into the anchors' range)
    info = float(np.sum(p * (1 - p))) + lam
    return Fit(intensity, float(1.0 / np.sqrt(info) / scale), n, guard)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|; sigmoid(+inf) = 1


SCALE_BOUNDS = (0.05, 20.0)


def estimate_scale(windows: Iterable[Window], bounds: tuple[float, float] = SCALE_BOUNDS) -> float | None:
    """The judge's sharpness: utility per intensity point, fitted on how it ordered the anchors among themselves.

    Dropping one item from a Plackett-Luce ranking leaves a Plackett-Luce ranking of the rest, so the anchors'
    sub-order in every window is a PL draw with utilities ``scale * intensity`` whatever the text was. The
    log-likelihood is concave in ``scale``; bisection on its derivative sum_j (a_j - softmax-mean of the anchors
    still remaining) finds it. A judge that never errs runs to the upper bound; one that orders anchors at
    random goes to the lower bound. None when no window has two anchors.
    """
    seqs = []
    for w in windows:
        if w.order is None or not is_permutation(w.order, w.size) or len(w.anchor_ids) < 2:
            continue
        shown = list(w.anchor_intensities)
        shown.insert(w.position, np.nan)
        seqs.append(np.array([shown[p] for p in w.order if p != w.position], dtype=float))
    if not seqs:
        return None

    def grad(beta: float) -> float:
        g = 0.0
        for a in seqs:
            for j in range(len(a) - 1):
                rest = a[j:]
                z = np.exp(beta * (rest - rest.max()))
                g += a[j] - float(np.dot(z, rest) / z.sum())
        return g

    lo, hi = bounds
    if grad(hi) >= 0:
        return hi
    if grad(lo) <= 0:
        return lo
    for _ in range(40):
        mid = float(np.sqrt(lo * hi))  # bisection in log space: the scale spans orders of magnitude
        if grad(mid) > 0:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


ADAPTIVE_SPREAD = 0.35  # anchors over estimate +- this many standard errors
REPEAT_PENALTY = 0.25  # intensity points added to an anchor's distance when the text has already met it


# --- anchor sampling -----------------------------------------------------------------------------------------
def bucket_anchors(intensities: np.ndarray, n: int, rng: np.random.Generator, exclude: set[int] = frozenset()) -> list[int]:
    """One anchor per equal-width intensity bucket over the panel's range (``np.linspace(min, max, n + 1)``).

    An empty bucket falls back to a random anchor not chosen yet (the paper's rule).
    """
    if len(intensities) <= n:
        return list(rng.permutation(len(intensities)))
    edges = np.linspace(intensities.min(), intensities.max(), n + 1)
    chosen: list[int] = []
    for b in range(n):
        upper = intensities <= edges[b + 1] if b == n - 1 else intensities < edges[b + 1]
        idx = [i for i in np.flatnonzero((intensities >= edges[b]) & upper) if i not in chosen and i not in exclude]
        if idx:
            chosen.append(int(rng.choice(idx)))
    rest = [i for i in range(len(intensities)) if i not in chosen]
    fresh = [i for i in rest if i not in exclude] or rest
    while len(chosen) < n and fresh:
        pick = int(rng.choice(fresh))
        chosen.append(pick)
        fresh.remove(pick)
    return chosen


def random_anchors(intensities: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    return list(rng.choice(len(intensities), size=min(n, len(intensities)), replace=False))


def adaptive_anchors(
    intensities: np.ndarray, n: int, rng: np.random.Generator, estimate: float, se: float, shown: set[int],
    spread: float = ADAPTIVE_SPREAD,
) -> list[int]:
    """Anchors packed around the current estimate: targets evenly over estimate +- ``spread`` standard errors.

    A comparison with an anchor far from the text is a foregone conclusion and tells the fit almost nothing;
    one with an anchor near it is a coin flip whose outcome moves the estimate most (Fisher information
    p(1 - p) peaks at p = 1/2). The benchmark (benchmarks/evaluator_budget.py) chose the narrow spread: at a
    judge noise of 1 point it lowers MAE by about a quarter against bucket sampling at the same calls. Anchors
    the text has already met cost a small penalty, since a repeated comparison adds less than a new one.
    """
    span = float(intensities.max() - intensities.min()) or 1.0
    half = float(np.clip(spread * se, 0.0, span / 2))
    targets = estimate + np.linspace(-half, half, n)
    chosen: list[int] = []
    jitter = rng.uniform(0, 1e-6, len(intensities))  # random tie-break between anchors of equal intensity
    penalty = np.zeros(len(intensities))
    penalty[list(shown)] = REPEAT_PENALTY
    for t in targets:
        dist = np.abs(intensities - t) + jitter + penalty
        dist[chosen] = np.inf
        best = int(np.argmin(dist))
        if np.isfinite(dist[best]):
            chosen.append(best)
    return chosen


# --- the evaluator -------------------------------------------------------------------------------------------
def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


@dataclass
class _Item:
    item_id: str
    text: str
    windows: list[Window] = field(default_factory=list)
    calls: int = 0
    shown: set[int] = field(default_factory=set)
    missing: str | None = None
    ratings: list[float] = field(default_factory=list)
    rating_log: list[dict] = field(default_factory=list)


class AnchorEvaluator:
    """Scores texts' intensities for a value by ranking them against anchors of an :class:`AnchorPanel`.

    Interface (relied on by the steering study; keep it stable)::

        panel = AnchorPanel.from_source(source=None, revision=None, split=None)   # None -> release/vidb
        evaluator = AnchorEvaluator(judge, panel, k=6, m=3, sampling="bucket", seed=0)
        scores = evaluator.score(texts, value, item_ids=None)       # one ScoresSchema row per text
        scores = evaluator.score_many(items)                        # items: item_id, text, value

    Rows follow ``validation.schemas.ScoresSchema``: item_id, value (canonical), intensity in [-10, 10] (NaN
    when missing), intensity_se, judge_calls (every call, re-asks included), windows (JSON list of the windows
    shown with the judge's order), missing_reason (null when scored). An unknown value name raises
    ``valueflow.taxonomy.UnknownValueError`` listing the valid ones.

    Args:
        judge: any :class:`valueflow.judges.base.Judge`.
        panel: the anchors.
        k: window size (the text plus ``k - 1`` anchors).
        m: windows per text (judge calls per text, re-asks aside); in rating mode, ratings per text.
        sampling: ``bucket`` (the paper's), ``random`` or ``adaptive``.
        seed: anchors and positions are drawn from (seed, value, item id), so a text gets the same windows
            whether it is scored alone or in a batch.
        mode: ``ranking`` (the evaluator) or ``rating`` (the direct-rating baseline).
        scale: utility per intensity point of the anchors (the paper fixes anchor utility = intensity, 1.0), or
            ``"auto"``: fitted per value and call of :meth:`score` from how the judge ordered the anchors among
            themselves (:func:`estimate_scale`), so a noisy judge's rankings count for less. With ``"auto"``
            the scale pools every text of the call, so a text's score depends on its batch.
        prior_precision: precision of the zero-mean Gaussian prior on the text's intensity (the paper's 1e-3
            at scale 1; 1/25 says "intensities are usually within +-10", and pulls a weak judge's scores in).
        guard_margin: how far beyond the extreme anchor a text that lost (or won) every comparison lands.
        randomise_position: put the text at a random position in each window (False: always first, the paper's).
        reasks: how many times an unusable answer is re-asked before the window is left out.
        log: JSONL file to append every judge call to (for :func:`rescore_from_log` and audits).
        batch_size: windows per ``Judge.rank_windows`` call.
        progress: show a progress bar.
    """

    def __init__(
        self,
        judge: Judge,
        panel: AnchorPanel,
        k: int = 6,
        m: int = 3,
        sampling: str = "bucket",
        seed: int = 0,
        *,
        mode: str = "ranking",
        scale: float | str = 1.0,
        prior_precision: float = 1e-3,
        guard_margin: float = 0.5,
        randomise_position: bool = True,
        reasks: int = 1,
        log: str | Path | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> None:
        if k < 2:
            raise ValueError(f"k must be at least 2 (the text and one anchor), got {k}")
        if m < 1:
            raise ValueError(f"m must be at least 1, got {m}")
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLING_MODES)}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if scale != "auto" and not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"scale must be a positive number or 'auto', got {scale!r}")
        self.judge, self.panel = judge, panel
        self.k, self.m, self.sampling, self.seed, self.mode = k, m, sampling, seed, mode
        self.scale, self.prior_precision, self.guard_margin = scale, prior_precision, guard_margin
        self.randomise_position, self.reasks = randomise_position, reasks
        self.log_path = Path(log) if log else None
        self.batch_size, self.progress = batch_size, progress
        self._scale = 1.0 if scale == "auto" else float(scale)  # the scale in use for the current value
        self._warned: set[str] = set()  # values already warned of a small panel

    # -- public ----------------------------------------------------------------------------------------------
    def score(self, texts: Sequence[str], value: str, item_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Score ``texts`` for ``value``; one ScoresSchema row per text, in input order.

        ``item_ids`` default to the texts' positions ("0", "1", ...). Empty texts and values without anchors get
        a missing score with the reason; the judge is not asked about them.
        """
        name = self.panel.resolve(value)
        texts = [("" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t)) for t in texts]
        ids = [str(i) for i in (item_ids if item_ids is not None else range(len(texts)))]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} item ids for {len(texts)} texts")
        items = [_Item(i, t) for i, t in zip(ids, texts)]
        for it in items:
            if not it.text.strip():
                it.missing = "empty text"
        anchors = self.panel.anchors(name)
        self._scale = 1.0 if self.scale == "auto" else float(self.scale)
        if self.mode == "ranking" and anchors.empty:
            for it in items:
                it.missing = it.missing or f"no anchors for value {name!r} in panel {self.panel.source}"
        elif self.mode == "ranking" and len(anchors) < MIN_ANCHORS and name not in self._warned:
            self._warned.add(name)
            warn(f"{len(anchors)} anchors for {name!r} in panel {self.panel.source}: under {MIN_ANCHORS} a value, "
                 "its scores are coarse (a text is placed among few anchors); a larger panel gives finer ones")
        self._write_log(
            [{"kind": "config", **self.config(), "value": name, "judge": self.judge.name}]
            + [{"kind": "item", "item_id": it.item_id, "value": name, "missing": it.missing} for it in items]
        )
        if self.mode == "rating":
            self._rate(items, name)
        else:
            self._rank(items, name, anchors)
        return self._rows(items, name)

    def score_many(self, items: pd.DataFrame) -> pd.DataFrame:
        """Score a table with columns item_id, text, value (any number of values); rows come back in its order."""
        missing = [c for c in ("item_id", "text", "value") if c not in items.columns]
        if missing:
            raise ValueError(f"score_many needs columns item_id, text, value; missing {', '.join(missing)}")
        canonical = items["value"].astype(str).map(self.panel.resolve)  # unknown names fail before any call
        dup = pd.Series(list(zip(items["item_id"].astype(str), canonical))).duplicated()
        if dup.any():
            first = items.iloc[int(np.flatnonzero(dup)[0])]
            raise ValueError(f"score_many: (item_id, value) ({first['item_id']!r}, {first['value']!r}) appears more than once")
        parts = []
        for name in dict.fromkeys(canonical):
            sel = items[canonical == name]
            parts.append(self.score(sel["text"].tolist(), name, sel["item_id"].astype(str).tolist()))
        if not parts:
            return pd.DataFrame(columns=SCORE_COLUMNS)
        out = pd.concat(parts, ignore_index=True)
        key = pd.MultiIndex.from_arrays([items["item_id"].astype(str), canonical])
        out.index = pd.MultiIndex.from_arrays([out["item_id"], out["value"]])
        return out.loc[key].reset_index(drop=True)

    def config(self) -> dict:
        """The settings a log needs to recompute scores."""
        return {
            "version": LOG_VERSION,
            "mode": self.mode,
            "k": self.k,
            "m": self.m,
            "sampling": self.sampling,
            "seed": self.seed,
            "scale": self.scale,
            "prior_precision": self.prior_precision,
            "guard_margin": self.guard_margin,
            "randomise_position": self.randomise_position,
            "reasks": self.reasks,
            "panel": self.panel.source,
        }

    # -- ranking mode ----------------------------------------------------------------------------------------
    def _rng(self, value: str, item_id: str, round_: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _h(value), _h(item_id), round_])

    def _rank(self, items: list[_Item], value: str, anchors: pd.DataFrame) -> None:
        active = [it for it in items if it.missing is None]
        if not active:
            return
        intens = anchors["intensity"].to_numpy(dtype=float)
        ids = anchors["anchor_id"].astype(str).tolist()
        texts = anchors["text"].tolist()
        n = self.k - 1
        bar = _progress(len(active) * self.m, f"scoring {value}", self.progress)
        for r in range(self.m):
            plans = []
            for it in active:
                rng = self._rng(value, it.item_id, r)
                if self.sampling == "random":
                    chosen = random_anchors(intens, n, rng)
                elif self.sampling == "adaptive" and r > 0 and (fit := self._fit(it.windows)).intensity is not None:
                    chosen = adaptive_anchors(intens, n, rng, fit.intensity, fit.se or 10.0, it.shown)
                else:
                    chosen = bucket_anchors(intens, n, rng, exclude=it.shown if r > 0 else set())
                it.shown.update(chosen)
                plans.append((it, chosen, rng))
            pending = [(it, chosen, rng, 0) for it, chosen, rng in plans]
            while pending:
                shown = []
                for it, chosen, rng, attempt in pending:
                    order = list(rng.permutation(len(chosen)))
                    position = int(rng.integers(0, len(chosen) + 1)) if self.randomise_position else 0
                    shown.append((it, chosen, rng, attempt, [chosen[i] for i in order], position))
                answers = self._ask(value, [[texts[a] for a in anc[:pos]] + [it.text] + [texts[a] for a in anc[pos:]] for it, _, _, _, anc, pos in shown])
                retry, records = [], []
                for (it, chosen, rng, attempt, anc, pos), ans in zip(shown, answers):
                    it.calls += 1
                    size = len(anc) + 1
                    ok = ans.order is not None and is_permutation(ans.order, size)
                    error = None if ok else (ans.error or f"answer is not a permutation of {size} positions: {ans.order}")
                    w = Window(tuple(ids[a] for a in anc), tuple(float(intens[a]) for a in anc), pos, tuple(int(i) for i in ans.order) if ok else None, error)
                    final = ok or attempt >= self.reasks
                    records.append(self._window_record(it, value, r, attempt, final, w, ans, [texts[a] for a in anc]))
                    if final:
                        it.windows.append(w)
                        bar.update(1)
                    else:
                        retry.append((it, chosen, rng, attempt + 1))
                self._write_log(records)
                pending = retry
            if self.scale == "auto":
                self._scale = estimate_scale(w for it in active for w in it.windows) or 1.0
        bar.close()
        if self.scale == "auto":
            self._write_log([{"kind": "scale", "value": value, "judge": self.judge.name, "scale": self._scale}])
        for it in active:
            if not any(w.order is not None for w in it.windows):
                errors = sorted({w.error for w in it.windows if w.error})
                it.missing = "no usable window: " + "; ".join(errors)[:500]

    def _ask(self, value: str, windows: list[list[str]]) -> list[JudgeAnswer]:
        """Ask the judge in batches; an exception fails only the windows of that batch, each with the reason."""
        out: list[JudgeAnswer] = []
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start : start + self.batch_size]
            try:
                answers = list(self.judge.rank_windows(value, batch))
                if len(answers) != len(batch):
                    raise RuntimeError(f"judge returned {len(answers)} answers for {len(batch)} windows")
            except Exception as err:  # a judge failure must not lose the other texts' scores
                answers = [JudgeAnswer(None, error=f"judge error: {type(err).__name__}: {err}")] * len(batch)
            out.extend(answers)
        return out

    def _fit(self, windows: Iterable[Window]) -> Fit:
        return fit_anchored_utility(
            windows, scale=self._scale, prior_precision=self.prior_precision, guard_margin=self.guard_margin
        )

    def _window_record(
        self, it: _Item, value: str, round_: int, attempt: int, final: bool, w: Window, ans: JudgeAnswer, anchors_text: list[str]
    ) -> dict:
        return {
            "kind": "window",
            "item_id": it.item_id,
            "value": value,
            "judge": self.judge.name,
            "round": round_,
            "attempt": attempt,
            "final": final,  # False: unusable and re-asked; the re-ask's record follows
            "text_sha1": hashlib.sha1(it.text.encode("utf-8")).hexdigest(),
            "anchor_ids": list(w.anchor_ids),
            "anchor_intensities": list(w.anchor_intensities),
            "anchor_texts": anchors_text,
            "position": w.position,
            "order": None if w.order is None else list(w.order),
            "error": w.error,
            "raw": ans.raw,
            "prompt_hash": ans.prompt_hash,
            "time": time.time(),
        }

    # -- rating mode -----------------------------------------------------------------------------------------
    def _rate(self, items: list[_Item], value: str) -> None:
        active = [it for it in items if it.missing is None]
        bar = _progress(len(active) * self.m, f"rating {value}", self.progress)
        for r in range(self.m):
            records = []
            for start in range(0, len(active), self.batch_size):
                batch = active[start : start + self.batch_size]
                try:
                    ratings = list(self.judge.rate(value, [it.text for it in batch]))
                    errors = [None if _finite(x) else f"unusable rating {x!r}" for x in ratings]
                except NotImplementedError:
                    raise
                except Exception as err:
                    ratings, errors = [None] * len(batch), [f"judge error: {type(err).__name__}: {err}"] * len(batch)
                for it, x, e in zip(batch, ratings, errors):
                    it.calls += 1
                    rec = {"rating": None if e else float(np.clip(float(x), -10, 10)), **({"error": e} if e else {})}
                    it.rating_log.append(rec)
                    if not e:
                        it.ratings.append(rec["rating"])
                    records.append({"kind": "rating", "item_id": it.item_id, "value": value, "judge": self.judge.name,
                                    "repeat": r, **rec, "time": time.time()})
                    bar.update(1)
            self._write_log(records)
        bar.close()
        for it in active:
            if not it.ratings:
                it.missing = "no usable rating: " + "; ".join(sorted({d.get("error", "") for d in it.rating_log}))[:500]

    # -- output ----------------------------------------------------------------------------------------------
    def _rows(self, items: list[_Item], value: str) -> pd.DataFrame:
        rows = []
        for it in items:
            if self.mode == "rating":
                intensity = float(np.mean(it.ratings)) if it.ratings else None
                se = float(np.std(it.ratings, ddof=1) / np.sqrt(len(it.ratings))) if len(it.ratings) > 1 else None
                windows = json.dumps(it.rating_log)
            else:
                fit = self._fit(it.windows) if it.missing is None else Fit(None, None, 0)
                intensity, se = fit.intensity, fit.se
                windows = json.dumps([w.to_json() for w in it.windows])
            rows.append(_row(it, value, intensity, se, windows, "" if self.mode == "rating" else fit.guard))
        return _frame(rows)

    def _write_log(self, records: list[dict]) -> None:
        if self.log_path is None or not records:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")


def _finite(x: object) -> bool:
    try:
        return x is not None and bool(np.isfinite(float(x)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _row(it: _Item, value: str, intensity: float | None, se: float | None, windows: str, guard: str = "") -> dict:
    missing = it.missing if intensity is None else None
    return {
        # "below_all" / "above_all": ranked beyond every anchor it met; the intensity is a bound and has no SE
        "censored": guard if intensity is not None and guard in ("below_all", "above_all") else None,
        "item_id": it.item_id,
        "value": value,
        "intensity": np.nan if intensity is None else float(intensity),
        "intensity_se": np.nan if se is None else float(se),
        "judge_calls": int(it.calls),
        "windows": windows,
        "missing_reason": missing if intensity is None else None,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    from validation.schemas import ScoresSchema

    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    df = df.astype({"intensity": float, "intensity_se": float, "judge_calls": "int64"})
    for column in ("missing_reason", "censored"):
        df[column] = df[column].astype(object).where(df[column].notna(), None)
    return ScoresSchema.validate(df, lazy=True)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


# --- recomputing from a log ----------------------------------------------------------------------------------
def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log; a broken line is an error naming the file and line.

    A last line cut short (no newline: the run was killed while writing it) is the one exception: it is left
    out and reported as a ``{"kind": "torn", "line": n}`` record, since every line before it is whole.
    """
    from valueflow.io import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: log not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    lines = text.splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(lines) and not text.endswith("\n"):
                out.append({"kind": "torn", "line": n})
                continue
            raise InputError(f"{path}: line {n} is not JSON: {err}") from None
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {n} is not a log record (a JSON object)")
        out.append(rec)
    return out


def rescore_from_log(path: str | Path, **overrides: float) -> pd.DataFrame:
    """Recompute the scores of a log without the judge (``valueflow evaluate --from-log``).

    The fit settings come from the log's config records; ``overrides`` (scale, prior_precision, guard_margin)
    change them, e.g. to study the effect of the prior on scores already paid for. The last config record of a
    (value) wins. Every (item, value) seen in the log gets a row, in first-seen order.
    """
    records = read_log(path)
    torn = [rec["line"] for rec in records if rec.get("kind") == "torn"]
    cfg: dict = {}
    items: dict[tuple[str, str], _Item] = {}
    modes: dict[tuple[str, str], str] = {}
    settings: dict[tuple[str, str], dict] = {}
    fitted_scale: dict[str, float] = {}
    for rec in records:
        kind = rec.get("kind")
        if kind == "config":
            cfg = rec
            continue
        if kind == "scale":
            fitted_scale[str(rec["value"])] = float(rec["scale"])
            continue
        if kind == "torn":
            continue
        key = (str(rec["item_id"]), str(rec["value"]))
        if kind == "item":  # every scored item is announced, also those never shown to the judge
            items[key] = _Item(key[0], "", missing=rec.get("missing"))
            modes[key] = str(cfg.get("mode", "ranking"))
            settings[key] = cfg
            continue
        it = items.setdefault(key, _Item(key[0], ""))
        modes[key] = "rating" if kind == "rating" else "ranking"
        settings[key] = cfg
        it.calls += 1
        if kind == "rating":
            it.rating_log.append({k: rec[k] for k in ("rating", "error") if k in rec})
            if rec.get("rating") is not None:
                it.ratings.append(float(rec["rating"]))
        elif kind == "window":
            w = Window(
                tuple(rec["anchor_ids"]), tuple(float(x) for x in rec["anchor_intensities"]), int(rec["position"]),
                None if rec.get("order") is None else tuple(rec["order"]), rec.get("error"),
            )
            if rec.get("final", True):  # a re-asked attempt is superseded by its re-ask, as when scoring
                it.windows.append(w)
    rows = []
    for key, it in items.items():
        s = {k: settings[key].get(k) for k in ("scale", "prior_precision", "guard_margin") if settings[key].get(k) is not None}
        if s.get("scale") == "auto":
            s["scale"] = fitted_scale.get(key[1], 1.0)
        s.update(overrides)
        m = int(settings[key].get("m") or 0)
        done = len(it.rating_log) if modes[key] == "rating" else len(it.windows)
        if it.missing is None and done < m:  # a killed run's log: say so instead of scoring from part of the windows
            it.missing = (f"incomplete log: {done} of {m} {'ratings' if modes[key] == 'rating' else 'windows'} "
                          "(the run stopped before this item was finished)")
        if it.missing is not None:  # missing before any judge call (empty text, no anchors), or an incomplete log
            rows.append(_row(it, key[1], None, None, "[]"))
        elif modes[key] == "rating":
            intensity = float(np.mean(it.ratings)) if it.ratings else None
            se = float(np.std(it.ratings, ddof=1) / np.sqrt(len(it.ratings))) if len(it.ratings) > 1 else None
            it.missing = None if it.ratings else "no usable rating: " + "; ".join(sorted({d.get("error", "") for d in it.rating_log}))[:500]
            rows.append(_row(it, key[1], intensity, se, json.dumps(it.rating_log)))
        else:
            fit = fit_anchored_utility(it.windows, **s)
            if fit.intensity is None:
                it.missing = "no usable window: " + "; ".join(sorted({w.error or "" for w in it.windows}))[:500]
            rows.append(_row(it, key[1], fit.intensity, fit.se, json.dumps([w.to_json() for w in it.windows]), fit.guard))
    frame = _frame(rows)
    frame.attrs["torn_lines"] = torn
    return frame

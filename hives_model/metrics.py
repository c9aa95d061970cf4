"""HiVES metrics, always computed for a model and its base on the same texts.

- **Hierarchical ranking accuracy.** For an anchor text, candidates of its own theory fall in five relatedness
  bins: 0 same path and direction, 1 same path other direction, 2 same level_1..2 other level_3, 3 same level_1
  other level_2, 4 other level_1. With one candidate drawn at random from each non-empty bin, the score is the
  expected fraction of bin pairs (a < b) with cos(anchor, a) > cos(anchor, b), averaged over anchors; ``strict`` is
  the probability that every pair is right. Both are computed exactly over every candidate of every bin, not by
  drawing: drawing five candidates an anchor moved ValueNet's figure by 0.005 (sd over seeds) and put one model 0.007
  above its expectation. A candidate whose direction or the anchor's is unknown counts as "direction not
  contradicted" (bin 0 when the path matches). Two rows of one text are never compared.
- **Similarity correlation.** Pearson r, over pairs of rows (all pairs, or a seeded sample of ``max_pairs``),
  between cosine similarity and label similarity = (number of matching path levels, counted from the top within
  a theory) + 0.5 x [direction compatible].
- **Orthogonality.** Per theory, each value's centroid is the mean (normalised) embedding of its supporting rows
  (all its rows when none supports); orthogonality = mean over pairs of distinct values of 1 - |cos(c_a, c_b)|:
  1 means the value directions are orthogonal, 0 collinear. Reported per theory (values with rows only).
- **Intensity probe.** A ridge regression from the embedding to the intensity (VIDB intensity, else reference
  intensity) fitted on the probe-train rows and scored on the evaluation rows by Kendall tau (MTEB's regression
  shape); with no probe-train rows, 5-fold cross-validated predictions are scored.
- **Mean cosine.** The mean cosine between distinct texts: the collapse monitor (a collapsed space sits near 1).
- **Oracle and headroom.** Beside every model, the oracle (true labels as the embedding,
  :func:`hives_model.data.oracle_embeddings`) is scored on the same rows: the ceiling of the test. A gain over the
  base model reads as the share of the base-to-oracle headroom it closes.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from hives_model.data import L, LabelSpace, _label_grid, label_similarity, oracle_embeddings

BINS = ("same path+direction", "same path, other direction", "same level_2", "same level_1", "other level_1")


def encode(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Normalised embeddings; each distinct text is encoded once (multi-label sources repeat texts)."""
    unique = list(dict.fromkeys(texts))
    emb = model.encode(unique, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=len(unique) > 2000)
    where = {t: i for i, t in enumerate(unique)}
    return np.asarray(emb, dtype=np.float32)[[where[t] for t in texts]]


def _bins(labels: np.ndarray, anchor: int) -> np.ndarray:
    """Bin (0..4) of every row relative to ``anchor``; -1 for other theories and for the anchor's own text.

    Multi-label texts are placed by their closest pair of labels: a text that shares the anchor's value through
    another of its labels is not counted as unrelated.
    """
    li = np.broadcast_to(labels[anchor], labels.shape)
    (m1, m2, m3), compatible, valid = _label_grid(li, labels)
    grid = np.where(m3 & compatible, 0, np.where(m3, 1, np.where(m2, 2, np.where(m1, 3, 4))))
    out = np.where(valid, grid, 4).min(axis=(1, 2))
    out[labels[:, L["theory"]] != labels[anchor, L["theory"]]] = -1
    out[labels[:, L["text_key"]] == labels[anchor, L["text_key"]]] = -1
    return out


def _share_below(similarities: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """For each of ``similarities``, the share of ``lower`` (sorted) strictly below it: a tie is not a right order."""
    return np.searchsorted(lower, similarities, side="left") / len(lower)


def hierarchical_ranking_accuracy(emb: np.ndarray, labels: np.ndarray, *, max_anchors: int = 1000,
                                  seed: int = 42) -> dict:
    """The ranking accuracy of ``max_anchors`` anchors (a seeded sample), exactly: see the module docstring."""
    anchors = np.random.default_rng(seed).permutation(len(labels))[:max_anchors]
    scores, strict = [], []
    right, counted = np.zeros((5, 5)), np.zeros((5, 5))
    for i in anchors:
        bins = _bins(labels, i)
        similarity = emb @ emb[i]
        by_bin = {b: np.sort(similarity[bins == b]) for b in range(5) if (bins == b).any()}
        available = sorted(by_bin)
        if len(available) < 2:
            continue
        pair_scores = []
        for k, a in enumerate(available):
            for b in available[k + 1:]:
                p = float(_share_below(by_bin[a], by_bin[b]).mean())
                right[a, b] += p
                counted[a, b] += 1
                pair_scores.append(p)
        scores.append(np.mean(pair_scores))
        # P(bin candidates in order), from the last bin up: chain[x] = P(the candidates of the bins below x's bin
        # fall in order under x), for each member x of the current bin (sorted)
        chain = np.ones(len(by_bin[available[-1]]))
        for upper, lower in zip(available[-2::-1], available[:0:-1]):
            below = np.concatenate([[0.0], np.cumsum(chain)])
            chain = below[np.searchsorted(by_bin[lower], by_bin[upper], side="left")] / len(by_bin[lower])
        strict.append(chain.mean())
    if not scores:
        return {"accuracy": None, "strict": None, "anchors": 0}
    per_pair = {f"{a}<{b}": round(float(right[a, b] / counted[a, b]), 4)
                for a in range(5) for b in range(a + 1, 5) if counted[a, b]}
    return {"accuracy": float(np.mean(scores)), "strict": float(np.mean(strict)), "anchors": len(scores),
            "per_bin_pair": per_pair}


def _pairs(n: int, max_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows (i < j), or a seeded sample of ``max_pairs`` when there are more."""
    if n * (n - 1) // 2 <= max_pairs:
        return np.triu_indices(n, k=1)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, max_pairs), rng.integers(0, n, max_pairs)
    return i[i != j], j[i != j]


def similarity_correlation(emb: np.ndarray, labels: np.ndarray, *, max_pairs: int = 200_000, seed: int = 42) -> float | None:
    if len(labels) < 3:
        return None
    i, j = _pairs(len(labels), max_pairs, seed)
    keep = labels[i, L["text_key"]] != labels[j, L["text_key"]]
    i, j = i[keep], j[keep]
    cos = np.einsum("nd,nd->n", emb[i], emb[j])
    sim = label_similarity(labels, i, j)
    if np.std(sim) == 0 or np.std(cos) == 0:
        return None
    return float(np.corrcoef(cos, sim)[0, 1])


def orthogonality(emb: np.ndarray, rows: pd.DataFrame) -> dict[str, float]:
    out = {}
    for theory, sub in rows.groupby("theory", sort=True):
        centroids = []
        for _, vrows in sub.groupby("value", sort=True):
            idx = vrows.index[vrows["direction"] == 1]
            idx = idx if len(idx) else vrows.index
            c = emb[idx].mean(axis=0)
            centroids.append(c / (np.linalg.norm(c) + 1e-12))
        if len(centroids) < 2:
            continue
        c = np.stack(centroids)
        cos = c @ c.T
        iu = np.triu_indices(len(c), k=1)
        out[str(theory)] = float(np.mean(1 - np.abs(cos[iu])))
    return out


def intensity_probe(emb: np.ndarray, rows: pd.DataFrame, train_emb: np.ndarray | None = None,
                    train_rows: pd.DataFrame | None = None, *, seed: int = 42) -> dict:
    from scipy.stats import kendalltau
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_predict

    y = rows["intensity"].to_numpy(dtype=float)
    has = ~np.isnan(y)
    if has.sum() < 10:
        return {"kendall_tau": None, "n": int(has.sum()), "protocol": "too few rows with an intensity"}
    if train_rows is not None and train_emb is not None:
        ty = train_rows["intensity"].to_numpy(dtype=float)
        thas = ~np.isnan(ty)
        if thas.sum() >= 10:
            pred = Ridge(alpha=1.0).fit(train_emb[thas], ty[thas]).predict(emb[has])
            tau = kendalltau(pred, y[has]).statistic
            return {"kendall_tau": float(tau), "n": int(has.sum()), "protocol": "fit on probe-train rows"}
    pred = cross_val_predict(Ridge(alpha=1.0), emb[has], y[has], cv=KFold(5, shuffle=True, random_state=seed))
    return {"kendall_tau": float(kendalltau(pred, y[has]).statistic), "n": int(has.sum()), "protocol": "5-fold CV"}


def mean_cosine(emb: np.ndarray, labels: np.ndarray, *, max_pairs: int = 200_000, seed: int = 42) -> float | None:
    """Mean cosine between the embeddings of distinct texts: the collapse monitor.

    A space that has collapsed (every text near every other) can still order some pairs, but it has thrown away
    what the base model knew; the base model sits around 0.1-0.2 on real data, a collapsed HiVES near 0.9.
    """
    i, j = _pairs(len(labels), max_pairs, seed)
    keep = labels[i, L["text_key"]] != labels[j, L["text_key"]]
    if not keep.any():
        return None
    return float(np.einsum("nd,nd->n", emb[i[keep]], emb[j[keep]]).mean())


COLLAPSE_WARNING = 0.7  # mean cosine above which training warns that the space is collapsing


def evaluate_embeddings(emb: np.ndarray, rows: pd.DataFrame, *, train_emb: np.ndarray | None = None,
                        train_rows: pd.DataFrame | None = None, seed: int = 42, max_anchors: int = 1000,
                        probe: bool = True) -> dict:
    rows = rows.reset_index(drop=True)
    labels = LabelSpace.from_taxonomy().encode(rows)
    rank = hierarchical_ranking_accuracy(emb, labels, seed=seed, max_anchors=max_anchors)
    orth = orthogonality(emb, rows)
    return {
        "ranking_accuracy": rank["accuracy"],
        "ranking_accuracy_strict": rank["strict"],
        "ranking_anchors": rank["anchors"],
        "ranking_per_bin_pair": rank.get("per_bin_pair", {}),
        "similarity_correlation": similarity_correlation(emb, labels, seed=seed),
        "mean_cosine": mean_cosine(emb, labels, seed=seed),
        "orthogonality": orth,
        "orthogonality_mean": float(np.mean(list(orth.values()))) if orth else None,
        "intensity_probe": intensity_probe(emb, rows, train_emb, train_rows, seed=seed) if probe else
        {"kendall_tau": None, "n": 0, "protocol": "not measured (labels carry no intensity)"},
    }


def profile_hit_rate(model, rows: pd.DataFrame, model_dir=None, ks: tuple[int, ...] = (1, 3)) -> dict:
    """What a ``valueflow profile`` user sees: the share of texts whose ``k`` nearest values (of the text's theory,
    :func:`hives_model.profile.value_profiles` with the folder's own prototypes) include one of its true values.

    Texts with a nonzero label only (a neutral label says the value is *not* at stake); a Touché23 label (present,
    direction unknown) counts. The value must match; the direction is not scored.
    """
    from hives_model.profile import value_profiles

    labelled = rows[rows["direction"] != 0]
    truth = labelled.groupby("text", sort=False).agg(theory=("theory", "first"), values=("value", lambda v: set(v)))
    if truth.empty:
        return {**{f"top{k}": None for k in ks}, "texts": 0}
    profiles = value_profiles(model, truth.index.tolist(), model_dir, top=max(ks))
    wanted = truth.reset_index(drop=True)
    own = profiles["theory"].to_numpy() == wanted["theory"].to_numpy()[profiles["row"].to_numpy() - 1]
    profiles = profiles[own]
    hit = [v in wanted["values"].iloc[r - 1] for r, v in zip(profiles["row"], profiles["value"])]
    profiles = profiles.assign(hit=hit)
    out = {f"top{k}": float(profiles[profiles["rank"] <= k].groupby("row")["hit"].any().reindex(
        range(1, len(wanted) + 1), fill_value=False).mean()) for k in ks}
    return {**out, "texts": len(wanted)}


ORACLE = "oracle"
HEADROOM_METRICS = ("ranking_accuracy", "similarity_correlation")


def compare_models(models: dict[str, object], rows: pd.DataFrame, train_rows: pd.DataFrame | None = None,
                   seed: int = 42, max_anchors: int = 1000, embeddings: dict[str, np.ndarray] | None = None,
                   oracle: bool = True) -> dict:
    """The metrics of every model on the same rows (and the same probe-train rows), and of the oracle.

    ``oracle``: also score the true labels used as the embedding (:func:`hives_model.data.oracle_embeddings`), the
    ceiling of the test, under the key ``"oracle"``; ``result["headroom"]`` then says, per model and metric, which
    share of the last model's (the baseline's) distance to the oracle each other model closes.
    ``embeddings``: a dict to fill with each model's embeddings of ``rows`` (for plots), so nobody encodes twice.
    """
    rows = rows.reset_index(drop=True)
    out: dict = {}
    for name, model in models.items():
        emb = encode(model, rows["text"].tolist())
        if embeddings is not None:
            embeddings[name] = emb
        train_emb = encode(model, train_rows["text"].tolist()) if train_rows is not None and len(train_rows) else None
        out[name] = evaluate_embeddings(emb, rows, train_emb=train_emb,
                                        train_rows=train_rows.reset_index(drop=True) if train_emb is not None else None,
                                        seed=seed, max_anchors=max_anchors)
    if oracle:
        labels = LabelSpace.from_taxonomy().encode(rows)
        out[ORACLE] = evaluate_embeddings(oracle_embeddings(labels), rows, seed=seed, max_anchors=max_anchors,
                                          probe=False)
        baseline = list(models)[-1]
        out["headroom"] = {name: {m: headroom_closed(out[name][m], out[baseline][m], out[ORACLE][m])
                                  for m in HEADROOM_METRICS} for name in list(models)[:-1]}
    return out


def headroom_closed(model: float | None, base: float | None, oracle: float | None) -> float | None:
    """The share of the base-to-oracle gap a model closes: 0 = no better than its base, 1 = as good as the labels."""
    if None in (model, base, oracle) or oracle - base <= 1e-9:
        return None
    return float((model - base) / (oracle - base))


class HeldOutEvaluator(SentenceEvaluator):
    """Ranking accuracy, similarity correlation and mean cosine on held-out row sets during training: a learning
    curve with a collapse monitor.

    A sentence-transformers evaluator (``SentenceTransformerTrainer(evaluator=...)`` calls it every ``eval_steps``);
    each call appends ``{"stage", "step", "<set>/ranking_accuracy", "<set>/similarity_correlation",
    "<set>/mean_cosine"}`` to ``history`` (``stage`` is whatever the caller set before the stage) and warns when a
    set's mean cosine passes ``collapse_warning``. The primary metric is the first set's ranking accuracy.
    """

    def __init__(self, sets: dict[str, pd.DataFrame], *, seed: int = 42, max_anchors: int = 600,
                 collapse_warning: float = COLLAPSE_WARNING) -> None:
        super().__init__()
        self.sets = {name: rows.reset_index(drop=True) for name, rows in sets.items()}
        space = LabelSpace.from_taxonomy()
        self.labels = {name: space.encode(rows) for name, rows in self.sets.items()}
        self.seed, self.max_anchors, self.collapse_warning = seed, max_anchors, collapse_warning
        self.primary_metric = f"{next(iter(self.sets))}/ranking_accuracy"
        self.history: list[dict] = []
        self.stage = ""
        self.seconds = 0.0  # time spent evaluating, so callers can report training time without it

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        started = time.perf_counter()
        out: dict[str, float] = {}
        for name, rows in self.sets.items():
            emb = encode(model, rows["text"].tolist())
            labels = self.labels[name]
            rank = hierarchical_ranking_accuracy(emb, labels, max_anchors=self.max_anchors, seed=self.seed)
            out[f"{name}/ranking_accuracy"] = rank["accuracy"]
            out[f"{name}/similarity_correlation"] = similarity_correlation(emb, labels, seed=self.seed)
            cos = out[f"{name}/mean_cosine"] = mean_cosine(emb, labels, seed=self.seed)
            if cos is not None and cos > self.collapse_warning:
                warnings.warn(f"HiVES {self.stage} step {steps}: mean cosine on {name} is {cos:.2f} "
                              f"(> {self.collapse_warning}): the embedding space is collapsing", stacklevel=2)
        self.history.append({"stage": self.stage, "step": steps, **out})
        self.seconds += time.perf_counter() - started
        return out


HEADLINE = (("ranking_accuracy", "Hier. ranking accuracy"), ("ranking_accuracy_strict", "  strict (all pairs)"),
            ("similarity_correlation", "Similarity correlation"), ("mean_cosine", "Mean cosine (collapse)"),
            ("orthogonality_mean", "Orthogonality (mean)"))


def headline_rows(result: dict, first: str = "hives", second: str = "base") -> list[tuple]:
    """(label, first, second, oracle or None) per headline metric."""
    third = result.get(ORACLE, {})
    rows = [(label, result[first].get(key), result[second].get(key), third.get(key)) for key, label in HEADLINE]
    for theory in sorted(set(result[first]["orthogonality"]) | set(result[second]["orthogonality"])):
        rows.append((f"  orthogonality {theory}", result[first]["orthogonality"].get(theory),
                     result[second]["orthogonality"].get(theory), third.get("orthogonality", {}).get(theory)))
    rows.append(("Intensity probe (Kendall tau)", result[first]["intensity_probe"]["kendall_tau"],
                 result[second]["intensity_probe"]["kendall_tau"], None))
    return rows


def format_table(result: dict, first: str = "hives", second: str = "base", title: str = "") -> str:
    """A side-by-side text table: the model, its base, the oracle, and the share of the headroom closed."""
    closed = result.get("headroom", {}).get(first, {})
    keys = {label: key for key, label in HEADLINE}

    def f(x: float | None, fmt: str = "{:.3f}") -> str:
        return fmt.format(x) if x is not None else "-"

    lines = [title] if title else []
    lines.append(f"{'metric':<32}{first:>10}{second:>10}{'diff':>8}{ORACLE:>9}{'headroom closed':>17}")
    for label, a, b, o in headline_rows(result, first, second):
        diff = f(a - b, "{:+.3f}") if a is not None and b is not None else "-"
        share = closed.get(keys.get(label, ""))
        lines.append(f"{label:<32}{f(a):>10}{f(b):>10}{diff:>8}{f(o):>9}{f(share, '{:.0%}'):>17}")
    return "\n".join(lines)

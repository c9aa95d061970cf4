"""The anchor evaluator on real data nobody here wrote: published VIDB texts, Moral Stories and ValueNet.

Judges: the learned judge (``valueflow.judges.value_head``: a frozen sentence encoder, all-MiniLM-L6-v2 by default
or all-mpnet-base-v2 with ``--base-model``, and a value head, trained on the panel's texts by the ``train_judge``
stage into a temporary folder and calibrated on them) and the zero-shot embedding judge. Anchors: the real published
VIDB texts of ``vidb_anchors/`` (their own ranking-derived intensities).

1. Held-out VIDB texts: each value's anchor texts are split into 3 folds; every text is scored against a panel
   made of the other folds (and the learned judge is trained on those folds only). Printed: Spearman and MAE
   against the texts' real VIDB intensities.
2. Moral Stories (dev stories): the moral and the immoral action (each with its situation) are scored for the
   value whose definition is nearest to the story's norm in the base model's embedding space (the same rule
   as `valueflow ingest`); printed: pairwise accuracy, the share of stories whose moral action scores above the
   immoral one (ties count half).
3. ValueNet: texts labelled +1 or -1 for a Schwartz value; printed: sign accuracy of the score for that value.

Each is shown for ranking with bucket sampling (the paper's), with adaptive sampling, each also with the judge's
scale fitted from its anchor orders and a 1/25 prior on the intensity ("+auto"), and for direct rating.

Run: python3 benchmarks/evaluator_real.py [--stories 200] [--valuenet-per-sign 20]
                                          [--base-model all-MiniLM-L6-v2|all-mpnet-base-v2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from builders.sources import nearest_values
from evaluation.anchor_evaluator import AnchorEvaluator
from evaluation.anchors import AnchorPanel
from evaluation.eval_evaluator import sign_accuracy
from valueflow.io import refdata_dir
from valueflow.judges import make_judge
from valueflow.stats import spearman
from valueflow.taxonomy import get_taxonomy

# (label, evaluator options): the paper's setting, adaptive sampling, the fitted judge scale with a 1/25 prior on
# the intensity (beyond the paper: a weak judge's rankings count for less), and direct rating
MODES = [
    ("bucket", {"sampling": "bucket"}),
    ("adaptive", {"sampling": "adaptive"}),
    ("bucket+auto", {"sampling": "bucket", "scale": "auto", "prior_precision": 0.04}),
    ("adaptive+auto", {"sampling": "adaptive", "scale": "auto", "prior_precision": 0.04}),
    ("rating", {"mode": "rating"}),
]


def _nan_if_none(x):
    return float("nan") if x is None else x


def load_vidb_anchors(root) -> pd.DataFrame:
    df = pd.concat([pd.read_csv(f) for f in sorted((root / "vidb_anchors").glob("*.csv"))], ignore_index=True)
    tax = get_taxonomy()
    df["value"] = df["value"].map(tax.resolve)
    return df[["text", "value", "intensity"]].dropna().reset_index(drop=True)


def judges_for(train: pd.DataFrame, folder: Path, base_model: str) -> dict:
    """The learned judge trained on ``train`` (text, value, intensity) into ``folder``, and the embedding judge."""
    return {"learned": train_learned_judge(train, folder, base_model), "embedding": make_judge("embedding")}


def train_learned_judge(rows: pd.DataFrame, folder: Path, base_model: str):
    """A learned judge trained on ``rows`` (text, value, intensity) by the ``train_judge`` stage (every row a
    training row, calibrated on them), saved to ``folder`` (without its ONNX graph: it scores with torch)."""
    from evaluation.train_judge import JudgeTrainConfig, train_judge

    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "train_rows.parquet"
    rows[["text", "value", "intensity"]].to_parquet(table)
    train_judge(JudgeTrainConfig(vidb=table, split=None, base_model=base_model, out=folder / "judge", onnx=False),
                echo=lambda *_: None)
    return make_judge(f"learned:{folder / 'judge'}")


def score(judge, panel, items: pd.DataFrame, options: dict) -> pd.Series:
    ev = AnchorEvaluator(judge, panel, k=6, m=3, seed=0, progress=False, **options)
    return ev.score_many(items)["intensity"]


def heldout_vidb(vidb: pd.DataFrame, tmp: Path, base_model: str) -> dict:
    rng = np.random.default_rng(0)
    fold = np.empty(len(vidb), dtype=int)
    for idx in vidb.groupby("value").indices.values():
        fold[idx] = rng.permutation(len(idx)) % 3
    preds = {(j, label): np.full(len(vidb), np.nan) for j in ("learned", "embedding") for label, _ in MODES}
    for f in range(3):
        train, test = vidb[fold != f], vidb[fold == f]
        panel = AnchorPanel._from_raw(train, "vidb_anchors (other folds)")
        items = pd.DataFrame({"item_id": test.index.astype(str), "text": test["text"], "value": test["value"]})
        for name, judge in judges_for(train, tmp / f"fold{f}", base_model).items():
            for label, options in MODES:
                preds[(name, label)][test.index] = score(judge, panel, items, options).to_numpy()
    gold = vidb["intensity"].to_numpy()
    return {k: {"spearman": _nan_if_none(spearman(p, gold)), "mae": float(np.nanmean(np.abs(p - gold))),
                "sign_accuracy": sign_accuracy(p, gold)} for k, p in preds.items()}


def moral_stories(root, vidb: pd.DataFrame, judges: dict, n: int) -> tuple[dict, dict]:
    rows = [json.loads(line) for line in (root / "moral_stories" / "full_stories_norm_distance_dev.jsonl").read_text().splitlines()[:n]]
    stories = pd.DataFrame(rows)
    stories["value"] = nearest_values(stories["norm"].tolist())
    moral = stories["situation"] + " " + stories["moral_action"]
    immoral = stories["situation"] + " " + stories["immoral_action"]
    items = pd.concat(
        [pd.DataFrame({"item_id": "m" + stories.index.astype(str), "text": moral, "value": stories["value"]}),
         pd.DataFrame({"item_id": "i" + stories.index.astype(str), "text": immoral, "value": stories["value"]})],
        ignore_index=True,
    )
    panel = AnchorPanel._from_raw(vidb, "vidb_anchors")
    out = {}
    for name, judge in judges.items():
        for label, options in MODES:
            s = score(judge, panel, items, options).to_numpy()
            a, b = s[: len(stories)], s[len(stories):]
            ok = ~(np.isnan(a) | np.isnan(b))
            out[(name, label)] = float(np.mean((a[ok] > b[ok]) + 0.5 * (a[ok] == b[ok])))
    return out, stories["value"].value_counts().head(5).to_dict()


def valuenet(root, vidb: pd.DataFrame, judges: dict, per_sign: int) -> tuple[dict, int]:
    frames = []
    tax = get_taxonomy()
    for f in sorted((root / "valuenet").glob("valuenet_*.csv")):
        df = pd.read_csv(f)
        df = df[df["label"].isin([1, -1])]
        value = tax.resolve(f.stem.removeprefix("valuenet_"))
        for sign in (1, -1):
            frames.append(df[df["label"] == sign].head(per_sign).assign(value=value))
    data = pd.concat(frames, ignore_index=True)
    items = pd.DataFrame({"item_id": data.index.astype(str), "text": data["input"].astype(str), "value": data["value"]})
    panel = AnchorPanel._from_raw(vidb, "vidb_anchors")
    out = {}
    for name, judge in judges.items():
        for label, options in MODES:
            s = score(judge, panel, items, options).to_numpy()
            out[(name, label)] = sign_accuracy(s, data["label"].to_numpy(dtype=float), threshold=0.5)
    return out, len(data)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=200)
    parser.add_argument("--valuenet-per-sign", type=int, default=20)
    parser.add_argument("--base-model", default="all-MiniLM-L6-v2",
                        help="the learned judge's frozen encoder (all-MiniLM-L6-v2, cheap; all-mpnet-base-v2, the "
                             "pipeline's)")
    args = parser.parse_args()
    root = refdata_dir()
    if root is None:
        raise SystemExit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    t0 = time.perf_counter()
    vidb = load_vidb_anchors(root)
    with tempfile.TemporaryDirectory() as tmp:
        held = heldout_vidb(vidb, Path(tmp), args.base_model)
        judges = judges_for(vidb, Path(tmp) / "all", args.base_model)  # trained on every anchor text
        ms, ms_values = moral_stories(root, vidb, judges, args.stories)
        vn, n_vn = valuenet(root, vidb, judges, args.valuenet_per_sign)
    print(f"real VIDB anchors: {len(vidb)} texts, {vidb['value'].nunique()} values; k = 6, m = 3; "
          f"learned judge on {args.base_model}")
    print(f"Moral Stories: {args.stories} dev stories, value = nearest definition to the norm (top: {ms_values})")
    print(f"ValueNet: {n_vn} texts labelled +1/-1\n")
    header = f"{'judge':<10}{'mode':<18}{'VIDB rho':>9}{'VIDB MAE':>9}{'VIDB sign':>10}{'MS pair':>9}{'VN sign':>9}"
    print(header)
    print("-" * len(header))
    for name in ("learned", "embedding"):
        for label, _ in MODES:
            k = (name, label)
            print(f"{name:<10}{label:<18}{held[k]['spearman']:>9.3f}{held[k]['mae']:>9.2f}{held[k]['sign_accuracy']:>10.3f}{ms[k]:>9.3f}{vn[k]:>9.3f}")
    print("\nratios (ranking bucket / rating): " + ", ".join(
        f"{n}: VIDB MAE {held[(n, 'bucket')]['mae'] / held[(n, 'rating')]['mae']:.2f}, "
        f"MS pair {ms[(n, 'bucket')] / ms[(n, 'rating')]:.2f}" for n in ("learned", "embedding")))
    print("paper Table 1 (LLM judges, ValueNet): sign accuracy ranking 0.868 vs rating 0.825; pairwise 0.842 vs 0.774")
    print(f"time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

"""The trained judge on real data nobody here wrote: train a cross-encoder on developer-visible labels, then score
held-out texts beside the `embedding` and `probe` judges, as a direct rater and inside the anchor evaluator.

    python3 benchmarks/judge_real.py --out /tmp/judge_real [--steps 800] [--loss mse|plistmle] [--moral-stories 6000]

Training data (from ../shared/data or $VALUEFLOW_REFDATA): ValueNet scenarios (human direction -1/0/+1, target
direction x 5) and the published VIDB texts (their real intensities); with ``--moral-stories N``, also N Moral
Stories norm-action rows (the moral action supports, the immoral action opposes the value nearest to the norm, as
`valueflow ingest` reads them; off by default: 6,000 of them lowered the held-out VIDB texts from 0.636 to 0.584).
Held out, never trained on:
- ValueNet: a fixed fifth by a hash of the text;
- VIDB texts: a fixed fifth by a hash of the text;
- Moral Stories: the dev stories (a separate file; a story's moral action should score above its immoral one).
The `probe` judge is fitted on the same training rows; the anchor evaluator (k = 6, m = 3, bucket sampling) uses
the training VIDB texts as its panel. Pairwise accuracy: same-value pairs whose labels differ by at least 2 VIDB
points (ValueNet: different labels; VIDB: intensities >= 2 apart); ties count half. The paper's LLM judge
(Gemma-3-27B, ranking, 3 calls per text) reaches 0.842 on ValueNet.
Targets (the trained-judge issue): >= 0.80 on held-out ValueNet and VIDB texts, as a direct rater and inside the
evaluator; at most 20 minutes of training on 2 CPU cores; at least 200 texts per second when rating.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from hives_real import ingest_sources

from valueflow.io import held_out_by_text_hash, normalise_text, refdata_dir

PAPER_PAIRWISE = 0.842
TRAINING_SOURCES = ("valuenet", "vidb_anchors", "moral_stories")


def training_split(texts: pd.DataFrame, moral_stories: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out ValueNet rows, held-out VIDB rows) of the ingested TRAINING_SOURCES.

    ValueNet and VIDB: all but the fifth held out by text hash; Moral Stories: a seeded sample of ``moral_stories``
    rows. Also what ``vidb_real.py`` reads to know which texts a judge trained here has seen.
    """
    texts = texts.assign(target=texts["reference_intensity"].astype(float).fillna(texts["direction"].astype(float) * 5.0))
    rows = texts[["text", "value", "target", "source"]].reset_index(drop=True)
    vn, vidb = rows[rows["source"] == "valuenet"], rows[rows["source"] == "vidb_anchors"]
    vn_test, vidb_test = held_out_by_text_hash(vn["text"]), held_out_by_text_hash(vidb["text"])
    ms = rows[rows["source"] == "moral_stories"]
    ms = ms.sample(min(len(ms), moral_stories), random_state=0) if moral_stories else ms.iloc[:0]
    return pd.concat([vn[~vn_test], vidb[~vidb_test], ms], ignore_index=True), vn[vn_test], vidb[vidb_test]


def dev_stories(root: Path, n: int) -> pd.DataFrame:
    """Moral Stories dev stories: (situation + moral action, situation + immoral action) for the nearest value."""
    from builders.sources import nearest_values

    rows = [json.loads(line) for line in (root / "moral_stories" / "full_stories_norm_distance_dev.jsonl").read_text().splitlines()[:n]]
    stories = pd.DataFrame(rows)
    stories["value"] = nearest_values(stories["norm"].tolist())
    return pd.concat([
        pd.DataFrame({"pair": stories.index, "text": stories["situation"] + " " + stories["moral_action"], "value": stories["value"], "target": 5.0}),
        pd.DataFrame({"pair": stories.index, "text": stories["situation"] + " " + stories["immoral_action"], "value": stories["value"], "target": -5.0}),
    ], ignore_index=True)


def evaluator_scores(judge, panel, rows: pd.DataFrame) -> np.ndarray:
    from evaluation.anchor_evaluator import AnchorEvaluator

    items = pd.DataFrame({"item_id": np.arange(len(rows)).astype(str), "text": rows["text"].to_numpy(), "value": rows["value"].to_numpy()})
    return AnchorEvaluator(judge, panel, k=6, m=3, seed=0, progress=False).score_many(items)["intensity"].to_numpy(dtype=float)


def pairwise(pred: np.ndarray, rows: pd.DataFrame) -> float:
    from evaluation.eval_evaluator import pairwise_accuracy

    if "pair" in rows.columns:  # Moral Stories: moral vs immoral action of each story
        a = pd.Series(pred[: len(rows) // 2]).to_numpy()
        b = pd.Series(pred[len(rows) // 2:]).to_numpy()
        ok = ~(np.isnan(a) | np.isnan(b))
        return float(np.mean((a[ok] > b[ok]) + 0.5 * (a[ok] == b[ok])))
    ok = ~np.isnan(pred)
    return pairwise_accuracy(pred[ok], rows["target"].to_numpy()[ok], rows["value"].to_numpy()[ok], min_gap=2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/judge_real"), help="where the trained judge is saved")
    ap.add_argument("--work", type=Path, default=Path("/tmp/judge_real_work"), help="ingested texts (cached)")
    ap.add_argument("--base-model", default="all-MiniLM-L6-v2")
    ap.add_argument("--loss", default="mse", choices=["mse", "plistmle"])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--moral-stories", type=int, default=0,
                    help="Moral Stories training rows (default none, see above)")
    ap.add_argument("--dev-stories", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    root = refdata_dir()
    if root is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")

    from evaluation.anchors import AnchorPanel
    from evaluation.train_judge import JudgeTrainConfig, direct_ratings, fit_judge
    from valueflow.io import write_json
    from valueflow.judges import make_judge
    from valueflow.judges.cross import CALIBRATION_FILE, Calibration, CrossJudge, export_onnx

    args.work.mkdir(parents=True, exist_ok=True)
    texts = ingest_sources(args.work, TRAINING_SOURCES)
    train, vn_held, vidb_held = training_split(texts, args.moral_stories)
    seen = set(train["text"].map(normalise_text))
    held = {"ValueNet": vn_held, "VIDB texts": vidb_held,
            "Moral Stories dev": dev_stories(root, args.dev_stories)}
    held = {k: v[~v["text"].map(normalise_text).isin(seen)].reset_index(drop=True) if "pair" not in v.columns else v
            for k, v in held.items()}
    print(f"training rows: {len(train)} ({train['source'].value_counts().to_dict()}); held out: "
          + ", ".join(f"{k} {len(v)}" for k, v in held.items()))

    cfg = JudgeTrainConfig(base_model=args.base_model, loss=args.loss, steps=args.steps, batch_size=args.batch_size,
                           learning_rate=args.lr, max_length=args.max_length)
    t = time.perf_counter()
    model, curve = fit_judge(cfg, train)
    train_seconds = time.perf_counter() - t
    model.save(str(args.out))
    export_onnx(args.out)
    cross = CrossJudge(str(args.out))
    panel_rows = train[train["source"] == "vidb_anchors"]
    calib_scores = np.concatenate([cross.scores(v, g["text"].tolist()) for v, g in panel_rows.groupby("value")])
    calib_y = np.concatenate([g["target"].to_numpy() for _, g in panel_rows.groupby("value")])
    cross.calibration = Calibration.fit(calib_scores, calib_y)
    write_json(cross.calibration.to_json(), args.out / CALIBRATION_FILE)
    print(f"trained {args.steps} steps ({args.loss}, batch {args.batch_size}) in {train_seconds:.0f} s; loss "
          + ", ".join(f"{s}: {lo:.3f}" for s, lo in curve[:: max(1, len(curve) // 6)]))

    probe_train = train.rename(columns={"target": "intensity"}).assign(split="train")
    judges = {"embedding": make_judge("embedding"), "probe": make_judge("probe", vidb=probe_train), "cross": cross}
    panel = AnchorPanel._from_raw(panel_rows.rename(columns={"target": "intensity"}), "training VIDB texts")
    results = {}
    for name, judge in judges.items():
        for label, rows_ in held.items():
            results[(name, label, "direct")] = pairwise(direct_ratings(judge, rows_), rows_)
            results[(name, label, "evaluator")] = pairwise(evaluator_scores(judge, panel, rows_), rows_)

    print(f"\npairwise accuracy on held-out real data (panel: {len(panel_rows)} training VIDB texts; k = 6, m = 3)")
    header = f"{'judge':<11}" + "".join(f"{label + ' ' + how:>28}" for label in held for how in ("direct", "evaluator"))
    print(header)
    for name in judges:
        print(f"{name:<11}" + "".join(f"{results[(name, label, how)]:>28.3f}" for label in held for how in ("direct", "evaluator")))
    print(f"{'paper LLM':<11}{PAPER_PAIRWISE:>28.3f}  (ValueNet, Gemma-3-27B ranking judge, 3 calls per text)")

    # throughput on fresh judges (a judge caches each (value, text) it scored, which would make a second pass free)
    fresh = held["ValueNet"]
    rates = {}
    for backend in ("torch", "onnx"):
        t = time.perf_counter()
        rated = direct_ratings(CrossJudge(str(args.out), backend=backend, threads=args.threads), fresh)
        rates[backend] = (len(fresh) / (time.perf_counter() - t), pairwise(rated, fresh))
    t = time.perf_counter()
    evaluator_scores(CrossJudge(str(args.out), backend="onnx", threads=args.threads), panel, fresh)
    evaluator_rate = len(fresh) / (time.perf_counter() - t)
    fastest = max(rates, key=lambda b: rates[b][0])
    direct_rate = rates[fastest][0]
    print(f"\ncross throughput on {args.threads} CPU thread(s), {len(fresh)} ValueNet texts, rating directly: "
          + "; ".join(f"{b} {r:.0f} texts/s (pairwise {acc:.3f})" for b, (r, acc) in rates.items())
          + f"; {evaluator_rate:.0f} texts/s scored by the evaluator with onnx (3 windows of 6: the text and 5 anchors, "
          "each anchor scored once)")
    print("\ntargets: >= 0.80 on ValueNet and VIDB texts, direct and in the evaluator; <= 20 min training; >= 200 texts/s")
    for label in ("ValueNet", "VIDB texts"):
        for how in ("direct", "evaluator"):
            v = results[("cross", label, how)]
            print(f"  {label:<11} {how:<10} {v:.3f} {'met' if v >= 0.80 else 'NOT met'}")
    print(f"  training {train_seconds / 60:.1f} min {'met' if train_seconds <= 1200 else 'NOT met'}; "
          f"throughput {direct_rate:.0f}/s ({fastest}) {'met' if direct_rate >= 200 else 'NOT met'}")
    write_json({"results": {"/".join(k): v for k, v in results.items()}, "train_seconds": round(train_seconds, 1),
                "texts_per_second_direct": {b: round(r, 1) for b, (r, _) in rates.items()}, "texts_per_second_evaluator": round(evaluator_rate, 1), "args": {k: str(v) for k, v in vars(args).items()},
                "held_out": {k: len(v) for k, v in held.items()}, "loss_curve": curve},
               args.out / "benchmark_results.json")


if __name__ == "__main__":
    main()

"""How far the oracle ceiling is from what any embedding can learn: the oracle of *predicted* labels.

The oracle (each text embedded as the normalised multi-hot of its true labels) is the ceiling of the HiVES tests.
A learned embedding can at best encode the labels it can predict from the text. This script embeds every
held-out Touché23 argument by the oracle of a label set predicted with a given F1 (each true refined value kept
with probability F1, false values added so that precision is F1 too), and scores it against the true labels with
the same metrics (hierarchical ranking accuracy, similarity correlation). The best published Touché23-ValueEval
systems reach a macro-F1 of about 0.56 on these 20 categories (large ensembles); the rows say which ranking
accuracy and similarity correlation a perfect embedding of such predictions reaches.

    python3 benchmarks/hives_label_noise.py [--max-rows 4000] [--f1 0.9 0.7 0.56 0.4] [--seeds 0 1 2]

The rows are the Touché23 validation rows ``benchmarks/hives_real.py`` scores HiVES on (whole arguments, the same
order, ``--max-rows`` as its ``--max-eval-rows``), and each F1 is the mean over ``--seeds`` draws of the predicted
labels; the F1-0.56 row is ``hives_real.py``'s ``LABEL_PREDICTOR_BOUND``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/real_texts_work"), help="ingested texts (cached; as hives_real.py's)")
    ap.add_argument("--max-rows", type=int, default=4000, help="Touché23 validation rows, whole arguments (as hives_real.py's)")
    ap.add_argument("--f1", type=float, nargs="*", default=[1.0, 0.9, 0.8, 0.7, 0.56, 0.4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="draws of the predicted labels, averaged")
    args = ap.parse_args()

    from hives_real import ingest_sources, touche_validation

    from hives_model.data import LabelSpace, oracle_embeddings, training_rows
    from hives_model.metrics import evaluate_embeddings
    from valueflow.io import refdata_dir

    if refdata_dir() is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    args.work.mkdir(parents=True, exist_ok=True)
    texts = ingest_sources(args.work)
    val, _ = touche_validation(texts, set(), args.max_rows)
    rows = training_rows(val).reset_index(drop=True)
    argument = val["source_id"].str.split(":").str[0].reset_index(drop=True)
    space = LabelSpace.from_taxonomy()
    one_row_of = {leaf: rows[rows["level_3"] == leaf].iloc[0] for leaf in sorted(rows["level_3"].unique())}
    leaves = list(one_row_of)
    base = evaluate_embeddings(oracle_embeddings(space.encode(rows)), rows, probe=False)
    print(f"{len(rows)} rows of {argument.nunique()} held-out Touché23 arguments; oracle (true labels): ranking accuracy "
          f"{base['ranking_accuracy']:.3f}, similarity correlation {base['similarity_correlation']:.3f}\n")
    print(f"{'label F1':>9}{'ranking accuracy':>18}{'similarity corr.':>18}   (mean of seeds {args.seeds}; range)")
    for f1 in args.f1:
        scores = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            emb_of = {}
            for a, group in rows.groupby(argument):
                true = list(group["level_3"])
                kept = [v for v in true if rng.random() < f1]
                n_false = round(len(kept) * (1 - f1) / f1) if kept else 1
                others = [v for v in leaves if v not in true]
                predicted = kept + list(rng.choice(others, size=min(n_false, len(others)), replace=False))
                fake = pd.DataFrame([one_row_of[v] for v in predicted]).assign(text=str(a)).reset_index(drop=True)
                emb_of[a] = oracle_embeddings(space.encode(fake))[0]
            r = evaluate_embeddings(np.stack([emb_of[a] for a in argument]), rows, probe=False)
            scores.append((r["ranking_accuracy"], r["similarity_correlation"]))
        (rank, corr), low, high = np.mean(scores, axis=0), np.min(scores, axis=0), np.max(scores, axis=0)
        print(f"{f1:>9.2f}{rank:>18.3f}{corr:>18.3f}   ({low[0]:.3f}-{high[0]:.3f} / {low[1]:.3f}-{high[1]:.3f})")


if __name__ == "__main__":
    main()

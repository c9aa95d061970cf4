"""How far the oracle ceiling is from what any embedding can learn: the oracle of *predicted* labels.

The oracle (each text embedded as the normalised multi-hot of its true labels) is the ceiling of the HiVES tests.
A learned embedding can at best encode the labels it can predict from the text. This script embeds every
held-out Touché23 argument by the oracle of a label set predicted with a given F1 (each true refined value kept
with probability F1, false values added so that precision is F1 too), and scores it against the true labels with
the same metrics (hierarchical ranking accuracy, similarity correlation). The best published Touché23-ValueEval
systems reach a macro-F1 of about 0.56 on these 20 categories (large ensembles); the rows say which ranking
accuracy and similarity correlation a perfect embedding of such predictions reaches.

    python3 benchmarks/hives_label_noise.py [--arguments 500] [--f1 0.9 0.7 0.56 0.4]
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
    ap.add_argument("--work", type=Path, default=Path("/tmp/hives_real_work"), help="ingested texts (cached)")
    ap.add_argument("--arguments", type=int, default=500, help="held-out Touché23 validation arguments")
    ap.add_argument("--f1", type=float, nargs="*", default=[1.0, 0.9, 0.8, 0.7, 0.56, 0.4])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from hives_real import ingest_sources

    from hives_model.data import LabelSpace, oracle_embeddings, training_rows
    from hives_model.metrics import evaluate_embeddings
    from valueflow.io import refdata_dir

    if refdata_dir() is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    args.work.mkdir(parents=True, exist_ok=True)
    texts = ingest_sources(args.work)
    val = texts[texts["source"] == "touche23-validation"]
    argument = val["source_id"].str.split(":").str[0]
    picked = argument.drop_duplicates().sample(frac=1.0, random_state=42).head(args.arguments)
    rows = training_rows(val[argument.isin(picked)]).reset_index(drop=True)
    argument = val[argument.isin(picked)]["source_id"].str.split(":").str[0].reset_index(drop=True)
    space = LabelSpace.from_taxonomy()
    one_row_of = {leaf: rows[rows["level_3"] == leaf].iloc[0] for leaf in sorted(rows["level_3"].unique())}
    leaves = list(one_row_of)
    rng = np.random.default_rng(args.seed)
    base = evaluate_embeddings(oracle_embeddings(space.encode(rows)), rows, probe=False)
    print(f"{len(rows)} rows of {len(picked)} held-out Touché23 arguments; oracle (true labels): ranking accuracy "
          f"{base['ranking_accuracy']:.3f}, similarity correlation {base['similarity_correlation']:.3f}\n")
    print(f"{'label F1':>9}{'ranking accuracy':>18}{'similarity corr.':>18}")
    for f1 in args.f1:
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
        print(f"{f1:>9.2f}{r['ranking_accuracy']:>18.3f}{r['similarity_correlation']:>18.3f}")


if __name__ == "__main__":
    main()

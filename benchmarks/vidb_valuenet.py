"""VIDB from ValueNet with the zero-shot embedding judge only, scored against ValueNet's human labels.

    python3 benchmarks/vidb_valuenet.py [--k 4] [--m 6] [--out /tmp/vidb_valuenet]

Ingests the ValueNet texts of the shared reference data (10 Schwartz values, human label -1/0/+1), collects
rankings from the embedding judge alone (no labels are shown to it), aggregates them with Plackett-Luce,
calibrates with the no-reference fallback and prints, per value, the pairwise accuracy of the intensities
against the human labels (+1 > 0 > -1; ties count half) next to the paper's 84.2 % for LLM ranking judges.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER_PAIRWISE = 84.2  # VALUEFLOW Table 1: pairwise accuracy of LLM ranking judges vs ValueNet human labels


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from builders.aggregate import AggregateConfig, aggregate
    from builders.build_vidb import BuildConfig, build_vidb, pairwise_accuracy
    from builders.collect import CollectConfig, collect
    from builders.ingest import IngestConfig, ingest
    from valueflow.io import refdata_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    ref = refdata_dir()
    if ref is None:
        raise SystemExit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    root = args.out or Path(tempfile.mkdtemp(prefix="vidb_valuenet_"))
    timings = {}
    t0 = time.perf_counter()
    ingest(IngestConfig(sources=["valuenet"], refdata=ref, out=Path("data/texts.parquet"), root=root))
    timings["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    collect(CollectConfig(judges=["embedding"], k=args.k, m=args.m, root=root))
    timings["collect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    aggregate(AggregateConfig(root=root))
    timings["aggregate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full, stats = build_vidb(BuildConfig(root=root))
    timings["build"] = time.perf_counter() - t0

    print(f"VIDB from ValueNet: {len(full):,} texts, {stats['rankings']:,} rankings (embedding judge only, "
          f"k={args.k}, m={args.m}); calibration: {stats['calibration_methods']}")
    print(f"{'value':<16}{'texts':>7}{'+1/0/-1':>14}{'pairwise acc %':>16}{'paper (LLM ranking) %':>23}")
    accs, weights = [], []
    for value, g in full.groupby("value"):
        label = g["direction"].astype("Float64").to_numpy(float, na_value=np.nan)
        acc = pairwise_accuracy(g["intensity"].to_numpy(float), label)
        counts = f"{(label == 1).sum()}/{(label == 0).sum()}/{(label == -1).sum()}"
        accs.append(acc)
        weights.append(len(g))
        print(f"{value:<16}{len(g):>7}{counts:>14}{100 * acc:>16.1f}{PAPER_PAIRWISE:>23.1f}")
    mean = float(np.mean(accs))
    print(f"{'mean over values':<16}{sum(weights):>7}{'':>14}{100 * mean:>16.1f}{PAPER_PAIRWISE:>23.1f}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + f"; output in {root}")


if __name__ == "__main__":
    main()

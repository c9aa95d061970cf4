"""Does the embedded seed corpus teach the real VIDB scale? Judges trained on the seed corpus alone order the
published VIDB texts (real, ranking-derived intensities, ../shared/data/vidb_anchors), per theory.

    python3 benchmarks/seed_vs_real.py [--judge release/judge] [--vidb release/vidb] [--minilm]

- ``learned``: the learned judge of the default pipeline (``release/judge``: a frozen all-mpnet-base-v2 and a value
  head, trained on the seed VIDB's train split only and calibrated on its validation split, by ``dvc repro`` on a
  fresh clone);
- ``learned-minilm`` (only with ``--minilm``, a comparison point): the same ``train_judge`` stage on the same seed
  VIDB with all-MiniLM-L6-v2 as the encoder, trained here into a temporary folder;
- ``embedding``: the zero-shot judge, which learns nothing from the seed corpus (the baseline).
Each rates every real text for its value; pairwise accuracy counts same-value pairs whose real intensities are at
least 2 apart and that the judge orders the same way (ties count half). Under each judge, a 95 % bootstrap interval
(texts resampled within each theory, ``--bootstrap`` draws): a theory has only about 80-120 texts, so a few
hundredths either way is within the draw. Target (the seed-corpus issue): >= 0.70 on every theory for the learned
judge trained on the seed corpus.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default="release/judge", help="the learned judge trained on the seed corpus")
    ap.add_argument("--vidb", default="release/vidb",
                    help="the seed VIDB release (its train split trains the --minilm judge)")
    ap.add_argument("--minilm", action="store_true",
                    help="also train a learned judge on all-MiniLM-L6-v2 on the seed VIDB (a comparison point)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws of the 95 %% interval (0: none)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from evaluation.eval_evaluator import pairwise_accuracy
    from valueflow.io import refdata_dir
    from valueflow.judges import make_judge
    from valueflow.taxonomy import get_taxonomy

    root = refdata_dir()
    if root is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    for path in (args.judge, *([args.vidb] if args.minilm else [])):
        if not Path(path).exists():
            sys.exit(f"{path} not found: run `dvc repro` first (it trains the judge on the seed corpus)")
    real = pd.concat([pd.read_csv(f) for f in sorted((root / "vidb_anchors").glob("*.csv"))], ignore_index=True)
    real["value"] = real["value"].map(get_taxonomy().resolve)
    real = real.drop_duplicates(["value", "text"]).reset_index(drop=True)
    judges = {"learned": make_judge(f"learned:{args.judge}")}
    tmp = tempfile.TemporaryDirectory()
    if args.minilm:
        from evaluation.train_judge import JudgeTrainConfig, train_judge

        out = Path(tmp.name) / "judge"
        train_judge(JudgeTrainConfig(vidb=Path(args.vidb), base_model="all-MiniLM-L6-v2", out=out, onnx=False),
                    echo=lambda *_: None)
        judges["learned-minilm"] = make_judge(f"learned:{out}")
    judges["embedding"] = make_judge("embedding")
    print(f"{len(real)} published VIDB texts, {real['value'].nunique()} values; pairs >= 2 VIDB points apart\n")
    print(f"{'judge':<16}" + "".join(f"{t:>11}" for t in ("pvq", "mft", "duty", "right", "all")))
    scores = {}
    for name, judge in judges.items():
        pred = np.full(len(real), np.nan)
        for value, idx in real.groupby("value").indices.items():
            pred[idx] = judge.rate(value, real["text"].iloc[idx].tolist())
        gold, values, theories = real["intensity"].to_numpy(), real["value"].to_numpy(), real["theory"].to_numpy()
        rng = np.random.default_rng(0)
        cells, intervals = {}, {}
        for theory in ("pvq", "mft", "duty", "right", None):
            rows = np.flatnonzero(theories == theory) if theory else np.arange(len(real))
            cells[theory or "all"] = pairwise_accuracy(pred[rows], gold[rows], values[rows], min_gap=2.0)
            draws = [pairwise_accuracy(pred[d], gold[d], values[d], min_gap=2.0) for d in
                     (rng.choice(rows, len(rows)) for _ in range(args.bootstrap))]
            kept = [d for d in draws if d is not None]
            low, high = np.percentile(kept, [2.5, 97.5]) if kept else (np.nan, np.nan)
            intervals[theory or "all"] = f"{low:.2f}-{high:.2f}"
        scores[name] = cells
        print(f"{name:<16}" + "".join(f"{cells[t]:>11.3f}" for t in ("pvq", "mft", "duty", "right", "all")))
        if args.bootstrap:
            print(f"{'  95 % interval':<16}" + "".join(f"{intervals[t]:>11}" for t in ("pvq", "mft", "duty", "right", "all")))
    tmp.cleanup()
    worst = min(scores["learned"][t] for t in ("pvq", "mft", "duty", "right"))
    print(f"\ntarget: learned >= 0.70 on every theory: {'met' if worst >= 0.70 else 'NOT met'} (lowest {worst:.3f})")


if __name__ == "__main__":
    main()

"""Judge calls for growing a value by 10 %: the growing window design vs a fresh full collection.

    python3 benchmarks/collect_growth.py [--n-texts 1000] [--growth 0.1] [--k 4] [--m 6]

Runs the real collect stage twice on one value with a judge that counts the windows it is asked: first on
n texts, then on n + 10 % (the old texts unchanged). Prints, side by side, the windows a full collection of the
grown value asks, the windows the resumed collection actually asked, and what the previous design (drawn from the
whole sorted id list, so every window changes when one text is added) would have asked. Also checks the promises
the numbers rest on: every earlier answer is still used, every text is in at least m windows, and every new
window holds a text that was already on the scale.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from builders.collect import CollectConfig, collect, value_windows
from valueflow.judges import Judge, JudgeAnswer
from valueflow.taxonomy import get_taxonomy


class CountingJudge(Judge):
    name = "counting:length@1"

    def __init__(self) -> None:
        self.asked = 0

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        self.asked += len(windows)
        return [JudgeAnswer(tuple(int(i) for i in np.argsort([-len(t) for t in w], kind="stable"))) for w in windows]


def texts_table(n: int, value: str) -> pd.DataFrame:
    v = get_taxonomy().value(value)
    level_1, level_2, level_3 = get_taxonomy().path(value, None)
    return pd.DataFrame({
        "text_id": [f"t{i:06d}" for i in range(n)],
        "text": [f"text number {i} " + "x" * (i % 97) for i in range(n)],
        "source": "bench", "source_id": [str(i) for i in range(n)], "license": "CC0", "theory": v.theory,
        "value": value, "level_1": level_1, "level_2": level_2, "level_3": level_3,
        "direction": pd.array([1] * n, dtype="Int8"), "reference_intensity": np.nan,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-texts", type=int, default=1000)
    ap.add_argument("--growth", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=6)
    args = ap.parse_args()
    value = "benevolence"
    n_new = int(round(args.n_texts * (1 + args.growth)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = CollectConfig(judges=[], k=args.k, m=args.m, values=[value], root=root)
        texts = texts_table(n_new, value)
        texts.iloc[: args.n_texts].to_parquet(root / "texts.parquet", index=False)
        cfg.texts = Path("texts.parquet")
        first = CountingJudge()
        before, _ = collect(cfg, judges=[first])
        texts.to_parquet(root / "texts.parquet", index=False)
        grow = CountingJudge()
        after, metrics = collect(cfg, judges=[grow])
        fresh = CountingJudge()
        cfg_fresh = CollectConfig(texts=cfg.texts, out=Path("fresh.parquet"), store=Path("fresh-store"), k=args.k,
                                  m=args.m, values=[value], root=root)
        collect(cfg_fresh, judges=[fresh])

    old_ids = set(texts["text_id"].iloc[: args.n_texts])
    new_windows = [list(w) for w in after["window"] if tuple(w) not in {tuple(x) for x in before["window"]}]
    counts = Counter(t for w in after["window"] for t in w)
    assert set(map(tuple, before["window"])) <= set(map(tuple, after["window"])), "an earlier answer was dropped"
    assert min(counts[t] for t in texts["text_id"]) >= args.m, "a text has fewer than m windows"
    assert all(any(t in old_ids for t in w) for w in new_windows), "a new window holds no earlier text"
    previous = [w for w in (value_windows(texts["text_id"].tolist(), value, args.k, args.m, 0))]
    old_design = {tuple(w) for w in value_windows(sorted(old_ids), value, args.k, args.m, 0)}
    old_reasked = sum(tuple(w) not in old_design for w in previous)

    full = fresh.asked
    print(f"== one value grown from {args.n_texts:,} to {n_new:,} texts (+{args.growth:.0%}), k={args.k}, m={args.m} ==")
    print(f"{'collection':<52}{'judge calls (windows)':>22}{'share of full':>15}")
    print(f"{'first collection, ' + f'{args.n_texts:,} texts':<52}{first.asked:>22,}{first.asked / full:>15.1%}")
    print(f"{'full collection of the grown value (fresh store)':<52}{full:>22,}{1:>15.1%}")
    print(f"{'growing design (resumed store): asked':<52}{grow.asked:>22,}{grow.asked / full:>15.1%}")
    print(f"{'previous design (whole sorted id list): would ask':<52}{old_reasked:>22,}{old_reasked / full:>15.1%}")
    bound = (n_new - args.n_texts) * args.m / (args.k - 1)
    print(f"floor when every new window holds one earlier text: {bound:,.0f} windows "
          f"({bound / full:.1%} = k/(k-1) x the new texts' share); earlier answers reused: {len(before):,}/{len(before):,}; "
          f"windows of the grown value: {metrics['windows_per_judge']:,}")


if __name__ == "__main__":
    main()

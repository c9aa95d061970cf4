"""Fixtures for the evaluator tests: a small VIDB release folder built from the seed corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valueflow.io import stable_text_id
from valueflow.taxonomy import get_taxonomy


def vidb_rows(seed_dir: Path, values: list[str] | None = None) -> pd.DataFrame:
    """VidbSchema rows from the seed corpus: intensity = its reference intensity, splits 10/2/2 per value."""
    tax = get_taxonomy()
    frames = [pd.read_csv(f, keep_default_na=False) for f in sorted(seed_dir.glob("*.csv"))]
    seed = pd.concat(frames, ignore_index=True)
    if values:
        seed = seed[seed["value"].isin(values)]
    rows = []
    for value, group in seed.groupby("value", sort=True):
        group = group.sort_values("reference_intensity").reset_index(drop=True)
        split = np.array(["train"] * len(group), dtype=object)
        split[3::6] = "test"  # spread test texts over the intensity range
        split[5::7] = "validation"
        for (_, r), s in zip(group.iterrows(), split):
            v = tax.value(value)
            path = tax.path(value, r["leaf"] or None)
            x = float(r["reference_intensity"])
            rows.append(
                {
                    "text_id": stable_text_id("seed", f"{value}|{r['text']}"),
                    "text": r["text"], "source": "seed", "source_id": "", "license": "CC BY 4.0",
                    "theory": v.theory, "value": value, "level_1": path[0], "level_2": path[1], "level_3": path[2],
                    "direction": int(r["direction"]), "reference_intensity": x,
                    "utility": x / 3, "utility_se": 0.3, "intensity": x,
                    "intensity_ci_low": max(-10.0, x - 1), "intensity_ci_high": min(10.0, x + 1),
                    "n_rankings": 6, "n_judges": 1, "flag": "", "in_filtered": True, "split": s,
                }
            )
    df = pd.DataFrame(rows)
    return df.astype({"direction": "Int8"})


def write_release(root: Path, rows: pd.DataFrame) -> Path:
    for split, part in rows.groupby("split"):
        (root / "data" / "full").mkdir(parents=True, exist_ok=True)
        part.to_parquet(root / "data" / "full" / f"{split}.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def vidb_release(tmp_path_factory: pytest.TempPathFactory, seed_dir: Path) -> Path:
    """A VIDB release folder (data/full/{train,validation,test}.parquet) over four values of the seed corpus."""
    rows = vidb_rows(seed_dir, ["benevolence", "care-harm", "justice", "civil_rights"])
    return write_release(tmp_path_factory.mktemp("vidb"), rows)

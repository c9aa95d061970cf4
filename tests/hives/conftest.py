"""HiVES test fixtures: the seed corpus as a texts record, built once per session into a temp folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def seed_texts_path(tmp_path_factory, seed_dir: Path) -> Path:
    from builders.ingest import IngestConfig, ingest

    root = tmp_path_factory.mktemp("seed_texts")
    ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, out=Path("texts.parquet"), root=root))
    return root / "texts.parquet"


@pytest.fixture(scope="session")
def seed_texts(seed_texts_path: Path) -> pd.DataFrame:
    return pd.read_parquet(seed_texts_path)


@pytest.fixture()
def small_texts_path(seed_texts: pd.DataFrame, tmp_path: Path) -> Path:
    """Two theories, a few values each: enough for positives at every level, small enough to train in seconds."""
    keep = seed_texts[seed_texts["value"].isin(["benevolence", "power", "achievement", "care-harm", "fairness-cheating"])]
    path = tmp_path / "small.parquet"
    keep.to_parquet(path, index=False)
    return path

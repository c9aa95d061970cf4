"""Fixtures of the VIDB builder tests: the seed corpus ingested into a temporary project folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from builders.ingest import IngestConfig, ingest

FEW_VALUES = ("benevolence", "care-harm", "justice", "civil_rights")


@pytest.fixture(scope="session")
def seed_texts(tmp_path_factory, seed_dir: Path) -> pd.DataFrame:
    """All 448 seed texts, ingested as `valueflow ingest` does."""
    root = tmp_path_factory.mktemp("ingest")
    texts, _ = ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, out=Path("data/texts.parquet"), root=root))
    return texts


@pytest.fixture()
def project(tmp_path: Path, seed_texts: pd.DataFrame) -> Path:
    """A project folder with data/texts.parquet holding the seed texts of four values (one per theory)."""
    (tmp_path / "data").mkdir()
    seed_texts[seed_texts["value"].isin(FEW_VALUES)].to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    return tmp_path

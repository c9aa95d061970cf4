"""The embedded default corpus that a fresh clone runs on."""

from __future__ import annotations

import pandas as pd

from builders.ingest import IngestConfig, ingest
from valueflow.taxonomy import get_taxonomy


def test_seed_corpus_covers_every_value_in_every_direction(project_root, tmp_path):
    cfg = IngestConfig(sources=["seed"], seed_dir=project_root / "data" / "seed" / "texts", root=tmp_path)
    texts, metrics = ingest(cfg)
    assert metrics["rejected"] == 0
    per_value = texts.groupby("value")
    assert set(per_value.groups) == {v.name for v in get_taxonomy().values}
    assert per_value.size().min() >= 12
    for value, group in per_value:
        intensity = group["reference_intensity"]
        assert set(group["direction"]) == {-1, 0, 1}, value
        assert intensity.max() >= 7 and intensity.min() <= -7, value  # strong support and strong opposition
        assert ((intensity.abs() >= 2) & (intensity.abs() <= 6)).sum() >= 2, value  # mild ones too
    with_leaf = texts[texts["level_3"] != texts["level_2"]]
    assert len(with_leaf) >= 50
    assert texts["text"].str.split().str.len().between(4, 60).all()


def test_seed_queries(project_root):
    queries = pd.read_csv(project_root / "data" / "seed" / "queries.csv")
    assert list(queries.columns) == ["query_id", "topic", "query"]
    assert len(queries) >= 40 and queries["query_id"].is_unique and queries["query"].is_unique

"""The embedded default corpus that a fresh clone runs on: big enough to train and test on, balanced over the
VIDB scale and over the registers real value data uses, and free of near-duplicates."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from builders.ingest import IngestConfig, ingest
from valueflow.io import normalise_text
from valueflow.taxonomy import get_taxonomy

REGISTERS = {"post", "question", "action", "argument", "news", "dialogue", "narrative", "statement"}
BANDS = {"strong support": (6, 10), "mild support": (2, 6), "neutral": (-1.5, 1.5), "mild opposition": (-6, -2),
         "strong opposition": (-10, -6)}


@pytest.fixture(scope="module")
def corpus(seed_dir) -> pd.DataFrame:
    frames = [pd.read_csv(path, dtype={"leaf": str}, keep_default_na=False) for path in sorted(seed_dir.glob("*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df["reference_intensity"] = df["reference_intensity"].astype(float)
    df["direction"] = df["direction"].astype(int)
    df["value"] = df["value"].map(get_taxonomy().resolve)
    return df


def band(x: float) -> str:
    return next(name for name, (lo, hi) in BANDS.items() if lo <= x <= hi)


def test_every_value_has_60_texts_spread_over_the_scale_and_the_registers(corpus):
    counts = corpus.groupby("value").size()
    assert set(counts.index) == {v.name for v in get_taxonomy().values}
    assert counts.min() >= 60, counts.idxmin()
    bands = corpus.assign(band=corpus["reference_intensity"].map(band)).groupby(["value", "band"]).size().unstack(fill_value=0)
    assert set(bands.columns) == set(BANDS)
    assert (bands.drop(columns="neutral") >= 12).all().all(), bands[bands.min(axis=1) < 12]
    assert (bands["neutral"] >= 10).all()
    registers = corpus.groupby(["value", "register"]).size().unstack(fill_value=0)
    assert set(registers.columns) == REGISTERS
    assert (registers >= 5).all().all(), registers[registers.min(axis=1) < 5]
    words = corpus["text"].str.split().str.len()
    assert words.between(3, 80).all()
    by_value = corpus.assign(words=words).groupby("value")["words"]
    assert (by_value.apply(lambda w: (w < 8).sum()) >= 6).all()  # short action phrases and posts
    assert (by_value.apply(lambda w: (w > 35).sum()) >= 6).all()  # arguments, reports, long posts


def test_every_direction_agrees_with_its_intensity(corpus):
    x, d = corpus["reference_intensity"], corpus["direction"]
    assert x.between(-10, 10).all()
    assert (d[x >= 2] == 1).all() and (d[x <= -2] == -1).all() and (d[x.abs() <= 1.5] == 0).all()
    assert not x.between(1.5, 2, inclusive="neither").any() and not x.between(-2, -1.5, inclusive="neither").any()


def test_values_with_leaves_keep_refined_labels(corpus):
    tax = get_taxonomy()
    for value in {v.name for v in tax.values if tax.leaves_of(v.name)}:
        rows = corpus[(corpus["value"] == value) & (corpus["direction"] != 0)]
        assert (rows["leaf"] != "").mean() >= 0.3, value
        for leaf in rows["leaf"][rows["leaf"] != ""]:
            tax.resolve_leaf(value, leaf)  # raises on a leaf the taxonomy does not know


def test_no_near_duplicates(corpus):
    from sentence_transformers import SentenceTransformer

    from valueflow.models import resolve_model_path

    # no text twice anywhere (a text filed under two values would sit in train and test at once), ...
    key = corpus["text"].map(lambda t: normalise_text(re.sub(r"[^\w\s]", "", t)))
    assert not key.duplicated().any(), corpus["text"][key.duplicated(keep=False)].tolist()
    # ... and no rephrasing of another text of the same value
    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    emb = model.encode(corpus["text"].tolist(), batch_size=128, normalize_embeddings=True)
    for value, idx in corpus.groupby("value").indices.items():
        sim = emb[idx] @ emb[idx].T
        np.fill_diagonal(sim, 0)
        i, j = np.unravel_index(sim.argmax(), sim.shape)
        assert sim[i, j] <= 0.92, (value, corpus["text"].iloc[idx[i]], corpus["text"].iloc[idx[j]])


def test_seed_corpus_ingests_without_a_rejected_row(seed_dir, tmp_path):
    texts, metrics = ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, root=tmp_path))
    assert metrics["rejected"] == 0
    assert len(texts) >= 32 * 60
    assert (texts["level_3"] != texts["level_2"]).sum() >= 300  # refined leaves carried into the paths


def test_seed_queries(project_root):
    queries = pd.read_csv(project_root / "data" / "seed" / "queries.csv")
    assert list(queries.columns) == ["query_id", "topic", "query"]
    assert len(queries) >= 100 and queries["query_id"].is_unique and queries["query"].is_unique
    assert queries["query"].str.split().str.len().between(8, 80).all()

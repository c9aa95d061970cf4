"""Ingest of the real corpora in ../shared/data: every file row is ingested or rejected with a reason."""

from __future__ import annotations

import pandas as pd
import pytest

from builders.ingest import IngestConfig, ingest


@pytest.fixture(scope="module")
def real(refdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    texts, metrics = ingest(IngestConfig(sources=["valuenet", "touche23", "mfrc", "social_chem", "vidb_anchors"], refdata=refdata, root=root))
    rejected = pd.read_parquet(root / "data" / "rejected" / "ingest.parquet")
    return texts, metrics, rejected


def test_every_valuenet_row_is_ingested_or_rejected(real, refdata):
    texts, metrics, rejected = real
    files = sorted((refdata / "valuenet").glob("valuenet_*.csv"))
    file_rows = sum(len(pd.read_csv(f)) for f in files)
    counts = metrics["sources"]["valuenet"]
    assert counts["files"] == len(files) == 10
    assert counts["file_rows"] == file_rows
    assert counts["rows_ingested"] + counts["rows_rejected"] == file_rows
    vn = texts[texts["source"] == "valuenet"]
    assert len(vn) == counts["texts"] and set(vn["direction"].dropna()) <= {-1, 0, 1}
    # per value, the ingested texts match the file (minus exact duplicates rejected with a reason)
    for f in files:
        value = f.stem.removeprefix("valuenet_").lower()
        dups = rejected["file"].eq(str(f)).sum()
        assert (vn["value"] == value).sum() + dups == len(pd.read_csv(f))


def test_every_source_accounts_for_all_its_rows(real):
    _, metrics, rejected = real
    for source, c in metrics["sources"].items():
        assert c["rows_ingested"] + c["rows_rejected"] == c["file_rows"], source
    assert len(rejected) == metrics["rejected"]
    assert rejected["reason"].str.len().gt(0).all()


def test_multilabel_sources_give_one_text_per_label(real, refdata):
    texts, _, _ = real
    labels = pd.read_csv(refdata / "touche23" / "labels-training.tsv", sep="\t")
    first = labels.iloc[0]
    present = [c for c in labels.columns[1:] if first[c] == 1]
    rows = texts[texts["source_id"].str.startswith(f"{first['Argument ID']}:")]
    assert len(rows) == len(present)
    assert rows["direction"].isna().all()  # Touché labels presence, not direction
    mfrc = texts[texts["source"] == "mfrc"]
    assert mfrc["value"].isin(["care-harm", "fairness-cheating", "loyalty-betrayal", "authority-subversion", "sanctity-degradation"]).all()


def test_vidb_anchor_intensities_become_reference_intensities(real, refdata):
    texts, _, _ = real
    anchors = texts[texts["source"] == "vidb_anchors"]
    assert anchors["value"].nunique() == 32
    assert anchors["reference_intensity"].between(-10, 10).all()
    assert (anchors["direction"] * anchors["reference_intensity"] >= 0).all()

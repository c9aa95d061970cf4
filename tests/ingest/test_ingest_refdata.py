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


def test_a_maintainer_trains_hives_on_the_ingested_real_corpora(refdata, tmp_path, monkeypatch):
    """The documented path to the HiVES one would publish: ingest the real sources, train on them (checkpointed)."""
    from typer.testing import CliRunner

    from valueflow.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "ingest: {sources: [seed], refdata: %s}\n"
        "train_hives: {stage1: {steps: 2, batch_size: 8}, stage2: {steps: 0}, max_seq_length: 32}\n" % refdata)
    runner = CliRunner()
    ingest_run = runner.invoke(app, ["ingest", "-s", "valuenet", "-s", "touche23", "--out", "real.parquet"])
    assert ingest_run.exit_code == 0, ingest_run.output
    real = pd.read_parquet(tmp_path / "real.parquet")
    real.groupby("source").head(40).to_parquet(tmp_path / "real_small.parquet", index=False)  # a few rows per source
    train = runner.invoke(app, ["train-hives", "--data", "real_small.parquet", "--out", "models/hives",
                                "--checkpoint-steps", "1"])
    assert train.exit_code == 0, train.output
    record = pd.read_json(tmp_path / "models" / "hives" / "hives_training.json", typ="series")
    assert set(record["rows_per_theory"]) == {"pvq"} and record["config"]["checkpoint_steps"] == 1
    assert not (tmp_path / "models" / "hives.checkpoints").exists()

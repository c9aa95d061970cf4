"""AnchorPanel: anchors from a release folder, a table file or a Hub dataset id; bad rows kept with reasons."""

from __future__ import annotations

import pandas as pd
import pytest

from evaluation.anchors import AnchorPanel
from valueflow.io import InputError
from valueflow.taxonomy import UnknownValueError


def test_release_folder_gives_anchors_per_value_with_splits(vidb_release):
    panel = AnchorPanel.from_source(vidb_release)
    assert panel.values == ["benevolence", "care-harm", "civil_rights", "justice"]
    assert set(panel.table["split"]) == {"train", "validation", "test"}
    train = AnchorPanel.from_source(vidb_release, split="train,validation")
    assert "test" not in set(train.table["split"])
    assert len(train) + (panel.table["split"] == "test").sum() == len(panel)
    # alias lookup: "Care/Harm" is care-harm
    assert len(panel.anchors("Care/Harm")) == (panel.table["value"] == "care-harm").sum()


def test_table_with_bad_rows_keeps_them_with_file_row_and_reason(tmp_path):
    path = tmp_path / "anchors.csv"
    pd.DataFrame(
        {
            "text": ["Helped my neighbour move.", "", "Stole from a friend.", "Ignored my sister.", "Fine."],
            "value": ["benevolence", "benevolence", "benevolence", "kindnesss", "benevolence"],
            "intensity": ["6", "3", "-7.5", "-4", "12"],
        }
    ).to_csv(path, index=False)
    panel = AnchorPanel.from_source(path)
    assert panel.table["text"].tolist() == ["Helped my neighbour move.", "Stole from a friend."]
    reasons = dict(zip(panel.rejected["row"], panel.rejected["reason"]))
    assert reasons[1] == "empty text"
    assert "unknown value 'kindnesss'" in reasons[3]
    assert "outside [-10, 10]" in reasons[4]
    assert set(panel.rejected["file"]) == {str(path)}


def test_unknown_value_lists_the_valid_ones(vidb_release):
    panel = AnchorPanel.from_source(vidb_release)
    with pytest.raises(UnknownValueError, match="valid values: .*benevolence"):
        panel.anchors("kindness")


def test_missing_sources_are_refused_with_the_reason(tmp_path):
    with pytest.raises(InputError, match="not found"):
        AnchorPanel.from_source(tmp_path / "nothing.csv")
    (tmp_path / "empty_release").mkdir()
    with pytest.raises(InputError, match="data/full"):
        AnchorPanel.from_source(tmp_path / "empty_release")


def test_hub_id_loads_the_full_config_at_the_requested_revision(monkeypatch, vidb_release):
    import datasets

    calls = {}
    parts = {s: pd.read_parquet(vidb_release / "data" / "full" / f"{s}.parquet").drop(columns="split")
             for s in ("train", "validation", "test")}

    def fake_load(path, name=None, revision=None, **kw):
        calls.update(path=path, name=name, revision=revision)
        return datasets.DatasetDict({s: datasets.Dataset.from_pandas(df, preserve_index=False) for s, df in parts.items()})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    panel = AnchorPanel.from_source("valueflow/vidb@v1.0.0", split="test")
    assert calls == {"path": "valueflow/vidb", "name": "full", "revision": "v1.0.0"}
    assert set(panel.table["split"]) == {"test"} and len(panel) == len(parts["test"])
    AnchorPanel.from_source("valueflow/vidb", revision="v2.0.0")
    assert calls["revision"] == "v2.0.0"


def test_invalid_vidb_rows_in_a_release_are_rejected_with_reasons(tmp_path, seed_dir):
    from tests.evaluation.conftest import vidb_rows, write_release

    rows = vidb_rows(seed_dir, ["justice"])
    rows.loc[0, "value"] = "not-a-value"
    rows.loc[1, "intensity_ci_low"] = 9.9  # above its intensity
    panel = AnchorPanel.from_source(write_release(tmp_path, rows))
    assert len(panel) == len(rows) - 2
    assert len(panel.rejected) == 2 and panel.rejected["file"].str.endswith(".parquet").all()
    assert panel.rejected["reason"].str.contains("value|intensity_ci_low").all()

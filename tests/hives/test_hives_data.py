"""Training rows: labels the taxonomy knows, a documented treatment of missing directions, label codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hives_model.data import DIRECTION_UNKNOWN, L, LabelSpace, TrainingDataError, load_texts, training_rows
from validation.rejects import RejectSink


def test_rows_carry_path_direction_and_concordance_group(seed_texts):
    rows = training_rows(seed_texts)
    assert len(rows) == len(seed_texts)
    care = rows[rows["value"] == "care-harm"].iloc[0]
    assert care["concordance_group"] == "care"
    assert set(rows["direction"]) <= {-1, 0, 1}
    assert rows["intensity"].notna().all()  # the seed corpus has reference intensities


def test_unknown_path_is_refused_with_row_and_column(seed_texts, tmp_path):
    bad = seed_texts.head(5).copy()
    bad.loc[bad.index[3], "level_2"] = "not-a-node"
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(TrainingDataError, match=r"bad.parquet.*row 4, columns level_1..level_3"):
        load_texts(path, RejectSink("t", root=tmp_path))


def test_unknown_theory_is_refused(seed_texts, tmp_path):
    bad = seed_texts.head(3).copy()
    bad["theory"] = "astrology"
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(TrainingDataError, match="row 1, column theory: unknown theory 'astrology'"):
        load_texts(path, RejectSink("t", root=tmp_path))


def _with_missing(seed_texts: pd.DataFrame) -> pd.DataFrame:
    df = seed_texts.head(6).copy()
    df["direction"] = pd.array([1, None, -1, None, 0, 1], dtype="Int8")
    df["reference_intensity"] = np.nan
    return df


def test_missing_direction_unknown_support_and_drop(seed_texts, tmp_path):
    df = _with_missing(seed_texts)
    assert list(training_rows(df, "unknown")["direction"]) == [1, DIRECTION_UNKNOWN, -1, DIRECTION_UNKNOWN, 0, 1]
    assert list(training_rows(df, "support")["direction"]) == [1, 1, -1, 1, 0, 1]
    sink = RejectSink("train_hives", root=tmp_path)
    dropped = training_rows(df, "drop", sink, file="x.parquet")
    assert len(dropped) == 4
    assert sink.count == 2 and "direction: missing" in sink.rows[0]["reason"]
    with pytest.raises(ValueError, match="missing_direction must be one of"):
        training_rows(df, "guess")


def test_label_codes_share_prefixes_and_identical_texts(seed_texts):
    rows = training_rows(seed_texts)
    rows = pd.concat([rows, rows.head(1)], ignore_index=True)  # a multi-label text appears twice
    labels = LabelSpace.from_taxonomy().encode(rows)
    assert labels[0, L["text_key"]] == labels[-1, L["text_key"]]
    pvq = rows.index[(rows["theory"] == "pvq") & (rows["level_1"] == "conservation")]
    assert len(set(labels[pvq, L["prefix_1"]])) == 1
    assert len(set(labels[pvq, L["prefix_2"]])) > 1  # conformity, security, tradition


def test_repeated_text_rows_carry_each_others_labels(seed_texts):
    from hives_model.data import NO_LABEL, OTHER

    rows = training_rows(pd.concat([seed_texts.head(2), seed_texts[seed_texts["value"] == "power"].head(1)]))
    twin = rows.iloc[[0]].copy()
    twin[["theory", "value", "level_1", "level_2", "level_3", "concordance_group"]] = rows.iloc[2][
        ["theory", "value", "level_1", "level_2", "level_3", "concordance_group"]].to_numpy()
    labels = LabelSpace.from_taxonomy().encode(pd.concat([rows, twin], ignore_index=True))
    assert labels[0, OTHER["prefix_3"][0]] == labels[3, L["prefix_3"]]
    assert labels[3, OTHER["prefix_3"][0]] == labels[0, L["prefix_3"]]
    assert labels[1, OTHER["prefix_3"][0]] == NO_LABEL  # a single-label text has no other labels

"""Ingest of labelled tables: bad input gets a precise reason, and no row is lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from builders.ingest import IngestConfig, ingest
from valueflow.io import InputError

HEADER = "value,leaf,direction,reference_intensity,text,id\n"
GOOD = [
    "benevolence,,1,6.5,I drove my grandmother to every appointment this winter.,g1",
    "care-harm,compassion,-1,-7.0,He laughed at the injured cyclist and walked on.,g2",
    "civil_rights,right_to_privacy,1,4.0,The clinic keeps patient files locked away from curious staff.,g3",
]


def run(tmp_path: Path, body: str, *, encoding: str = "utf-8") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    table = tmp_path / "mine.csv"
    table.write_bytes(body.encode(encoding) if isinstance(body, str) else body)
    texts, metrics = ingest(IngestConfig(sources=[], tables=[{"path": str(table), "source": "mine", "license": "CC0"}], root=tmp_path))
    rejected = pd.read_parquet(tmp_path / "data" / "rejected" / "ingest.parquet")
    return texts, rejected, metrics


@pytest.mark.parametrize(
    "bad_row, column, reason",
    [
        ("kindnes,,1,5.0,She returned the lost wallet.,b1", "value", "unknown value 'kindnes'; valid values: achievement"),
        ("benevolence,,2,5.0,She returned the lost wallet.,b1", "direction", "direction: 2 is not one of -1, 0, 1"),
        ("benevolence,,up,5.0,She returned the lost wallet.,b1", "direction", "direction: 'up' is not an integer"),
        ("benevolence,,1,12.5,She returned the lost wallet.,b1", "reference_intensity", "reference_intensity: 12.5 is above the maximum 10"),
        ("benevolence,,-1,-10.5,She kept the lost wallet.,b1", "reference_intensity", "is below the minimum -10"),
        ("benevolence,,1,5.0,   ,b1", "text", "text: '' is empty"),
        ("benevolence,carring,1,5.0,She returned the lost wallet.,b1", "leaf", "unknown leaf 'carring' of value 'benevolence'"),
        ("benevolence,,-1,6.0,She kept the lost wallet.,b1", "", "reference_intensity has the opposite sign of direction"),
    ],
)
def test_a_bad_row_is_rejected_with_file_row_column_and_reason(tmp_path, bad_row, column, reason):
    texts, rejected, metrics = run(tmp_path, HEADER + "\n".join([GOOD[0], bad_row, *GOOD[1:]]) + "\n")
    assert len(texts) == 3 and set(texts["source_id"]) == {"g1", "g2", "g3"}
    assert len(rejected) == 1
    row = rejected.iloc[0]
    assert row["file"].endswith("mine.csv") and row["row"] == 2 and row["column"] == column
    assert reason in row["reason"]
    assert '"b1"' in row["record"]  # the original row is kept, to be fixed and fed back
    counts = metrics["sources"]["mine"]
    assert counts["file_rows"] == counts["rows_ingested"] + counts["rows_rejected"] == 4


def test_a_duplicated_id_rejects_both_rows_and_keeps_the_rest(tmp_path):
    rows = [*GOOD, "benevolence,,1,5.0,A different text with the same id.,g1"]
    texts, rejected, _ = run(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert sorted(texts["source_id"]) == ["g2", "g3"]
    assert sorted(rejected["row"]) == [1, 4]
    assert set(rejected["reason"]) == {"id: duplicate id (must be unique in the file)"}


def test_an_exact_duplicate_within_a_value_is_removed_and_counted(tmp_path):
    rows = [*GOOD, "benevolence,,1,6.5,  i drove my Grandmother to every appointment   this winter.,g4",
            "fidelity,,1,6.5,I drove my grandmother to every appointment this winter.,g5"]
    texts, rejected, metrics = run(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert len(texts) == 4  # the same text under another value is not a duplicate
    assert metrics["sources"]["mine"]["duplicates"] == 1
    kept = texts.loc[texts["source_id"] == "g1", "text_id"].item()
    assert rejected["reason"].tolist() == [f"exact duplicate within value benevolence of text_id {kept}"]


def test_a_missing_column_refuses_the_file_naming_it(tmp_path):
    with pytest.raises(InputError, match=r"mine.csv: missing column\(s\) direction"):
        run(tmp_path, "value,text\nbenevolence,Some text.\n")
    assert not (tmp_path / "data" / "texts.parquet").exists()


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="mine.csv: file is empty"):
        run(tmp_path, "")


def test_a_non_utf8_file_is_refused_with_the_position(tmp_path):
    body = (HEADER + GOOD[0] + "\nbenevolence,,1,5.0,Caf\u00e9 staff shared their tips.,b1\n").encode("latin-1")
    with pytest.raises(InputError, match=r"mine.csv: not UTF-8 text \(byte \d+, line 3\)"):
        run(tmp_path, body)


def test_texts_carry_source_licence_path_and_stable_ids(tmp_path):
    first, _, _ = run(tmp_path, HEADER + "\n".join(GOOD) + "\n")
    again, _, _ = run(tmp_path, HEADER + "\n".join(reversed(GOOD)) + "\n")
    assert set(first["text_id"]) == set(again["text_id"])
    row = first.set_index("source_id").loc["g3"]
    assert (row["source"], row["license"], row["theory"]) == ("mine", "CC0", "right")
    assert (row["level_1"], row["level_2"], row["level_3"]) == ("first_generation", "civil_rights", "right_to_privacy")


def test_unknown_source_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown source 'valuenett'"):
        ingest(IngestConfig(sources=["valuenett"], root=tmp_path))

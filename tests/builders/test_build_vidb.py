"""build_vidb: calibration, flags, splits, and a release folder that `datasets.load_dataset` reads offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from builders.build_vidb import fit_calibration, pairwise_accuracy, stratified_splits
from validation.schemas import VidbSchema
from valueflow.cli import app

VIDB_COLUMNS = list(VidbSchema.to_schema().columns)
RANKING_COLUMNS = ["ranking_id", "value", "judge", "window", "order", "created_at", "prompt_hash"]


@pytest.fixture()
def built(project: Path, project_root: Path, monkeypatch) -> Path:
    """collect -> aggregate -> build-vidb through the CLI, with the project's params (smaller k, m)."""
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    params["collect"].update({"k": 4, "m": 4})
    (project / "params.yaml").write_text(yaml.safe_dump({s: params[s] for s in ("collect", "aggregate", "build_vidb")}))
    monkeypatch.chdir(project)
    runner = CliRunner()
    for command in ("collect", "aggregate", "build-vidb"):
        result = runner.invoke(app, [command])
        assert result.exit_code == 0, (command, result.output, result.exception)
    return project


def test_release_loads_offline_with_documented_columns_and_counts(built: Path, monkeypatch, tmp_path: Path):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    release = built / "release" / "vidb"
    stats = json.loads((release / "stats.json").read_text())
    card = (release / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert {c["config_name"] for c in header["configs"]} == {"full", "filtered", "rankings"}
    for config, columns in (("full", VIDB_COLUMNS), ("filtered", VIDB_COLUMNS), ("rankings", RANKING_COLUMNS)):
        ds = datasets.load_dataset(str(release), config, cache_dir=str(tmp_path / "hf"))
        assert {s: len(ds[s]) for s in ds} == stats["splits"][config]
        for split in ds:
            assert ds[split].column_names == columns
    full = pd.concat(pd.read_parquet(release / "data" / "full" / f"{s}.parquet") for s in ("train", "validation", "test"))
    VidbSchema.validate(full, lazy=True)
    texts = pd.read_parquet(built / "data" / "texts.parquet")
    assert len(full) == len(texts) == stats["texts"] and set(full["text_id"]) == set(texts["text_id"])
    filtered = pd.concat(pd.read_parquet(release / "data" / "filtered" / f"{s}.parquet") for s in ("train", "validation", "test"))
    assert len(filtered) == stats["filtered"] == full["in_filtered"].sum() and (filtered["flag"] == "").all()
    # every value is spread over all three splits
    assert (full.groupby("value")["split"].nunique() == 3).all()


def test_card_reports_how_vidb_was_built(built: Path):
    card = (built / "release" / "vidb" / "README.md").read_text()
    stats = json.loads((built / "release" / "vidb" / "stats.json").read_text())
    texts = pd.read_parquet(built / "data" / "texts.parquet")  # the seed corpus' size, not a number that goes stale
    for needle in ("## How it was built", "k = 4", "m = 4", "embedding:all-MiniLM-L6-v2", "relative reliability",
                   "isotonic", "## Sources and licences", "CC BY 4.0", "## Limitations", "arXiv", "kim2026valueflow",
                   "Ross's prima facie", f"| benevolence | {(texts['value'] == 'benevolence').sum()} |"):
        assert needle.lower() in card.lower(), needle
    rel = stats["build"]["judges"]
    ref = next(v for k, v in rel.items() if k.startswith("reference:"))
    emb = next(v for k, v in rel.items() if k.startswith("embedding:"))
    assert ref["reliability"] == 1.0 and 0 <= emb["reliability"] < 1.0
    assert (built / "plots" / "vidb_calibration.png").stat().st_size > 0
    metrics = json.loads((built / "metrics" / "build_vidb.json").read_text())
    assert metrics["texts"] == len(texts) and metrics["spearman_vs_reference"] > 0.9


def test_calibration_fallback_without_reference_intensities():
    u = np.array([-3.0, -1.0, 0.0, 0.2, 1.0, 4.0, np.nan])
    direction = np.array([-1, -1, 0, 0, 1, 1, 1], dtype=float)
    cal = fit_calibration(u, np.full(len(u), np.nan), direction, min_reference=4)
    out = cal(u)
    assert cal.method == "quantile"
    assert np.isnan(out[-1]) and np.all(np.diff(out[:-1]) >= 0) and np.all(np.abs(out[:-1]) <= 10)
    assert out[2] < 0 < out[3] and cal(np.array([0.1]))[0] == 0  # the neutral texts' median utility maps to 0
    lo, hi = np.percentile(u[:-1], [2, 98])
    assert np.allclose(cal(np.array([lo, hi])), [-10, 10])  # both sides reach their end of the scale


def test_isotonic_calibration_is_monotone_and_bounded():
    rng = np.random.default_rng(0)
    u = rng.normal(0, 2, 50)
    ref = np.clip(3 * u + rng.normal(0, 2, 50), -10, 10)
    cal = fit_calibration(u, ref, np.sign(ref), min_reference=4)
    grid = np.linspace(-20, 20, 401)
    out = cal(grid)
    assert cal.method == "isotonic" and np.all(np.diff(out) >= 0) and out.min() >= -10 and out.max() <= 10
    # past the outermost knots it keeps rising (until the scale ends) instead of going flat
    inner_lo, inner_hi = cal.x[0], cal.x[-1]
    beyond = cal(np.array([inner_hi, inner_hi + 0.5, inner_lo - 0.5, inner_lo]))
    assert (beyond[1] > beyond[0] or beyond[0] == 10) and (beyond[2] < beyond[3] or beyond[3] == -10)


def test_splits_are_stratified_and_deterministic():
    df = pd.DataFrame({
        "text_id": [f"t{i}" for i in range(200)],
        "value": ["benevolence"] * 100 + ["justice"] * 100,
        "direction": pd.array([1, -1, 0, 1] * 50, dtype="Int8"),
    })
    split = stratified_splits(df, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
    assert split.equals(stratified_splits(df, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1))
    counts = split.value_counts()
    assert counts["train"] == 160 and counts["validation"] == 20 and counts["test"] == 20
    per = pd.crosstab([df["value"], df["direction"]], split)
    assert (per["validation"] >= 1).all() and (per["test"] >= 1).all()


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(np.array([3.0, 0.0, -2.0]), np.array([1.0, 0.0, -1.0])) == 1.0
    assert pairwise_accuracy(np.array([-3.0, 0.0, 2.0]), np.array([1.0, 0.0, -1.0])) == 0.0
    assert pairwise_accuracy(np.array([1.0, 1.0]), np.array([1.0, -1.0])) == 0.5


def test_pairwise_accuracy_in_blocks_counts_every_pair_once():
    rng = np.random.default_rng(0)
    label = rng.integers(-1, 2, 300).astype(float)
    intensity = np.round(label + rng.normal(size=300), 1)  # rounded: some ties
    intensity[::17] = np.nan
    whole = pairwise_accuracy(intensity, label, block_cells=10**9)
    assert pairwise_accuracy(intensity, label, block_cells=1) == pytest.approx(whole)  # one row at a time
    assert pairwise_accuracy(intensity, label, block_cells=1000) == pytest.approx(whole)
    assert pairwise_accuracy(np.array([1.0, 2.0]), np.array([0.0, 0.0])) is None  # no pair with different labels

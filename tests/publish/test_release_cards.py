"""The generated cards: metadata the Hub and `datasets` accept, and the sections users rely on, for this version."""

from __future__ import annotations

import pandas as pd
import pytest

from cards.release import write_release_record
from tests.publish.release_fixtures import make_vidb_release
from valueflow.citation import PAPER_BIBTEX
from valueflow.taxonomy import get_taxonomy

VERSION = "1.4.0"


def vidb_stats(folder) -> dict:
    """stats.json as the VIDB build writes it (builders/build_vidb.py), computed from the fixture's rows."""
    full = pd.concat([pd.read_parquet(folder / f"data/full/{s}.parquet") for s in ("train", "validation", "test")])
    tax = get_taxonomy()
    per_value = {
        value: {"theory": tax.value(value).theory, "texts": len(g), "filtered": int(g["in_filtered"].sum()),
                "supports": int((g["direction"] == 1).sum()), "opposes": int((g["direction"] == -1).sum()),
                "neutral": int((g["direction"] == 0).sum()), "rankings": 1, "mean_intensity": 0.0,
                "calibration": "isotonic", "spearman_vs_reference": None, "flags": {"low_agreement": 1}}
        for value, g in full.groupby("value")
    }
    splits = {c: {s: len(pd.read_parquet(p)) for s in ("train", "validation", "test")
                  if (p := folder / f"data/{c}/{s}.parquet").exists()} for c in ("full", "filtered", "rankings")}
    return {
        "texts": len(full), "filtered": int(full["in_filtered"].sum()), "flagged": int((full["flag"] != "").sum()),
        "flags": {"low_agreement": 3}, "rankings": 2, "judges": ["reference:v1"], "values": len(per_value),
        "theories": sorted(full["theory"].unique()), "splits": splits, "calibration_methods": {"isotonic": 3},
        "spearman_vs_reference": 0.81, "pairwise_accuracy_vs_direction": 0.9,
        "sources": [{"source": "seed", "license": "CC BY 4.0", "texts": len(full)},
                    {"source": "valuenet", "license": "CC BY-NC-SA 4.0", "texts": 0}],
        "per_value": per_value,
        "config": {"seed": 0, "split_fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}, "min_reference": 5,
                   "min_rankings": 3, "max_judge_spread": 0.5, "max_reference_gap": 4.0,
                   "max_direction_conflict": 2.0, "max_ci_width": 8.0},
        "build": {"k": 4, "m": 3, "prior_sd": 2.0, "judges": {"reference:v1": {"rankings": 2, "reliability": 1.0}},
                  "rejected": {}},
    }


@pytest.fixture
def release_project(tmp_path, monkeypatch):
    """A project folder whose params.yaml sets release.version, with a recorded previous release."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(f"release:\n  version: {VERSION}\n  history_dir: releases\n")
    folder = make_vidb_release(tmp_path / "release" / "vidb", VERSION)
    stats = vidb_stats(folder)
    write_release_record("releases", "1.3.0", {
        "vidb": {"stats": {**stats, "texts": stats["texts"] - 5}},
        "hives": {"stats": {"hives": {"ranking_accuracy": 0.6}, "rows": 99}},
    })
    return tmp_path, folder, stats


def validate_on_loopback_hub(card, hub, monkeypatch) -> None:
    """``RepoCard.validate`` posts the card to the Hub's /api/validate-yaml: here the loopback Hub's rules."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    card.validate()


def test_dataset_card_validates_and_shows_counts_licences_citation_and_the_versioned_load(release_project, hub, monkeypatch):
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    from cards.dataset_card import render_dataset_card

    _, folder, stats = release_project
    text = render_dataset_card(folder, stats, repo_id="valueflow/vidb")
    card = DatasetCard(text)
    validate_on_loopback_hub(card, hub, monkeypatch)
    meta = card.data.to_dict()
    assert meta["license"] and meta["language"] == ["en"] and meta["task_categories"] and meta["size_categories"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert set(configs) == {"full", "filtered", "rankings"}
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert infos["full"].splits["train"].num_examples == stats["splits"]["full"]["train"]

    body = card.text
    for value, v in stats["per_value"].items():  # counts per value
        assert f"| {value} | {v['texts']} | {v['filtered']} |" in body
    assert "| seed | CC BY 4.0 |" in body and "| valuenet | CC BY-NC-SA 4.0 |" in body  # licences per source
    assert PAPER_BIBTEX in body and "@misc{vidb140," in body  # the paper and this release
    assert f'load_dataset("valueflow/vidb", "full", revision="v{VERSION}")' in body
    assert "Changes since v1.3.0" in body and "| texts | 22 | 27 | +5 |" in body


def test_model_card_validates_and_shows_metrics_citation_and_the_versioned_load(release_project, hub, monkeypatch):
    from huggingface_hub import ModelCard

    from cards.model_card import render_model_card
    from hives_model.train import HivesTrainConfig, _plain_config, base_model_info

    cfg = HivesTrainConfig()
    training = {
        "rows": 99, "texts": 90, "rejected": 0, "rejected_by_reason": {}, "rows_per_theory": {"mft": 40, "pvq": 59},
        "rows_per_direction": {"-1": 30, "1": 69}, "value_anchors": 32, "cross_theory_anchors": 8,
        "steps": {"stage1": 3, "stage2": 2}, "final_loss": {"stage1": 1.0, "stage2": 0.5}, "device": "cpu",
        "base_model": base_model_info(cfg.base_model, cfg.base_revision), "data": str(cfg.data),
        "config": _plain_config(cfg), "seconds": 1.0,
    }
    scores = {"ranking_accuracy": 0.71, "ranking_accuracy_strict": 0.2, "similarity_correlation": 0.3,
              "orthogonality_mean": 0.6, "orthogonality": {"pvq": 0.6}, "intensity_probe": {"kendall_tau": 0.4}}
    evaluation = {"hives": scores, "base": {**scores, "ranking_accuracy": 0.62}, "rows": 99, "data": "test.parquet"}
    text = render_model_card(training, evaluation, repo_id="valueflow/hives", eval_data="test.parquet")
    card = ModelCard(text)
    validate_on_loopback_hub(card, hub, monkeypatch)
    assert card.data.license == "apache-2.0" and card.data.library_name == "sentence-transformers"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}  # the model-index, as the Hub parses it
    assert results["ranking_accuracy"] == 0.71 and results["kendall_tau"] == 0.4
    body = card.text
    assert "| Hierarchical ranking accuracy | 0.710 | 0.620 | +0.090 |" in body
    assert PAPER_BIBTEX in body and "@misc{hives140," in body
    assert f'SentenceTransformer("valueflow/hives", revision="v{VERSION}")' in body
    assert "Changes since v1.3.0" in body and "| hives.ranking_accuracy | 0.6 | 0.71 | +0.11 |" in body

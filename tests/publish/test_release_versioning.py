"""Versions, load snippets, release BibTeX, changelog against the previous release, CITATION.cff."""

from __future__ import annotations

import re

import pytest
import yaml

from cards.release import (
    ReleaseConfig,
    changelog,
    check_version,
    citation_cff,
    previous_release,
    release_section,
    tag_for,
    version_key,
    write_release_record,
)
from valueflow.citation import PAPER_BIBTEX
from valueflow.params import ParamsError, stage_params


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "1.0.0.0", "01.2.3", "latest", ""])
def test_non_semver_versions_are_refused(bad):
    with pytest.raises(ValueError, match="version"):
        check_version(bad)


def test_tag_and_semver_precedence():
    assert tag_for("1.2.0") == "v1.2.0"
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    shuffled = [ordered[i] for i in (6, 3, 0, 7, 1, 5, 2, 4)]
    assert sorted(shuffled, key=version_key) == ordered


def test_params_release_section_loads_with_the_documented_defaults(project_root):
    cfg = ReleaseConfig.load(project_root / "params.yaml")
    assert cfg.dataset_repo == "valueflow/vidb" and cfg.model_repo == "valueflow/hives"
    assert cfg.dry_run is True and cfg.tag == f"v{stage_params('release', project_root / 'params.yaml')['version']}"


def test_unknown_release_key_is_refused(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("release:\n  version: 1.0.0\n  dataset_rep: typo/vidb\n")
    with pytest.raises(ParamsError, match="release.dataset_rep: unknown key; allowed: .*dataset_repo"):
        ReleaseConfig.load(p)


def test_release_section_pins_the_version_and_cites_paper_and_release(tmp_path):
    ds = release_section("dataset", "valueflow/vidb", "1.3.0", history_dir=tmp_path)
    assert 'load_dataset("valueflow/vidb", "full", revision="v1.3.0")' in ds
    assert PAPER_BIBTEX in ds and "@misc{vidb130," in ds and "version 1.3.0" in ds
    assert "First release (v1.3.0)" in ds
    model = release_section("model", "valueflow/hives", "1.3.0", history_dir=tmp_path)
    assert 'SentenceTransformer("valueflow/hives", revision="v1.3.0")' in model and "@misc{hives130," in model


def test_changelog_compares_with_the_newest_older_release(tmp_path):
    write_release_record(tmp_path, "1.0.0", {"vidb": {"stats": {"n_texts": 100, "per_value": {"care-harm": 10}}}})
    write_release_record(tmp_path, "1.1.0", {"vidb": {"stats": {"n_texts": 120, "per_value": {"care-harm": 12, "justice": 3}}}})
    write_release_record(tmp_path, "2.0.0", {"vidb": {"stats": {"n_texts": 999}}})  # newer: never the baseline
    assert previous_release(tmp_path, "1.2.0")[0] == "1.1.0"
    text = changelog("vidb", {"n_texts": 130, "per_value": {"care-harm": 12, "fidelity": 5}}, tmp_path, "1.2.0")
    assert "Changes since v1.1.0" in text
    assert re.search(r"\| n_texts \| 120 \| 130 \| \+10 \|", text)
    assert "| per_value.fidelity | (new) | 5 |" in text and "| per_value.justice | 3 | (removed) |" in text
    assert "care-harm" not in text  # unchanged counts are not listed


def test_citation_cff_at_the_repository_root_matches_the_release_version(project_root):
    """CITATION.cff is generated (`valueflow cards`): it must be regenerated whenever release.version changes."""
    version = str(stage_params("release", project_root / "params.yaml")["version"])
    on_disk = (project_root / "CITATION.cff").read_text(encoding="utf-8")
    assert on_disk == citation_cff(version), "CITATION.cff is stale: run `valueflow cards`"
    doc = yaml.safe_load(on_disk)
    assert doc["cff-version"] == "1.2.0" and doc["version"] == version
    assert {"message", "title", "authors"} <= set(doc)
    paper = doc["preferred-citation"]
    assert paper["year"] == 2026 and [a["family-names"] for a in paper["authors"]] == ["Kim", "Hyeon", "Oh", "Do"]
    assert any("2602.03160" in i["value"] for i in paper["identifiers"])


def test_card_section_follows_params_and_is_empty_without_a_release(tmp_path):
    (tmp_path / "params.yaml").write_text(f"release:\n  version: 2.1.0\n  history_dir: {tmp_path / 'releases'}\n")
    write_release_record(tmp_path / "releases", "2.0.0",
                         {"hives": {"stats": {"hives": {"ranking_accuracy": 0.5, "seconds": 3}, "rows": 10}}})
    evaluation = {"hives": {"ranking_accuracy": 0.75, "seconds": 9}, "base": {"ranking_accuracy": 0.1}, "rows": 10}
    from cards.release import card_release_section, model_changelog_stats

    text = card_release_section("model", "valueflow/hives", model_changelog_stats(evaluation), tmp_path / "params.yaml")
    assert 'revision="v2.1.0"' in text and "Changes since v2.0.0" in text
    assert "| hives.ranking_accuracy | 0.5 | 0.75 | +0.25 |" in text
    assert "seconds" not in text and "base." not in text  # timings and the base model are not release changes
    assert PAPER_BIBTEX not in text  # the cards cite the paper themselves
    assert card_release_section("model", "valueflow/hives", {}, tmp_path / "missing.yaml") == ""

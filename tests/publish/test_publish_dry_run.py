"""Without a token, or with dry_run (the default), publishing sends nothing and writes an exact plan."""

from __future__ import annotations

import hashlib
import json

import pytest

from cards.publish import ReleaseNotBuilt, publish, release_manifest


def test_dry_run_receipt_lists_exactly_what_would_be_pushed(hub, hub_token, make_cfg, release_dirs):
    receipt = publish(make_cfg(dry_run=True))
    assert hub.state.log == []  # nothing was sent, not even a read
    assert receipt["mode"] == "dry-run" and receipt["tag"] == "v1.0.0"
    for name, folder, repo_type, repo_id in (("vidb", release_dirs[0], "dataset", "valueflow/vidb"),
                                             ("hives", release_dirs[1], "model", "valueflow/hives")):
        entry = receipt["artifacts"][name]
        assert (entry["repo_type"], entry["repo_id"], entry["tag"], entry["action"]) == (repo_type, repo_id, "v1.0.0", "would-push")
        on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert [f["path"] for f in entry["files"]] == on_disk
        for f in entry["files"]:
            data = (folder / f["path"]).read_bytes()
            assert f["size"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["total_bytes"] == sum(f["size"] for f in entry["files"])
        assert "commit" not in entry
    assert json.loads(make_cfg().receipt.read_text()) == receipt


def test_push_without_a_token_falls_back_to_a_dry_run_and_says_why(hub, no_token, make_cfg):
    receipt = publish(make_cfg(dry_run=False))
    assert hub.state.log == []
    assert receipt["mode"] == "dry-run" and "no token" in receipt["reason"]


def test_manifest_skips_local_working_state(tmp_path, release_dirs):
    folder = release_dirs[0]
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.lock").write_text("")
    (folder / ".README.md.abc.tmp").write_text("half-written")
    paths = [f.path for f in release_manifest(folder)]
    assert not any(p.startswith(".cache") or p.endswith(".tmp") for p in paths)
    assert "README.md" in paths and "data/full/train.parquet" in paths


@pytest.mark.parametrize("broken", ["missing", "no_readme"])
def test_unusable_release_folder_is_refused_with_its_name(tmp_path, broken):
    folder = tmp_path / "release" / "vidb"
    if broken == "no_readme":
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ReleaseNotBuilt, match=str(folder).replace("/", "/") + ".*(not found|README)"):
        release_manifest(folder)  # bad input (exit 2, nothing written), not a failed push

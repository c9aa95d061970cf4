"""Publishing against the loopback Hub: one commit, tags that never move, retries that never double-commit."""

from __future__ import annotations

import json

import pytest

from cards.publish import PublishError, TagConflictError, publish


def release_commits(hub, repo_type="dataset", repo_id="valueflow/vidb"):
    """The repo's commits other than the initial one the Hub makes when creating it."""
    repo = hub.repo(repo_type, repo_id)
    return [c for c in repo.commits.values() if c.parent is not None]


def test_publishing_twice_makes_one_commit(hub, hub_token, make_cfg):
    first = publish(make_cfg())
    second = publish(make_cfg())
    for name, repo_type, repo_id in (("vidb", "dataset", "valueflow/vidb"), ("hives", "model", "valueflow/hives")):
        assert len(release_commits(hub, repo_type, repo_id)) == 1
        assert first["artifacts"][name]["action"] == "committed"
        assert second["artifacts"][name]["action"] == "unchanged"
        assert second["artifacts"][name]["commit"] == first["artifacts"][name]["commit"]
        assert hub.repo(repo_type, repo_id).tags == {"v1.0.0": first["artifacts"][name]["commit"]}


def test_new_version_of_identical_content_tags_the_same_commit(hub, hub_token, make_cfg):
    first = publish(make_cfg("1.0.0"))
    second = publish(make_cfg("1.0.1"))
    assert len(release_commits(hub)) == 1
    commit = first["artifacts"]["vidb"]["commit"]
    assert second["artifacts"]["vidb"]["action"] == "already-on-main"
    assert hub.repo("dataset", "valueflow/vidb").tags == {"v1.0.0": commit, "v1.0.1": commit}


def test_conflicting_tag_is_refused_and_never_moves(hub, hub_token, make_cfg, release_dirs):
    first = publish(make_cfg())
    readme = release_dirs[0] / "README.md"
    readme.write_text(readme.read_text() + "\nA late edit.\n")
    with pytest.raises(TagConflictError) as err:
        publish(make_cfg())
    msg = str(err.value)
    assert "v1.0.0" in msg and "valueflow/vidb" in msg and "README.md" in msg and "bump release.version" in msg
    assert len(release_commits(hub)) == 1
    assert hub.repo("dataset", "valueflow/vidb").tags == {"v1.0.0": first["artifacts"]["vidb"]["commit"]}


def test_changed_release_under_a_new_version_is_one_new_commit_that_removes_dropped_files(hub, hub_token, make_cfg, release_dirs):
    publish(make_cfg("1.0.0"))
    (release_dirs[0] / "stats.json").unlink()
    (release_dirs[0] / "README.md").write_text((release_dirs[0] / "README.md").read_text() + "\nv2\n")
    receipt = publish(make_cfg("2.0.0"))
    repo = hub.repo("dataset", "valueflow/vidb")
    assert len(release_commits(hub)) == 2
    head = repo.commits[repo.tags["v2.0.0"]]
    assert "stats.json" not in head.files and "stats.json" in repo.commits[repo.tags["v1.0.0"]].files
    assert receipt["artifacts"]["vidb"]["commit"] == repo.branches["main"]


def test_transient_commit_failure_is_retried_into_one_commit_and_one_tag(hub, hub_token, make_cfg):
    hub.fail("POST", r"/api/datasets/valueflow/vidb/commit/", times=2, status=503)
    receipt = publish(make_cfg())
    assert len(release_commits(hub)) == 1
    assert hub.repo("dataset", "valueflow/vidb").tags == {"v1.0.0": receipt["artifacts"]["vidb"]["commit"]}
    commit_posts = [e for e in hub.state.log if e["method"] == "POST" and "/datasets/valueflow/vidb/commit/" in e["path"]]
    assert len(commit_posts) == 3


def test_lost_commit_answer_is_not_committed_again(hub, hub_token, make_cfg):
    """The commit went through but its answer was lost: the retry sees the files on main and only tags."""
    hub.fail("POST", r"/api/models/valueflow/hives/commit/", times=1, status=502, after=True)
    receipt = publish(make_cfg())
    repo = hub.repo("model", "valueflow/hives")
    assert len(release_commits(hub, "model", "valueflow/hives")) == 1
    assert receipt["artifacts"]["hives"]["action"] == "already-on-main"
    assert repo.tags == {"v1.0.0": repo.branches["main"]}


def test_failed_upload_leaves_no_tag_and_a_rerun_completes_it(hub, hub_token, make_cfg):
    hub.fail("PUT", r"/lfs-upload/", times=100, status=400)  # a broken upload: not transient, the run stops
    with pytest.raises(PublishError) as err:
        publish(make_cfg())
    assert "valueflow/vidb" in str(err.value)
    repo = hub.repo("dataset", "valueflow/vidb")
    assert repo.tags == {} and release_commits(hub) == []
    receipt = json.loads(make_cfg().receipt.read_text())
    assert "error" in receipt and receipt["artifacts"]["vidb"]["action"] == "pending"

    hub.clear_failures()
    receipt = publish(make_cfg())
    assert len(release_commits(hub)) == 1
    assert repo.tags == {"v1.0.0": receipt["artifacts"]["vidb"]["commit"]}
    files = repo.commits[repo.tags["v1.0.0"]].files
    assert {f["path"] for f in receipt["artifacts"]["vidb"]["files"]} <= set(files)


def test_persistent_server_errors_give_up_after_max_attempts_without_tagging(hub, hub_token, make_cfg):
    hub.fail("POST", r"/commit/", times=100, status=500)
    with pytest.raises(PublishError, match=r"failed after 2 attempt"):
        publish(make_cfg(max_attempts=2))
    assert hub.repo("dataset", "valueflow/vidb").tags == {}
    assert release_commits(hub) == []


def test_card_with_invalid_metadata_is_refused_before_anything_is_uploaded(hub, hub_token, make_cfg, release_dirs):
    readme = release_dirs[0] / "README.md"
    readme.write_text(readme.read_text().replace("configs:", "license_name: Not Valid\nconfigs:", 1).replace(
        "license: cc-by-nc-sa-4.0", "license: other"))
    with pytest.raises(PublishError, match="Invalid metadata in README.md.*license_name"):
        publish(make_cfg())
    assert release_commits(hub) == [] and hub.state.lfs == {}

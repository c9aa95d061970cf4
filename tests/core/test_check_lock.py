"""CI's stale-lock check (.ci/check_lock.py) reads `dvc status`: what it reports and what a fresh clone may lack.

The end-to-end run (a real lock, a code change, a rerun) is tests/e2e/test_dvc_loop.py; here the reading of DVC's
status on the project's own dvc.yaml.
"""

from __future__ import annotations

import pytest
import yaml


@pytest.fixture(scope="module")
def dvc_yaml(project_root) -> dict:
    return yaml.safe_load((project_root / "dvc.yaml").read_text())


LOCK = {"stages": {"collect": {"params": {"params.yaml": {"collect": {"k": 4, "m": 6, "judges": ["reference"]}}}},
                   "publish": {}, "build_vidb": {}}}


def test_a_fresh_clone_without_outputs_is_current(check_lock, dvc_yaml):
    # what `dvc status` says on a clone that has the lock but no cached output
    status = {"collect": [{"changed deps": {"data/texts.parquet": "deleted"}},
                          {"changed outs": {"data/rankings.parquet": "not in cache"}}],
              "publish": [{"changed deps": {"release/vidb": "deleted", "release/judge": "deleted"}},
                          {"changed outs": {"release/receipt.json": "deleted"}}, "always changed"]}
    assert check_lock.stale_inputs(status, dvc_yaml, LOCK, {}) == []


def test_code_params_and_command_changes_are_named_per_stage(check_lock, dvc_yaml):
    status = {"collect": [{"changed deps": {"data/texts.parquet": "deleted", "builders/collect.py": "modified",
                                            "params.yaml": {"collect": "modified"}}}],
              "publish": ["changed command"]}
    params = {"params.yaml": {"collect": {"k": 4, "m": 3, "judges": ["reference", "embedding"]}}}
    assert check_lock.stale_inputs(status, dvc_yaml, LOCK, params) == [
        "stage 'collect': builders/collect.py modified; param collect.judges modified; param collect.m modified",
        "stage 'publish': its cmd changed",
    ]


def test_metrics_kept_in_git_must_match_the_lock_and_a_missing_stage_is_named(check_lock, dvc_yaml):
    status = {"build_vidb": [{"changed outs": {"metrics/build_vidb.json": "modified", "release/vidb": "deleted",
                                               "plots/vidb_calibration.csv": "deleted"}}],
              "steer": [{"changed deps": {"params.yaml": "new"}}]}
    assert check_lock.stale_inputs(status, dvc_yaml, LOCK, {}) == [
        ("stage 'build_vidb': metrics/build_vidb.json modified (kept in git: commit it with the lock); "
         "plots/vidb_calibration.csv deleted (kept in git: commit it with the lock)"),
        "stage 'steer': not in dvc.lock",
    ]


def test_no_lock_is_its_own_error(check_lock, tmp_path, capsys):
    assert check_lock.main(tmp_path) == 2
    assert "no dvc.lock" in capsys.readouterr().err

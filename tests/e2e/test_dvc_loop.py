"""The maintainer's DVC loop on the shared tiny pipeline run (conftest.py), as the README's maintainers' section shows it.

The maintainer commits dvc.lock with the metrics and plot tables and pushes the outputs to the default remote (a
folder under ~, here a temporary home); a collaborator's fresh clone passes CI's stale-lock check without any
output, pulls every output and finds the pipeline up to date. A code change without a rerun fails the check; an
experiment's metrics are compared with main. Every pipeline step here reruns only cheap stages (see the tests).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.dvc_run import git, run_dvc

pytestmark = pytest.mark.slow


def _stages_run(dvc_output: str) -> list[str]:
    return [line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage '")]


def _check_lock(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, ".ci/check_lock.py"], cwd=repo, capture_output=True, text=True, check=False)


def _discard(repo: Path) -> None:
    """Back to main: code, params, lock and metrics from git, the cached outputs from the DVC cache."""
    git("checkout", "-q", "--", ".", cwd=repo)
    run_dvc("checkout", "--force", cwd=repo)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """The ~ of the maintainer and of the collaborator (one machine): the default remote lives under it."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def published(clone: Path, repro: str, home: Path) -> list[str]:
    """After `dvc repro`: what git sees changed, then committed on main (`git add -A`), then `dvc push`."""
    changed = [line[3:] for line in git("status", "--porcelain", "-uall", cwd=clone).splitlines()]
    git("add", "-A", cwd=clone)
    git("commit", "-qm", "dvc repro: lock and metrics", cwd=clone)
    run_dvc("push", cwd=clone, home=home)
    return changed


@pytest.fixture(scope="module")
def fresh(published, clone: Path, tmp_path_factory) -> Path:
    """A collaborator's `git clone` of main: the lock and the git-kept outputs, no cached output."""
    dest = tmp_path_factory.mktemp("fresh") / "valueflow"
    git("clone", "-q", str(clone), str(dest), cwd=dest.parent)
    return dest


@pytest.fixture(scope="module")
def pulled(fresh: Path, home: Path) -> Path:
    run_dvc("pull", cwd=fresh, home=home)
    return fresh


def test_after_repro_git_sees_the_lock_the_metrics_and_the_plot_tables(published, clone, home, check_lock):
    _, in_git = check_lock.pipeline_outputs(yaml.safe_load((clone / "dvc.yaml").read_text()))
    assert {p for p in in_git if p.startswith("metrics/")} and any(p.endswith(".csv") for p in in_git)
    # git sees the lock and nothing the DVC cache holds (CITATION.cff is tracked already and only shows when the
    # version changed; an output equal to the committed one does not show at all)
    assert "dvc.lock" in published and set(published) <= {"dvc.lock", "CITATION.cff"} | in_git
    tracked = set(git("ls-files", cwd=clone).splitlines())
    assert in_git <= tracked  # every metric and plot table is in git after the commit
    # `dvc push` with no remote named went to the default one, a folder under ~ (outside the repository)
    assert any((home / ".cache" / "valueflow" / "dvc-remote" / "files" / "md5").iterdir())


def test_a_fresh_clone_without_outputs_passes_the_stale_lock_check(fresh):
    assert not (fresh / "data" / "texts.parquet").exists() and not (fresh / "release").exists()
    done = _check_lock(fresh)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pull_restores_every_output_and_nothing_reruns(pulled, check_lock):
    outs, _ = check_lock.pipeline_outputs(yaml.safe_load((pulled / "dvc.yaml").read_text()))
    missing = [path for path in outs if not (pulled / path).exists()]
    assert not missing
    assert "Data and pipelines are up to date." in run_dvc("status", cwd=pulled).stdout
    assert _stages_run(run_dvc("repro", cwd=pulled).stdout) == []


def test_stale_lock_check_fails_for_a_code_change_until_the_stage_reruns(pulled):
    code = pulled / "cards" / "publish.py"
    code.write_text(code.read_text() + "\n# a change to the publish stage's code\n")
    try:
        stale = _check_lock(pulled)
        assert stale.returncode == 1
        assert "stage 'publish': cards/publish.py modified" in stale.stderr
        assert "stage 'ingest'" not in stale.stderr  # the other stages' inputs did not change
        assert _stages_run(run_dvc("repro", cwd=pulled).stdout) == ["publish"]
        current = _check_lock(pulled)
        assert current.returncode == 0, current.stderr
    finally:
        _discard(pulled)


def test_an_experiment_on_one_param_is_compared_with_main(pulled):
    ran = run_dvc("exp", "run", "-n", "fewer-queries", "-S", "steer.max_queries=2", cwd=pulled).stdout
    try:
        assert _stages_run(ran) == ["steer", "eval_steering"]
        diff = json.loads(run_dvc("metrics", "diff", "main", "--json", cwd=pulled).stdout)
        steer = diff["metrics/steer.json"]
        assert steer["responses"]["new"] < steer["responses"]["old"]  # fewer queries, fewer answers
        assert any(not key.endswith("seconds") for key in diff["metrics/steering.json"])  # the scores moved
        shown = list(csv.DictReader(io.StringIO(run_dvc("exp", "show", "--csv", cwd=pulled).stdout)))
        row = next(r for r in shown if r["Experiment"] == "fewer-queries")
        assert float(row["metrics/steer.json:responses"]) == steer["responses"]["new"]
    finally:
        _discard(pulled)


# One key per section whose stages are cheap to rerun. The other sections' stages are the expensive ones (collect with
# the embedding judge, both trainings, the evaluators), rerunning most of the pipeline: that every stage reads params
# as `dvc exp run -S` rewrites them is tests/core/test_dvc_set_param.py, for every section.
CHEAP_SECTIONS = {"ingest": "ingest.refdata=data", "aggregate": "aggregate.dense_se_limit=2000",
                  "build_vidb": "build_vidb.repo_id=me/vidb", "publish": "release.retry_wait_s=1.0"}


def test_dvc_exp_run_set_param_on_the_cheap_sections(pulled):
    overrides = [arg for value in CHEAP_SECTIONS.values() for arg in ("-S", value)]
    ran = run_dvc("exp", "run", "-n", "cheap-sections", *overrides, cwd=pulled).stdout
    try:
        assert set(CHEAP_SECTIONS) <= set(_stages_run(ran))
        params = yaml.safe_load((pulled / "params.yaml").read_text())
        assert (params["ingest"]["refdata"], params["release"]["retry_wait_s"]) == ("data", 1.0)
        assert "cheap-sections" in run_dvc("exp", "list", "--name-only", cwd=pulled).stdout.split()
    finally:
        _discard(pulled)

"""Rules 2 and 3: outputs never touch inputs (checked before any work, exit 2, nothing written; every output
written atomically, a full disk one line); values and judges are sets (canonicalised, deduplicated, warned)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.hostile.conftest import (
    VALUE,
    cli,
    collect_params,
    error_line,
    evaluate_args,
    permutation_reply,
    snapshot,
)
from tests.loopback import LoopbackChatServer


@pytest.mark.parametrize("args, message", [
    (["--out", "texts.csv"], "--out is the input FILE"),
    (["--log", "texts.csv"], "--log is the input FILE"),
    (["--out", "./data/../texts.csv"], "--out is the input FILE"),  # the same file by another path
    (["--log", "scores.parquet"], "--log and --out are the same file"),
])
def test_evaluate_refuses_an_output_that_is_an_input(project, args, message):
    with LoopbackChatServer(permutation_reply) as server:
        before = snapshot(project)
        result = cli(evaluate_args(server.base_url)[:-2] + ["--out", "scores.parquet"] + args)
        assert server.requests == []
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert snapshot(project) == before


def test_collect_refuses_an_out_that_is_its_texts(project):
    params = collect_params(project, ["reference"], out="data/texts.parquet")
    before = snapshot(project)
    result = cli(["collect", "--params", params])
    assert result.exit_code == 2 and "collect.out is the input collect.texts" in error_line(result)
    assert snapshot(project) == before


def test_a_full_disk_is_one_line_and_the_old_output_stays_whole(project):
    with LoopbackChatServer(permutation_reply) as server:
        assert cli(evaluate_args(server.base_url)).exit_code == 0
        old = (project / "scores.parquet").read_bytes()

        def small_files():  # every file the run writes may hold at most 600 bytes: the disk is "full"
            resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        run = subprocess.run([sys.executable, "-m", "valueflow.cli", *evaluate_args(server.base_url, seed="1"),
                              "--seed", "1"], cwd=project, env=env, capture_output=True, text=True, check=False, timeout=120,
                             preexec_fn=small_files)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "scores.parquet: cannot be written: File too large" in lines[0]
    assert (project / "scores.parquet").read_bytes() == old
    assert not [p for p in project.rglob("*.tmp")]


def test_a_value_and_a_judge_given_twice_are_asked_once(project):
    params = collect_params(project, ["reference"])
    result = cli(["collect", "--params", params, "--value", VALUE, "--value", VALUE.capitalize(),
                  "--judge", "reference", "--judge", " Reference"])
    assert result.exit_code == 0, result.output
    assert f"warning: collect.values: '{VALUE.capitalize()}' is '{VALUE}' again" in result.stderr
    assert "warning: collect.judges: ' Reference' is 'reference' again" in result.stderr
    rankings = pd.read_parquet(project / "data" / "rankings.parquet")
    assert rankings["ranking_id"].is_unique and rankings["judge"].nunique() == 1


def test_evaluate_scores_a_value_given_twice_once(project):
    with LoopbackChatServer(permutation_reply) as server:
        result = cli(evaluate_args(server.base_url) + ["-v", "Benevolence"])
    assert result.exit_code == 0, result.output
    assert "is 'benevolence' again" in result.stderr
    assert len(pd.read_parquet(project / "scores.parquet")) == 2


def test_build_vidb_refuses_a_release_folder_that_holds_its_inputs(project):
    (project / "params.yaml").write_text("build_vidb: {}\n")
    before = snapshot(project)
    result = cli(["build-vidb", "--out-dir", "data"])  # the release folder is swapped in whole: data/ would be gone
    assert result.exit_code == 2, result.output
    assert error_line(result) == ("error: data: build_vidb.out_dir folder holds the input build_vidb.texts "
                                  "(data/texts.parquet); choose another folder (nothing was written)")
    assert snapshot(project) == before


STAGE_SECTIONS = {"train_hives": {}, "train_judge": {}, "eval_hives": {},
                  "eval_evaluator": {"scores_out": "anchors.csv"},
                  "eval_steering": {"responses": "responses.parquet", "scores_out": "responses.parquet"}}


@pytest.mark.parametrize("args, line", [
    (["train-hives", "--data", "data/texts.parquet", "--out", "data"],  # the model folder is swapped in whole
     "data: train_hives.out folder holds the input train_hives.data (data/texts.parquet); choose another folder"),
    (["train-judge", "--vidb", "release/vidb", "--out", "release/vidb"],
     "release/vidb: train_judge.out folder is the input train_judge.vidb; choose another path"),
    (["eval-hives", "--model", "models/hives", "--release", "models/hives"],
     "models/hives: eval_hives.release folder is the input eval_hives.model; choose another path"),
    (["eval-evaluator", "--vidb", "anchors.csv"],
     "anchors.csv: eval_evaluator.scores_out is the input eval_evaluator.vidb; choose another path"),
    (["eval-steering"],
     "responses.parquet: eval_steering.scores_out is the input eval_steering.responses; choose another path"),
], ids=["train-hives", "train-judge", "eval-hives", "eval-evaluator", "eval-steering"])
def test_a_stage_refuses_an_output_that_is_its_input(project, args, line):
    (project / "params.yaml").write_text(yaml.safe_dump(STAGE_SECTIONS))
    pd.read_parquet(project / "data" / "texts.parquet").to_parquet(project / "responses.parquet")  # any table
    before = snapshot(project)
    result = cli(args)
    assert result.exit_code == 2, result.output
    assert error_line(result) == f"error: {line} (nothing was written)"
    assert snapshot(project) == before

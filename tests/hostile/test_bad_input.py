"""Rules 8 and 9: every bad input is one ``error:`` line and exit 2, with nothing written, and nothing to do is not
success. Judge specs and options are checked against the judge's signature and types; numbers must be finite; a
missing project model is named with the command that builds it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.hostile.conftest import VALUE, cli, collect_params, error_line, snapshot
from validation.schemas import RANKING_COLUMNS

CHAT = "chat:m@http://127.0.0.1:9/v1"  # never reached: every case is refused before a request


@pytest.mark.parametrize("judges, options, message", [
    (["nosuch"], {}, "unknown judge 'nosuch'; known kinds: chat, embedding, learned"),
    (["chat:"], {}, "judge 'chat:': nothing after ':'"),
    (["embedding"], {"embedding": {"nosuchopt": 1}}, "judge embedding options: unknown option(s) nosuchopt; allowed: model, batch_size, device"),
    ([CHAT], {CHAT: {"timeout": "abc"}}, "timeout: Input should be a valid number"),
    ([CHAT], {CHAT: {"timeout": -1}}, "timeout: Input should be greater than 0 (got -1)"),
    ([CHAT], {CHAT: {"max_retries": -1}}, "max_retries: Input should be greater than or equal to 0 (got -1)"),
    ([CHAT], {CHAT: {"concurrency": 0}}, "concurrency: Input should be greater than or equal to 1 (got 0)"),
    ([CHAT], {CHAT: {"temperature": -5}}, "temperature: Input should be greater than or equal to 0 (got -5)"),
    ([CHAT], {CHAT: {"max_tokens": 0}}, "max_tokens: Input should be greater than or equal to 1 (got 0)"),
    ([CHAT], {CHAT: {"timeout": float("inf")}}, "timeout: Input should be a finite number"),
    ([], {}, "collect: no judges to ask (collect.judges is empty)"),
])
def test_collect_refuses_bad_judges_in_one_line(project, judges, options, message):
    params = collect_params(project, judges, options)
    before = snapshot(project)
    result = cli(["collect", "--params", params])
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert snapshot(project) == before


def test_collect_of_zero_texts_is_not_success(project):
    pd.read_parquet(project / "data" / "texts.parquet").head(0).to_parquet(project / "data" / "texts.parquet")
    params = collect_params(project, ["reference"], values=None)
    before = snapshot(project)
    result = cli(["collect", "--params", params])
    assert result.exit_code == 2 and "data/texts.parquet: no texts to collect rankings for" in error_line(result)
    assert snapshot(project) == before


@pytest.mark.parametrize("args, message", [
    (["--scale", "inf"], "'inf' is not a finite number > 0"),
    (["--prior-precision", "inf"], "inf is not a finite number >= 0"),
    (["--judge", "nosuch"], "unknown judge 'nosuch'"),
    (["--judge", "chat:m@http://127.0.0.1:9/v1", "--judge-option", "nosuch=1"], "unknown option(s) nosuch"),
    (["--judge-option", "timeout"], "'timeout' is not KEY=VALUE"),
])
def test_evaluate_refuses_bad_options_in_one_line(project, args, message):
    before = snapshot(project)
    result = cli(["evaluate", "texts.csv", "-v", VALUE, "--vidb", "anchors.csv", "--out", "s.parquet", *args])
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert snapshot(project) == before


def test_profile_names_the_command_that_builds_a_missing_model(project):
    before = snapshot(project)
    result = cli(["profile", "texts.csv"])
    assert result.exit_code == 2, result.output
    assert error_line(result) == ("error: release/hives: no model here yet; build it with `dvc repro eval_hives` "
                                  "(or pass --model)")
    assert snapshot(project) == before


def test_ingest_of_no_source_is_not_success(project):
    (project / "params.yaml").write_text(yaml.safe_dump({"ingest": {"sources": []}}))
    before = snapshot(project)
    result = cli(["ingest", "--params", "params.yaml", "--out", "t.parquet"])
    assert result.exit_code == 2 and "ingest: no texts from sources []" in error_line(result)
    assert snapshot(project) == before


def test_aggregate_of_a_header_only_rankings_table_is_not_success(project):
    pd.DataFrame(columns=RANKING_COLUMNS).to_parquet(project / "rankings.parquet")
    (project / "params.yaml").write_text(yaml.safe_dump({"aggregate": {"rankings": "rankings.parquet"}}))
    before = snapshot(project)
    result = cli(["aggregate", "--params", "params.yaml", "--out", "u.parquet"])
    assert result.exit_code == 2 and "rankings.parquet: no usable rankings to aggregate" in error_line(result)
    assert snapshot(project) == before


def test_steer_refuses_a_bad_backend_option_in_one_line(project):
    steer = {"backends": [{"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "timeout_s": -1}],
             "queries": "texts.csv"}
    (project / "params.yaml").write_text(yaml.safe_dump({"steer": steer}))
    before = snapshot(project)
    result = cli(["steer", "--params", "params.yaml"])
    assert result.exit_code == 2, result.output
    assert "timeout_s: Input should be greater than 0 (got -1)" in error_line(result)
    assert snapshot(project) == before


def _utilities(texts: pd.DataFrame, **over) -> pd.DataFrame:
    n = len(texts)
    frame = pd.DataFrame({"text_id": texts["text_id"], "value": texts["value"], "utility": [0.5] * n,
                          "utility_se": [0.1] * n, "n_rankings": [3] * n, "n_judges": [1] * n, "status": ["ok"] * n,
                          "judge_spread": [0.0] * n})
    return frame.assign(**over)


@pytest.mark.parametrize("bad, message", [
    ({"utility": float("inf")}, "utility or utility_se is infinite"),
    ({"status": "weird"}, "column 'status': 'weird' is not one of"),
])
def test_build_vidb_refuses_a_utilities_table_it_cannot_use(project, bad, message):
    texts = pd.read_parquet(project / "data" / "texts.parquet")
    _utilities(texts, **bad).to_parquet(project / "u.parquet")
    (project / "params.yaml").write_text(yaml.safe_dump({"build_vidb": {"utilities": "u.parquet"}}))
    before = snapshot(project)
    result = cli(["build-vidb", "--params", "params.yaml", "--out-dir", "vidb"])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert line.startswith("error: u.parquet: not a valid utilities table") and message in line
    assert snapshot(project) == before


def test_eval_steering_refuses_a_table_that_is_not_responses(project):
    (project / "params.yaml").write_text(yaml.safe_dump({"eval_steering": {}}))
    before = snapshot(project)
    result = cli(["eval-steering", "--params", "params.yaml", "--responses", "data/texts.parquet"])
    assert result.exit_code == 2, result.output
    assert "data/texts.parquet: missing column(s) response_id" in error_line(result)
    assert snapshot(project) == before


def test_evaluate_on_a_folder_says_it_is_a_folder(project):
    result = cli(["evaluate", "data", "-v", VALUE, "--vidb", "anchors.csv", "--out", "s.parquet"])
    assert result.exit_code == 2 and error_line(result) == "error: data: is a folder, not a file"


def test_eval_hives_names_the_command_that_trains_a_missing_model(project):
    (project / "params.yaml").write_text("eval_hives: {}\n")
    before = snapshot(project)
    result = cli(["eval-hives", "--params", "params.yaml"])
    assert result.exit_code == 2, result.output
    assert error_line(result) == ("error: models/hives: no model here yet; build it with `dvc repro train_hives` "
                                  "(or pass --model)")
    assert snapshot(project) == before

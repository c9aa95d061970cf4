"""Every stage's params section is checked by its config model before any work: one `error:` line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from builders.collect import CollectConfig, collect
from builders.ingest import IngestConfig, ingest
from valueflow.cli import app
from valueflow.io import InputError
from valueflow.params import ParamsError

# stage section -> (command, a wrong-typed key and value)
STAGES = {
    "ingest": ("ingest", "seed_dir", [1, 2]),
    "collect": ("collect", "k", "four"),
    "aggregate": ("aggregate", "prior_sd", "wide"),
    "build_vidb": ("build-vidb", "min_rankings", "many"),
    "train_hives": ("train-hives", "seed", "abc"),
    "eval_hives": ("eval-hives", "onnx", "perhaps"),
    "train_judge": ("train-judge", "steps", "many"),
    "eval_evaluator": ("eval-evaluator", "repeats", "lots"),
    "steer": ("steer", "samples", "two"),
    "eval_steering": ("eval-steering", "m", "three"),
    "release": ("publish", "max_attempts", "x"),
}


def _run(tmp_path: Path, project_root: Path, monkeypatch, section: str, change: dict, *args: str):
    """The command on the project's params with ``change`` laid over one section, in an empty folder."""
    params = yaml.safe_load((project_root / "params.yaml").read_text(encoding="utf-8"))
    params[section] = {**(params[section] or {}), **change}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    command = STAGES[section][0]
    return CliRunner().invoke(app, [command, "--params", "params.yaml", *args])


def _only_params_left(tmp_path: Path) -> bool:
    return sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("section", list(STAGES))
def test_unknown_key_fails_before_work_naming_stage_key_and_allowed_names(section, tmp_path, project_root, monkeypatch):
    result = _run(tmp_path, project_root, monkeypatch, section, {"max_qeury": 1})
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: params.yaml:") and "\n" not in line
    assert f"{section}.max_qeury: unknown key; allowed: " in line
    assert _only_params_left(tmp_path)  # nothing written


@pytest.mark.parametrize("section", list(STAGES))
def test_wrong_type_fails_before_work_naming_the_key(section, tmp_path, project_root, monkeypatch):
    _, key, bad = STAGES[section]
    result = _run(tmp_path, project_root, monkeypatch, section, {key: bad})
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: params.yaml: {section}.{key}") and result.output.count("\n") == 1
    assert _only_params_left(tmp_path)


@pytest.mark.parametrize(("section", "change", "message"), [
    ("collect", {"k": 1}, "collect.k: Input should be greater than or equal to 2 (got 1)"),
    ("collect", {"m": 0}, "collect.m: Input should be greater than or equal to 1 (got 0)"),
    ("collect", {"values": ["benevolance"]}, "collect.values: unknown value 'benevolance'; valid values:"),
    ("collect", {"judge_options": {"chat:x@http://h/v1": {"timeout": 5}}}, "judge_options names judge(s) not in judges"),
    ("steer", {"max_query": 1}, "steer.max_query: unknown key; allowed: "),
    ("steer", {"samples": -1}, "steer.samples: Input should be greater than or equal to 1 (got -1)"),
    ("steer", {"max_queries": -3}, "steer.max_queries: Input should be greater than or equal to 1 (got -3)"),
    ("steer", {"intensities": [3]}, "outside -2..2"),
    ("eval_steering", {"ci": 1.5}, "eval_steering.ci: Input should be less than 1"),
    ("eval_evaluator", {"prior_precision": -5}, "eval_evaluator.prior_precision: Input should be greater than or equal to 0"),
    ("train_hives", {"stage1": {"steps": -5}}, "train_hives.stage1.steps: Input should be greater than or equal to 0"),
    ("build_vidb", {"split_fractions": {"train": 0.5, "test": 0.1}}, "fractions must be >= 0 and sum to 1"),
    ("release", {"version": "v1.0"}, "release.version: release.version 'v1.0': write the version without the leading 'v'"),
])
def test_out_of_range_and_unknown_names_are_refused(section, change, message, tmp_path, project_root, monkeypatch):
    result = _run(tmp_path, project_root, monkeypatch, section, change)
    assert result.exit_code == 2 and message in result.output, result.output
    assert _only_params_left(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["train-hives", "--stage1-steps", "-5"], "train_hives.stage1.steps"),
    (["steer", "--samples", "-1"], "steer.samples"),
    (["steer", "--max-queries", "-3"], "steer.max_queries"),
    (["collect", "--k", "1"], "collect.k"),
    (["collect", "--value", "benevolance"], "unknown value 'benevolance'"),
    (["profile", "x.csv", "--top", "-2"], "Invalid value for '--top'"),
    (["evaluate", "x.csv", "-v", "benevolence", "--prior-precision", "-5", "--out", "s.parquet"],
     "Invalid value for '--prior-precision'"),
    (["evaluate", "x.csv", "-v", "benevolence", "--scale", "-1", "--out", "s.parquet"], "--scale"),
    (["evaluate", "x.csv", "-v", "benevolence", "--sampling", "smart", "--out", "s.parquet"], "--sampling 'smart'"),
])
def test_cli_options_are_range_checked(args, message, tmp_path, project_root, monkeypatch):
    (tmp_path / "params.yaml").write_text((project_root / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "x.csv").write_text("text\nI kept my promise.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "x.csv"]


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("collect:\n  k: 4\n  m: [6\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["collect"])
    assert result.exit_code == 2 and result.output.startswith("error: params.yaml: line "), result.output
    assert "not valid YAML" in result.output


def test_missing_section_is_one_error_line(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("ingest:\n  sources: [seed]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["aggregate"])
    assert result.exit_code == 2
    assert result.output == "error: params.yaml: no 'aggregate' section (stages in the file: ingest)\n"


def test_collect_values_accept_aliases_and_a_bare_string():
    assert CollectConfig.from_params({"values": ["Care/Harm", "self_direction"]}).values == ["care-harm", "self-direction"]
    assert CollectConfig.from_params({"values": "benevolence"}).values == ["benevolence"]  # one value, not 11 letters
    assert CollectConfig.from_params({"values": None}).values is None  # every value in the texts
    with pytest.raises(ParamsError, match="collect.values: unknown value 'Care/Harmm'"):
        CollectConfig.from_params({"values": ["Care/Harmm"]})


def test_collect_refuses_a_value_the_texts_do_not_have(tmp_path, project_root):
    seed, _ = ingest(IngestConfig(seed_dir=project_root / "data" / "seed" / "texts", out=Path("seed.parquet"), root=tmp_path))
    (tmp_path / "data").mkdir(exist_ok=True)  # an ad-hoc ingest keeps its records beside its --out, not in data/
    seed[seed["value"] == "benevolence"].to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    with pytest.raises(InputError, match="no texts of collect.values care-harm"):
        collect(CollectConfig(values=["Care/Harm"], judges=["reference"], root=tmp_path))
    assert not (tmp_path / "data" / "rankings.parquet").exists()


def test_defaults_live_in_the_model_and_params_override_them():
    cfg = CollectConfig.from_params({"k": 3}, m=2)
    assert (cfg.k, cfg.m, cfg.chunk_size, cfg.judges) == (3, 2, 256, ["reference", "embedding"])
    assert CollectConfig.from_params({"import_rankings": None}).import_rankings == []  # an empty YAML key: the default

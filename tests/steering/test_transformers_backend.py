"""The local transformers backend with a tiny randomly initialised causal LM built offline inside the test."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.tiny_lm import build_tiny_lm
from valueflow.cli import app


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer Llama with the base model's WordPiece tokenizer, saved as a normal model folder."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"), tokenizer="wordpiece", layers=1)


def test_steer_with_a_local_causal_lm(tmp_path, project_root, tiny_lm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"query_id": ["a", "b", "c"], "query": ["Should I lend my car?", "Is a white lie fine?", "Stay or go?"]}).to_csv(
        tmp_path / "q.csv", index=False)
    params = {"steer": {
        "backends": [{"kind": "transformers", "name": "tiny", "model": str(tiny_lm), "batch_size": 4, "device": "cpu"}],
        "queries": str(tmp_path / "q.csv"), "values": ["power"], "intensities": [-1, 2],
        "formats": ["default", "single_definition", "user_texts"], "samples": 2, "max_tokens": 6, "temperature": 1.0,
        "exemplars": str(project_root / "data" / "seed" / "texts"),
        "out": str(tmp_path / "r.parquet"), "cache_dir": str(tmp_path / "cache"),
    }}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["steer", "--params", str(tmp_path / "params.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert len(df) == 3 * (1 + 2 + 2) * 2 and df["response_id"].is_unique
    assert df["response"].notna().all() and df["error"].eq("").all()
    assert (df["backend"] == "transformers").all() and (df["model"] == "tiny").all()
    assert df["response"].str.len().gt(0).any()
    # the chat template was applied to the stored messages: system turn first, query in the user turn
    msgs = json.loads(df.loc[df["prompt_format"] == "single_definition", "prompt"].iloc[0])
    assert [m["role"] for m in msgs] == ["system", "user"] and " power (" in msgs[0]["content"]

    # the same plan again reuses every answer (no model load at all)
    again = CliRunner().invoke(app, ["steer", "--params", str(tmp_path / "params.yaml"), "--quiet"])
    assert again.exit_code == 0 and "30 reused, 0 generated" in again.output
    assert pd.read_parquet(tmp_path / "r.parquet")["response"].tolist() == df["response"].tolist()


def test_chat_template_without_system_role_folds_system_into_user(tiny_lm):
    from evaluation.backends import TransformersBackend

    backend = TransformersBackend(model=str(tiny_lm), device="cpu")
    backend.render([{"role": "user", "content": "hi"}])  # loads
    backend._tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ m['content'] }} {% endfor %}"
    )
    text = backend.render([{"role": "system", "content": "You strongly value power."}, {"role": "user", "content": "Q?"}])
    assert text.startswith("You strongly value power.") and "Q?" in text

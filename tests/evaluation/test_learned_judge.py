"""The learned judge: trains on a tiny VIDB, reloads as a plain sentence-transformers model that scores every value
at once, rates on the VIDB scale, rejects bad rows with reasons, and works wherever a judge is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from evaluation.train_judge import JudgeTrainConfig, train_judge
from valueflow.judges import make_judge
from valueflow.judges.value_head import CALIBRATION_FILE, VALUES_FILE, Calibration


@pytest.fixture(scope="module")
def trained_judge(tmp_path_factory, vidb_release: Path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("judge")
    bad = pd.DataFrame({"text": ["Helping a neighbour carry shopping.", "", "A text of no known value."],
                        "value": ["benevolence", "justice", "kindness-to-robots"], "reference_intensity": [4.0, 3.0, 5.0]})
    bad.to_csv(root / "extra.csv", index=False)
    # the offline default encoder keeps the test small; the pipeline's default is all-mpnet-base-v2
    cfg = JudgeTrainConfig(vidb=vidb_release, extra=["extra.csv"], out=Path("release/judge"),
                           base_model="all-MiniLM-L6-v2", root=root)
    metrics = train_judge(cfg, echo=lambda *_: None)
    return root, metrics


def test_judge_folder_reloads_as_a_plain_sentence_transformer_scoring_every_value(trained_judge, vidb_release):
    from sentence_transformers import SentenceTransformer

    from valueflow.taxonomy import get_taxonomy

    root, _ = trained_judge
    folder = root / "release" / "judge"
    values = json.loads((folder / VALUES_FILE).read_text())["values"]
    assert values == [v.name for v in get_taxonomy().values]  # one output column per value of the taxonomy
    texts = pd.read_parquet(vidb_release / "data" / "full" / "test.parquet")
    sample = texts[texts["value"] == "benevolence"]["text"].tolist()[:10]
    plain = SentenceTransformer(str(folder)).encode(sample)
    assert plain.shape == (10, len(values))
    judge = make_judge(f"learned:{folder}")
    col = values.index("benevolence")
    assert np.allclose(judge.scores("benevolence", sample), plain[:, col], atol=1e-5)
    assert np.allclose(judge.all_scores(sample), plain, atol=1e-5)
    order = judge.rank_windows("benevolence", [sample[:4]])[0].order
    assert sorted(order) == [0, 1, 2, 3] and list(order) == list(np.argsort(-plain[:4, col], kind="stable"))
    ratings = judge.rate("Benevolence", sample)  # any alias
    assert all(-10 <= r <= 10 for r in ratings)


def test_the_judge_orders_held_out_texts_of_its_training_values(trained_judge, vidb_release):
    from valueflow.stats import pairwise_accuracy

    root, metrics = trained_judge
    test = pd.read_parquet(vidb_release / "data" / "full" / "test.parquet")
    judge = make_judge(f"learned:{root / 'release' / 'judge'}")
    pred = np.concatenate([judge.scores(v, g["text"].tolist()) for v, g in test.groupby("value")])
    gold = np.concatenate([g["intensity"].to_numpy() for _, g in test.groupby("value")])
    groups = np.concatenate([g["value"].to_numpy() for _, g in test.groupby("value")])
    assert pairwise_accuracy(pred, gold, groups, min_gap=2.0) > 0.6  # chance is 0.5
    assert metrics["held_out"]["judges"]["learned"]["pairwise_accuracy"] > 0.6


def test_the_head_penalties_are_the_candidates_that_order_the_validation_split_best(trained_judge):
    root, metrics = trained_judge
    choice = metrics["head"]["choice"]
    assert choice["chosen_on"] == "the validation split" and choice["texts"] >= 20
    assert len(choice["tried"]) == 3 * 5  # every (alpha, value_alpha) pair of the default candidates
    best = max(t["pairwise_accuracy"] for t in choice["tried"])
    chosen = (metrics["head"]["alpha"], metrics["head"]["value_alpha"])
    assert chosen in [(t["alpha"], t["value_alpha"]) for t in choice["tried"] if t["pairwise_accuracy"] == best]
    saved = json.loads((root / "release" / "judge" / VALUES_FILE).read_text())["head"]
    assert (saved["alpha"], saved["value_alpha"]) == chosen  # the saved judge is the chosen head


def test_without_a_validation_split_the_penalties_are_chosen_on_a_held_out_fifth_and_one_pair_is_used_as_given(
        vidb_release):
    from evaluation.train_judge import fit_judge, judge_rows
    from validation.rejects import RejectSink
    from valueflow.io import held_out_by_text_hash

    rows = judge_rows(pd.read_parquet(vidb_release / "data" / "full" / "train.parquet"), "train.parquet",
                      RejectSink("t", root=Path("."), out=Path("judge")))
    cfg = JudgeTrainConfig(base_model="all-MiniLM-L6-v2", alpha=[1.0, 100.0], value_alpha=[3.0, 300.0])
    _, _, head, choice = fit_judge(cfg, rows)
    assert choice["chosen_on"].startswith("a fifth of the training rows")
    assert choice["texts"] == int(held_out_by_text_hash(rows["text"]).sum()) and len(choice["tried"]) == 4
    assert (head.alpha, head.value_alpha) in {(1.0, 3.0), (1.0, 300.0), (100.0, 3.0), (100.0, 300.0)}
    # rows whose first hash fifth a caller already held out (benchmarks/judge_real.py): chosen on the next fifth
    rest = rows[~held_out_by_text_hash(rows["text"])]
    _, _, _, choice = fit_judge(cfg, rest)
    assert choice is not None and choice["texts"] == int(held_out_by_text_hash(rest["text"], 0.2, 1).sum()) > 0
    _, _, head, choice = fit_judge(JudgeTrainConfig(base_model="all-MiniLM-L6-v2", alpha=7.0, value_alpha=70.0), rows)
    assert choice is None and (head.alpha, head.value_alpha) == (7.0, 70.0)


def test_onnx_backend_scores_like_torch_from_the_exported_int8_graph(trained_judge, vidb_release):
    root, _ = trained_judge
    folder = root / "release" / "judge"
    assert (folder / "onnx" / "model_qint8.onnx").exists()
    texts = pd.read_parquet(vidb_release / "data" / "full" / "train.parquet")["text"].tolist()[:40]
    torch_scores = make_judge(f"learned:{folder}").all_scores(texts)
    onnx_scores = make_judge(f"learned:{folder}", backend="onnx").all_scores(texts)
    # same scale (the calibration applies to both) and, up to int8 rounding, the same scores (VIDB points)
    assert np.abs(onnx_scores - torch_scores).max() < 0.5
    assert np.corrcoef(onnx_scores.ravel(), torch_scores.ravel())[0, 1] > 0.99
    with pytest.raises(ValueError, match="backend"):
        make_judge(f"learned:{folder}", backend="tensorrt")


def test_calibration_is_strictly_monotone_and_continues_past_its_knots(trained_judge):
    root, metrics = trained_judge
    cal = Calibration.from_json(json.loads((root / "release" / "judge" / CALIBRATION_FILE).read_text()))
    grid = np.linspace(cal.x[0] - 5, cal.x[-1] + 5, 200)
    mapped = cal(grid)
    assert np.all(np.diff(mapped) >= 0) and mapped.min() >= -10 and mapped.max() <= 10
    inside = cal(np.linspace(cal.x[0], cal.x[-1], 50))
    if len(cal.x) > 1:
        assert np.all(np.diff(inside) > 0)  # no flat steps: different scores never tie
    assert cal(np.array([cal.x[-1] + 0.5]))[0] > cal(np.array([cal.x[-1]]))[0] or cal(np.array([cal.x[-1]]))[0] == 10
    assert metrics["calibration"]["fitted_on"] in ("validation", "train")


def test_bad_training_rows_are_rejected_with_their_reason(trained_judge):
    root, metrics = trained_judge
    rejected = pd.read_parquet(root / "data" / "rejected" / "train_judge.parquet")
    reasons = " | ".join(rejected["reason"])
    assert metrics["rejected"] == 2 == len(rejected)
    assert "text: empty" in reasons and "kindness-to-robots" in reasons
    assert metrics["rows_by_source"]["extra.csv"] == 1  # the good row of the extra table is kept


def test_card_names_data_loss_held_out_metrics_usage_and_citation(trained_judge):
    root, metrics = trained_judge
    card = (root / "release" / "judge" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "sentence-transformers" and meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert f"(penalty {metrics['head']['alpha']})" in card and "were chosen among 15 pairs" in card
    assert "| `learned` |" in card and "| `embedding` |" in card  # held-out figures beside the zero-shot judge
    assert 'SentenceTransformer("valueflow/vidb-judge")' in card and "@misc" in card
    index = meta["model-index"][0]["results"][0]
    assert index["dataset"]["split"] == "validation"
    assert index["metrics"][0]["value"] == metrics["held_out"]["judges"]["learned"]["pairwise_accuracy"]


def test_learned_judge_in_the_evaluate_command_ranks_and_rates(trained_judge, vidb_release, tmp_path):
    from typer.testing import CliRunner

    from valueflow.cli import app

    root, _ = trained_judge
    texts = tmp_path / "t.csv"
    pd.DataFrame({"text": ["I drove my sister to every chemo appointment.", "I stole my friend's savings."]}).to_csv(texts, index=False)
    for mode in ("ranking", "rating"):
        out = tmp_path / f"{mode}.parquet"
        result = CliRunner().invoke(app, ["evaluate", str(texts), "-v", "benevolence", "--judge",
                                          f"learned:{root / 'release' / 'judge'}", "--vidb", str(vidb_release),
                                          "--mode", mode, "--out", str(out)])
        assert result.exit_code == 0, result.output
        scores = pd.read_parquet(out)
        assert scores["intensity"].notna().all() and scores["judge"].str.startswith("learned:").all()


def test_learned_judge_collects_rankings(trained_judge, seed_dir, tmp_path):
    from builders.collect import CollectConfig, collect
    from builders.ingest import IngestConfig, ingest

    root, _ = trained_judge
    texts, _ = ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, out=Path("data/texts.parquet"), root=tmp_path))
    texts[texts["value"] == "benevolence"].head(12).to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    cfg = CollectConfig(judges=[f"learned:{root / 'release' / 'judge'}"], k=4, m=2, root=tmp_path)
    rankings, _ = collect(cfg)
    assert len(rankings) == 12 * 2 // 4 and rankings["judge"].str.startswith("learned:").all()
    assert all(sorted(o) == sorted(w) for o, w in zip(rankings["order"], rankings["window"]))


def test_fine_tuning_the_encoder_fits_the_rows_better_and_leaves_the_shared_base_untouched(vidb_release):
    """``train_judge.tune_epochs``: encoder and head are fine-tuned together (the training loss falls over the
    epochs), the head is refitted on the tuned encoder, and the base model other stages share is not modified."""
    from evaluation.train_judge import fit_judge, judge_rows
    from validation.rejects import RejectSink
    from valueflow.judges.value_head import TuneConfig, build_judge_model, fit_value_head, tune_encoder
    from valueflow.models import load_sentence_model

    rows = judge_rows(pd.read_parquet(vidb_release / "data" / "full" / "train.parquet"), "train.parquet",
                      RejectSink("t", root=Path("."), out=Path("judge")))
    rows = rows[rows["value"].isin(["benevolence", "achievement", "care-harm"])].reset_index(drop=True)
    base = load_sentence_model("all-MiniLM-L6-v2")
    before = base.encode(rows["text"].tolist()[:5])

    cfg = JudgeTrainConfig(base_model="all-MiniLM-L6-v2", tune_epochs=2, tune_learning_rate=1e-4)
    model, values, _, _ = fit_judge(cfg, rows)
    tuned = model.encode(rows["text"].tolist()[:5])
    assert tuned.shape == (5, len(values))
    assert np.allclose(base.encode(rows["text"].tolist()[:5]), before, atol=1e-6)  # the cached base is unchanged

    index = rows["value"].map({v: i for i, v in enumerate(values)}).to_numpy()
    emb = base.encode(rows["text"].tolist(), normalize_embeddings=True)
    queries = base.encode(values, normalize_embeddings=True)
    import copy

    fresh = build_judge_model(copy.deepcopy(base), fit_value_head(emb, index, rows["target"].to_numpy(), queries))
    losses = tune_encoder(fresh, rows["text"].tolist(), index, rows["target"].to_numpy(),
                          TuneConfig(epochs=3, learning_rate=1e-4))
    assert losses[-1] < losses[0]

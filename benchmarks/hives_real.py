"""HiVES on real data: train on every labelled real source, evaluate on data held apart from training (Touché23
validation, a held-out fifth of ValueNet by text hash), HiVES beside its base encoder, off-the-shelf
all-mpnet-base-v2, the oracle and the label-predictor bound, with the profile hit rate a user sees.

    python3 benchmarks/hives_real.py --out DIR [--recipe projection|full] [--cache FOLDER]
    python3 benchmarks/hives_real.py --evaluate release/hives --base-model all-MiniLM-L6-v2   (a model trained elsewhere)

Training data (``--sources``): Touché23 training arguments (refined-value paths, direction unknown), ValueNet and the
VIDB anchor texts by default; a seeded sample (``--max-per-source``) of MFRC, Social Chemistry and Moral Stories on
request, mapped to paths and directions by the taxonomy. Each source but Touché23 (whose held-out part is its
validation split) keeps a fifth out of training by text hash; every validation text also found in training is
dropped. The three sampled sources are not in the default because each lowers the held-out figures (all-mpnet-base-v2,
projection recipe; Touché23 ranking accuracy / similarity correlation / profile top-3, ValueNet ranking accuracy):
the three default sources 0.593 / 0.232 / 0.842, 0.544; + MFRC 0.581 / 0.193 / 0.891, 0.545; + Social Chemistry
0.586 / 0.203 / 0.626, 0.539; + Moral Stories 0.592 / 0.224 / 0.824, 0.540; all six 0.578 / 0.167 / 0.755, 0.546.

The default recipe (``projection``) fits the labels head on the frozen base encoder's embeddings
(``hives_model.projection``), fine-tunes the encoder's top 4 layers with that head's own loss for 2 epochs
(``hives_model.encoder_tuning``; ``--encoder-epochs 0`` keeps the encoder frozen), then fits the head again on the
moved encoder. Its cost is the encoder: about 4 minutes an epoch over the 7,771 default training texts on 2 CPU cores,
then 2 to 3 minutes to embed them again (10.6-11 minutes in all). The frozen base's embeddings are kept in ``--cache``
(``benchmarks/embedding_cache.py``; all-mpnet-base-v2 embeds about 35-45 short texts a second), so the frozen
recipe costs seconds on a warm cache. ``--recipe full`` (or ``--stage1-steps``) moves every weight with the
contrastive losses; whenever the encoder moves, every held-out text is encoded again by the trained model.

Printed per held-out set: hierarchical ranking accuracy, similarity correlation, mean cosine (collapse monitor) and
the profile's top-1/top-3 hit rate (``hives_model.metrics.profile_hit_rate``) for each model; the oracle (true
labels as the embedding) is the ceiling, and on Touché23 the bound of ``benchmarks/hives_label_noise.py`` (an
embedding that encoded the best published Touché23 classifiers' predictions, label F1 0.56, perfectly) is what
any embedding can be expected to reach. Targets (issue 21) are checked at the end.

Measured (all-mpnet-base-v2, 2 CPU cores, the default sources; Touché23 validation 4000 rows / ValueNet held-out 660
rows; ranking accuracy / similarity correlation / mean cosine / profile top-1 / top-3):

    recipe                                   Touché23 validation                  ValueNet held out          training
    base (no training)                       0.527 / 0.105 / 0.16 / 0.501 / 0.819  0.529 / 0.053 / 0.13 / 0.138 / 0.343
    frozen encoder (--encoder-epochs 0)      0.591 / 0.232 / 0.41 / 0.490 / 0.842  0.540 / 0.075 / 0.35 / 0.193 / 0.490  18 s
    top 4 layers, 1 epoch                    0.623 / 0.283 / 0.39 / 0.582 / 0.918  0.550 / 0.093 / 0.35 / 0.207 / 0.493  414 s
    top 4 layers, 2 epochs (the default)     0.630 / 0.288 / 0.35 / 0.568 / 0.916  0.551 / 0.097 / 0.31 / 0.260 / 0.545  638-661 s
    top 4 layers, 3 epochs                   0.631 / 0.281 / 0.32 / 0.585 / 0.900  0.549 / 0.092 / 0.27 / 0.276 / 0.521  844 s
    top 6 layers, 4 epochs                   0.622 / 0.260 / 0.27 / 0.633 / 0.906  0.541 / 0.081 / 0.23 / 0.293 / 0.469  1289 s
    top 4, 3 epochs, ValueNet texts x3       0.621 / 0.258 / 0.30 / 0.625 / 0.898  0.533 / 0.063 / 0.25 / 0.262 / 0.448  1153 s

Ranking accuracy is exact (``hives_model.metrics``: the expectation over every candidate, no draws); figures of
this docstring not in the table were measured when it drew five candidates an anchor, which put them up to about
0.007 off (the 1-epoch row read 0.557 on ValueNet, its expectation is 0.550).

The default meets every issue-21 target but ValueNet ranking accuracy >= base + 0.03 (0.559): held-out ValueNet
plateaus at 0.550-0.551 after 1 or 2 epochs, 0.008 short, and more training, more layers or more ValueNet steps lower
it (the 3-epoch and oversampled rows ran before the schedule was shared with the judge's fine-tune: warm-up and decay
as a minimum, not a product; scratch oversampling). Its gain is in the path bins (the share of candidate pairs ordered
right, base -> default): a same-value text above a same-higher-order one 0.545 -> 0.553, a same-higher-order text
above an unrelated one 0.511 -> 0.541; a same-direction text above an other-direction one of the same value stays near
chance (0.538 -> 0.522). Direction units fitted on the texts of their own path alone (a conditional direction; frozen
encoder) raise that last pair to 0.563 and leave the total where it was (0.541). Nor is it the head's settings:
refitted on the default's encoder with centre 0.3 / 0.9, base_share 0 / 0.6 / 1 or weight_decay 1e-5 / 1e-3, and read
on the held-out rows themselves (an upper bound, not a choice), ValueNet stays at 0.543-0.553. The former labels head
(a unit per (path, direction) label, centre 0.7, no base share, frozen): 0.587 / 0.196 / 0.31 / 0.457 / 0.824 and
0.533 / 0.046 / 0.71 / 0.190 / 0.457.

On ValueNet the predictable labels are the ceiling, and the script prints it (``predicted_label_embeddings``): the
oracle's layout filled with the labels that logistic regressions on the base's embeddings predict ranks at 0.543 /
0.079, below HiVES; with the true path and the predicted direction, 0.826 / 0.868. The path (which of 10 values a
scenario was annotated for) is what a frozen encoder does not predict: top-1 0.26-0.28 for mpnet, MiniLM or both, any
penalty (0.22 on the third of the rows labelled 0, "not related" to the value), and TF-IDF does no better (0.26-0.29).
A scratch run that gave the predictor the true path for a share of texts needed top-1 about 0.37 to reach base + 0.03
(0.259: 0.543; 0.345: 0.553; 0.424: 0.576; mean of three draws).
A fine-tuned encoder does learn the path: mpnet fine-tuned on the ValueNet training rows alone (all layers, a path head
and a per-value direction head, lr 1e-4, 4 epochs, 15 minutes; scratch) reaches path top-1 0.31 and, as
``--base-model`` of the frozen recipe, 0.551-0.557 on ValueNet (drawn): no more than the default.
Earlier runs (profile top-3 only): contrastive head, label-similarity + 0.2 x hierarchical loss, 600 steps: 0.540 /
0.106 / 0.12 / 0.655 and 0.527 / 0.027 / 0.03 / 0.295; contrastive head, hierarchical loss alone: 0.541 / 0.072 /
0.57 / 0.720 and 0.525 / 0.046 / 0.43 / 0.300; full fine-tuning, 24 steps of 16 (35 s a step here; Touché23 on its
first 997 rows): 0.530 / 0.099 / 0.25 / 0.612 against the base's 0.530 / 0.104 / 0.16 / 0.794 on those rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch

from hives_model.projection import ProjectionConfig
from valueflow.io import held_out_by_text_hash, normalise_text, refdata_dir

ALL_SOURCES = ("valuenet", "vidb_anchors", "touche23", "mfrc", "moral_stories", "social_chem")
TRAIN_SOURCES = ("touche23-training", "valuenet", "vidb_anchors", "mfrc", "social_chem", "moral_stories")
DEFAULT_SOURCES = TRAIN_SOURCES[:3]  # each of the other three lowers the held-out figures (see the docstring)
SAMPLED_SOURCES = ("mfrc", "social_chem", "moral_stories")  # large: a seeded sample, as embedding_cache.py embeds
# benchmarks/hives_label_noise.py: an embedding of label predictions at F1 0.56 (the best published Touché23 systems),
# on the 4000 Touché23 validation rows scored here, mean of 3 draws (0.572-0.575 / 0.205-0.210)
LABEL_PREDICTOR_BOUND = {"touche23-validation": {"ranking_accuracy": 0.574, "similarity_correlation": 0.207}}
# issue 21's targets: the same bound as first measured (500 arguments, the former oracle layout), higher: kept as set
BOUND_TARGET = {"ranking_accuracy": 0.588, "similarity_correlation": 0.217}
OFF_THE_SHELF = "all-mpnet-base-v2"


def ingest_sources(work: Path, sources: tuple[str, ...] = ALL_SOURCES) -> pd.DataFrame:
    """The real sources ingested by the builders' ingest into ``work`` (once; later runs read the cached file)."""
    from builders.ingest import IngestConfig, ingest

    path = work / "texts.parquet"
    if not path.exists():
        ingest(IngestConfig(sources=list(sources), refdata=refdata_dir(), out=Path("texts.parquet"), root=work))
    return pd.read_parquet(path)


def split_sources(texts: pd.DataFrame, max_per_source: int | None,
                  sources: tuple[str, ...] = TRAIN_SOURCES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training texts, ValueNet held-out texts): every training source less its held-out fifth (by text hash);
    Touché23 training whole (its held-out part is the validation split)."""
    from embedding_cache import source_texts

    train = []
    for source in sources:
        rows = texts[texts["source"] == source]
        if source in SAMPLED_SOURCES:
            rows = rows[rows["text"].isin(set(source_texts(texts, source, max_per_source)))]
        if source != "touche23-training":
            rows = rows[~held_out_by_text_hash(rows["text"])]
        train.append(rows)
    valuenet = texts[texts["source"] == "valuenet"]
    return pd.concat(train, ignore_index=True), valuenet[held_out_by_text_hash(valuenet["text"])]


def touche_validation(texts: pd.DataFrame, seen: set[str], max_rows: int) -> tuple[pd.DataFrame, int]:
    """Touché23 validation rows whose text is not in training, whole arguments (all their labels) up to ``max_rows``."""
    val = texts[texts["source"] == "touche23-validation"]
    leaked = val["text"].map(normalise_text).isin(seen)
    val = val[~leaked]
    argument = val["source_id"].str.split(":").str[0]
    counts = argument.value_counts()
    ids, n = [], 0
    for i in argument.drop_duplicates().sample(frac=1.0, random_state=42):
        if n + counts[i] > max_rows:
            break
        ids.append(i)
        n += counts[i]
    return val[argument.isin(ids)], int(leaked.sum())


class CachedEncoder:
    """A frozen encoder as the metrics see it: the base model's cached embeddings (``benchmarks/embedding_cache.py``),
    then ``head`` (the projection recipe's Dense + Normalize, taken from the saved folder itself)."""

    def __init__(self, cache, head=()) -> None:
        self.cache, self.head = cache, list(head)

    def encode(self, texts, normalize_embeddings: bool = True, convert_to_numpy: bool = True, **_) -> np.ndarray:
        emb = self.cache.embed(list(texts), progress=False)
        if self.head:
            features = {"sentence_embedding": torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))}
            with torch.no_grad():
                for module in self.head:
                    features = module(features)
            emb = features["sentence_embedding"].numpy()
        return emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)


def predicted_label_embeddings(train_emb: np.ndarray, train_rows: pd.DataFrame, test_emb: np.ndarray,
                               test_rows: pd.DataFrame) -> tuple[dict[str, np.ndarray], float]:
    """ValueNet's label-predictor reference: the oracle's layout filled with predicted labels instead of true ones.

    Two logistic regressions on the base embeddings of the ValueNet training rows predict a text's path (which of the
    10 values it was annotated for) and its direction given a value (features x and x per value). Returns the
    embeddings {"predicted labels": soft path x soft direction, "true path, predicted direction": the true path with
    the predicted direction} and the path predictor's top-1 hit rate. What an embedding that encoded these
    predictions perfectly would score: where HiVES stands against the labels a frozen encoder can predict.
    """
    from sklearn.linear_model import LogisticRegression

    from hives_model.data import LabelSpace, oracle_embeddings

    space = LabelSpace.from_taxonomy()
    values = sorted(test_rows["value"].unique())
    train_rows = train_rows.reset_index(drop=True)
    keep = train_rows["value"].isin(values).to_numpy()
    x, rows = train_emb[keep], train_rows[keep]

    def with_value(emb: np.ndarray, value_of_row) -> np.ndarray:
        onehot = (np.asarray(value_of_row)[:, None] == np.array(values)[None, :]).astype(np.float32)
        return np.hstack([emb, (onehot[:, :, None] * emb[:, None, :]).reshape(len(emb), -1)])

    path = LogisticRegression(C=0.3, max_iter=3000).fit(x, rows["value"])
    direction = LogisticRegression(C=0.3, max_iter=3000).fit(with_value(x, rows["value"]), rows["direction"])
    p_path = path.predict_proba(test_emb)
    top1 = float(np.mean(path.classes_[p_path.argmax(axis=1)] == test_rows["value"].to_numpy()))

    # per value: each text's direction probabilities, and the oracle's vector of each (value, direction) label
    p_direction = {v: direction.predict_proba(with_value(test_emb, [v] * len(test_emb))) for v in path.classes_}
    label_vector = {(v, d): oracle_embeddings(space.encode(test_rows[test_rows["value"] == v].head(1).assign(
        direction=d)))[0] for v in path.classes_ for d in direction.classes_}

    def embed(p_value: np.ndarray) -> np.ndarray:
        out = sum((p_value[:, j] * p_direction[v][:, k])[:, None] * label_vector[(v, d)]
                  for j, v in enumerate(path.classes_) for k, d in enumerate(direction.classes_))
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)

    true_path = (test_rows["value"].to_numpy()[:, None] == path.classes_[None, :]).astype(float)
    return {"predicted labels": embed(p_path), "true path, predicted direction": embed(true_path)}, top1


def _f(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/hives_real_model"), help="where the trained model is saved")
    ap.add_argument("--work", type=Path, default=Path("/tmp/real_texts_work"), help="ingested texts (cached)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="embedding cache folder of the base encoder (default: embedding_cache.py's)")
    ap.add_argument("--base-model", default=OFF_THE_SHELF)
    ap.add_argument("--evaluate", type=Path, default=None,
                    help="evaluate this trained HiVES folder (e.g. the pipeline's release/hives) against --base-model "
                         "instead of training one; the held-out sets are the same")
    ap.add_argument("--recipe", default="projection", choices=["projection", "full"])
    ap.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES), choices=TRAIN_SOURCES,
                    help="training sources (ValueNet is always split: its held-out fifth is evaluated)")
    ap.add_argument("--max-per-source", type=int, default=3000, help="texts of each of MFRC, Social Chemistry, Moral Stories")
    ap.add_argument("--head", default="labels", choices=["labels", "contrastive"], help="projection head (hives_model.projection)")
    ap.add_argument("--centre", type=float, default=ProjectionConfig().centre,
                    help="labels head: share of the mean probability subtracted")
    ap.add_argument("--base-share", type=float, default=ProjectionConfig().base_share,
                    help="labels head: weight of the base embedding kept beside the label layout")
    ap.add_argument("--dim", type=int, default=256, help="contrastive head: projection width")
    ap.add_argument("--activation", default="identity", choices=["identity", "tanh"])
    ap.add_argument("--projection-steps", type=int, default=600)
    ap.add_argument("--projection-batch", type=int, default=64)
    ap.add_argument("--projection-lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty of the projection")
    ap.add_argument("--encoder-epochs", type=int, default=ProjectionConfig().encoder_epochs,
                    help="labels head: epochs of fine-tuning the encoder's top layers with the head's loss (0: frozen)")
    ap.add_argument("--encoder-layers", type=int, default=ProjectionConfig().encoder_layers,
                    help="labels head: top transformer layers that move")
    ap.add_argument("--encoder-lr", type=float, default=ProjectionConfig().encoder_learning_rate)
    ap.add_argument("--stage1-steps", type=int, default=None, help="default: 0 with the projection recipe, 450 with full")
    ap.add_argument("--stage2-steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=None, help="default: the base model's own window")
    ap.add_argument("--lr1", type=float, default=1e-4, help="stage-1 learning rate")
    ap.add_argument("--lr2", type=float, default=1e-5, help="stage-2 learning rate")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--direction-margin", type=float, default=0.1)
    ap.add_argument("--hier-weight", type=float, default=1.0, help="weight of the hierarchical contrastive loss")
    ap.add_argument("--ls-weight", type=float, default=0.0, help="weight of the label-similarity (CoSENT) loss")
    ap.add_argument("--ls-scale", type=float, default=20.0, help="CoSENT scale of the label-similarity loss")
    ap.add_argument("--uniformity", type=float, default=2.0, help="uniformity weight of the label-similarity loss")
    ap.add_argument("--anchor-texts", type=int, default=2,
                    help="texts per (value, direction) prototype of the profile (1: the value's definition alone)")
    ap.add_argument("--missing-direction", default="unknown", choices=["unknown", "support", "drop"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-eval-rows", type=int, default=4000, help="Touché23 validation rows (whole arguments)")
    ap.add_argument("--eval-every", type=int, default=300, help="projection learning curve every N steps (0: off)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if refdata_dir() is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")

    from embedding_cache import DEFAULT_DIR, EmbeddingCache

    from hives_model.data import LabelSpace, training_rows
    from hives_model.metrics import (
        compare_models,
        evaluate_embeddings,
        format_table,
        hierarchical_ranking_accuracy,
        mean_cosine,
        profile_hit_rate,
        similarity_correlation,
    )
    from hives_model.projection import project
    from hives_model.train import HivesTrainConfig, StageConfig, train_hives
    from valueflow.io import write_json
    from valueflow.models import load_sentence_model, resolve_model_path

    args.work.mkdir(parents=True, exist_ok=True)
    texts = ingest_sources(args.work)
    train, valuenet_test = split_sources(texts, args.max_per_source, tuple(args.sources))
    touche_val, leaked = touche_validation(texts, set(train["text"].map(normalise_text)), args.max_eval_rows)
    train_path = args.work / "hives_train.parquet"
    train.to_parquet(train_path, index=False)
    print(f"train rows: {len(train)} ({train['source'].value_counts().to_dict()}); held out: touche23-validation "
          f"{len(touche_val)} rows ({leaked} dropped: text also in training), valuenet {len(valuenet_test)} rows")

    missing = args.missing_direction
    sets = {"touche23-validation": training_rows(touche_val, missing), "valuenet-heldout": training_rows(valuenet_test, missing)}
    frozen = args.recipe == "projection" and not (args.stage1_steps or args.stage2_steps or args.encoder_epochs)
    cache = EmbeddingCache(args.base_model, args.cache or DEFAULT_DIR)
    stage1_steps = args.stage1_steps if args.stage1_steps is not None else (0 if args.recipe == "projection" else 450)
    cfg = HivesTrainConfig(
        data=train_path.resolve(), split=None, base_model=args.base_model, out=args.out.resolve(), root=args.work,
        recipe=args.recipe, missing_direction=missing, anchor_texts_per_value=args.anchor_texts, temperature=args.temperature,
        max_seq_length=args.max_seq_length or load_sentence_model(args.base_model).max_seq_length,
        projection=ProjectionConfig(head=args.head, centre=args.centre, base_share=args.base_share, dim=args.dim,
                                    activation=args.activation, steps=args.projection_steps,
                                    batch_size=args.projection_batch, learning_rate=args.projection_lr,
                                    weight_decay=args.weight_decay, encoder_epochs=args.encoder_epochs,
                                    encoder_layers=args.encoder_layers, encoder_learning_rate=args.encoder_lr),
        direction_margin=args.direction_margin, hierarchical_weight=args.hier_weight,
        label_similarity_weight=args.ls_weight, label_similarity_scale=args.ls_scale, uniformity_weight=args.uniformity,
        stage1=StageConfig(steps=stage1_steps, batch_size=args.batch_size, learning_rate=args.lr1),
        stage2=StageConfig(steps=args.stage2_steps, batch_size=args.batch_size, learning_rate=args.lr2),
    )

    # the projection's learning curve on the held-out sets: cached base embeddings through the Dense being trained
    space = LabelSpace.from_taxonomy()
    held = {name: (cache.embed(rows["text"].tolist(), progress=False), space.encode(rows)) for name, rows in sets.items()}
    curve: list[dict] = []

    def projection_curve(step, dense) -> None:
        point = {"step": step}
        for name, (emb, labels) in held.items():
            z = project(dense, emb)
            point[name] = (hierarchical_ranking_accuracy(z, labels, max_anchors=600)["accuracy"],
                           similarity_correlation(z, labels), mean_cosine(z, labels))
        curve.append(point)

    started = time.perf_counter()
    if args.evaluate is None:
        hives, training = train_hives(cfg, embed=lambda t: cache.embed(t), projection_curve=projection_curve,
                                      projection_eval_every=args.eval_every if args.recipe == "projection" else 0)
    else:  # a model trained elsewhere: nothing is trained or cached for it, every held-out text is encoded by it
        from sentence_transformers import SentenceTransformer

        hives, training, frozen = SentenceTransformer(str(args.evaluate)), {}, False
    model_dir = args.evaluate or args.out
    train_seconds = time.perf_counter() - started
    record = training.get("projection") or {}
    if args.evaluate is None:
        print(f"\ntraining ({args.recipe}; projection {args.projection_steps} steps of {args.projection_batch} to "
              f"{args.dim} dims; stages {stage1_steps} + {args.stage2_steps} steps): {train_seconds:.0f} s "
              f"(embedding the training texts: {record.get('embed_seconds', '-')} s, from the cache when warm; "
              f"projection: {record.get('train_seconds', '-')} s, learning-curve evaluations included)")
        if record.get("encoder_seconds") is not None:
            print(f"  of which the encoder's fine-tune ({args.encoder_epochs} epochs, top {args.encoder_layers} layers): "
                  f"{record['encoder_seconds']} s, then embedding the training texts with it: "
                  f"{record['encoder_embed_seconds']} s; loss by epoch {record['encoder_loss_curve']}")
    if curve:
        print("  held-out learning curve (ranking accuracy / similarity correlation (mean cosine)):")
        for point in curve:
            print(f"    step {point['step']:>5}: " + "; ".join(
                f"{name} {_f(a)} / {_f(c)} (cos {_f(m, '{:.2f}')})" for name, (a, c, m) in
                ((k, v) for k, v in point.items() if k != "step")))

    # the models on the same held-out rows: HiVES, its base, off-the-shelf all-mpnet-base-v2, and the oracle
    base_modules = len(load_sentence_model(args.base_model))
    if frozen:  # the encoder did not move: cached base embeddings + the saved folder's own head
        from sentence_transformers import SentenceTransformer

        saved = SentenceTransformer(str(args.out))
        hives_model = CachedEncoder(cache, [saved[i] for i in range(base_modules, len(saved))])
        check = sets["touche23-validation"]["text"].drop_duplicates().head(16).tolist()
        agree = float((saved.encode(check, normalize_embeddings=True) * hives_model.encode(check)).sum(axis=1).min())
        print(f"  the saved folder encodes like cached embeddings + its head: min cosine {agree:.5f} over {len(check)} texts")
    else:
        hives_model = hives
    models = {"hives": hives_model}
    if Path(resolve_model_path(args.base_model)) != Path(resolve_model_path(OFF_THE_SHELF)):
        models[OFF_THE_SHELF] = CachedEncoder(EmbeddingCache(OFF_THE_SHELF, args.cache or DEFAULT_DIR))
    models["base"] = CachedEncoder(cache)
    results = {}
    eval_started = time.perf_counter()
    for name, rows in sets.items():
        results[name] = compare_models(models, rows, seed=42)
        for model_name, model in models.items():
            folder = model_dir if model_name == "hives" else None
            results[name][model_name]["profile"] = profile_hit_rate(model, rows, folder)
        # the base encoder with HiVES' own prototypes: how much of the profile gain is the anchors, not the space
        results[name]["base"]["profile_with_hives_anchors"] = profile_hit_rate(models["base"], rows, model_dir)
        print("\n" + format_table(results[name], title=f"{name}: {len(rows)} rows"))
    eval_seconds = time.perf_counter() - eval_started

    print(f"\n{'held-out set':<22}{'model':<30}{'rank.acc':>9}{'sim.corr':>9}{'mean cos':>9}{'top-1':>7}{'top-3':>7}")
    for name, r in results.items():
        labels = {"base": f"base ({args.base_model})", OFF_THE_SHELF: f"off-the-shelf {OFF_THE_SHELF}", "hives": "HiVES"}
        for key in [k for k in ("base", OFF_THE_SHELF, "hives") if k in r]:
            m, p = r[key], r[key]["profile"]
            print(f"{name:<22}{labels[key]:<30}{_f(m['ranking_accuracy']):>9}{_f(m['similarity_correlation']):>9}"
                  f"{_f(m['mean_cosine']):>9}{_f(p['top1']):>7}{_f(p['top3']):>7}")
        p = r["base"]["profile_with_hives_anchors"]
        print(f"{name:<22}{'base, HiVES prototypes':<30}{'':>27}{_f(p['top1']):>7}{_f(p['top3']):>7}")
        o = r["oracle"]
        print(f"{name:<22}{'oracle (true labels)':<30}{_f(o['ranking_accuracy']):>9}{_f(o['similarity_correlation']):>9}"
              f"{_f(o['mean_cosine']):>9}")
        if name in LABEL_PREDICTOR_BOUND:
            b = LABEL_PREDICTOR_BOUND[name]
            print(f"{name:<22}{'bound (label F1 0.56)':<30}{b['ranking_accuracy']:>9.3f}{b['similarity_correlation']:>9.3f}")

    # ValueNet's reference rows: the oracle's layout filled with the labels a frozen base predicts
    vn_rows, vn_train = sets["valuenet-heldout"], training_rows(train[train["source"] == "valuenet"], missing)
    predicted, path_top1 = predicted_label_embeddings(cache.embed(vn_train["text"].tolist(), progress=False), vn_train,
                                                      held["valuenet-heldout"][0], vn_rows)
    for name, emb in predicted.items():
        r = results["valuenet-heldout"][name] = evaluate_embeddings(emb, vn_rows, seed=42, probe=False)
        print(f"{'valuenet-heldout':<22}{name:<30}{_f(r['ranking_accuracy']):>9}{_f(r['similarity_correlation']):>9}")
    print(f"  (logistic predictors on the base's embeddings of the ValueNet training rows; path top-1 {path_top1:.3f})")

    tv, vn = results["touche23-validation"], results["valuenet-heldout"]
    shelf = tv.get(OFF_THE_SHELF, tv["base"])
    def at_least(label: str, value: float | None, target: float | None) -> tuple[str, str, bool | None]:
        met = None if value is None or target is None else value >= target
        return label, f"{_f(value)} vs {_f(target)}", met

    checks = [
        at_least("Touché23 ranking accuracy >= bound (issue 21's)", tv["hives"]["ranking_accuracy"],
                 BOUND_TARGET["ranking_accuracy"]),
        at_least("Touché23 similarity correlation >= bound (issue 21's)", tv["hives"]["similarity_correlation"],
                 BOUND_TARGET["similarity_correlation"]),
        at_least("Touché23 ranking accuracy >= off-the-shelf + 0.02", tv["hives"]["ranking_accuracy"],
                 None if shelf["ranking_accuracy"] is None else shelf["ranking_accuracy"] + 0.02),
        at_least("Touché23 similarity correlation >= off-the-shelf + 0.05", tv["hives"]["similarity_correlation"],
                 None if shelf["similarity_correlation"] is None else shelf["similarity_correlation"] + 0.05),
        at_least("ValueNet ranking accuracy >= base + 0.03", vn["hives"]["ranking_accuracy"],
                 None if vn["base"]["ranking_accuracy"] is None else vn["base"]["ranking_accuracy"] + 0.03),
    ]
    for name, r in results.items():
        cos = r["hives"]["mean_cosine"]
        checks.append((f"{name} mean cosine < 0.5", _f(cos), None if cos is None else cos < 0.5))
        top3, base3 = r["hives"]["profile"]["top3"], r["base"]["profile"]["top3"]
        checks.append((f"{name} profile top-3 > base", f"{_f(top3)} vs {_f(base3)}",
                       None if top3 is None or base3 is None else top3 > base3))
    print("\ntargets (issue 21):")
    for label, figures, met in checks:
        print(f"  {label:<58} {figures}: {'-' if met is None else 'met' if met else 'NOT met'}")
    print(f"\ntraining took {train_seconds:.0f} s, evaluation {eval_seconds:.0f} s; model at {model_dir}")
    write_json({"training_seconds": round(train_seconds, 1), "evaluation_seconds": round(eval_seconds, 1),
                "training": training, "projection_curve": curve, "results": results,
                "held_out_rows": {k: len(v) for k, v in sets.items()}, "model": str(model_dir)},
               args.out / "benchmark_results.json")


if __name__ == "__main__":
    main()

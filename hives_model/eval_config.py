"""The config model of the ``eval_hives`` stage (the ``eval_hives`` section of params.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from valueflow.params import StageParams


class EvalHivesConfig(StageParams):
    """HiVES beside its base model on held-out texts, then the export of ``release/hives``."""

    section: ClassVar[str] = "eval_hives"

    model: Path = Path("models/hives")
    data: Path = Path("release/vidb/data/full/test.parquet")
    split: str | None = "test"
    probe_train: Path | None = None  # the intensity probe is fitted here and scored on `data`
    base_model: str | None = None  # None: the base model recorded at training
    missing_direction: Literal["unknown", "support", "drop"] | None = None  # None: as at training
    release: Path = Path("release/hives")
    repo_id: str = "valueflow/hives"
    onnx: bool = True
    check_texts: int = Field(200, ge=1)
    max_anchors: int = Field(1000, ge=1)
    seed: int = 42
    plots: Path = Path("plots/hives")

"""The probe judge: sentence embeddings plus a per-value linear probe (ridge) fitted on VIDB's train split.

The probe of a value is a pooled ridge fitted on every value's train texts (what "supporting a value" looks like
in general: on the 12-texts-per-value seed corpus a per-value ridge alone ranks test texts no better than chance,
the pooled one does) plus a ridge fitted on that value's own residuals, with a stronger penalty, that learns
what is particular to the value once VIDB has enough of its texts.

It orders a window by each text's predicted intensity, and its predictions are also its direct ratings. The
embeddings come from HiVES (``release/hives``) when that folder holds an exported model, otherwise from the base
model (all-MiniLM-L6-v2, offline), so the judge works before HiVES is trained and improves once it is. Only the
train split is used for fitting, so scoring VIDB's validation and test texts with it is not a leak.

Spec: ``probe`` (HiVES or base model, ``release/vidb``) or ``probe:<model path or name>``; options ``vidb=``
(a release folder or a table with text, value, intensity and optionally split columns) and ``alpha=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from valueflow.judges.base import Judge, JudgeAnswer, answers_from_scores, register_judge
from valueflow.models import DEFAULT_BASE_MODEL, CachedEncoder
from valueflow.taxonomy import get_taxonomy

DEFAULT_HIVES = Path("release/hives")
DEFAULT_VIDB = Path("release/vidb")
MIN_TRAIN_TEXTS = 3


def default_probe_model() -> str:
    """HiVES when an exported model is at release/hives, else the base model."""
    return str(DEFAULT_HIVES) if (DEFAULT_HIVES / "modules.json").exists() else DEFAULT_BASE_MODEL


def load_train_rows(vidb: str | Path | pd.DataFrame) -> pd.DataFrame:
    """text, value, intensity rows of VIDB's train split from a release folder, a table file or a frame."""
    from valueflow.io import InputError, read_table

    if isinstance(vidb, pd.DataFrame):
        df = vidb
    else:
        path = Path(vidb)
        if path.is_dir():
            files = sorted((path / "data" / "full").glob("*.parquet"))
            if not files:
                raise InputError(f"{path}: no data/full/*.parquet to fit the probe on (is this a VIDB release?)")
            df = pd.concat([pd.read_parquet(f).assign(split=lambda d, s=f.stem: d.get("split", s)) for f in files])
        else:
            df = read_table(path, required=("text", "value", "intensity"))
    if "split" in df.columns:
        df = df[df["split"].astype(str) == "train"]
    df = df.assign(intensity=pd.to_numeric(df["intensity"], errors="coerce")).dropna(subset=["text", "intensity"])
    tax = get_taxonomy()
    return pd.DataFrame(
        {"text": df["text"].astype(str), "value": df["value"].astype(str).map(tax.resolve), "intensity": df["intensity"].astype(float)}
    ).reset_index(drop=True)


class ProbeJudge(Judge):
    """Orders texts by a ridge probe's predicted intensity on their embeddings.

    Args:
        model: sentence-transformers model name or folder (default: HiVES if exported, else the base model).
        vidb: where the train split comes from (release folder, table file or a DataFrame); default release/vidb.
        alpha: ridge penalty of the pooled probe (all values' train texts).
        value_alpha: ridge penalty of each value's own residual probe.
        batch_size: encoding batch size.
    """

    def __init__(
        self,
        model: str | None = None,
        vidb: str | Path | pd.DataFrame | None = None,
        alpha: float = 1.0,
        value_alpha: float = 10.0,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        self.model_name = model or default_probe_model()
        self.vidb = DEFAULT_VIDB if vidb is None else vidb
        self.alpha, self.value_alpha = float(alpha), float(value_alpha)
        self.batch_size, self.device = int(batch_size), device
        self.name = f"probe:{Path(self.model_name).name}@alpha={self.alpha:g},{self.value_alpha:g}"
        self._train: pd.DataFrame | None = None
        self._probes: dict[str, tuple[np.ndarray, float] | str] = {}
        self._pooled: tuple[np.ndarray, float] | None = None
        self._encoder = CachedEncoder(self.model_name, self.batch_size, self.device)

    @property
    def model(self):
        return self._encoder.model

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder.encode(texts)

    def probe(self, value: str) -> tuple[np.ndarray, float] | str:
        """(weights, bias) of the value's ridge probe, or the reason there is none (too few train texts)."""
        name = get_taxonomy().resolve(value)
        if name not in self._probes:
            from sklearn.linear_model import Ridge

            if self._train is None:
                self._train = load_train_rows(self.vidb)
            if self._pooled is None:
                if len(self._train) < MIN_TRAIN_TEXTS:
                    raise ValueError(f"{self.vidb}: {len(self._train)} train text(s); the probe needs {MIN_TRAIN_TEXTS}")
                pooled = Ridge(alpha=self.alpha).fit(self._encode(self._train["text"].tolist()), self._train["intensity"].to_numpy())
                self._pooled = (pooled.coef_.astype(np.float64), float(pooled.intercept_))
            rows = self._train[self._train["value"] == name]
            if len(rows) < MIN_TRAIN_TEXTS:
                self._probes[name] = f"probe for {name!r} has {len(rows)} train text(s); needs {MIN_TRAIN_TEXTS}"
            else:
                x = self._encode(rows["text"].tolist())
                w0, b0 = self._pooled
                own = Ridge(alpha=self.value_alpha).fit(x, rows["intensity"].to_numpy() - (x @ w0 + b0))
                self._probes[name] = (w0 + own.coef_, b0 + float(own.intercept_))
        return self._probes[name]

    def predict(self, value: str, texts: Sequence[str]) -> np.ndarray | str:
        """Predicted intensities (unclipped), or the reason no probe exists for the value."""
        probe = self.probe(value)
        if isinstance(probe, str):
            return probe
        w, b = probe
        return self._encode(list(texts)) @ w + b

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        flat = [t for w in windows for t in w]
        pred = self.predict(value, flat)
        if isinstance(pred, str):
            return [JudgeAnswer(None, error=pred) for _ in windows]
        return answers_from_scores(self.name, value, windows, pred)

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        pred = self.predict(value, texts)
        if isinstance(pred, str):
            return [None] * len(texts)
        return [float(x) for x in np.clip(pred, -10.0, 10.0)]


@register_judge("probe", options_of=ProbeJudge)
def _make(model: str | None = None, **options: object) -> ProbeJudge:
    """``probe`` or ``probe:<model>``; options vidb=, alpha=, batch_size=, device=."""
    return ProbeJudge(model=model, **options)  # type: ignore[arg-type]

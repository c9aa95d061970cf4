"""The trained judge: a sentence-transformers ``CrossEncoder`` that reads (value, text) and scores how strongly the
text supports (high) or opposes (low) the value, distilled from VIDB and human labels (``valueflow train-judge``).

It ranks a window by score, and rates a text with the score mapped to the VIDB scale by the monotone calibration
stored beside the model (``vidb_calibration.json``, fitted on VIDB when the judge was trained). Scoring is batched
and cached per (value, text), so a text seen in many windows is scored once: it costs one forward pass per
distinct pair, on a CPU, where an LLM judge costs a large-model call per window.

Spec: ``cross`` (the judge at ``release/judge``), ``cross:<folder or Hub id>``; options ``batch_size=``,
``device=``, ``backend=`` (``torch``, or ``onnx``: the int8 graph ``onnx/model_qint8.onnx`` that ``export_onnx``
writes beside the weights and ``valueflow train-judge`` exports, run with onnxruntime alone).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from valueflow.judges.base import Judge, JudgeAnswer, answers_from_scores, register_judge
from valueflow.onnx_int8 import ONNX_DIR, QUANTISED_FILE, export_int8, session
from valueflow.taxonomy import get_taxonomy

DEFAULT_JUDGE = Path("release/judge")
CALIBRATION_FILE = "vidb_calibration.json"


def value_query(value: str) -> str:
    """The first segment of every pair: the value as the judge reads it, theory and name ("Moral Foundations
    Theory: care-harm").

    No definition: on the seed corpus it made the judge worse on held-out real texts (pairwise accuracy 0.618 with
    it, 0.641 without, same 150 steps; ValueNet 0.555 against 0.601) and the pairs a third longer to score.
    """
    tax = get_taxonomy()
    v = tax.value(tax.resolve(value))
    return f"{tax.theory_names[v.theory]}: {v.name.replace('_', ' ')}"


class Calibration:
    """A strictly increasing map from raw judge score to the VIDB scale [-10, 10].

    Fitted by isotonic regression of VIDB intensities on the scores, then drawn through the centres of the isotonic
    steps (so two texts with different scores never get the same rating, which a step function would do to every
    text of a step), and continued past the outermost centres with the overall least-squares slope, clipped to
    [-10, 10] (so more extreme texts keep getting more extreme ratings instead of one flat value).
    """

    def __init__(self, knots_x: Sequence[float], knots_y: Sequence[float], slope: float) -> None:
        self.x, self.y, self.slope = np.asarray(knots_x, float), np.asarray(knots_y, float), float(slope)

    @classmethod
    def fit(cls, scores: np.ndarray, intensities: np.ndarray) -> Calibration:
        from sklearn.isotonic import IsotonicRegression

        scores, intensities = np.asarray(scores, float), np.asarray(intensities, float)
        fitted = IsotonicRegression(y_min=-10, y_max=10, increasing=True).fit_transform(scores, intensities)
        xs, ys = [], []
        for level in np.unique(fitted):
            step = fitted == level
            xs.append(float(scores[step].mean()))
            ys.append(float(level))
        slope = float(np.polyfit(scores, intensities, 1)[0]) if np.ptp(scores) > 0 else 0.0
        return cls(xs, ys, max(slope, 1e-6))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, float)
        if len(self.x) == 1:
            out = self.y[0] + self.slope * (s - self.x[0])
        else:
            out = np.interp(s, self.x, self.y)
            out = np.where(s < self.x[0], self.y[0] + self.slope * (s - self.x[0]), out)
            out = np.where(s > self.x[-1], self.y[-1] + self.slope * (s - self.x[-1]), out)
        return np.clip(out, -10.0, 10.0)

    def to_json(self) -> dict:
        return {"method": "isotonic, through step centres, linear beyond", "knots_x": self.x.tolist(),
                "knots_y": self.y.tolist(), "slope": self.slope}

    @classmethod
    def from_json(cls, d: dict) -> Calibration:
        return cls(d["knots_x"], d["knots_y"], d["slope"])


def load_calibration(model: str) -> Calibration | None:
    """The calibration beside a local judge folder, or from the Hub repo of a judge id; None when there is none."""
    path = Path(model) / CALIBRATION_FILE
    if not path.exists() and not Path(model).exists():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, CALIBRATION_FILE))
        except Exception:  # noqa: BLE001 (no calibration on the Hub: the judge still ranks, it cannot rate)
            return None
    return Calibration.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def export_onnx(folder: str | Path) -> Path:
    """Write ``<folder>/onnx/model_qint8.onnx``: the judge's (input ids, mask, token types) -> score logit, int8."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    sample = model.tokenizer([("Schwartz: benevolence", "an example sentence to trace"), ("a", "short")],
                             padding=True, return_tensors="pt")
    return export_int8(model.model, sample, lambda out: out.logits[:, 0], "logits",
                       Path(folder) / ONNX_DIR / QUANTISED_FILE)


class _OnnxScorer:
    """The int8 graph, the folder's tokenizer and its activation (sigmoid for a one-label CrossEncoder), so that its
    scores sit on the scale the calibration was fitted on."""

    def __init__(self, model: str, threads: int) -> None:
        from transformers import AutoTokenizer

        def local(name: str) -> Path:
            if Path(model).is_dir():
                return Path(model) / name
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(model, name))

        graph = local(f"{ONNX_DIR}/{QUANTISED_FILE}")
        if not graph.exists():
            raise FileNotFoundError(f"{graph} not found: export it with valueflow.judges.cross.export_onnx({model!r})")
        self.session = session(graph, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        def config(name: str) -> dict:  # a folder saved by an older sentence-transformers may lack one
            try:
                path = local(name)
            except Exception:  # noqa: BLE001 (not in the Hub repo either)
                return {}
            return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

        # a one-label CrossEncoder applies a sigmoid unless its config names another activation
        self.sigmoid = str(config("config_sentence_transformers.json").get("activation_fn", "Sigmoid")).endswith("Sigmoid")
        self.max_length = int(config("sentence_bert_config.json").get("max_seq_length") or 512)

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 64, **_: object) -> np.ndarray:
        """Scores of (query, text) pairs, called like ``CrossEncoder.predict`` (its display options ignored)."""
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))  # little padding
        out = np.empty(len(pairs), dtype=float)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], padding=True,
                                 truncation=True, max_length=self.max_length, return_tensors="np")
            out[idx] = self.session.run(None, {n: enc[n].astype(np.int64) for n in self.input_names})[0]
        return 1.0 / (1.0 + np.exp(-out)) if self.sigmoid else out


class CrossJudge(Judge):
    """Ranks by the cross-encoder's score; rates with the calibrated score.

    Args:
        model: a CrossEncoder folder or Hub id (default ``release/judge``).
        batch_size: pairs per forward pass.
        device: torch device (default: sentence-transformers' choice, the GPU when there is one).
        backend: ``torch`` or ``onnx`` (the int8 graph in ``onnx/``, on ``threads`` CPU threads).
    """

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str | None = None,
                 backend: str = "torch", threads: int = 1) -> None:
        self.model_path = str(model or DEFAULT_JUDGE)
        if not Path(self.model_path).exists() and (self.model_path.startswith((".", "/")) or model is None):
            raise FileNotFoundError(f"judge model {self.model_path!r} does not exist (train it: valueflow train-judge)")
        if backend not in ("torch", "onnx"):
            raise ValueError(f"judge backend {backend!r}: use torch or onnx")
        self.batch_size, self.device, self.backend, self.threads = int(batch_size), device, backend, int(threads)
        self.calibration = load_calibration(self.model_path)
        self.name = f"cross:{Path(self.model_path).name}@{self._fingerprint()}"
        self._model = None
        self._cache: dict[tuple[str, str], float] = {}

    def _fingerprint(self) -> str:
        """Changes when the weights change, so cached rankings of an older judge are never reused."""
        weights = sorted(Path(self.model_path).glob("*.safetensors")) if Path(self.model_path).is_dir() else []
        stamp = "|".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights) or self.model_path
        return hashlib.sha1(stamp.encode()).hexdigest()[:10]

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = (_OnnxScorer(self.model_path, self.threads) if self.backend == "onnx"
                           else CrossEncoder(self.model_path, device=self.device))
        return self._model

    def scores(self, value: str, texts: Sequence[str]) -> np.ndarray:
        """Raw scores (higher = more supportive) of ``texts`` for ``value``; each distinct pair is scored once."""
        name = get_taxonomy().resolve(value)
        todo = list(dict.fromkeys(t for t in texts if (name, t) not in self._cache))
        if todo:
            query = value_query(name)
            raw = self.model.predict([(query, t) for t in todo], batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=len(todo) > 5000)
            self._cache.update(zip(((name, t) for t in todo), np.asarray(raw, float).reshape(-1).tolist()))
        return np.array([self._cache[(name, t)] for t in texts], dtype=float)

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        return answers_from_scores(self.name, value, windows, self.scores(value, [t for w in windows for t in w]))

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        if self.calibration is None:
            raise ValueError(f"judge {self.model_path!r} has no {CALIBRATION_FILE}: it can rank but not rate")
        return [float(x) for x in self.calibration(self.scores(value, texts))]


@register_judge("cross", options_of=CrossJudge)
def _make(model: str | None = None, **options: object) -> CrossJudge:
    """``cross`` or ``cross:<folder or Hub id>``; options batch_size=, device=, backend= (torch, onnx), threads=."""
    return CrossJudge(model=model, **options)  # type: ignore[arg-type]

"""The HiVES model card: ``SentenceTransformerModelCardData`` for the Hub metadata, our Jinja template for the body.

The card is a build artifact: every number in it comes from the training record (``hives_training.json`` in the
model folder) and the evaluation metrics (HiVES and its base model on the same texts); nothing is hand-edited.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from valueflow.citation import PAPER_BIBTEX, PAPER_REFERENCE

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_REPO_ID = "valueflow/hives"
METRIC_ROWS = (
    ("ranking_accuracy", "Hierarchical ranking accuracy"),
    ("ranking_accuracy_strict", "Hierarchical ranking accuracy (strict)"),
    ("similarity_correlation", "Similarity correlation (Pearson)"),
    ("mean_cosine", "Mean cosine between texts (collapse monitor)"),
    ("orthogonality_mean", "Orthogonality of value centroids (mean over theories)"),
)


def card_data(training: dict, repo_id: str = DEFAULT_REPO_ID, dataset_id: str = "valueflow/vidb"):
    """The Hub metadata, filled without network access (the base model id and revision come from training)."""
    from sentence_transformers import SentenceTransformerModelCardData

    data = SentenceTransformerModelCardData(
        language="en", license="apache-2.0", model_name="HiVES: hierarchical value embeddings", model_id=repo_id,
        train_datasets=[{"name": "VIDB", "id": dataset_id}], local_files_only=True, generate_widget_examples=False,
        tags=["sentence-transformers", "sentence-similarity", "feature-extraction", "human-values", "valueflow", "hives"],
    )
    base = training.get("base_model", {})
    data.base_model = base.get("id")
    data.base_model_revision = base.get("revision")
    data.datasets = [dataset_id]
    return data


def _model_index(data, evaluation: dict) -> list[dict]:
    """The Hub's model-index: HiVES's scores on the evaluation split, so the Hub shows them beside the model."""
    hives = evaluation.get("hives", {})
    metrics = [
        {"type": key, "name": label, "value": round(float(hives[key]), 4)}
        for key, label in METRIC_ROWS if isinstance(hives.get(key), (int, float))
    ]
    tau = hives.get("intensity_probe", {}).get("kendall_tau")
    if isinstance(tau, (int, float)):
        metrics.append({"type": "kendall_tau", "name": "Intensity probe (Kendall tau)", "value": round(float(tau), 4)})
    if not metrics:
        return []
    dataset = {"name": "VIDB", "type": data.datasets[0] if data.datasets else "valueflow/vidb", "split": evaluation.get("split", "test")}
    return [{"name": data.model_name, "results": [{"task": {"type": "feature-extraction", "name": "Hierarchical value embedding"},
                                                   "dataset": dataset, "metrics": metrics}]}]


def _metadata_yaml(data, evaluation: dict) -> str:
    fields = {
        "language": data.language, "license": data.license, "library_name": data.library_name, "tags": data.tags,
        "datasets": data.datasets, "pipeline_tag": data.pipeline_tag, "base_model": data.base_model,
        "model-index": _model_index(data, evaluation),
    }
    return yaml.safe_dump({k: v for k, v in fields.items() if v not in (None, [])}, sort_keys=False).strip()


def _fmt(x: object) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def metric_table_rows(evaluation: dict) -> list[dict]:
    """Rows of (metric, HiVES, base, difference, oracle, headroom closed) for the card."""
    hives, base, oracle = evaluation.get("hives", {}), evaluation.get("base", {}), evaluation.get("oracle", {})
    closed = evaluation.get("headroom", {}).get("hives", {})

    def row(label: str, a, b, o=None, share=None) -> dict:
        return {"metric": label, "hives": _fmt(a), "base": _fmt(b), "oracle": _fmt(o),
                "diff": f"{a - b:+.3f}" if a is not None and b is not None else "-",
                "closed": f"{share:.0%}" if share is not None else "-"}

    rows = [row(label, hives.get(key), base.get(key), oracle.get(key), closed.get(key)) for key, label in METRIC_ROWS]
    for theory in sorted(hives.get("orthogonality", {})):
        rows.append(row(f"Orthogonality ({theory})", hives["orthogonality"].get(theory),
                        base.get("orthogonality", {}).get(theory), oracle.get("orthogonality", {}).get(theory)))
    rows.append(row("Intensity probe (Kendall tau)", hives.get("intensity_probe", {}).get("kendall_tau"),
                    base.get("intensity_probe", {}).get("kendall_tau")))
    return rows


def render_model_card(training: dict, evaluation: dict, *, repo_id: str = DEFAULT_REPO_ID, eval_data: str = "",
                      embedding_dim: int | None = None, max_seq_length: int | None = None) -> str:
    """README.md of ``release/hives``: YAML metadata + the card body from ``templates/model_card.md.j2``."""
    data = card_data(training, repo_id)
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True)
    body = env.get_template("model_card.md.j2").render(
        repo_id=repo_id,
        model_name=data.model_name,
        base_model=training.get("base_model", {}).get("id", "unknown"),
        base_revision=training.get("base_model", {}).get("revision", "unknown"),
        training=training,
        config=training.get("config", {}),
        eval_data=eval_data or evaluation.get("data", ""),
        eval_rows=evaluation.get("rows", "-"),
        dropped=evaluation.get("dropped_training_texts", 0),
        metric_rows=metric_table_rows(evaluation),
        embedding_dim=embedding_dim,
        max_seq_length=max_seq_length,
        citation=PAPER_BIBTEX,
        reference=PAPER_REFERENCE,
    )
    from cards.release import card_release_section, model_changelog_stats  # version, pinned load, changelog

    release = card_release_section("model", repo_id, model_changelog_stats(evaluation))
    return f"---\n{_metadata_yaml(data, evaluation)}\n---\n\n{body}" + (f"\n{release}" if release else "")

"""The trained judge's card (``release/judge/README.md``): Hub metadata and a Jinja body, every number from the
training record (``judge_training.json``); nothing is hand-edited."""

from __future__ import annotations

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cards.model_card import TEMPLATES
from valueflow.citation import PAPER_BIBTEX, PAPER_REFERENCE

DEFAULT_REPO_ID = "valueflow/vidb-judge"


def _metadata(training: dict) -> str:
    learned = training.get("held_out", {}).get("judges", {}).get("learned", {})
    index = []
    if isinstance(learned.get("pairwise_accuracy"), float):
        index = [{"name": "VIDB judge", "results": [{
            "task": {"type": "text-ranking", "name": "Value intensity (direct rating)"},
            "dataset": {"name": "VIDB", "type": "valueflow/vidb", "split": training["held_out"]["split"]},
            "metrics": [{"type": "pairwise_accuracy", "name": "Pairwise accuracy", "value": learned["pairwise_accuracy"]}]
            + ([{"type": "spearman", "name": "Spearman", "value": learned["spearman"]}] if learned.get("spearman") is not None else [])}]}]
    fields = {"language": "en", "license": "apache-2.0", "library_name": "sentence-transformers",
              "tags": ["sentence-transformers", "value-intensity", "regression", "human-values", "valueflow"],
              "datasets": ["valueflow/vidb"], "pipeline_tag": "text-classification",
              "base_model": training.get("base_model_hub_id") or training.get("base_model"),
              "model-index": index}
    return yaml.safe_dump({k: v for k, v in fields.items() if v not in (None, [])}, sort_keys=False).strip()


def render_judge_card(training: dict, *, repo_id: str = DEFAULT_REPO_ID) -> str:
    from cards.release import card_release_section

    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True)
    held_out = training.get("held_out") or {}
    body = env.get_template("judge_card.md.j2").render(
        repo_id=repo_id, base_model=training.get("base_model"), training=training, config=training["config"],
        extra=bool(training["config"].get("extra")), held_out=held_out,
        min_gap=next(iter(held_out.get("judges", {}).values()), {}).get("min_gap", 2.0),
        citation=PAPER_BIBTEX, reference=PAPER_REFERENCE)
    learned = held_out.get("judges", {}).get("learned", {})
    release = card_release_section("judge", repo_id, {"judge": learned, "rows": training.get("rows")})
    return f"---\n{_metadata(training)}\n---\n\n{body}" + (f"\n{release}" if release else "")

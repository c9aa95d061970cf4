"""The VIDB dataset card (release/vidb/README.md), generated from the build's stats and the data files.

The YAML header is what makes ``load_dataset("<repo or folder>", "<config>")`` work without a loading script:
``configs`` lists the Parquet files of every config and split, ``dataset_info`` their features (read from the
Parquet schemas, so the card can never disagree with the files) and row counts. The body is rendered from
``stats.json`` by ``templates/dataset_card.md.j2``: never edit the README by hand, rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from valueflow.citation import PAPER_BIBTEX, PAPER_REFERENCE
from valueflow.io import write_text
from valueflow.taxonomy import THEORIES, get_taxonomy

CONFIGS = ("full", "filtered", "rankings")
SPLIT_ORDER = ("train", "validation", "test")
TAGS = ["values", "human-values", "moral-foundations", "schwartz", "value-alignment", "plackett-luce", "valueflow"]
TEMPLATE = "dataset_card.md.j2"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _license(sources: list[dict]) -> dict:
    """One Hub licence id when every source shares it; otherwise ``other`` with the per-source list in the body."""
    licences = {str(s["license"]).split(" (")[0].strip() for s in sources}
    known = {"CC BY 4.0": "cc-by-4.0", "CC BY-SA 4.0": "cc-by-sa-4.0", "MIT": "mit", "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0"}
    if len(licences) == 1 and next(iter(licences)) in known:
        return {"license": known[next(iter(licences))]}
    return {"license": "other", "license_name": "mixed-source-licences"}


def yaml_header(release_dir: Path, stats: dict) -> dict:
    """The card's YAML metadata: configs with data_files, dataset_info read from the Parquet files, tags."""
    import datasets
    import pyarrow.parquet as pq

    configs, infos = [], []
    for config in CONFIGS:
        folder = release_dir / "data" / config
        files = [s for s in SPLIT_ORDER if (folder / f"{s}.parquet").exists()]
        if not files:
            continue
        entry = {"config_name": config, "data_files": [{"split": s, "path": f"data/{config}/{s}.parquet"} for s in files]}
        if config == "full":
            entry["default"] = True
        configs.append(entry)
        schema = pq.read_schema(folder / f"{files[0]}.parquet")
        features = datasets.Features.from_arrow_schema(schema)
        infos.append(
            {
                "config_name": config,
                "features": features._to_yaml_list(),
                "splits": [
                    {"name": s, "num_bytes": int(pq.read_table(folder / f"{s}.parquet").nbytes),
                     "num_examples": int(pq.read_metadata(folder / f"{s}.parquet").num_rows)}
                    for s in files
                ],
            }
        )
    header = {
        **_license(stats.get("sources", [])),
        "language": ["en"],
        "pretty_name": "VIDB: Value Intensity DataBase",
        "task_categories": ["text-classification"],
        "task_ids": ["text-scoring"],
        "size_categories": [_size_category(int(stats.get("texts", 0)))],
        "tags": TAGS,
        "configs": configs,
        "dataset_info": infos,
    }
    return header


def render_dataset_card(release_dir: str | Path, stats: dict | None = None, repo_id: str = "valueflow/vidb") -> str:
    """The full README.md text for ``release_dir`` (reads ``stats.json`` there unless ``stats`` is given)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    release_dir = Path(release_dir)
    stats = stats if stats is not None else json.loads((release_dir / "stats.json").read_text(encoding="utf-8"))
    tax = get_taxonomy()
    theories = [
        {
            "id": t,
            "name": tax.theory_names[t],
            "values": [
                {"name": v.name, "definition": v.definition, **stats.get("per_value", {}).get(v.name, {})}
                for v in tax.values_of(t)
            ],
        }
        for t in THEORIES
    ]
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    header = yaml.safe_dump(yaml_header(release_dir, stats), sort_keys=False, allow_unicode=True, width=120)
    body = env.get_template(TEMPLATE).render(
        stats=stats,
        build=stats.get("build", {}),
        theories=theories,
        repo_id=repo_id,
        configs=[c for c in CONFIGS if (release_dir / "data" / c).exists()],
        paper_bibtex=PAPER_BIBTEX,
        paper_reference=PAPER_REFERENCE,
    )
    from cards.release import card_release_section  # version, pinned load, changelog, release BibTeX

    release = card_release_section("dataset", repo_id, stats)
    return f"---\n{header}---\n\n{body}" + (f"\n{release}" if release else "")


def write_dataset_card(release_dir: str | Path, stats: dict | None = None, repo_id: str = "valueflow/vidb") -> Path:
    release_dir = Path(release_dir)
    return write_text(render_dataset_card(release_dir, stats, repo_id), release_dir / "README.md")

"""Release versioning: the version and Hub repos from params, the "load this exact version" snippets, BibTeX for
the release, a changelog against the previous release, and CITATION.cff.

Everything here returns text (Markdown, BibTeX, YAML) so that the dataset and model card renderers can include it
and ``valueflow publish`` can write it; nothing here talks to the Hub. The release history is one small JSON
record per published version under ``releases/`` (kept in git), which is what the next changelog compares with.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import Field, field_validator

from valueflow.citation import PAPER_BIBTEX, PAPER_REFERENCE
from valueflow.hub import HUB_ATTEMPTS, HUB_RETRY_WAIT_S, HUB_TIMEOUT_S
from valueflow.io import write_json, write_text
from valueflow.params import DEFAULT_PARAMS, ParamsError, StageParams

# Semantic versioning 2.0.0 (https://semver.org), without a leading "v": the tag adds it.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
DEFAULT_DATASET_REPO = "valueflow/vidb"
DEFAULT_MODEL_REPO = "valueflow/hives"
DEFAULT_JUDGE_REPO = "valueflow/vidb-judge"
SOFTWARE_URL = "https://github.com/valueflow/valueflow"
PAPER_URL = "https://arxiv.org/abs/2602.03160"


def check_version(version: str) -> str:
    """Refuse anything that is not plain semver: the tag ``v<version>`` is permanent once pushed."""
    version = str(version).strip()
    if version.startswith("v"):
        raise ValueError(f"release.version {version!r}: write the version without the leading 'v' (the tag adds it)")
    if not SEMVER.fullmatch(version):
        raise ValueError(f"release.version {version!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)")
    return version


def tag_for(version: str) -> str:
    """The Hub tag of a release: ``v<version>`` on both repos."""
    return f"v{check_version(version)}"


def version_key(version: str) -> tuple:
    """Semver precedence: numbers compare numerically; a pre-release sorts before its release."""
    m = SEMVER.fullmatch(version)
    if not m:
        raise ValueError(f"{version!r} is not a semantic version")
    major, minor, patch, pre = int(m[1]), int(m[2]), int(m[3]), m[4]
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ((2, 0, ""),)
    return (major, minor, patch, pre_key)


class ReleaseConfig(StageParams):
    """The ``release:`` section of params.yaml (the ``publish`` stage and the cards' release sections)."""

    section: ClassVar[str] = "release"

    version: str
    dataset_repo: str = DEFAULT_DATASET_REPO
    model_repo: str = DEFAULT_MODEL_REPO
    dataset_dir: Path = Path("release/vidb")
    model_dir: Path = Path("release/hives")
    judge_repo: str = DEFAULT_JUDGE_REPO
    judge_dir: Path = Path("release/judge")
    dry_run: bool = True
    endpoint: str | None = None  # None: the Hub (or $HF_ENDPOINT)
    private: bool = False
    receipt: Path = Path("release/receipt.json")
    history_dir: Path = Path("releases")
    max_attempts: int = Field(HUB_ATTEMPTS, ge=1)
    retry_wait_s: float = Field(HUB_RETRY_WAIT_S, ge=0)
    timeout_s: float = Field(HUB_TIMEOUT_S, gt=0)  # per Hub request; every call is also retried max_attempts times at most
    allow_insecure_http: bool = False  # send the token over plain http to a non-loopback endpoint (a trusted network)

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, v: object) -> str:
        return check_version(str(v))

    @property
    def tag(self) -> str:
        return tag_for(self.version)


# --- snippets ----------------------------------------------------------------------------------------------


def dataset_load_snippet(repo_id: str, version: str, configs: tuple[str, ...] = ("full", "filtered", "rankings")) -> str:
    """Markdown: how to load exactly this version of the dataset (pinned by the tag, not by ``main``)."""
    tag = tag_for(version)
    first = configs[0] if configs else "full"
    lines = [
        "```python",
        "from datasets import load_dataset",
        "",
        f'vidb = load_dataset("{repo_id}", "{first}", revision="{tag}")',
    ]
    for name in configs[1:]:
        lines.append(f'{name} = load_dataset("{repo_id}", "{name}", revision="{tag}")')
    lines.append("```")
    return "\n".join(lines)


def model_load_snippet(repo_id: str, version: str) -> str:
    """Markdown: how to load exactly this version of the model."""
    tag = tag_for(version)
    return "\n".join([
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{repo_id}", revision="{tag}")',
        'embeddings = model.encode(["Helping a stranger carry groceries up the stairs."])',
        "```",
    ])


def judge_load_snippet(repo_id: str, version: str) -> str:
    """Markdown: how to load exactly this version of the trained judge and score a text for every value."""
    tag = tag_for(version)
    return "\n".join([
        "```python",
        "import json",
        "from huggingface_hub import hf_hub_download",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'judge = SentenceTransformer("{repo_id}", revision="{tag}")',
        f'values = json.load(open(hf_hub_download("{repo_id}", "judge_values.json", revision="{tag}")))["values"]',
        'scores = dict(zip(values, judge.encode(["Helping a stranger carry groceries up the stairs."])[0]))',
        "```",
    ])


def release_bibtex(kind: str, repo_id: str, version: str, year: int | None = None) -> str:
    """BibTeX for the released artifact itself (the paper has its own entry): what to cite for reproducibility."""
    year = year or date.today().year
    name = repo_id.split("/")[-1]
    key = re.sub(r"[^a-z0-9]", "", f"{name}{version}".lower())
    what = {"dataset": "VIDB: Value Intensity DataBase", "judge": "VIDB judge: a value-intensity judge for 32 values"}.get(
        kind, "HiVES: Hierarchical Value Embedding Space model")
    return "\n".join([
        f"@misc{{{key},",
        f"  title        = {{{{{what}}} (version {version})}},",
        "  author       = {{valueflow contributors}},",
        f"  year         = {{{year}}},",
        "  publisher    = {Hugging Face},",
        f"  howpublished = {{\\url{{https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{repo_id}/tree/{tag_for(version)}}}}},",
        f"  note         = {{Hub tag {tag_for(version)}. Built with valueflow, implementing {PAPER_REFERENCE}}}",
        "}",
    ])


# --- history and changelog ---------------------------------------------------------------------------------


def flatten_numbers(obj: object, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested stats as ``a.b.c -> number`` (booleans and strings are not counts)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix.rstrip(".")] = obj
    return out


def release_records(history_dir: str | Path) -> dict[str, dict]:
    """Published releases recorded under ``history_dir`` (``v<version>.json``), keyed by version."""
    history_dir = Path(history_dir)
    records = {}
    for path in sorted(history_dir.glob("v*.json")) if history_dir.is_dir() else []:
        version = path.stem[1:]
        if SEMVER.fullmatch(version):
            records[version] = json.loads(path.read_text(encoding="utf-8"))
    return records


def previous_release(history_dir: str | Path, version: str) -> tuple[str, dict] | None:
    """The newest recorded release older than ``version``, or None for a first release."""
    older = [(v, r) for v, r in release_records(history_dir).items() if version_key(v) < version_key(version)]
    return max(older, key=lambda vr: version_key(vr[0])) if older else None


def write_release_record(history_dir: str | Path, version: str, artifacts: dict[str, dict]) -> Path:
    """Record a published release: per artifact its repo, commit and stats, for the next changelog."""
    record = {"version": version, "tag": tag_for(version), "date": date.today().isoformat(), "artifacts": artifacts}
    return write_json(record, Path(history_dir) / f"{tag_for(version)}.json")


def changelog(kind_key: str, stats: dict, history_dir: str | Path, version: str, max_rows: int = 40) -> str:
    """Markdown changelog of ``stats`` (this release's counts) against the previous recorded release.

    ``kind_key`` is the artifact's key in the history records (``vidb`` or ``hives``). Counts are compared leaf by
    leaf; added and removed counts are listed too, so a renamed value or a dropped source shows up.
    """
    prev = previous_release(history_dir, version)
    if prev is None:
        return f"First release ({tag_for(version)}): no earlier release to compare with."
    prev_version, record = prev
    old = _comparable(flatten_numbers(record.get("artifacts", {}).get(kind_key, {}).get("stats", {})))
    new = _comparable(flatten_numbers(stats))
    rows = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None:
            rows.append(f"| {key} | (new) | {_fmt(b)} | |")
        elif b is None:
            rows.append(f"| {key} | {_fmt(a)} | (removed) | |")
        else:
            rows.append(f"| {key} | {_fmt(a)} | {_fmt(b)} | {_fmt(b - a, signed=True)} |")
    head = f"Changes since {tag_for(prev_version)} ({record.get('date', 'date unknown')}):"
    if not rows:
        return f"{head} no change in the recorded counts."
    more = f"\n\n({len(rows) - max_rows} more changed counts not shown.)" if len(rows) > max_rows else ""
    table = "\n".join(["| count | before | now | change |", "|---|---:|---:|---:|", *rows[:max_rows]])
    return f"{head}\n\n{table}{more}"


_TIMING = re.compile(r"(seconds|_s|_sec|time|duration|elapsed)$")


def _comparable(counts: dict[str, float]) -> dict[str, float]:
    """Counts worth a changelog line: timings change on every build and say nothing about the release."""
    return {k: v for k, v in counts.items() if not _TIMING.search(k)}


def model_changelog_stats(evaluation: dict) -> dict:
    """What the HiVES changelog compares: its own evaluation scores and the evaluation size (not the base's)."""
    return {"hives": evaluation.get("hives", {}), "rows": evaluation.get("rows")}


def _fmt(x: float, signed: bool = False) -> str:
    if isinstance(x, float) and not float(x).is_integer():
        return f"{x:+.4g}" if signed else f"{x:.4g}"
    return f"{int(x):+d}" if signed else f"{int(x)}"


# --- the section the cards include -------------------------------------------------------------------------


def release_section(
    kind: str,
    repo_id: str,
    version: str,
    stats: dict | None = None,
    history_dir: str | Path = "releases",
    configs: tuple[str, ...] = ("full", "filtered", "rankings"),
    heading_level: int = 2,
    include_paper_bibtex: bool = True,
) -> str:
    """Markdown for a card: load this exact version, the changelog, and how to cite (paper + release).

    ``kind`` is ``dataset`` or ``model``. The dataset and model card renderers include this verbatim, so the
    version, the tag and the citation come from one place. A card that already cites the paper passes
    ``include_paper_bibtex=False`` and gets only the release's own BibTeX.
    """
    snippets = {"dataset": lambda: dataset_load_snippet(repo_id, version, configs),
                "model": lambda: model_load_snippet(repo_id, version), "judge": lambda: judge_load_snippet(repo_id, version)}
    if kind not in snippets:
        raise ValueError(f"kind must be one of {', '.join(snippets)}, not {kind!r}")
    h = "#" * heading_level
    tag = tag_for(version)
    snippet = snippets[kind]()
    kind_key = {"dataset": "vidb", "model": "hives", "judge": "judge"}[kind]
    paper = ["If you use this release, please cite the VALUEFLOW paper:", "", "```bibtex", PAPER_BIBTEX, "```", "",
             f"and the release itself ({tag}):"] if include_paper_bibtex else [f"To cite this release ({tag}):"]
    return "\n".join([
        f"{h} Version {version}",
        "",
        f"This card describes release **{tag}**. Load exactly this version (the tag never moves; `main` may):",
        "",
        snippet,
        "",
        f"{h}# Changelog",
        "",
        changelog(kind_key, stats or {}, history_dir, version),
        "",
        f"{h} {'Citation' if include_paper_bibtex else 'Citing this release'}",
        "",
        *paper,
        "",
        "```bibtex",
        release_bibtex(kind, repo_id, version),
        "```",
        "",
    ])


def card_release_section(
    kind: str,
    repo_id: str,
    stats: dict | None = None,
    params_path: str | Path = DEFAULT_PARAMS,
    include_paper_bibtex: bool = False,
) -> str:
    """The release section for a card, for ``release.version`` in params.yaml; empty when no release is configured.

    What the card renderers call: the dataset card with VIDB's stats, the model card with
    ``model_changelog_stats(evaluation)``. Cards that already cite the paper keep ``include_paper_bibtex=False``.
    """
    try:
        cfg = ReleaseConfig.load(params_path)
    except (FileNotFoundError, ParamsError):
        return ""
    return release_section(kind, repo_id, cfg.version, stats, cfg.history_dir, include_paper_bibtex=include_paper_bibtex)


# --- CITATION.cff ------------------------------------------------------------------------------------------


def citation_cff(version: str) -> str:
    """CITATION.cff (format 1.2.0) for the software, with the VALUEFLOW paper as the preferred citation."""
    doc = {
        "cff-version": "1.2.0",
        "message": "If you use valueflow, VIDB or HiVES, please cite the VALUEFLOW paper (preferred-citation) "
        "and the software release you used.",
        "type": "software",
        "title": "valueflow: VIDB, HiVES, an anchor-based value-intensity evaluator and a steering study",
        "version": check_version(version),
        "authors": [{"name": "valueflow contributors"}],
        "license": "Apache-2.0",
        "repository-code": SOFTWARE_URL,
        "keywords": ["value alignment", "value intensity", "Plackett-Luce", "sentence embeddings", "VALUEFLOW"],
        "references": [
            {"type": "dataset", "title": f"VIDB: Value Intensity DataBase (version {version})",
             "authors": [{"name": "valueflow contributors"}], "version": version,
             "url": f"https://huggingface.co/datasets/{DEFAULT_DATASET_REPO}/tree/{tag_for(version)}"},
            {"type": "software", "title": f"HiVES: Hierarchical Value Embedding Space model (version {version})",
             "authors": [{"name": "valueflow contributors"}], "version": version,
             "url": f"https://huggingface.co/{DEFAULT_MODEL_REPO}/tree/{tag_for(version)}"},
        ],
        "preferred-citation": {
            "type": "conference-paper",
            "title": "VALUEFLOW",
            "authors": [{"family-names": n} for n in ("Kim", "Hyeon", "Oh", "Do")],
            "year": 2026,
            "collection-title": "Proceedings of the 43rd International Conference on Machine Learning (ICML)",
            "conference": {"name": "International Conference on Machine Learning (ICML)"},
            "identifiers": [{"type": "other", "value": "arXiv:2602.03160", "description": "arXiv identifier"}],
            "url": PAPER_URL,
        },
    }
    header = "# Generated by `valueflow cards` (and `valueflow publish`) from params.yaml release.version; do not edit by hand.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def write_citation_cff(version: str, path: str | Path = "CITATION.cff") -> Path:
    return write_text(citation_cff(version), path)

"""Small release folders built by the tests themselves: a VIDB dataset repo, a HiVES-like model folder and a judge.

They follow the fixed release layout (release/vidb: README.md with YAML ``configs``, data/{full,filtered}/
{train,validation,test}.parquet, data/rankings/train.parquet, stats.json; release/hives: a sentence-transformers
folder with its README.md), so publishing and loading them exercises exactly what a real release does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from validation.schemas import SPLITS, VidbSchema
from valueflow.taxonomy import get_taxonomy

CONFIG_SPLITS = {"full": SPLITS, "filtered": SPLITS, "rankings": ("train",)}


def vidb_rows(n_per_value: int = 3, values: tuple[str, ...] = ("benevolence", "care-harm", "justice")) -> pd.DataFrame:
    tax = get_taxonomy()
    rng = np.random.default_rng(0)
    rows = []
    for value in values:
        v = tax.value(value)
        l1, l2, l3 = tax.path(v.name, None)
        for i in range(n_per_value * len(SPLITS)):
            intensity = float(np.round(rng.uniform(-9, 9), 3))
            rows.append({
                "text_id": f"{value[:4]}{i:04d}", "text": f"A short text number {i} about {value}.",
                "source": "seed", "source_id": f"{value}-{i}", "license": "CC BY 4.0", "theory": v.theory,
                "value": v.name, "level_1": l1, "level_2": l2, "level_3": l3,
                "direction": 1 if intensity > 0 else -1, "reference_intensity": None,
                "utility": intensity / 3, "utility_se": 0.2, "intensity": intensity,
                "intensity_ci_low": max(-10.0, intensity - 1), "intensity_ci_high": min(10.0, intensity + 1),
                "n_rankings": 6, "n_judges": 2, "flag": "" if i % 4 else "low_agreement", "in_filtered": bool(i % 4),
                "split": SPLITS[i % len(SPLITS)],
            })
    df = pd.DataFrame(rows)
    df["direction"] = df["direction"].astype("Int8")
    df["reference_intensity"] = df["reference_intensity"].astype(float)
    return VidbSchema.validate(df, lazy=True)


def dataset_readme(version: str, extra_body: str = "") -> str:
    configs = []
    for name, splits in CONFIG_SPLITS.items():
        entry = {"config_name": name, "data_files": [{"split": s, "path": f"data/{name}/{s}.parquet"} for s in splits]}
        if name == "full":
            entry["default"] = True
        configs.append(entry)
    import yaml

    meta = {"license": "cc-by-nc-sa-4.0", "language": ["en"], "pretty_name": "VIDB", "configs": configs}
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# VIDB {version}\n\n{extra_body}\n"


def make_vidb_release(folder: Path, version: str = "1.0.0", df: pd.DataFrame | None = None) -> Path:
    df = vidb_rows() if df is None else df
    for split in SPLITS:
        part = df[df["split"] == split].reset_index(drop=True)
        (folder / "data/full").mkdir(parents=True, exist_ok=True)
        (folder / "data/filtered").mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"data/full/{split}.parquet", index=False)
        part[part["in_filtered"]].reset_index(drop=True).to_parquet(folder / f"data/filtered/{split}.parquet", index=False)
    (folder / "data/rankings").mkdir(parents=True, exist_ok=True)
    rankings = pd.DataFrame({
        "ranking_id": ["r1", "r2"], "value": ["benevolence", "justice"], "judge": ["reference:v1", "reference:v1"],
        "window": [["bene0000", "bene0001"], ["just0000", "just0001"]],
        "order": [["bene0001", "bene0000"], ["just0000", "just0001"]],
        "created_at": ["2026-01-01T00:00:00Z"] * 2, "prompt_hash": ["-", "-"],
    })
    rankings.to_parquet(folder / "data/rankings/train.parquet", index=False)
    stats = {"n_texts": len(df), "per_value": df["value"].value_counts().sort_index().to_dict(),
             "n_filtered": int(df["in_filtered"].sum())}
    (folder / "stats.json").write_text(json.dumps(stats, indent=2))
    (folder / "README.md").write_text(dataset_readme(version))
    return folder


def make_hives_release(folder: Path, version: str = "1.0.0") -> Path:
    """The base model saved as a sentence-transformers folder: what the HiVES export produces, untrained."""
    from valueflow.models import load_sentence_model

    model = load_sentence_model()
    model.save(str(folder))
    (folder / "taxonomy.json").write_text(json.dumps({"values": [v.name for v in get_taxonomy().values]}))
    card = "---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n---\n\n"
    (folder / "README.md").write_text(card + f"# HiVES {version}\n")
    return folder


def make_judge_release(folder: Path, version: str = "1.0.0") -> Path:
    """An unfitted value head on the base model, with its value list, a calibration and a card: what
    ``train_judge`` exports."""
    import torch
    from sentence_transformers.models import Dense

    from valueflow.judges.value_head import CALIBRATION_FILE, Calibration, HeadConfig, build_judge_model, save_judge
    from valueflow.models import load_sentence_model

    values = [v.name for v in get_taxonomy().values]
    head = Dense(384, len(values), activation_function=torch.nn.Identity())
    torch.nn.init.normal_(head.linear.weight, generator=torch.Generator().manual_seed(0))
    save_judge(build_judge_model(load_sentence_model(), head), folder, values, "all-MiniLM-L6-v2", HeadConfig())
    (folder / CALIBRATION_FILE).write_text(json.dumps(Calibration([-1.0, 1.0], [-8.0, 8.0], 8.0).to_json()))
    card = "---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\npipeline_tag: text-classification\n---\n\n"
    (folder / "README.md").write_text(card + f"# VIDB judge {version}\n")
    return folder

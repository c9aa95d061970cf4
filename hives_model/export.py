"""Export ``release/hives/``: the trained sentence-transformers folder, the taxonomy JSON, the int8 ONNX graph.

The folder must load with ``SentenceTransformer(path)`` alone: every module must be a built-in
sentence-transformers module (no ``trust_remote_code``), which ``check_builtin_modules`` enforces.
The model card (README.md) is rendered by ``cards.model_card`` and written by the command that composes both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from valueflow.io import atomic_dir, write_json
from valueflow.taxonomy import get_taxonomy

TAXONOMY_FILE = "taxonomy.json"


def check_builtin_modules(model_dir: str | Path) -> list[str]:
    """The module types of the folder; refuses any module that is not part of sentence-transformers."""
    modules = json.loads((Path(model_dir) / "modules.json").read_text(encoding="utf-8"))
    types = [m["type"] for m in modules]
    foreign = [t for t in types if not t.startswith("sentence_transformers.")]
    if foreign:
        raise ValueError(f"{model_dir}: modules {foreign} are not built into sentence-transformers; "
                         "the release must load without trust_remote_code")
    return types


def export_release(model_dir: str | Path, release_dir: str | Path, *, onnx: bool = True, readme: str | None = None) -> Path:
    """Build the release folder beside its target and swap it in (atomic at the folder level)."""
    model_dir, release_dir = Path(model_dir), Path(release_dir)
    check_builtin_modules(model_dir)
    with atomic_dir(release_dir) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        write_json(get_taxonomy().to_json(), tmp / TAXONOMY_FILE)
        if onnx:
            from hives_model.onnx_export import export_onnx_int8

            export_onnx_int8(tmp)
        if readme is not None:
            (tmp / "README.md").write_text(readme, encoding="utf-8")
    return release_dir

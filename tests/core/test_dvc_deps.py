"""dvc.yaml: every stage lists the project code it imports (so `dvc status` sees a code change), in pipeline order.

A stage's code is derived, not hand-kept: the Typer function behind its ``valueflow <command>`` (the imports in
its body and the top-level imports of its command module), then every project module those import, transitively
(imports anywhere in a module count, including the lazy ones inside functions, and so does each imported module's
package ``__init__``). ``valueflow/cli.py`` (the wiring of every command) is not a stage's code.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from valueflow.io import PROJECT_ROOT

PROJECT_PACKAGES = ("valueflow", "validation", "builders", "hives_model", "evaluation", "cards")
# files a module reads at run time, which a change to must rerun the stage like a code change
DATA_FILES = {
    "valueflow.taxonomy": ["valueflow/taxonomy.yaml"],
    "cards.dataset_card": ["cards/templates/dataset_card.md.j2"],
    "cards.model_card": ["cards/templates/model_card.md.j2"],
    "cards.judge_card": ["cards/templates/judge_card.md.j2"],
}
PIPELINE_ORDER = ["ingest", "collect", "aggregate", "build_vidb", "train_hives", "eval_hives", "train_judge", "eval_evaluator",
                  "steer", "eval_steering", "publish"]


def module_file(name: str) -> Path | None:
    """The source file of a project module (a package's ``__init__.py``), or None for anything else."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    rel = Path(*name.split("."))
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if (PROJECT_ROOT / candidate).is_file():
            return candidate
    return None


def _imported_names(nodes: list[ast.AST], package: str) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                names.update(a.name for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = importlib.util.resolve_name("." * sub.level + (sub.module or ""), package) if sub.level else sub.module
                names.add(base)
                names.update(f"{base}.{a.name}" for a in sub.names)  # `from pkg import module`
    return names


def _with_parents(names: set[str]) -> set[str]:
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return {n for n in out if module_file(n) is not None}


def module_imports(name: str) -> set[str]:
    path = PROJECT_ROOT / module_file(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _with_parents(_imported_names([ast.parse(path.read_text(encoding="utf-8"))], package))


def command_modules(command: str) -> set[str]:
    """The project modules the ``valueflow <command>`` runs, transitively."""
    from valueflow.cli import app

    callback = next(c.callback for c in app.registered_commands
                    if (c.name or c.callback.__name__.replace("_", "-")) == command)
    module = callback.__module__
    tree = ast.parse((PROJECT_ROOT / module_file(module)).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == callback.__name__)
    # the command module counts as a file, but only its top level and this function are walked, not the other commands
    seen: set[str] = {module}
    todo = _with_parents(_imported_names([*top, func], module.rpartition(".")[0])) - seen
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo |= module_imports(name) - seen
    return seen


def stage_code(command: str) -> set[str]:
    """The files (relative paths) a stage's code consists of: its modules and the data files they read."""
    modules = command_modules(command)
    files = {str(module_file(m)) for m in modules}
    files.update(f for m in modules for f in DATA_FILES.get(m, []))
    return files


def _dvc() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = _dvc()["stages"]


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_lists_every_module_its_command_imports(stage):
    spec = STAGES[stage]
    command = spec["cmd"].split()[1]
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])]
    missing = sorted(f for f in stage_code(command) if not _covered(f, deps))
    assert not missing, f"dvc.yaml stage {stage!r} (valueflow {command}) misses deps: {missing}"


def test_stages_are_in_pipeline_order_and_read_their_own_params():
    assert list(STAGES) == PIPELINE_ORDER
    for name, spec in STAGES.items():
        section = "release" if name == "publish" else name
        assert section in [p if isinstance(p, str) else next(iter(p)) for p in spec.get("params", [])], name


def test_the_derivation_sees_lazy_imports_and_package_inits():
    collect = command_modules("collect")
    # collect imports the judges lazily through make_judge's package: the registry and every built-in judge count
    assert {"builders.collect", "valueflow.judges", "valueflow.judges.registry", "valueflow.judges.chat",
            "validation.schemas", "valueflow.io", "valueflow.params"} <= collect
    assert "valueflow.cli" not in collect and "hives_model.train" not in collect

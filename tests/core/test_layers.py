"""The import layers of README's layout section, checked on the source (imports anywhere in a module count).

Lowest first: the core (``valueflow``, but its CLI) -> ``validation`` -> ``cards`` -> the stage packages
(``builders``, ``hives_model``, ``evaluation``), which never import each other -> ``valueflow/cli.py``. A module
imports its own package and lower layers only, so a stage reads another stage's files, never its functions.
"""

from __future__ import annotations

import pytest

from tests.core.test_dvc_deps import PROJECT_PACKAGES, module_imports
from valueflow.io import PROJECT_ROOT

LAYER = {"valueflow": 0, "validation": 1, "cards": 2, "builders": 3, "hives_model": 3, "evaluation": 3}


def _modules() -> list[str]:
    names = []
    for pkg in PROJECT_PACKAGES:
        for f in sorted((PROJECT_ROOT / pkg).rglob("*.py")):
            names.append(".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__"))
    return [n for n in names if n != "valueflow.cli"]


@pytest.mark.parametrize("module", _modules())
def test_module_imports_only_its_package_and_lower_layers(module):
    own = module.split(".")[0]
    wrong = sorted(m for m in module_imports(module) if (p := m.split(".")[0]) != own and LAYER[p] >= LAYER[own])
    assert not wrong, f"{module} imports {wrong}: not a lower layer (README, Layout)"


def test_judges_base_does_not_import_the_registry_or_a_judge():
    assert not {m for m in module_imports("valueflow.judges.base") if m.startswith("valueflow.judges")} - {"valueflow.judges"}

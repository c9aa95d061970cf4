"""Fail when the committed dvc.lock is stale: a change to code, data or params that was not followed by `dvc repro`.

Runs in CI on a fresh clone, without rerunning the pipeline and without pulling: it asks `dvc status` which deps
and params differ from the hashes in dvc.lock and keeps only the project's own inputs (code, seed data, params,
the stage command). The pipeline's outputs are left out: a clone has none of the cached ones (they live in the DVC
remote), and a stage whose upstream output changed is reported through that upstream stage's changed input.
The outputs kept in git (`cache: false`: metrics JSONs, plot CSVs, CITATION.cff) must match the lock, so the
committed numbers are those of the committed lock.

Usage: ``python .ci/check_lock.py`` from the project root. Exit 0: the lock is current; 1: it is stale (each
stale stage named with its changed inputs); 2: no dvc.lock (run `dvc repro` and commit it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

FIX = "run `dvc repro` and commit dvc.lock with metrics/ and the plots' CSVs"


def _path(entry: str | dict) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def pipeline_outputs(dvc_yaml: dict) -> tuple[list[str], set[str]]:
    """Every stage's output paths, and those kept in git (``cache: false``) rather than in the DVC cache."""
    outs, in_git = [], set()
    for spec in dvc_yaml["stages"].values():
        for entry in (e for kind in ("outs", "metrics", "plots") for e in spec.get(kind, [])):
            path = _path(entry)
            outs.append(path)
            if isinstance(entry, dict) and entry[path] and entry[path].get("cache") is False:
                in_git.add(path)
    return outs, in_git


def _get(params: dict, key: str) -> object:
    for part in key.split("."):
        params = params.get(part) if isinstance(params, dict) else None
    return params


def _produced(path: str, outs: list[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


def changed_keys(old: object, new: object, key: str) -> list[str]:
    """The leaf params under ``key`` whose values differ (a section tracked whole is named down to its keys)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for sub in sorted(set(old) | set(new), key=str)
                for k in changed_keys(old.get(sub), new.get(sub), f"{key}.{sub}")]
    return [] if old == new else [key]


def stale_inputs(status: dict, dvc_yaml: dict, lock: dict, params: dict[str, dict]) -> list[str]:
    """One line per stale stage, naming what changed; empty when dvc.lock is current.

    ``status`` is ``dvc status --json``: stage -> list of ``"changed command"`` and ``{"changed deps": {path:
    state}}`` / ``{"changed outs": ...}``, where a params file's state is a dict of param -> state. ``lock`` is
    dvc.lock and ``params`` each params file's current content, to name the keys that changed in a section.
    """
    outs, in_git = pipeline_outputs(dvc_yaml)
    problems = []
    for stage, changes in status.items():
        name = stage.split(":")[-1]
        if name not in lock.get("stages", {}):
            problems.append(f"stage {name!r}: not in dvc.lock")
            continue
        locked = lock["stages"][name].get("params", {})
        found = []
        for change in changes:
            if change == "changed command":
                found.append("its cmd changed")
                continue
            if not isinstance(change, dict):  # "always changed"
                continue
            for path, state in change.get("changed deps", {}).items():
                if isinstance(state, dict):  # a params file: param -> state
                    for key, value in state.items():
                        old_value = locked.get(path, {}).get(key)
                        new_value = _get(params.get(path, {}), key)
                        keys = changed_keys(old_value, new_value, key) if value == "modified" else [key]
                        found += [f"param {k} {value}" for k in keys or [key]]
                elif not _produced(path, outs):
                    found.append(f"{path} {state}")
            for path, state in change.get("changed outs", {}).items():
                if path in in_git:
                    found.append(f"{path} {state} (kept in git: commit it with the lock)")
        if found:
            problems.append(f"stage {name!r}: " + "; ".join(found))
    return problems


def _yaml(path: Path) -> dict:
    """YAML 1.2, as DVC reads it (PyYAML would read the lock's ``2e-05`` as a string)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}


def main(root: Path = Path(".")) -> int:
    if not (root / "dvc.lock").exists():
        print(f"error: no dvc.lock: {FIX}", file=sys.stderr)
        return 2
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(["dvc", "status", "--json"], check=False, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"error: dvc status failed: {done.stderr.strip()}", file=sys.stderr)
        return 2
    status = json.loads(done.stdout or "{}")
    params_files = {path for changes in status.values() for change in changes if isinstance(change, dict)
                    for path, state in change.get("changed deps", {}).items() if isinstance(state, dict)}
    params = {path: _yaml(root / path) for path in params_files}
    problems = stale_inputs(status, _yaml(root / "dvc.yaml"), _yaml(root / "dvc.lock"), params)
    for line in problems:
        print(f"dvc.lock is stale: {line}", file=sys.stderr)
    if problems:
        print(f"to fix: {FIX}", file=sys.stderr)
        return 1
    print("dvc.lock is current: every stage's code, data and params match it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""params.yaml access and the stage config models.

Every stage reads its own section, so `dvc repro` reruns exactly what a change touches. Each stage has one config
model (a :class:`StageParams` subclass, pydantic, unknown keys forbidden) whose fields hold the defaults; the
stage's section of ``params.yaml`` is laid over them and the command's CLI options over that. Any unknown key,
wrong type or out-of-range number fails before the stage starts work, as one :class:`ParamsError` naming the
params file, the stage and the key (the CLI prints it as one ``error:`` line, exit code 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from valueflow.io import InputError, regular_file

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(InputError):
    """A params file or a stage section that cannot be used: the message names the file, stage and key."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The whole params file; a YAML syntax error names the file, line and column."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (run from the project root or pass --params)")
    regular_file(path, "params file")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text") from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections, got {type(params).__name__}")
    return params


def stage_params(stage: str, path: str | Path = DEFAULT_PARAMS) -> dict:
    """One stage's section; a missing section is an error, since DVC tracks params by section."""
    params = load_params(path)
    if stage not in params:
        raise ParamsError(f"{path}: no '{stage}' section (stages in the file: {', '.join(map(str, params)) or 'none'})")
    section = params[stage]
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ParamsError(f"{path}: section '{stage}' must be a mapping of keys, got {type(section).__name__}")
    return section


def describe_validation_error(err: ValidationError, stage: str, where: str, allowed: list[str]) -> str:
    """One line for a pydantic error: where (file), stage.key, the reason; unknown keys list the allowed names."""
    parts = []
    for e in err.errors():
        key = ".".join(str(x) for x in (stage, *e["loc"]) if x != "")
        if e["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown key; allowed: {', '.join(allowed)}")
        elif e["type"] == "missing":
            parts.append(f"{key}: required")
        else:
            msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) or e["type"] == "value_error" else f" (got {got!r})"
            parts.append(f"{key}: {msg}{shown}")
    return f"{where}: " + "; ".join(parts)


def _accepts(annotation: Any, kind: type) -> bool:
    """Whether a field annotation admits values of ``kind`` (None, str, or a list/tuple for ``list``)."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts(a, kind) for a in typing.get_args(annotation))
    if kind is type(None):
        return annotation is None or annotation is type(None)
    if kind is list:
        return typing.get_origin(annotation) in (list, tuple) or annotation in (list, tuple)
    return annotation is kind or typing.get_origin(annotation) is typing.Literal


class StageParams(BaseModel):
    """Base of the stage config models: one per stage, defaults in the fields, unknown keys refused.

    Build one from a params file with :meth:`load` (section, then CLI overrides), from a dict with
    :meth:`from_params`, or directly with keyword arguments (tests, Python users).
    """

    # allow_inf_nan=False: an infinite or NaN number in params is a typo, never a setting
    model_config = ConfigDict(extra="forbid", validate_default=False, arbitrary_types_allowed=True, allow_inf_nan=False)

    #: the params.yaml section (and the stage name in errors)
    section: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _plain_yaml(cls, data: Any) -> Any:
        """A key left empty in YAML (``tables:``) takes the field's default, unless None is a meaningful value; a
        bare string where a list is wanted (``values: benevolence``) is a list of that one item, never its letters."""
        if not isinstance(data, dict):
            return data
        out = {}
        for k, v in data.items():
            field = cls.model_fields.get(k)
            if field is not None and v is None and not _accepts(field.annotation, type(None)):
                continue
            if field is not None and isinstance(v, str) and _accepts(field.annotation, list) and not _accepts(field.annotation, str):
                v = [v]
            out[k] = v
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, where: str = "params", **overrides: Any) -> Self:
        """The config from a section dict with the given (non-None) overrides laid over it."""
        merged = {**params, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls(**merged)
        except ValidationError as err:
            raise ParamsError(describe_validation_error(err, cls.section, where, sorted(cls.model_fields))) from None

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PARAMS, **overrides: Any) -> Self:
        """The stage's section of the params file at ``path``, with the CLI overrides laid over it."""
        return cls.from_params(stage_params(cls.section, path), where=str(path), **overrides)


def canonical_values(names: list[Any], where: str = "values") -> list[str]:
    """Value names in any alias -> canonical names, each once; an unknown one is a ValueError listing the valid
    names.

    For the ``values`` fields of the config models (a pydantic validator only turns ValueErrors into messages) and
    for ``--value`` options: ``benevolence`` and ``Benevolence`` are one value, asked once.
    """
    from valueflow.taxonomy import UnknownValueError, get_taxonomy

    tax = get_taxonomy()
    try:
        return deduplicated([str(x) for x in names], tax.resolve, where)
    except UnknownValueError as err:
        raise ValueError(str(err)) from None


def deduplicated(items: list[str], canonical, where: str) -> list[str]:
    """``items`` in canonical form (``canonical(item)``), first occurrence kept, with a warning per duplicate.

    Sets are sets: a value or judge given twice would be asked twice and give duplicate rankings.
    """
    from valueflow.io import warn

    out: dict[str, str] = {}
    for item in items:
        name = canonical(item)
        if name in out:
            warn(f"{where}: {item!r} is {out[name]!r} again (the same {name}); used once")
            continue
        out[name] = item
    return list(out)


def check_options(target: Any, options: Mapping[str, Any], where: str) -> dict:
    """``options`` checked against ``target``'s keyword parameters (a class or function) before it is called.

    The one check for every set of options a user writes for a class (judge options, steering backends): an
    unknown key is named with the allowed ones, a value of the wrong type or out of the range its annotation
    declares (``Annotated[float, Field(gt=0)]``) is named with the reason, and floats must be finite. Returns the
    options as validated (``"5"`` -> 5.0 for a float). Raises :class:`ParamsError` (one line, exit 2).
    """
    import inspect
    import typing

    from pydantic import create_model

    func = target.__init__ if inspect.isclass(target) else target
    params = {n: p for n, p in inspect.signature(func).parameters.items()
              if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ParamsError(f"{where}: unknown option(s) {', '.join(map(str, unknown))}; allowed: {', '.join(params)}")
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001  (an annotation that cannot be resolved: check names only)
        hints = {}
    fields = {n: (hints.get(n, Any), ...) for n in options}
    model = create_model("Options", __config__=ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False,
                                                          extra="forbid"), **fields)
    try:
        checked = model(**options)
    except ValidationError as err:
        raise ParamsError(describe_validation_error(err, "", where, list(params))) from None
    return {n: getattr(checked, n) for n in options}

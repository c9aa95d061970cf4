"""The value taxonomy: four theories, 32 mid-level values, hierarchies, fixed-depth paths, aliases, concordance.

The taxonomy lives in ``taxonomy.yaml`` beside this module and is validated when loaded (pydantic models with
``extra="forbid"`` plus cross-checks), so a typo in a value name fails at import time of the first user, not
deep inside a training run. The fixed-depth path rule is documented at the top of the YAML file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

THEORIES = ("pvq", "mft", "duty", "right")
PATH_DEPTH = 3


class UnknownValueError(KeyError):
    """A value, leaf or theory name that the taxonomy does not know; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; users need it plain
        return str(self.args[0])


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: str | None
    definition: str = Field(min_length=10)


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parents: list[str]
    definition: str = Field(min_length=10)
    aliases: list[str] = []
    leaves: dict[str, str] = {}


class _Theory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    label: str
    nodes: dict[str, _Node]
    values: dict[str, _Value]

    @model_validator(mode="after")
    def _parents_exist(self) -> _Theory:
        for value, spec in self.values.items():
            for parent in spec.parents:
                if parent not in self.nodes:
                    raise ValueError(f"value {value!r}: parent {parent!r} is not a node of this theory")
        for node, spec in self.nodes.items():
            if spec.parent is not None and spec.parent not in self.nodes:
                raise ValueError(f"node {node!r}: parent {spec.parent!r} is not a node of this theory")
        return self


class _TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    theories: dict[str, _Theory]
    concordance: dict[str, list[str]]


@dataclass(frozen=True)
class Value:
    """One mid-level value: the unit of VIDB, of steering and of evaluation."""

    name: str
    theory: str
    definition: str
    parents: tuple[str, ...]
    leaves: tuple[str, ...]
    concordance_group: str

    @property
    def path(self) -> tuple[str, str, str]:
        """Fixed-depth path of a text labelled with this value only (no refined leaf)."""
        return fixed_depth_path(self.parents[:1], self.name, None)


@dataclass(frozen=True)
class Leaf:
    """A refined value below a mid-level value (a Schwartz refined value, an MFT virtue, a specific right)."""

    name: str
    value: str
    theory: str
    definition: str

    @property
    def path(self) -> tuple[str, str, str]:
        return get_taxonomy().value(self.value).path[:1] + fixed_depth_path((), self.value, self.name)[1:]


def fixed_depth_path(parents: tuple[str, ...], value: str, leaf: str | None) -> tuple[str, str, str]:
    """[primary parent, value, leaf] without missing parts, padded by repeating the deepest node."""
    chain = [*parents[:1], value, *([leaf] if leaf else [])]
    chain += [chain[-1]] * (PATH_DEPTH - len(chain))
    return tuple(chain[:PATH_DEPTH])  # type: ignore[return-value]


def normalise_name(name: str) -> str:
    """The key aliases are matched on: case, spacing and the separators -, _, /, : do not matter."""
    return re.sub(r"[\s\-_/:]+", " ", str(name).strip().lower()).strip()


class ValueTaxonomy:
    """The validated taxonomy with lookups by any alias."""

    def __init__(self, raw: dict) -> None:
        spec = _TaxonomyFile.model_validate(raw)
        if tuple(spec.theories) != THEORIES:
            raise ValueError(f"taxonomy must define the theories {THEORIES}, found {tuple(spec.theories)}")
        self.theory_names = {t: th.name for t, th in spec.theories.items()}
        self.theory_labels = {t: th.label for t, th in spec.theories.items()}
        self.nodes = {t: {n: node.definition for n, node in th.nodes.items()} for t, th in spec.theories.items()}
        group_of: dict[str, str] = {}
        for group, members in spec.concordance.items():
            for member in members:
                if member in group_of:
                    raise ValueError(f"concordance: {member!r} is in both {group_of[member]!r} and {group!r}")
                group_of[member] = group
        self.concordance = {g: tuple(m) for g, m in spec.concordance.items()}

        self._values: dict[str, Value] = {}
        self._leaves: dict[tuple[str, str], Leaf] = {}
        for theory, th in spec.theories.items():
            for name, v in th.values.items():
                if name in self._values:
                    raise ValueError(f"value {name!r} is defined twice")
                if name not in group_of:
                    raise ValueError(f"value {name!r} is in no concordance group")
                self._values[name] = Value(
                    name, theory, v.definition, tuple(v.parents), tuple(v.leaves), group_of[name]
                )
                for leaf, definition in v.leaves.items():
                    if (theory, leaf) in self._leaves:
                        raise ValueError(f"leaf {leaf!r} appears twice in theory {theory!r}")
                    self._leaves[(theory, leaf)] = Leaf(leaf, name, theory, definition)
        unknown = set(group_of) - set(self._values)
        if unknown:
            raise ValueError(f"concordance names unknown values: {sorted(unknown)}")

        self._alias: dict[str, str] = {}
        for name, value in self._values.items():
            raw_aliases = spec.theories[value.theory].values[name].aliases
            for alias in (name, *raw_aliases):
                key = normalise_name(alias)
                if self._alias.get(key, name) != name:
                    raise ValueError(f"alias {alias!r} names both {self._alias[key]!r} and {name!r}")
                self._alias[key] = name

    # -- lookups -------------------------------------------------------------------------------------------
    @property
    def values(self) -> list[Value]:
        return list(self._values.values())

    def values_of(self, theory: str) -> list[Value]:
        self._check_theory(theory)
        return [v for v in self._values.values() if v.theory == theory]

    def leaves_of(self, value: str) -> list[Leaf]:
        v = self.value(value)
        return [self._leaves[(v.theory, leaf)] for leaf in v.leaves]

    @property
    def leaves(self) -> list[Leaf]:
        return list(self._leaves.values())

    def resolve(self, name: str) -> str:
        """Canonical value id for any alias (``care/harm``, ``Care``, ``CARE-HARM`` -> ``care-harm``)."""
        key = normalise_name(name)
        if key not in self._alias:
            raise UnknownValueError(
                f"unknown value {name!r}; valid values: {', '.join(sorted(self._values))}"
            )
        return self._alias[key]

    def value(self, name: str) -> Value:
        return self._values[self.resolve(name)]

    def resolve_leaf(self, value: str, leaf: str) -> str:
        """Canonical leaf name of ``value`` (``Self-direction: thought`` -> ``self-direction:thought``)."""
        v = self.value(value)
        key = normalise_name(leaf)
        for candidate in v.leaves:
            # Schwartz leaves carry their value as prefix; accept them with or without it
            if normalise_name(candidate) in (key, normalise_name(f"{v.name}:{leaf}")):
                return candidate
        raise UnknownValueError(
            f"unknown leaf {leaf!r} of value {v.name!r}; valid leaves: {', '.join(v.leaves) or '(none)'}"
        )

    def path(self, value: str, leaf: str | None = None) -> tuple[str, str, str]:
        """Fixed-depth (level_1, level_2, level_3) path of a text labelled with ``value`` and maybe a leaf."""
        v = self.value(value)
        return fixed_depth_path(v.parents, v.name, self.resolve_leaf(v.name, leaf) if leaf else None)

    def all_paths(self) -> Iterator[tuple[str, tuple[str, str, str]]]:
        """(theory, path) for every value and every leaf."""
        for v in self._values.values():
            yield v.theory, v.path
            for leaf in v.leaves:
                yield v.theory, self.path(v.name, leaf)

    def _check_theory(self, theory: str) -> None:
        if theory not in THEORIES:
            raise UnknownValueError(f"unknown theory {theory!r}; valid theories: {', '.join(THEORIES)}")

    def to_json(self) -> dict:
        """The taxonomy and concordance as plain JSON, shipped beside exported models and datasets."""
        return {
            "theories": {
                t: {
                    "name": self.theory_names[t],
                    "label": self.theory_labels[t],
                    "nodes": self.nodes[t],
                    "values": {
                        v.name: {
                            "definition": v.definition,
                            "parents": list(v.parents),
                            "path": list(v.path),
                            "concordance_group": v.concordance_group,
                            "leaves": {
                                leaf.name: {"definition": leaf.definition, "path": list(self.path(v.name, leaf.name))}
                                for leaf in self.leaves_of(v.name)
                            },
                        }
                        for v in self.values_of(t)
                    },
                }
                for t in THEORIES
            },
            "concordance": {g: list(m) for g, m in self.concordance.items()},
        }


@lru_cache(maxsize=1)
def get_taxonomy() -> ValueTaxonomy:
    """The project's taxonomy, loaded and validated once per process."""
    text = resources.files("valueflow").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return ValueTaxonomy(yaml.safe_load(text))

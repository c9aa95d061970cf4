"""The one judge protocol every ranking source implements, and the registry that builds judges from specs.

This module imports no judge: each implementation registers itself with :func:`register_judge` when its module is
imported, and the package (``valueflow/judges/__init__.py``) imports every built-in one through
``valueflow/judges/registry.py``, so ``make_judge`` knows them all once ``valueflow.judges`` is imported.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeAnswer:
    """A judge's answer for one window.

    ``order`` holds positions into the window (0-based), most supporting first; None when the judge gave no
    usable permutation, with ``error`` saying why (the window is then logged and left out, never guessed).
    A judge that cannot order some texts (equal labels) leaves them out: ``order`` then covers a subset of the
    window and the ranking is of that subset, and ``also`` holds further strict orders of other subsets (the
    reference judge's chains through tie groups); an empty ``order`` means "answered, nothing to order" (all tied).
    """

    order: tuple[int, ...] | None
    error: str | None = None
    raw: str | None = None  # the judge's raw reply, for the log
    prompt_hash: str = ""
    also: tuple[tuple[int, ...], ...] = ()


class Judge(abc.ABC):
    """Orders texts by how strongly they support (first) or oppose (last) one value."""

    #: "<kind>:<model>@<version>", recorded with every ranking so results can be traced and cached
    name: str
    #: constructor options that change how a judge is reached, never what it answers (a resumed collection that
    #: changes them asks nothing again); every other option counts as part of the answer's key
    transport_options: frozenset[str] = frozenset()

    def answer_settings(self) -> dict:
        """Settings beyond ``name`` that change the answers (sampling, endpoint): part of the resumption key."""
        return {}

    @abc.abstractmethod
    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        """Order each window of texts for ``value``; one answer per window, in the same order."""

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        """Direct intensity ratings in [-10, 10]: the baseline that ranking is compared against."""
        raise NotImplementedError(f"judge {self.name!r} has no rating mode")


def answers_from_scores(judge_name: str, value: str, windows: Sequence[Sequence[str]], scores) -> list[JudgeAnswer]:
    """One answer per window from a score per text (the windows' texts in order, flattened): highest first.

    What every judge that scores texts one by one (embedding, learned) answers; the prompt hash names the
    judge, the value and the window, so a cached ranking is never mistaken for another's.
    """
    import hashlib

    import numpy as np

    answers, start = [], 0
    for w in windows:
        s = np.asarray(scores[start : start + len(w)], dtype=float)
        start += len(w)
        digest = hashlib.sha1("\x1f".join([judge_name, value, *w]).encode()).hexdigest()[:16]
        answers.append(JudgeAnswer(tuple(int(i) for i in np.argsort(-s, kind="stable")), prompt_hash=digest))
    return answers


_REGISTRY: dict[str, tuple[Callable[..., Judge], type[Judge]]] = {}


def register_judge(kind: str, options_of: type[Judge]) -> Callable[[Callable[..., Judge]], Callable[..., Judge]]:
    """Register a factory for judge specs ``<kind>`` or ``<kind>:<argument>``; ``options_of`` is the judge class
    whose constructor signature (names, types, ranges) the spec's options are checked against."""

    def deco(factory: Callable[..., Judge]) -> Callable[..., Judge]:
        _REGISTRY[kind] = (factory, options_of)
        return factory

    return deco


def canonical_judge_spec(spec: object) -> str:
    """The form two specs of one judge share: no surrounding blanks, the kind in lower case."""
    kind, sep, arg = str(spec).strip().partition(":")
    return f"{kind.strip().lower()}{sep}{arg.strip()}"


def make_judge(spec: str, **options: object) -> Judge:
    """Build a judge from a spec such as ``embedding`` or ``chat:gemma-3-27b-it@http://localhost:8000/v1``.

    Every problem of the spec or its options (unknown kind, an empty argument, an unknown option, a wrong type, a
    count or timeout out of range) is one :class:`valueflow.io.ConfigError` naming the judge, raised before the
    judge is built.
    """
    from valueflow.io import ConfigError
    from valueflow.params import check_options

    spec = canonical_judge_spec(spec)
    kind, sep, arg = spec.partition(":")
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown judge {spec!r}; known kinds: {', '.join(sorted(_REGISTRY))}")
    if sep and not arg:
        raise ConfigError(f"judge {spec!r}: nothing after ':'; e.g. chat:<model>@<base_url>, learned:<folder>")
    factory, judge_class = _REGISTRY[kind]
    checked = getattr(judge_class, "checked_options", None)  # a judge whose options are more than its signature
    where = f"judge {spec} options"
    options = checked(options, where) if checked else check_options(judge_class, options, where=where)
    try:
        return factory(arg, **options) if arg else factory(**options)
    except ValueError as err:  # a factory's own check of its argument (a chat judge without a model)
        raise ConfigError(f"judge {spec}: {err}") from None

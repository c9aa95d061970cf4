"""Judges: given a value and a window of texts, return their order from most supporting to most opposing.

Every judge implements :class:`Judge`. Implementations live in their own modules of this package and are
built from a spec string by :func:`make_judge` (``embedding``, ``reference``, ``chat:<model>@<url>`` ...).
"""

from __future__ import annotations

from valueflow.judges import registry  # noqa: F401  (the built-in judges register themselves)
from valueflow.judges.base import Judge, JudgeAnswer, make_judge, register_judge

__all__ = ["Judge", "JudgeAnswer", "make_judge", "register_judge"]

"""Pandera schemas for every file that crosses a stage boundary, and the rejected-rows sink."""

from validation.rejects import RejectSink, validate_rows
from validation.schemas import (
    RankingsSchema,
    ResponsesSchema,
    ScoresSchema,
    TextsSchema,
    VidbSchema,
)

__all__ = [
    "RankingsSchema",
    "RejectSink",
    "ResponsesSchema",
    "ScoresSchema",
    "TextsSchema",
    "VidbSchema",
    "validate_rows",
]

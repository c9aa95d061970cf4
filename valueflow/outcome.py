"""The one exit-code rule of every command (README, "Exit codes"):

======  =====================================================================================================
code    meaning
======  =====================================================================================================
0       everything asked was done
1       the run finished but some or all items failed: the output is still written, with each item's reason
2       bad input (a file, an option, a params key): one ``error:`` line, nothing written
======  =====================================================================================================

A command that finishes with failed items calls :func:`check_success` after its output is written; the CLI's
central handler (``valueflow.cli``) turns :class:`RunFailed` into exit 1 and ``InputError`` into exit 2, so the
codes are decided in one place. ``--min-success`` lets a user accept partial results (e.g. 0.95: exit 0 when at
least 95 % of the items succeeded).
"""

from __future__ import annotations

import math

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

MIN_SUCCESS_HELP = ("Exit 0 when at least this fraction of the items succeeded (default 1: any failure is exit 1; "
                    "0 accepts any partial result). The output is written either way.")


class RunFailed(RuntimeError):
    """The run finished and wrote its output, but fewer items succeeded than the user accepts (exit code 1)."""


def check_min_success(fraction: float, where: str = "--min-success") -> float:
    """A usable threshold: a finite number in [0, 1]."""
    from valueflow.io import InputError

    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0 <= fraction <= 1):
        raise InputError(f"{where}: {fraction!r} is not a fraction in [0, 1]")
    return float(fraction)


def check_success(succeeded: int, asked: int, what: str, min_success: float = 1.0, reasons: dict | None = None) -> None:
    """Raise :class:`RunFailed` when ``succeeded / asked`` is below ``min_success``; ``what`` names the items.

    ``reasons`` (reason -> count) gives the most frequent failure in the message, so the one line says why.
    """
    failed = asked - succeeded
    if failed <= 0 or succeeded >= min_success * asked:
        return
    top = ""
    if reasons:
        reason, n = max(reasons.items(), key=lambda kv: kv[1])
        top = f"; most frequent reason ({n}): {reason if len(reason) <= 300 else reason[:300] + '...'}"
    raise RunFailed(f"{failed} of {asked} {what} failed (--min-success {min_success:g}){top}")

"""Imports every built-in judge implementation so that it registers itself with ``make_judge``.

Imported by the package ``valueflow/judges/__init__.py`` (never by ``base.py``, which the implementations import).
Add one line per judge module here.
"""
import valueflow.judges.chat  # noqa: F401
import valueflow.judges.embedding  # noqa: F401
import valueflow.judges.probe  # noqa: F401
import valueflow.judges.reference  # noqa: F401
import valueflow.judges.simulated  # noqa: F401
import valueflow.judges.transformers_judge  # noqa: F401

"""Imports every built-in judge implementation so that it registers itself with ``make_judge``.

Imported by the package ``valueflow/judges/__init__.py`` (never by ``base.py``, which the implementations import).
Add one line per judge module here.
"""
import valueflow.judges.chat
import valueflow.judges.embedding
import valueflow.judges.reference
import valueflow.judges.simulated
import valueflow.judges.transformers_judge
import valueflow.judges.value_head  # noqa: F401

"""Imports every judge implementation so that it registers itself with ``make_judge``.

Add one line per judge module here.
"""
import valueflow.judges.simulated  # noqa: F401
import valueflow.judges.reference  # noqa: F401
import valueflow.judges.embedding  # noqa: F401
import valueflow.judges.chat  # noqa: F401
import valueflow.judges.probe  # noqa: F401
import valueflow.judges.transformers_judge  # noqa: F401
import valueflow.judges.cross  # noqa: F401

"""valueflow: value-intensity alignment infrastructure (VIDB, HiVES, anchor evaluator, steering, publishing).

Implements VALUEFLOW (Kim, Hyeon, Oh, Do; arXiv 2602.03160, ICML 2026).
"""

__version__ = "0.1.0"

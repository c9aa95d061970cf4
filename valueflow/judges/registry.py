"""Imports every judge implementation so that it registers itself with ``make_judge``.

Add one line per judge module here.
"""

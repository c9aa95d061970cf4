"""VIDB builders: ingest -> collect rankings -> aggregate -> calibrate, flag, split -> release folder."""

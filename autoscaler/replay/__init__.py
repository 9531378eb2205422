"""Trace replay in virtual time: simulated workers behind the real scheduler code."""

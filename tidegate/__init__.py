"""Tidegate: the thin command-line entry and the local ``up`` composition."""

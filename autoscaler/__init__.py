"""Autoscaler: scales worker pools against latency SLOs (not built yet)."""

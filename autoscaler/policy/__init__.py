"""Scaling decisions: pure steps over immutable observations, with the time passed in."""

"""Locust load tests for Tidegate (or any OpenAI-compatible server), driven by real traces.

The modules here are pure logic (trace sampling, prompts, stream timing, load shapes, SLO
verdicts, the report plot) that tests import without Locust; ``locustfile.py`` is the thin
adapter that wires them into Locust's users, shapes and events.
"""

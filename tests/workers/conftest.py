"""Fixtures for the simulated worker's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.workers.sim_helpers import asgi_client, make_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for a worker whose natural output is 5 tokens."""
    async with asgi_client(make_app(output_tokens=5)) as c:
        yield c

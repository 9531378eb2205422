"""Deterministic embedding vectors: the same input gives the same unit vector in every
process (seeded from a cryptographic hash, never Python's salted ``hash``)."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct


def embed(key: str, dim: int) -> list[float]:
    """An L2-normalised vector of length ``dim`` determined by ``key`` alone."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def token_ids_key(token_ids: list[int]) -> str:
    """The seed key for an input given as token ids (distinct from any text input)."""
    return "\x00ids:" + ",".join(map(str, token_ids))


def to_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded, as vLLM and OpenAI send them."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")

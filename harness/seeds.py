"""Every derived seed of the harness, in one place.

- `derived_seed(seed, purpose)`: a stage's own stream of fresh images (the probe, the evaluation CLIP, the
  zero-shot checks need real images the conditioning models never saw), by hashing (seed, purpose), so no table
  of offsets can collide with a user's choice of `data.seed`.
- `stream_seed(*parts, stream)`: the sweep's streams (prior draws, real references, paired noise) keyed by
  tuples of integers; `SeedSequence` hashes the whole tuple, so nearby tuples give unrelated streams (unlike
  seed + i * n + j). Each kind of stream has its own tag below.
"""

from __future__ import annotations

import hashlib

import numpy as np

# The tag of each kind of sweep stream (the last entry of its tuple): one stream kind never meets another's.
PRIOR_DRAWS, REAL_REFERENCES, FLOOR_REFERENCES = 7, 11, 13


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for `purpose`, a function of (seed, purpose) only, and never equal to `seed` itself."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    derived = int.from_bytes(digest[:8], "little") >> 1
    return derived if derived != seed else derived ^ 1


def stream_seed(*parts: int, bits: int = 32) -> int:
    """A seed from a tuple of integers (the stream's kind among them): 32 or 64 bits."""
    dtype = np.uint64 if bits == 64 else np.uint32
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=dtype)[0])

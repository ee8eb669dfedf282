"""Seeds for the fresh images a stage renders itself, kept apart from the dataset's own seed.

The probe, the evaluation CLIP and the zero-shot checks each need real images the conditioning models never
saw. Deriving their seeds by hashing (seed, purpose) gives every purpose its own stream, reproducibly, without
a table of magic offsets that could collide with a user's choice of `data.seed`.
"""

from __future__ import annotations

import hashlib


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for `purpose`, a function of (seed, purpose) only, and never equal to `seed` itself."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    derived = int.from_bytes(digest[:8], "little") >> 1
    return derived if derived != seed else derived ^ 1

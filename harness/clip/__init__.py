"""CLIP for the harness (docs/design.md, section 3): open_clip models trained from scratch or pretrained.

- `harness.clip.stage.run`: the conditioning CLIP artifact (stage "clip");
- `harness.clip.embeddings.run`: its text/image vectors and caption tokens for every split (stage "embeddings");
- `load_clip`, `encode_texts`, `encode_images`: embed new captions and images later (decoder, sweep, metrics).
"""

from harness.clip.embeddings import load_embeddings
from harness.clip.encode import encode_images, encode_texts, preprocess
from harness.clip.model import load_clip

__all__ = ["encode_images", "encode_texts", "load_clip", "load_embeddings", "preprocess"]

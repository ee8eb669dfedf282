"""CLIP score with an evaluation CLIP (open_clip), on precomputed embeddings.

Embeddings come from `harness.clip.encode_images` / `encode_texts` applied to the evaluation CLIP (trained
on another seed and split), never the CLIP the decoder was conditioned on (docs/design.md, section 5).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def clip_score(image_features: Tensor, text_features: Tensor) -> Tensor:
    """Per-pair CLIP score 100 * max(cos(image, text), 0) (Hessel et al. 2021, "CLIPScore: A Reference-free
    Evaluation Metric for Image Captioning"; the same definition as torchmetrics' CLIPScore, without its mean).

    Row i of both [N, D] inputs is one (image, caption) pair; embeddings need not be pre-normalised.
    """
    cosine = F.cosine_similarity(image_features.float(), text_features.float(), dim=-1)
    return 100.0 * cosine.clamp(min=0)

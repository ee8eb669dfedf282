"""CLIP score with an evaluation CLIP (open_clip), on precomputed embeddings.

The scorer is built from whatever model the caller passes; the harness passes the evaluation CLIP (trained on
another seed and split, or pretrained), never the CLIP the decoder was conditioned on (DESIGN.md section 6).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def clip_score(image_features: Tensor, text_features: Tensor) -> Tensor:
    """Per-pair CLIP score 100 * max(cos(image, text), 0) (Hessel et al. 2021, "CLIPScore: A Reference-free
    Evaluation Metric for Image Captioning"; the same definition as torchmetrics' CLIPScore, without its mean).

    Row i of both [N, D] inputs is one (image, caption) pair; embeddings need not be pre-normalised.
    """
    cosine = F.cosine_similarity(image_features.float(), text_features.float(), dim=-1)
    return 100.0 * cosine.clamp(min=0)


class OpenClipScorer:
    """Embeds harness images ([-1, 1], any square size) and captions with an open_clip model.

    Image preprocessing mirrors open_clip's own transform for the model (size, mean, std from its preprocess
    config, OpenAI statistics when absent), done on tensors: our images are square, so resizing to the model's
    square input equals open_clip's shortest-side resize plus centre crop.
    """

    def __init__(self, model: nn.Module, tokenizer: Callable[[list[str]], Tensor]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        import open_clip  # here, not at module level: open_clip takes seconds to import
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        cfg = open_clip.get_model_preprocess_cfg(model)
        self.size = open_clip.utils.to_2tuple(cfg.get("size", 224))
        self.mean = torch.tensor(cfg.get("mean", OPENAI_DATASET_MEAN)).view(1, -1, 1, 1)
        self.std = torch.tensor(cfg.get("std", OPENAI_DATASET_STD)).view(1, -1, 1, 1)

    @property
    def _param(self) -> Tensor:
        return next(self.model.parameters())

    @torch.no_grad()
    def embed_images(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] images in [-1, 1] -> [N, D] unit-norm embeddings."""
        x = (images.float().clamp(-1, 1) + 1) / 2
        # Bicubic is open_clip's default interpolation; clamp its overshoot back into the valid pixel range.
        x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return self.model.encode_image(x.to(self._param), normalize=True)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> Tensor:
        """Captions -> [N, D] unit-norm embeddings."""
        tokens = self.tokenizer(texts).to(self._param.device)
        return self.model.encode_text(tokens, normalize=True)

    def score(self, images: Tensor, texts: list[str]) -> Tensor:
        """Per-pair CLIP score of images[i] against texts[i]."""
        return clip_score(self.embed_images(images), self.embed_texts(texts))

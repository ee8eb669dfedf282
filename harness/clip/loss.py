"""The contrastive loss: open_clip's `ClipLoss`, optionally with per-image hard-negative captions.

NegCLIP (Yuksekgonul et al. 2023, "When and why vision-language models behave like bags-of-words, and what to
do about it") adds captions with swapped attributes to the text side of CLIP's loss. Ours come from the shapes
world acting as a simulator (`harness.clip.negatives`): each one is known to be false for its own image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss


class HardNegativeClipLoss(ClipLoss):
    """`ClipLoss` whose image->text side also ranks each image's own false captions below its true one.

    `negative_text_features` [B, K, D] holds K negatives per image. They are scored against their own image
    only, as a [B, K] block appended to the image->text logits: a negative written for image i may well be
    true of image j, so it must not act as a negative for j. The text->image side is unchanged, since a false
    caption has no image it should match. Without negatives this is exactly `ClipLoss`.
    """

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None, output_dict: bool = False, *,
                negative_text_features: torch.Tensor | None = None):
        if negative_text_features is None:
            return super().forward(image_features, text_features, logit_scale, logit_bias, output_dict)
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale, logit_bias)
        hard = logit_scale * torch.einsum("bd,bkd->bk", image_features, negative_text_features)
        if logit_bias is not None:
            hard = hard + logit_bias
        labels = self.get_ground_truth(image_features.device, logits_per_image.shape[0])
        total = (F.cross_entropy(torch.cat([logits_per_image, hard], dim=1), labels)
                 + F.cross_entropy(logits_per_text, labels)) / 2
        return {"contrastive_loss": total} if output_dict else total

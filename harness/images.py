"""The harness's two image layouts, and the conversion every image-reading network starts with.

Datasets hold uint8 [N, H, W, 3] pixels (numpy, often memory-mapped); decoders produce float [N, 3, H, W] in
[-1, 1]. CLIP encoders and the attribute probe accept either.
"""

from __future__ import annotations

import numpy as np
import torch


def to_unit_range(images: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """float [N, 3, H, W] in [0, 1] on `device`, from uint8 [N, H, W, 3] or float [N, 3, H, W] in [-1, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.array(images))  # a copy: memory-mapped pixels are read-only
    images = images.to(device)
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float() / 255.0
    return (images.float().clamp(-1, 1) + 1) / 2

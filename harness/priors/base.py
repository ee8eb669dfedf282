"""The prior interface: text (CLIP text vector + caption token ids) -> plausible CLIP image vectors.

An unCLIP decoder is trained on true CLIP image vectors; at text-to-image time a prior supplies them
(DALL-E 2 / unCLIP, Ramesh et al. 2022, section 2.2). Every prior here, learned or closed form, has the same
two calls: `fit` on training pairs and `sample`, which returns unit-norm image vectors [B, n, D].

Fitted state lives in parameters or buffers only, so `state_dict()` round-trips through
`torch.load(..., weights_only=True)` and `load_state_dict` restores a prior built with the same arguments.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import TrainConfig
from harness.runtime.device import resolve_device


class Prior(nn.Module, abc.ABC):
    """Maps captions to unit-norm CLIP image vectors.

    Constructors take `(dim, vocab_size, context_length, **own_kwargs)` so `build_prior` can make any of them.
    """

    def __init__(self, dim: int, vocab_size: int, context_length: int) -> None:
        super().__init__()
        self.dim = dim
        self.vocab_size = vocab_size
        self.context_length = context_length

    @abc.abstractmethod
    def fit(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, image_vectors: torch.Tensor,
            recipe: TrainConfig, *, workdir: Path | None = None, progress: bool = True,
            device: str | torch.device = "auto") -> dict[str, float]:
        """Fit on pairs: text_vectors [N, D], text_tokens [N, L] (int64, 0 = padding), image_vectors [N, D].

        Learned priors train with `recipe` in the shared loop (`harness.training`), checkpointing into
        `workdir` when given. Returns training statistics. Closed-form priors ignore recipe and workdir.
        """

    @abc.abstractmethod
    def sample(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, n: int = 1,
               generator: torch.Generator | None = None, best_of: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """n independent unit-norm image vectors per caption, [B, n, D], on the device of `text_vectors`.
        `best_of`: candidates per draw, the one closest to the text vector kept; `guidance`: the prior's own
        classifier-free guidance scale (None: the prior's own settings; a prior that draws nothing ignores them)."""

    @property
    def device(self) -> torch.device:
        """Where the fitted state lives (the CPU for a prior without any)."""
        tensor = next(self.parameters(), None)
        if tensor is None:
            tensor = next(self.buffers(), None)
        return torch.device("cpu") if tensor is None else tensor.device


class ClosedFormPrior(Prior):
    """A deterministic prior fitted by statistics of the training pairs, not by gradient steps.

    Subclasses register their statistics as float32 buffers in `__init__`, compute them in `fit_statistics`
    and use them in `predict`; this class handles devices, renormalisation and repeating the single answer
    n times.
    """

    @abc.abstractmethod
    def fit_statistics(self, text_vectors: torch.Tensor,
                       image_vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """New values for the buffers, by buffer name, from float64 pairs (solves are safer in float64)."""

    @abc.abstractmethod
    def predict(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """Image vectors [B, D] before renormalisation."""

    def fit(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, image_vectors: torch.Tensor,
            recipe: TrainConfig, *, workdir: Path | None = None, progress: bool = True,
            device: str | torch.device = "auto") -> dict[str, float]:
        target = resolve_device(str(device))
        self.to(target)
        statistics = self.fit_statistics(text_vectors.to(target, torch.float64),
                                         image_vectors.to(target, torch.float64))
        for name, value in statistics.items():
            self.get_buffer(name).copy_(value)  # copy_ casts back to the buffer's float32
        predicted = self.sample(text_vectors, text_tokens)[:, 0]
        cosine = F.cosine_similarity(predicted, image_vectors.to(predicted), dim=-1).mean()
        return {"train_cosine": cosine.item()}

    @torch.no_grad()
    def sample(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, n: int = 1,
               generator: torch.Generator | None = None, best_of: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        image = F.normalize(self.predict(text_vectors.to(self.device, torch.float32)), dim=-1)
        return image.unsqueeze(1).repeat(1, n, 1).to(text_vectors.device)

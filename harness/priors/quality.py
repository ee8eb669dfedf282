"""How good is a prior? Cosine to the true image vector and attribute-checked retrieval.

DALL-E 2 / unCLIP (Ramesh et al. 2022, section 2.2) judges priors by the decoder's samples; here they are also
scored directly, before any decoder, so `identity`, `mean_shift`, `linear` (Kandinsky) and `diffusion` can be
compared cheaply:

- `cosine`: mean cosine between each drawn image vector and the CLIP image vector of the caption's own image.
  A caption that leaves attributes free has many right answers, so this rewards the mean image of a caption
  and is only half the story;
- `retrieval_top1`: the nearest real image vector of a bank (cosine) is looked up and checked against the
  caption. The check is a precomputed boolean matrix `satisfies` [B, bank], not a callable: the caller
  builds it once (on the shapes world, from the attributes each caption mentions) and the scoring stays
  one vectorised gather;
- `draw_cosine` (n > 1 only): mean cosine between different draws for the same caption, 1 for a
  deterministic prior; lower means the prior spreads over the caption's free attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.priors.base import Prior


def prior_quality(prior: Prior, text_vectors: torch.Tensor, text_tokens: torch.Tensor,
                  true_image_vectors: torch.Tensor, real_image_vectors_bank: torch.Tensor,
                  satisfies: torch.Tensor, n: int = 1, generator: torch.Generator | None = None,
                  batch_size: int = 256) -> dict[str, float]:
    """Score `prior` on B captions: text_vectors [B, D], text_tokens [B, L], true_image_vectors [B, D],
    real_image_vectors_bank [M, D], satisfies [B, M] bool (bank image m satisfies caption b).

    Draws n vectors per caption, sampling in chunks of `batch_size` captions to bound memory.
    """
    if satisfies.shape != (len(text_vectors), len(real_image_vectors_bank)):
        raise ValueError(f"satisfies must be [{len(text_vectors)}, {len(real_image_vectors_bank)}], "
                         f"got {list(satisfies.shape)}")
    drawn = torch.cat([prior.sample(text_vectors[i:i + batch_size], text_tokens[i:i + batch_size], n=n,
                                    generator=generator)
                       for i in range(0, len(text_vectors), batch_size)])  # [B, n, D]
    drawn = F.normalize(drawn.float(), dim=-1)
    truth = F.normalize(true_image_vectors.to(drawn), dim=-1)
    bank = F.normalize(real_image_vectors_bank.to(drawn), dim=-1)

    cosine = (drawn * truth[:, None, :]).sum(dim=-1)  # [B, n]
    nearest = (drawn @ bank.T).argmax(dim=-1)  # [B, n] bank indices
    hits = satisfies.to(drawn.device).gather(1, nearest)  # [B, n]
    scores = {"cosine": cosine.mean().item(), "retrieval_top1": hits.float().mean().item()}
    if n > 1:
        pairwise = drawn @ drawn.transpose(1, 2)  # [B, n, n]; the diagonal (a draw with itself) is excluded
        off_diagonal = pairwise.sum(dim=(1, 2)) - pairwise.diagonal(dim1=1, dim2=2).sum(dim=-1)
        scores["draw_cosine"] = (off_diagonal / (n * (n - 1))).mean().item()
    return scores

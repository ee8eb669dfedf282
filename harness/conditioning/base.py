"""A conditioning mode: a batch of captions and CLIP vectors in, a `Condition` out (docs/design.md, section 2).

A mode is data: one YAML in conf/conditioning/ whose flags (`ConditioningConfig`: which CLIP vector, whether
GLIDE's text sequence, how many CLIP tokens, dropout rates) configure the one `ConditioningMode` here. Everything
else (condition dropout during training, null conditions, guidance branches, where sampling vectors come from)
follows from the flags, so a new mode is one YAML, and the decoder, trainer, sweep and report never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.conditioning.condition import Condition
from harness.conditioning.pathways import ClipVectorPathway, Dims, TextSequencePathway
from harness.config import ConditioningConfig
from harness.config.schema import IMAGE, TEXT


@dataclass
class ModeInputs:
    """Per-example inputs a mode may read: caption tokens and CLIP vectors, all on one device."""
    tokens: torch.Tensor  # [B, L] open_clip token ids
    text_vectors: torch.Tensor  # [B, D] normalised CLIP text vectors
    image_vectors: torch.Tensor | None = None  # [B, D]: true ones in training; prior/oracle draws in sampling

    def __len__(self) -> int:
        return len(self.tokens)


def guidance_weights(scale: float | None = None, *, vector_scale: float | None = None,
                     text_scale: float | None = None) -> list[float]:
    """Branch weights for `guided`, in the two standard forms; the null branch always comes last.

    - Joint scale s, branches [cond, null]: [s, 1 - s], i.e. null + s * (cond - null).
    - Separate scales (s_v, s_t), branches [vector+text, vector-only, null]:
      [s_t, s_v - s_t, 1 - s_v], i.e. null + s_v * (vector - null) + s_t * (vector+text - vector).
    """
    if scale is not None and vector_scale is None and text_scale is None:
        return [scale, 1.0 - scale]
    if scale is None and vector_scale is not None and text_scale is not None:
        return [text_scale, vector_scale - text_scale, 1.0 - vector_scale]
    raise ValueError("pass either a joint `scale` or both `vector_scale` and `text_scale`")


class ConditioningMode(nn.Module):
    def __init__(self, cfg: ConditioningConfig, dims: Dims, empty_caption_tokens: torch.Tensor,
                 empty_caption_vector: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.vector_path = ClipVectorPathway(cfg, dims, empty_caption_vector) if cfg.has_vector else None
        self.text_path = TextSequencePathway(cfg, dims, empty_caption_tokens) if cfg.text_sequence else None

    # -- encoding ---------------------------------------------------------------------------------------
    def forward(self, inputs: ModeInputs, drop_vector: torch.Tensor | None = None,
                drop_text: torch.Tensor | None = None) -> Condition:
        no = torch.zeros(len(inputs), dtype=torch.bool, device=inputs.tokens.device)
        parts, groups = [], []
        if self.vector_path is not None:
            vectors = inputs.text_vectors if self.cfg.vector_source == TEXT else inputs.image_vectors
            if vectors is None:
                raise ValueError("an image-vector mode needs image vectors")
            parts.append(self.vector_path.encode(vectors, no if drop_vector is None else drop_vector))
            groups.append(("clip", self.cfg.clip_tokens))
        if self.text_path is not None:
            parts.append(self.text_path.encode(inputs.tokens, no if drop_text is None else drop_text))
            groups.append(("text", inputs.tokens.shape[1]))
        vectors = [p.vector for p in parts if p.vector is not None]
        tokens = [(p.tokens, p.mask, g) for p, g in zip(parts, groups) if p.tokens is not None]
        return Condition(
            vector=torch.stack(vectors).sum(0) if vectors else None,
            tokens=torch.cat([t for t, _, _ in tokens], dim=1) if tokens else None,
            mask=torch.cat([m for _, m, _ in tokens], dim=1) if tokens else None,
            token_groups=tuple(g for _, _, g in tokens),
        )

    def training_condition(self, inputs: ModeInputs, generator: torch.Generator) -> Condition:
        """The condition with the mode's dropout rates applied (and noise on training image vectors)."""
        n, device = len(inputs), inputs.tokens.device
        drop_vector = torch.rand(n, generator=generator, device=generator.device).to(device) < self.cfg.p_drop_vector
        drop_text = torch.rand(n, generator=generator, device=generator.device).to(device) < self.cfg.p_drop_text
        if self.cfg.vector_source == IMAGE and self.cfg.image_noise > 0 and inputs.image_vectors is not None:
            noise = torch.randn(inputs.image_vectors.shape, generator=generator, device=generator.device)
            noisy = inputs.image_vectors + self.cfg.image_noise * noise.to(device)
            inputs = ModeInputs(inputs.tokens, inputs.text_vectors, nn.functional.normalize(noisy, dim=-1))
        return self(inputs, drop_vector, drop_text)

    # -- guidance ---------------------------------------------------------------------------------------
    @property
    def has_tokens(self) -> bool:
        """Whether the decoder's attention sees any condition tokens (what attention mass is measured on)."""
        return self.text_path is not None or (self.vector_path is not None and self.cfg.clip_tokens > 0)

    def guidance_branches(self, inputs: ModeInputs, scale: float,
                          text_scale: float | None = None) -> tuple[list[Condition], list[float]]:
        """Conditions and weights for `harness.decoder.diffusion.guided`.

        One joint scale: [cond, null] with weights [s, 1-s]. With `text_scale` (modes with both pathways):
        [vector + text, vector only, null] with weights [s_text, s - s_text, 1 - s], where s scales the
        vector and s_text the text on top of it. The full condition comes first and the null last in both
        (attention is recorded on the first rows; condition-noise arms leave the last branch alone).
        """
        yes = torch.ones(len(inputs), dtype=torch.bool, device=inputs.tokens.device)
        null = self(inputs, yes, yes)
        if text_scale is None:
            return [self(inputs), null], guidance_weights(scale)
        if not self.cfg.two_pathways:
            raise ValueError("this mode has one pathway; separate text and vector scales need two")
        vector_only = self(inputs, ~yes, yes)
        return [self(inputs), vector_only, null], guidance_weights(vector_scale=scale, text_scale=text_scale)


def build_mode(cfg: ConditioningConfig, dims: Dims, empty_caption_tokens: torch.Tensor,
               empty_caption_vector: torch.Tensor) -> ConditioningMode:
    return ConditioningMode(cfg, dims, empty_caption_tokens, empty_caption_vector)

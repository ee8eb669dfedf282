"""The two ways text can reach the decoder; every conditioning mode is a choice of one or both.

- `TextSequencePathway` (GLIDE): a transformer trained from scratch with the decoder reads the caption's
  tokens; its token states become attention keys/values and its final (end-of-text) state is added to the
  timestep embedding.
- `ClipVectorPathway` (Crowson's CLIP conditioning, unCLIP): one frozen CLIP vector, projected into the
  timestep embedding and into K extra attention tokens (DALL-E 2 used K=4).

Each pathway owns its null condition for classifier-free guidance: `encode(..., drop=mask)` replaces the rows
where `drop` is True by the null (a learned embedding, zeros, or the empty caption, per config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import ConditioningConfig


@dataclass(frozen=True)
class Dims:
    """What a mode needs to know about the decoder and the CLIP it reads."""
    emb_dim: int  # the decoder's timestep-embedding width (cond.vector)
    ctx_dim: int  # the decoder's attention-token width (cond.tokens)
    clip_dim: int
    vocab_size: int
    context_length: int


@dataclass
class PathwayOutput:
    vector: torch.Tensor | None  # [B, emb_dim]
    tokens: torch.Tensor | None  # [B, T, ctx_dim]
    mask: torch.Tensor | None  # [B, T]


class ClipVectorPathway(nn.Module):
    def __init__(self, cfg: ConditioningConfig, dims: Dims, empty_caption_vector: torch.Tensor) -> None:
        super().__init__()
        self.k, self.ctx_dim = cfg.clip_tokens, dims.ctx_dim
        self.null_kind = cfg.null_condition
        # CLIP vectors are unit-norm, so each coordinate is ~1/sqrt(D); rescale to unit variance per coordinate.
        self.scale = math.sqrt(dims.clip_dim)
        self.to_emb = nn.Linear(dims.clip_dim, dims.emb_dim)
        self.to_tokens = nn.Linear(dims.clip_dim, self.k * dims.ctx_dim) if self.k else None
        null = torch.zeros(dims.clip_dim) if self.null_kind != "empty_caption" else empty_caption_vector
        self.null = nn.Parameter(null.clone(), requires_grad=self.null_kind == "learned")

    def reads(self) -> torch.Tensor:
        """The Gram matrix R^T R [D, D] of the linear part R of what the decoder reads from a CLIP vector (the
        timestep embedding's and the K tokens' projections, without their biases, which no spread sees)."""
        weights = [self.to_emb.weight] + ([self.to_tokens.weight] if self.to_tokens is not None else [])
        weight = torch.cat(weights).detach().double() * self.scale
        return weight.T @ weight

    def encode(self, vectors: torch.Tensor, drop: torch.Tensor) -> PathwayOutput:
        v = torch.where(drop[:, None], self.null.to(vectors.dtype).expand_as(vectors), vectors) * self.scale
        tokens = self.to_tokens(v).view(len(v), self.k, self.ctx_dim) if self.to_tokens is not None else None
        mask = torch.ones(len(v), self.k, dtype=torch.bool, device=v.device) if tokens is not None else None
        return PathwayOutput(self.to_emb(v), tokens, mask)


class TextSequencePathway(nn.Module):
    def __init__(self, cfg: ConditioningConfig, dims: Dims, empty_caption_tokens: torch.Tensor) -> None:
        super().__init__()
        self.pooled = cfg.pooled
        self.null_kind = cfg.null_condition
        width = cfg.text_width or dims.ctx_dim
        self.token_embedding = nn.Embedding(dims.vocab_size, width)
        self.position = nn.Parameter(torch.randn(dims.context_length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, cfg.text_heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.text_depth, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(width)
        self.to_tokens = nn.Linear(width, dims.ctx_dim)
        self.to_emb = nn.Linear(width, dims.emb_dim) if cfg.pooled else None
        # Causal, as in CLIP's and GLIDE's text encoders: the end-of-text state then summarises the caption.
        causal = torch.triu(torch.ones(dims.context_length, dims.context_length, dtype=torch.bool), 1)
        self.register_buffer("causal", causal, persistent=False)
        self.register_buffer("empty_tokens", empty_caption_tokens.long().clone(), persistent=False)
        if self.null_kind == "learned":
            self.null_states = nn.Parameter(torch.zeros(dims.context_length, dims.ctx_dim))
            self.null_pooled = nn.Parameter(torch.zeros(dims.emb_dim)) if cfg.pooled else None

    def encode(self, tokens: torch.Tensor, drop: torch.Tensor) -> PathwayOutput:
        if self.null_kind == "empty_caption":  # GLIDE: the unconditional model reads the empty caption
            tokens = torch.where(drop[:, None], self.empty_tokens.expand_as(tokens), tokens)
        length = tokens.shape[1]
        h = self.token_embedding(tokens) + self.position[:length]
        h = self.final_norm(self.transformer(h, mask=self.causal[:length, :length]))
        states = self.to_tokens(h)
        mask = tokens != 0  # open_clip pads with 0
        # The end-of-text token has the largest id in open_clip's vocabulary, so argmax finds it.
        eot = tokens.argmax(dim=1)
        pooled = self.to_emb(h[torch.arange(len(h)), eot]) if self.to_emb is not None else None
        if self.null_kind != "empty_caption":
            null_states = self.null_states if self.null_kind == "learned" else torch.zeros_like(states[0])
            states = torch.where(drop[:, None, None], null_states.to(states.dtype)[:length], states)
            mask = torch.where(drop[:, None], self.empty_tokens.expand_as(tokens) != 0, mask)
            if pooled is not None:
                null_pooled = self.null_pooled if self.null_kind == "learned" else torch.zeros_like(pooled[0])
                pooled = torch.where(drop[:, None], null_pooled.to(pooled.dtype), pooled)
        return PathwayOutput(pooled, states, mask)

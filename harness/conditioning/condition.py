"""The `Condition`: what any conditioning mode hands the decoder (docs/design.md, section 2).

A mode turns a batch (captions, CLIP vectors) into a `Condition`; the decoder consumes every `Condition`
the same way: `vector` is added to the timestep embedding and `tokens` become extra keys/values in the
attention layers. `token_groups` names contiguous runs of tokens ("clip", "text") so that attention mass
can be reported per kind of token without the decoder knowing what the tokens mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Condition:
    vector: torch.Tensor | None = None  # [B, D_emb], added to the timestep embedding
    tokens: torch.Tensor | None = None  # [B, T, D_ctx], extra attention keys/values
    mask: torch.Tensor | None = None  # [B, T] bool, True where a token may be attended to
    token_groups: tuple[tuple[str, int], ...] = field(default=())  # (name, length) runs covering T

    def __post_init__(self) -> None:
        if self.tokens is not None:
            if self.mask is None:
                self.mask = torch.ones(self.tokens.shape[:2], dtype=torch.bool, device=self.tokens.device)
            total = sum(n for _, n in self.token_groups)
            if self.token_groups and total != self.tokens.shape[1]:
                raise ValueError(f"token_groups cover {total} tokens but tokens have {self.tokens.shape[1]}")
            if not self.token_groups:
                self.token_groups = (("tokens", self.tokens.shape[1]),)

    @property
    def batch_size(self) -> int:
        ref = self.vector if self.vector is not None else self.tokens
        if ref is None:
            raise ValueError("an empty Condition has no batch size")
        return ref.shape[0]

    def rows(self, index: slice) -> "Condition":
        """The condition of the batch rows `index` (a slice of the batch)."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return replace(self, vector=pick(self.vector), tokens=pick(self.tokens), mask=pick(self.mask))

    def to(self, *args, **kwargs) -> "Condition":
        move = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        tokens = move(self.tokens)
        # The bool mask follows the tokens' device but must keep its dtype, whatever dtype was asked for.
        mask = None if self.mask is None or tokens is None else self.mask.to(tokens.device)
        return replace(self, vector=move(self.vector), tokens=tokens, mask=mask)

    @staticmethod
    def cat(conditions: list["Condition"]) -> "Condition":
        """Stack conditions along the batch so guidance runs every branch in one forward pass."""
        first = conditions[0]
        if any(c.token_groups != first.token_groups for c in conditions):
            raise ValueError("cannot batch conditions with different token layouts")

        def join(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
            # A branch without a vector (or tokens) next to one with it would otherwise be silently dropped.
            if any((p is None) != (parts[0] is None) for p in parts):
                raise ValueError("cannot batch conditions where only some have a vector (or tokens)")
            return None if parts[0] is None else torch.cat(parts, dim=0)

        return Condition(
            vector=join([c.vector for c in conditions]),
            tokens=join([c.tokens for c in conditions]),
            mask=join([c.mask for c in conditions]),
            token_groups=first.token_groups,
        )

    def without(self, group: str) -> "Condition":
        """The same condition with one named token group hidden from attention (its mask set to False): what
        the decoder does without those tokens, the rest of the condition (its vector included) unchanged."""
        if self.tokens is None or group not in {name for name, _ in self.token_groups}:
            raise ValueError(f"no token group {group!r} to remove; groups: "
                             f"{', '.join(name for name, _ in self.token_groups) or 'none'}")
        mask, start = self.mask.clone(), 0
        for name, length in self.token_groups:
            if name == group:
                mask[:, start:start + length] = False
            start += length
        return replace(self, mask=mask)

"""`fixed`: one prior draw per prompt, shared by every sample of it (the blog post's reading of DALL-E 2)."""

from harness.arms.base import FIXED, SamplingArm, draws_from_prior, register_arm


@register_arm("fixed")
class Fixed(SamplingArm):
    baseline = True
    draws = FIXED

    @classmethod
    def applies_to(cls, mode: type) -> bool:
        return draws_from_prior(mode)

"""`fixed`: one prior draw per prompt, shared by every sample of it (the blog post's reading of DALL-E 2)."""

from harness.sampling.arms.base import FIXED, PriorDraws, register_arm


@register_arm("fixed")
class Fixed(PriorDraws):
    draws = FIXED

"""`per_sample`: a fresh prior draw for every sample, held across guidance scales (DALL-E 2's Fig. 9)."""

from harness.sampling.arms.base import PER_SAMPLE, PriorDraws, register_arm


@register_arm("per_sample")
class PerSample(PriorDraws):
    draws = PER_SAMPLE

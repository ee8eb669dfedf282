"""`per_sample`: a fresh prior draw for every sample, held across guidance scales (DALL-E 2's Fig. 9)."""

from harness.arms.base import PER_SAMPLE, SamplingArm, draws_from_prior, register_arm


@register_arm("per_sample")
class PerSample(SamplingArm):
    baseline = True
    draws = PER_SAMPLE

    @classmethod
    def applies_to(cls, mode: type) -> bool:
        return draws_from_prior(mode)

"""`unclip`: a CLIP image vector, true in training and drawn from the prior at sampling (Ramesh et al. 2022)."""

from harness.conditioning.base import ConditioningMode, register_mode


@register_mode("unclip")
class UnClip(ConditioningMode):
    vector_source = "image"
    sampling_vector = "prior"

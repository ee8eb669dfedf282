"""`glide`: the caption's tokens through a transformer trained with the decoder (GLIDE, Nichol et al. 2021)."""

from harness.conditioning.base import ConditioningMode, register_mode


@register_mode("glide")
class Glide(ConditioningMode):
    uses_text_sequence = True

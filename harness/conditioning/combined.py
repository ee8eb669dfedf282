"""`combined`: DALL-E 2 as shipped, the unCLIP image vector plus GLIDE's text pathway."""

from harness.conditioning.base import ConditioningMode, register_mode


@register_mode("combined")
class Combined(ConditioningMode):
    vector_source = "image"
    sampling_vector = "prior"
    uses_text_sequence = True

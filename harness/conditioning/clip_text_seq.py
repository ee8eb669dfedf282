"""`clip_text_seq`: the CLIP text vector plus GLIDE's text pathway, "the obvious alternative" never run."""

from harness.conditioning.base import ConditioningMode, register_mode


@register_mode("clip_text_seq")
class ClipTextSeq(ConditioningMode):
    vector_source = "text"
    uses_text_sequence = True

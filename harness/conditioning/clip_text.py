"""`clip_text`: the frozen CLIP text vector alone (Crowson's CLIP-conditioned diffusion; the blog's hypothesis)."""

from harness.conditioning.base import ConditioningMode, register_mode


@register_mode("clip_text")
class ClipText(ConditioningMode):
    vector_source = "text"

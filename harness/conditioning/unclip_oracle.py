"""`unclip_oracle`: the unCLIP decoder given the true image vector of a held-out real image of the prompt.

Not text-to-image: the reconstruction ceiling that `unclip` would reach with a perfect prior. It trains
exactly the unCLIP decoder, so it shares that artifact and only samples differently.
"""

from harness.conditioning.base import register_mode
from harness.conditioning.unclip import UnClip


@register_mode("unclip_oracle")
class UnClipOracle(UnClip):
    sampling_vector = "oracle"

    @classmethod
    def training_identity(cls) -> str:
        return UnClip.module_name

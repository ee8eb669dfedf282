"""The image decoder: a conditioned UNet and the diffusion process around it (docs/design.md, section 3)."""

from harness.decoder.diffusion import (
    diffusion_loss,
    guided,
    make_sampler,
    make_train_scheduler,
    paired_noise,
    sample,
    step_generators,
)
from harness.decoder.attention_record import record_attention
from harness.decoder.unet import UNET_SIZES, UNet, build_unet

__all__ = [
    "UNET_SIZES", "UNet", "build_unet", "record_attention",
    "make_train_scheduler", "diffusion_loss", "make_sampler", "sample",
    "paired_noise", "step_generators", "guided",
]

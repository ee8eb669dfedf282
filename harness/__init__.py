"""unclip-harness: train small diffusion decoders under interchangeable text-conditioning modes, sweep
classifier-free guidance, and report diversity-fidelity curves with valid intervals."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unclip-harness")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"

"""Run the stages up to one decoder on the smoke preset and print a hash of its weights (for resume tests).

usage: python train_decoder.py CACHE_DIR MODE [overrides...]
"""

import hashlib
import logging
import sys

import torch

from harness.cli import compose
from harness.decoder import stage as decoder_stage
from stages import train_decoder, upstream_of_decoders  # this script's own folder is on sys.path

logging.basicConfig(level=logging.INFO)
cache_dir, mode, *overrides = sys.argv[1:]
cfg = compose(["experiment=smoke", f"cache_dir={cache_dir}", f"conditioning=[{mode}]", *overrides])
artifact = train_decoder(upstream_of_decoders(cfg), mode)
state = torch.load(artifact.file(decoder_stage.WEIGHTS), weights_only=True)
digest = hashlib.sha256()
for name in sorted(state):
    digest.update(name.encode())
    digest.update(state[name].float().numpy().tobytes())
print("WEIGHTS", digest.hexdigest())

"""Run the stages up to one decoder on the smoke preset and print a hash of its weights (for resume tests).

usage: python train_decoder.py CACHE_DIR MODE [overrides...]
"""

import hashlib
import logging
import sys

import torch

from harness.cli import compose
from harness.clip import embeddings as embeddings_stage, stage as clip_stage
from harness.data import build as data_stage
from harness.decoder import stage as decoder_stage
from harness.pipeline import cache_for

logging.basicConfig(level=logging.INFO)
cache_dir, mode, *overrides = sys.argv[1:]
cfg = compose(["experiment=smoke", f"cache_dir={cache_dir}", f"conditioning=[{mode}]", *overrides])
cache = cache_for(cfg)
data = data_stage.run(cfg.data, cache)
clip = clip_stage.run(cfg, cache, data)
embeddings = embeddings_stage.run(cfg, cache, data, clip)
context = decoder_stage.clip_context(clip, embeddings)
train_split = embeddings_stage.load_embeddings(embeddings)["train"]
artifact = decoder_stage.run(cfg, cache, data, embeddings, train_split, context, mode, 0)
state = torch.load(artifact.file(decoder_stage.WEIGHTS), weights_only=True)
digest = hashlib.sha256()
for name in sorted(state):
    digest.update(name.encode())
    digest.update(state[name].float().numpy().tobytes())
print("WEIGHTS", digest.hexdigest())

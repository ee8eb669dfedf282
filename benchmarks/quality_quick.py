"""Quality and wall time of the CLIP, evaluator and prior stages on the `quick` preset.

    .venv/bin/python benchmarks/quality_quick.py [overrides...]     # e.g. cache_dir=/tmp/cache progress=false

Builds (or reuses, from the configured artifact cache) the data, clip, embeddings, eval_clip, probe and prior
stages of `experiment=quick` and prints their quality figures side by side. Wall times are the build times
stored in each artifact's meta, so a rerun that reuses the artifacts still reports what building them took.
"""

from __future__ import annotations

import logging
import sys

from harness.runtime import pipeline
from harness.runtime.cache import Artifact
from harness.cli import compose
from harness.runtime.context import Context


def clip_lines(name: str, artifact: Artifact) -> list[str]:
    quality = artifact.meta["quality"]
    zero_shot = "  ".join(f"{a} {v['accuracy']:.3f} (chance {v['chance']:.2f})"
                          for a, v in quality.get("zero_shot", {}).items())
    retrieval = "  ".join(f"{k} {v:.3f}" for k, v in quality["retrieval"].items())
    lines = [f"{name} zero-shot accuracy: {zero_shot}", f"{name} text->image retrieval on held-out: {retrieval}"]
    if quality.get("binding"):
        binding = quality["binding"]
        lines.append(f"{name} binding: caption preferred to both attribute swaps on {binding['images']} two-object "
                     f"images: {binding['swap_accuracy']:.3f} (chance 0.33)")
    return lines


def main(overrides: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = compose(["experiment=quick", *overrides])
    judges = ("probe", "eval_clip") if cfg.data.source == "shapes" else ("eval_clip",)
    built = pipeline.build(Context.start(cfg), through=("prior", *judges)).artifacts
    artifacts = {name: built[name] for name in ("data", "clip", "embeddings", "prior", *judges)}
    clip, evaluator = artifacts["clip"], artifacts["eval_clip"]

    lines = ["", "stage wall times (build, from artifact meta):"]
    lines += [f"  {name:<11} {a.meta.get('wall_time_s', float('nan')):7.1f} s  {'reused' if a.reused else 'built'}"
              for name, a in artifacts.items()]
    lines.append(f"  {'total':<11} {sum(a.meta.get('wall_time_s', 0.0) for a in artifacts.values()):7.1f} s")
    lines += [""] + clip_lines("conditioning CLIP", clip) + clip_lines("evaluation CLIP", evaluator)
    if "probe" in artifacts:
        for key, label in (("accuracy", "fresh held-out images"), ("accuracy_test_split", "dataset test split")):
            figures = artifacts["probe"].meta[key]
            lines.append(f"probe accuracy on {label}: " + "  ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    prior = artifacts["prior"].meta
    lines += ["", f"priors on {prior['eval_captions']} val captions (unCLIP uses {prior['kind']}):"]
    for name, figures in prior["quality"].items():
        scores = "  ".join(f"{k} {v:.3f}" for k, v in figures.items() if k != "fit")
        lines.append(f"  {name:<11} {scores}")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

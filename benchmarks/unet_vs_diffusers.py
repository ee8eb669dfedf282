"""Our UNet against diffusers' UNet2DConditionModel at the same parameter count: decoder training throughput,
peak memory, and (with --quality) sample quality after the same number of training steps.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unet_vs_diffusers.py                    # tiny, 16 and 32 px
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unet_vs_diffusers.py --size small --steps 2 --repeats 3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unet_vs_diffusers.py --quality --resolutions  # quality only

Both models get the same inputs through the same calling convention `unet(x_t, t, cond)`: `cond.vector` goes
into diffusers' class embedding (class_embed_type="projection"), `cond.tokens` into its cross-attention as
`encoder_hidden_states` (cross_attention_dim = our ctx_dim). Both train with the same loss (epsilon MSE through
the harness's `diffusion_loss`, i.e. DDPMScheduler.add_noise), fused AdamW, batch, resolution and precision.

The diffusers configuration mirrors ours (channel multipliers, attention at the same feature-map sizes, heads,
scale-shift time conditioning) and searches the base width (and, only if that cannot match, the blocks per
level) for the parameter count closest to ours, which must be within 10%.

Throughput: both models in this process, timed alternately (ours, theirs, ours, ...) for --repeats rounds of
--steps steps after a warm-up, so a slow spell of the shared machine hits both; the figure is the per-round
ratio ours/theirs with its median, quartiles and range.

Peak memory: each model trains a few steps in a fresh spawned process; CPU: growth of the process's peak
resident set (VmHWM, reset through /proc/self/clear_refs after start-up) over its resident set before the model
was built, so it counts weights, gradients, AdamW state and activations; CUDA: torch.cuda.max_memory_allocated
over the allocation before the model. A fresh process per model keeps the first model's freed-but-cached heap
from hiding the second's.

--quality trains both (harness training loop and the quick preset's decoder recipe, i.e. its prediction
target, noise schedule and Min-SNR weighting, for --quality-steps steps) on the quick preset's 16 px shapes
data, conditioned on the true CLIP image vector through the harness's `unclip` mode. It then scores the raw
weights of both on the same held-out test images: the training loss at a fixed timestep and noise per image,
and samples from each test image's CLIP vector (same sampler, guidance and paired noise) read by the attribute
probe (agreement with the source image's attributes) and FID in probe features. It reads the data, CLIP,
embeddings and probe artifacts from the cache left by `make run`. (The throughput part keeps the plain epsilon
MSE on a linear schedule: the target and weighting cost nothing next to the network.)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch import nn

import _common
from harness.conditioning.base import ModeInputs
from harness.conditioning.condition import Condition
from harness.config import Config
from harness.decoder import UNET_SIZES, build_unet, diffusion_loss, make_train_scheduler
from harness.runtime.device import resolve_device
from harness.training import TrainResult

TOLERANCE = 0.10  # largest relative parameter-count gap allowed between the two models


#################################################################################
#                        The diffusers model, sized like ours                   #
#################################################################################

class DiffusersUNet(nn.Module):
    """UNet2DConditionModel behind our UNet's signature `unet(x_t, t, cond)`."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.model = UNet2DConditionModel(**config)
        self.emb_dim = config["projection_class_embeddings_input_dim"]
        self.ctx_dim = config["cross_attention_dim"]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        # cond.mask is ignored: every condition benchmarked here attends to all its tokens.
        return self.model(x, t, encoder_hidden_states=cond.tokens, class_labels=cond.vector, return_dict=False)[0]


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def norm_groups(width: int) -> int:
    """GroupNorm groups of at least 4 channels at the first level, at most 32, as our `group_norm`; they must
    divide `width` because diffusers uses one group count for every level."""
    return max(d for d in range(1, 33) if width % d == 0 and d <= max(width // 4, 1))


def mirrored_config(size: str, resolution: int, width: int, layers: int, emb_dim: int, ctx_dim: int) -> dict:
    """A UNet2DConditionModel config with our preset's layout at base width `width`, `layers` blocks per level."""
    preset = UNET_SIZES[size]
    sizes = [resolution // 2 ** i for i in range(len(preset["channel_mults"]))]
    attention = [s in preset["attention_resolutions"] for s in sizes]
    return dict(
        sample_size=resolution, in_channels=3, out_channels=3,
        block_out_channels=tuple(width * m for m in preset["channel_mults"]), layers_per_block=layers,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        mid_block_type="UNetMidBlock2DCrossAttn",
        attention_head_dim=preset["heads"],  # diffusers reads this as the number of heads (its GitHub issue #2011)
        cross_attention_dim=ctx_dim,
        class_embed_type="projection", projection_class_embeddings_input_dim=emb_dim,
        resnet_time_scale_shift="scale_shift",  # ADM's conditioning, as our ResBlock
        norm_num_groups=norm_groups(width),
    )


def match_diffusers(size: str, resolution: int) -> tuple[dict, int, int]:
    """(config, its parameter count, ours): the mirrored config whose parameter count is closest to ours."""
    ours = build_unet(size, resolution)
    target = parameter_count(ours)
    preset = UNET_SIZES[size]
    widths = range(preset["heads"], 2 * preset["width"] + 1, preset["heads"])  # widths that split into the heads
    best: tuple[float, dict, int] | None = None
    # Keep our blocks per level when some width matches; change it only if none does.
    for layers in (preset["num_res_blocks"], preset["num_res_blocks"] + 1, preset["num_res_blocks"] - 1):
        for width in widths:
            config = mirrored_config(size, resolution, width, max(layers, 1), ours.emb_dim, ours.ctx_dim)
            with torch.device("meta"):  # counting needs shapes, not memory
                count = parameter_count(UNet2DConditionModel(**config))
            gap = abs(count / target - 1)
            if best is None or gap < best[0]:
                best = (gap, config, count)
        if best[0] <= TOLERANCE:
            break
    gap, config, count = best
    if gap > TOLERANCE:
        raise SystemExit(f"no diffusers config within {TOLERANCE:.0%} of our {target} parameters (best {count})")
    return config, count, target


def build(which: str, size: str, resolution: int, config: dict) -> nn.Module:
    return build_unet(size, resolution) if which == "ours" else DiffusersUNet(config)


#################################################################################
#                               Throughput                                      #
#################################################################################

def alternate_rates(steps: dict[str, Callable[[], None]], n_steps: int, repeats: int, warmup: int, batch: int,
                    device: torch.device) -> dict[str, dict[str, list[float]]]:
    """{model: {"wall": [images/s per round], "cpu": [images per CPU-second per round]}}, models timed in turn."""
    for step in steps.values():
        for _ in range(warmup):  # oneDNN picks its kernels on the first calls
            step()
    rates = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _common.sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n_steps):
                step()
            _common.sync(device)
            rates[name]["wall"].append(n_steps * batch / (time.perf_counter() - wall))
            rates[name]["cpu"].append(n_steps * batch / (time.process_time() - cpu))
    return rates


#################################################################################
#                               Peak memory                                     #
#################################################################################

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_memory_child(which: str, size: str, resolution: int, config: dict, batch: int, tokens: int,
                       precision: str, device_name: str, threads: int) -> float:
    """MiB of peak memory that building `which` and training it 3 steps added (module docstring)."""
    _common.set_threads(threads)
    device = torch.device(device_name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
        before = _status_kb("VmRSS") * 1024
    step = _common.training_step(build(which, size, resolution, config), resolution, batch, tokens, precision,
                                 device)
    for _ in range(3):
        step()
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _status_kb("VmHWM") * 1024
    return (peak - before) / 2 ** 20


def peak_memory_mib(which: str, *args) -> float:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_peak_memory_child, (which, *args))


#################################################################################
#                       Quality after equal training steps                      #
#################################################################################

@dataclasses.dataclass
class QuickData:
    cfg: Config
    train_pixels: torch.Tensor  # uint8 [N, H, W, 3]
    train: dict[str, torch.Tensor]  # CLIP embeddings of the train split
    test_pixels: np.ndarray  # uint8 [M, H, W, 3]
    test: dict[str, torch.Tensor]
    test_attributes: list[dict]
    clip: object  # harness.decoder.stage.ClipContext
    probe: object  # harness.evaluator.probe_model.Probe


def load_quick(device: torch.device, allow_build: bool) -> QuickData:
    """The quick preset's 16 px data, CLIP embeddings and attribute probe, from the cache (see --build)."""
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.clip import load_embeddings
    from harness.data import splits
    from harness.decoder.stage import clip_context
    from harness.evaluator import probe as probe_stage

    cfg = compose(["experiment=quick", "conditioning=[unclip]"])
    ctx = pipeline.build(_common.pipeline_context(cfg, allow_build), through=("embeddings", "probe"))
    table = load_embeddings(ctx["embeddings"])
    train, test = (splits.load_split(ctx["data"], name) for name in ("train", "test"))
    return QuickData(cfg, torch.from_numpy(np.array(train.pixels)), table["train"], np.array(test.pixels),
                     table["test"], test.attributes, clip_context(ctx["clip"], ctx["embeddings"]),
                     probe_stage.load_probe(ctx["probe"], device))


def train_decoder(unet: nn.Module, quick: QuickData, steps: int, precision: str,
                  device: torch.device) -> tuple[TrainResult, DDPMScheduler]:
    """`unet` + the unclip mode trained with the quick decoder recipe for `steps` steps (harness training loop)."""
    from harness.conditioning.base import build_mode
    from harness.conditioning.pathways import Dims
    from harness.decoder.stage import Decoder, pixels_to_model
    from harness.training import train

    cfg, clip = quick.cfg, quick.clip
    dims = Dims(unet.emb_dim, unet.ctx_dim, clip.clip_dim, clip.vocab_size, clip.context_length)
    torch.manual_seed(0)  # the same mode weights for both UNets
    model = Decoder(unet, build_mode(cfg.conditioning["unclip"], dims, clip.empty_tokens, clip.empty_vector))
    scheduler = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule, cfg.decoder.prediction)

    def fetch(indices: np.ndarray):
        rows = torch.as_tensor(indices)
        inputs = ModeInputs(*(quick.train[k][rows].to(device) for k in ("tokens", "text", "image")))
        return pixels_to_model(quick.train_pixels[rows], device), inputs

    def loss_fn(batch, generator: torch.Generator) -> torch.Tensor:
        x0, inputs = batch
        cond = model.mode.training_condition(inputs, generator)
        return diffusion_loss(lambda x, t: model.unet(x, t, cond), x0, scheduler, generator,
                              cfg.decoder.min_snr_gamma)

    recipe = dataclasses.replace(cfg.decoder.train, steps=steps, checkpoint_every=steps)
    with tempfile.TemporaryDirectory() as workdir:
        result = train(model, loss_fn, fetch, len(quick.train_pixels), recipe, Path(workdir), device,
                       precision=precision, desc="quality", progress=False)
    return result, scheduler


def test_inputs(quick: QuickData, rows: slice, device: torch.device) -> ModeInputs:
    return ModeInputs(*(quick.test[k][rows].to(device) for k in ("tokens", "text", "image")))


def heldout_loss(model: nn.Module, quick: QuickData, scheduler, n: int, device: torch.device) -> np.ndarray:
    """The training objective (`diffusion_loss` with the recipe's prediction target and Min-SNR weighting) of
    each of the first `n` test images, its timestep and noise drawn from a generator seeded by the image's
    index: both models see exactly the same (x0, t, noise), so the comparison is paired."""
    from harness.decoder.stage import pixels_to_model

    x0 = pixels_to_model(quick.test_pixels[:n], device)
    losses = []
    with torch.no_grad():
        for i in range(n):
            cond = model.mode(test_inputs(quick, slice(i, i + 1), device))
            losses.append(diffusion_loss(lambda x, t: model.unet(x, t, cond), x0[i:i + 1], scheduler,
                                         torch.Generator(device=device).manual_seed(i),
                                         quick.cfg.decoder.min_snr_gamma).item())
    return np.array(losses)


def reconstructions(model: nn.Module, quick: QuickData, scheduler, n: int, guidance: float, precision: str,
                    device: torch.device) -> np.ndarray:
    """uint8 samples [n, H, W, 3] from the CLIP image vectors of the first n test images (quick's sampler,
    paired noise: sample i starts from the same noise for both models)."""
    from harness.decoder.diffusion import guided, make_sampler, paired_noise, sample

    cfg = quick.cfg
    sampler = make_sampler(cfg.sweep.sampler, scheduler, cfg.sweep.sample_steps)
    res = cfg.data.resolution
    out = []
    for start in range(0, n, 128):
        ids = torch.arange(start, min(n, start + 128))
        inputs = test_inputs(quick, slice(start, start + len(ids)), device)
        with torch.no_grad():
            model_fn = guided(model, *model.mode.guidance_branches(inputs, guidance))
            noise = paired_noise(cfg.sweep.seed, ids, torch.zeros_like(ids), (3, res, res), device=device)
            x0 = sample(model_fn, noise, sampler, precision=precision)
        out.append(((x0.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(out).numpy()


def attribute_agreement(quick: QuickData, images: np.ndarray) -> np.ndarray:
    """Per image, the share of the source image's attributes (background, count, each object's shape, colour,
    size, position) that the probe reads in the sample."""
    from harness.evaluator.probe import attribute_accuracy

    readings = quick.probe.read(images)
    return np.array([np.mean([v for k, v in attribute_accuracy([r], [truth]).items() if k != "scene"])
                     for r, truth in zip(readings, quick.test_attributes)])


def train_and_score(which: str, size: str, config: dict, quick: QuickData, steps: int, n_eval: int,
                    guidance: float, precision: str, device: torch.device) -> dict:
    """Train one UNet for `steps` steps, then its per-image held-out loss, attribute agreement and features."""
    torch.manual_seed(0)
    unet = build(which, size, quick.cfg.data.resolution, config)
    started = time.perf_counter()
    result, scheduler = train_decoder(unet, quick, steps, precision, device)
    train_wall_s = time.perf_counter() - started
    # Raw weights, not the EMA: the quick recipe's EMA (decay 0.995, tuned for 1000 steps) still holds
    # 0.995^300 = 22% of the initial weights after 300 steps, which would swamp the architectures' difference.
    model = result.model.eval()
    images = reconstructions(model, quick, scheduler, n_eval, guidance, precision, device)
    print(f"  {which}: trained {steps} steps at {result.images_per_s:.0f} images/s")
    return {"loss": heldout_loss(model, quick, scheduler, n_eval, device),
            "agreement": attribute_agreement(quick, images),
            "features": quick.probe.features(images).double().cpu(),
            "train_wall_s": train_wall_s, "train_images_per_s": result.images_per_s,
            "final_train_loss": result.history[-1]["loss"]}


def quality(size: str, steps: int, n_eval: int, guidance: float, precision: str, device: torch.device,
            allow_build: bool) -> dict:
    """Both UNets trained and scored alike (module docstring); differences ours - diffusers, paired by image."""
    from harness.metrics.distribution import fid_kid, leave_one_prompt_out
    from harness.metrics.intervals import mean_interval, pseudo_values

    quick = load_quick(device, allow_build)
    config = match_diffusers(size, quick.cfg.data.resolution)[0]
    real_features = quick.probe.features(quick.test_pixels[:n_eval]).double().cpu()
    scored = {w: train_and_score(w, size, config, quick, steps, n_eval, guidance, precision, device)
              for w in ("ours", "diffusers")}

    def fid(which: str, ids: np.ndarray) -> float:
        return fid_kid(real_features[ids], scored[which]["features"][ids], kid_subsets=1)["fid"]

    def fid_pseudo_values(which: str) -> np.ndarray:
        # Each image is its own "prompt": FID without it, turned into per-image contributions.
        value, loo = leave_one_prompt_out(real_features[:, None].numpy(),
                                          scored[which]["features"][:, None].numpy())["fid"]
        return pseudo_values(value, loo)

    ids = np.arange(n_eval)
    cfg = quick.cfg
    out = {"what": f"{steps} training steps each (quick decoder recipe, batch {cfg.decoder.train.batch_size}) "
                   f"on the quick 16 px shapes data, conditioned on the true CLIP image vector (unclip mode); "
                   f"raw (non-EMA) weights scored on {n_eval} held-out test images: the training loss "
                   f"({cfg.decoder.prediction}, Min-SNR {cfg.decoder.min_snr_gamma:g}) at a fixed timestep and "
                   f"noise per image; samples ({cfg.sweep.sampler} {cfg.sweep.sample_steps} steps, guidance "
                   f"{guidance:g}, paired noise) from each test image's CLIP vector, read by the probe "
                   f"(attribute agreement with the source image) and FID in probe features against the sources; "
                   f"ours - diffusers differences with 95% paired t intervals over images (FID: jackknife pseudo-values); one training seed",
           "models": {w: {"heldout_loss": float(m["loss"].mean()), "attribute_agreement": float(m["agreement"].mean()),
                          "fid": fid(w, ids), **{k: m[k] for k in ("train_wall_s", "train_images_per_s",
                                                                    "final_train_loss")}}
                      for w, m in scored.items()}}
    for metric, key in (("heldout_loss", "loss"), ("attribute_agreement", "agreement")):
        d = mean_interval(np.asarray(scored["ours"][key]) - np.asarray(scored["diffusers"][key]))
        out[f"{metric}_difference"] = {"value": d.value, "ci95": [d.low, d.high]}
    d = mean_interval(fid_pseudo_values("ours") - fid_pseudo_values("diffusers"))
    out["fid_difference"] = {"value": d.value, "ci95": [d.low, d.high]}
    return out


#################################################################################
#                                   Main                                        #
#################################################################################

def compare(size: str, resolution: int, args: argparse.Namespace, device: torch.device) -> dict:
    """Parameter counts, alternating throughput and peak memory of both models at one resolution."""
    config, theirs_params, ours_params = match_diffusers(size, resolution)
    torch.manual_seed(0)
    models = {which: build(which, size, resolution, config) for which in ("ours", "diffusers")}
    steps = {w: _common.training_step(m, resolution, args.batch, args.tokens, args.precision, device)
             for w, m in models.items()}
    rates = alternate_rates(steps, args.steps, args.repeats, args.warmup, args.batch, device)
    memory = {w: peak_memory_mib(w, size, resolution, config, args.batch, args.tokens, args.precision, str(device),
                                 args.threads) for w in models}
    ratio = {kind: _common.spread(np.array(rates["ours"][kind]) / np.array(rates["diffusers"][kind]))
             for kind in ("wall", "cpu")}
    return {"resolution": resolution, "parameters": {"ours": ours_params, "diffusers": theirs_params},
            "diffusers_config": dict(config),
            "images_per_s": {w: _common.spread(r["wall"]) for w, r in rates.items()},
            "images_per_cpu_s": {w: _common.spread(r["cpu"]) for w, r in rates.items()},
            "ratio_ours_over_diffusers": ratio["wall"], "ratio_ours_over_diffusers_cpu_time": ratio["cpu"],
            "peak_memory_mib": memory, "memory_ratio_ours_over_diffusers": memory["ours"] / memory["diffusers"]}


def report(result: dict) -> None:
    """Print one resolution's `compare` figures."""
    p, m = result["parameters"], result["peak_memory_mib"]
    c = result["diffusers_config"]
    print(f"{result['resolution']} px: parameters ours {p['ours']:,}, diffusers {p['diffusers']:,} "
          f"({p['diffusers'] / p['ours'] - 1:+.1%}; block_out_channels {c['block_out_channels']}, "
          f"layers_per_block {c['layers_per_block']})")
    for w in ("ours", "diffusers"):
        print(f"  {w:>9}: {_common.fmt_spread(result['images_per_s'][w], 1)} images/s, "
              f"peak memory +{m[w]:.0f} MiB")
    print(f"  images/s ratio ours/diffusers: {_common.fmt_spread(result['ratio_ours_over_diffusers'])}")
    print(f"  (per CPU-second: {_common.fmt_spread(result['ratio_ours_over_diffusers_cpu_time'])})")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--size", default="tiny", choices=sorted(UNET_SIZES))
    parser.add_argument("--resolutions", type=int, nargs="*", default=[16, 32],
                        help="throughput resolutions; pass none to run --quality alone")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20, help="context tokens, as decoder_throughput.py")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quality", action="store_true", help="also compare quality after equal training steps")
    parser.add_argument("--out", default=None,
                        help="results/benchmarks/<OUT>.json (default unet_vs_diffusers_<size>[_quality])")
    parser.add_argument("--quality-steps", type=int, default=300)
    parser.add_argument("--quality-images", type=int, default=512, help="held-out test images scored")
    parser.add_argument("--guidance", type=float, default=3.0, help="guidance scale of the quality samples")
    _common.add_build_flag(parser)
    args = parser.parse_args()
    _common.set_threads(args.threads)
    device = resolve_device(args.device)

    payload: dict = {"size": args.size, "batch": args.batch, "context_tokens": args.tokens,
                     "precision": args.precision, "steps_per_round": args.steps, "rounds": args.repeats,
                     "memory_method": "CUDA: max_memory_allocated growth; CPU: VmHWM growth (reset through "
                                      "/proc/self/clear_refs) over VmRSS before the model, one spawned process "
                                      "per model, 3 training steps",
                     "throughput": []}
    for resolution in args.resolutions:
        result = compare(args.size, resolution, args, device)
        report(result)
        payload["throughput"].append(result)
    name = f"unet_vs_diffusers_{args.size}"
    if args.quality:
        payload["quality"] = quality(args.size, args.quality_steps, args.quality_images, args.guidance,
                                     args.precision, device, args.build)
        print_quality(payload["quality"])
        name += "_quality" if not args.resolutions else ""
    _common.write_result(args.out or name, payload)


def print_quality(q: dict) -> None:
    """Print the `quality` figures."""
    print(q["what"])
    for w, m in q["models"].items():
        print(f"  {w:>9}: held-out loss {m['heldout_loss']:.4f}, attribute agreement {m['attribute_agreement']:.3f}, "
              f"FID {m['fid']:.2f}, final train loss {m['final_train_loss']:.4f}, {m['train_images_per_s']:.0f} img/s")
    for metric in ("heldout_loss", "attribute_agreement", "fid"):
        d = q[f"{metric}_difference"]
        print(f"  {metric} ours - diffusers: {d['value']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")


if __name__ == "__main__":
    main()

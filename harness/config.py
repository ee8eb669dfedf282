"""Structured-config schemas: every key the harness reads, its type, and the values it accepts.

The dataclasses are registered in Hydra's ConfigStore as the base of `conf/config.yaml`, so OmegaConf rejects
unknown keys and wrong types while composing. Value constraints (a resolution of 16, 32 or 64, a positive
dataset size) sit in each field's metadata and are checked by `validate` before any stage runs, so a bad
override fails in one line that names the key instead of an hour into training.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from harness.errors import ConfigError

log = logging.getLogger(__name__)


def _conf_dir() -> Path:
    """The config groups: inside the package when installed from a wheel (the build maps the repository's
    top-level conf/ to harness/conf), at the top of the repository in a source checkout or editable install."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "conf"


CONF_DIR = _conf_dir()


# ---------------------------------------------------------------------------------------------------------
# Field helpers: a default plus the constraint the validator enforces
# ---------------------------------------------------------------------------------------------------------

def param(default: Any, *, choices: tuple | None = None, ge: float | None = None, gt: float | None = None,
          le: float | None = None, min_len: int | None = None, keys: tuple[str, ...] | None = None,
          help: str = "") -> Any:
    """A dataclass field with a constraint; on a list the constraint applies to every element, and `min_len`
    to the list's length. `keys`: the stages whose artifact keys the field enters (`key_fields`); None
    takes the section's."""
    meta = {"choices": choices, "ge": ge, "gt": gt, "le": le, "min_len": min_len, "keys": keys, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(factory: Callable[[], Any], *, keys: tuple[str, ...] = ()) -> Any:
    """A nested config whose fields enter the artifact keys of the stages `keys`, unless a field says otherwise."""
    return field(default_factory=factory, metadata={"keys": keys})


def key_fields(node: Any, stage: str, section_keys: tuple[str, ...] | None = None) -> dict:
    """The part of the config `node` that keys `stage`'s artifacts: every field the schema marks for it, nested
    as in the config. A field inside a marked section keys that section's stages, or those of its own mark
    that the section has (a training seed inside `clip.train` keys the CLIP, not the prior); outside any
    section, only its own mark. What changes an artifact is declared once, beside the field, and every
    stage's cache key is read from here (plus what the stage derives: a task's seed, a precision)."""
    out: dict = {}
    for f in dataclasses.fields(node):
        marked = f.metadata.get("keys")
        if marked is None:
            stages = section_keys or ()
        else:
            stages = tuple(marked) if section_keys is None else tuple(k for k in marked if k in section_keys)
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            # An unmarked nested config is part of its section; a field outside any section opens none.
            if nested := key_fields(value, stage, stages if (marked is not None or section_keys is not None)
                                    else None):
                out[f.name] = nested
        elif stage in stages:
            out[f.name] = value
    return out


def _problems(value: Any, meta: dict) -> Iterator[str]:
    if isinstance(value, list) and meta.get("min_len") and len(value) < meta["min_len"]:
        yield f"needs at least {meta['min_len']} value{'s' if meta['min_len'] > 1 else ''}, got {value!r}"
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        if meta.get("choices") is not None and item not in meta["choices"]:
            yield f"must be one of {', '.join(map(str, meta['choices']))}, got {item!r}"
        if meta.get("ge") is not None and item < meta["ge"]:
            yield f"must be >= {meta['ge']}, got {item!r}"
        if meta.get("gt") is not None and item <= meta["gt"]:
            yield f"must be > {meta['gt']}, got {item!r}"
        if meta.get("le") is not None and item > meta["le"]:
            yield f"must be <= {meta['le']}, got {item!r}"


def _walk(obj: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            for message in _problems(value, dict(f.metadata)):
                yield key, message
            yield from _walk(value, key + ".")
        if hasattr(obj, "cross_checks"):
            for sub, message in obj.cross_checks():
                yield f"{prefix}{sub}", message
    elif isinstance(obj, dict):
        for name, value in obj.items():
            yield from _walk(value, f"{prefix}{name}.")
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            if dataclasses.is_dataclass(value):
                yield from _walk(value, f"{prefix.rstrip('.')}[{index}].")


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------

@dataclass
class MentionConfig:
    """Probability that a single-object caption names each attribute (what it leaves out is free)."""
    shape: float = param(0.8, ge=0, le=1)
    color: float = param(0.8, ge=0, le=1)
    size: float = param(0.4, ge=0, le=1)
    position: float = param(0.4, ge=0, le=1)
    background: float = param(0.2, ge=0, le=1)


@dataclass
class ShapesConfig:
    num_shapes: int = param(4, ge=2, le=5, help="first N of circle, square, triangle, diamond, cross")
    num_colors: int = param(6, ge=2, le=8, help="first N of red, green, blue, yellow, purple, cyan, orange, white")
    num_sizes: int = param(2, ge=1, le=3, help="first N of small, large, medium")
    num_backgrounds: int = param(3, ge=1, le=4, help="first N of black, gray, navy, brown")
    grid: int = param(3, choices=(2, 3), help="positions on a grid x grid board")
    jitter: float = param(0.04, ge=0, le=0.1, help="position noise, as a fraction of the image side")
    p_two_objects: float = param(0.3, ge=0, le=1, help="share of images with two objects and a relation")
    p_all_mentioned: float = param(0.3, ge=0, le=1, help="share of single-object captions that name everything")
    two_object_size: str = param("large", choices=("any", "small", "medium", "large"),
                                 help="size of both objects in two-object scenes (any: drawn like one object's)")
    mention: MentionConfig = field(default_factory=MentionConfig)
    supersample: int = param(4, ge=1, le=8, help="anti-aliasing: render at this factor, then average")

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        sizes = ("small", "large", "medium")[: self.num_sizes]  # the order of SIZES in harness/data/world.py
        if self.two_object_size != "any" and self.two_object_size not in sizes:
            yield "two_object_size", f"must be any or one of the world's sizes ({', '.join(sizes)}), got " \
                                     f"{self.two_object_size!r}"


@dataclass
class HFConfig:
    path: str = param("", help="a `load_from_disk` folder, an imagefolder with metadata.jsonl/csv, or a hub name")
    split: str = "train"
    image_column: str = "image"
    text_column: str = "text"
    max_images: Optional[int] = param(None, gt=0)
    allow_network: bool = param(False, keys=())


# The data stage keys on the fields of its source: `data.shapes` or `data.hf`.
DATA_KEYS = ("data.shapes", "data.hf")


@dataclass
class DataConfig:
    source: str = param("shapes", choices=("shapes", "hf"), keys=DATA_KEYS)
    resolution: int = param(16, choices=(16, 32, 64), keys=DATA_KEYS)
    num_images: int = param(20000, gt=0, keys=("data.shapes",),
                            help="images generated by the shapes world (train+val+test)")
    val_fraction: float = param(0.05, gt=0, le=0.5, keys=DATA_KEYS)
    test_fraction: float = param(0.05, gt=0, le=0.5, keys=DATA_KEYS)
    seed: int = param(0, keys=DATA_KEYS)
    shapes: ShapesConfig = section(ShapesConfig, keys=("data.shapes",))
    hf: HFConfig = section(HFConfig, keys=("data.hf",))

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        if self.source == "hf" and not self.hf.path:
            yield "hf.path", "data=hf needs data.hf.path (a local dataset folder or a hub name)"


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """One recipe shape for every trained artifact (CLIP, probe, prior, decoder)."""
    steps: int = param(1000, gt=0)
    batch_size: int = param(128, gt=0)
    lr: float = param(3e-4, gt=0)
    weight_decay: float = param(0.0, ge=0)
    warmup_steps: int = param(50, ge=0)
    lr_schedule: str = param("constant", choices=("constant", "cosine"), help="after warm-up")
    grad_clip: float = param(1.0, ge=0, help="0 disables clipping")
    ema_decay: float = param(0.0, ge=0, le=1, help="0 disables EMA")
    checkpoint_every: int = param(200, gt=0)
    # A decoder's seed is its task's, and the evaluation CLIP's is evaluator.clip_seed: they key on those.
    seed: int = param(0, keys=("clip", "probe", "prior"))


@dataclass
class ClipConfig:
    """The conditioning CLIP. A scratch one keys on its architecture and recipe (which the evaluation CLIP's
    are derived from, so they key it too); a pretrained one on its fingerprint (`harness.clip.pretrained`)."""
    kind: str = param("scratch", choices=("scratch", "pretrained"), keys=("clip",))
    embed_dim: int = param(64, gt=0)
    vision_width: int = param(128, gt=0)
    vision_layers: int = param(3, gt=0)
    vision_heads: int = param(4, gt=0)
    patch_size: int = param(4, choices=(2, 4, 8, 16))
    text_width: int = param(128, gt=0)
    text_layers: int = param(3, gt=0)
    text_heads: int = param(4, gt=0)
    context_length: int = param(24, gt=2)
    hard_negatives: bool = param(False, keys=("clip",))
    num_hard_negatives: int = param(2, ge=1, keys=("clip",))
    train: TrainConfig = section(TrainConfig, keys=("clip", "eval_clip"))
    # clip=pretrained
    architecture: str = param("ViT-B-32", keys=())
    weights: str = param("", keys=(), help="a local weights file (.pt, .bin or .safetensors)")
    model_config: str = param("", keys=(), help="a custom open_clip model config (JSON) instead of a registry "
                                                "architecture")
    pretrained_tag: str = param("", keys=(), help="an open_clip pretrained tag; needs allow_network")
    allow_network: bool = param(False, keys=())

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        for tower in ("vision", "text"):
            if getattr(self, f"{tower}_width") % getattr(self, f"{tower}_heads"):
                yield f"{tower}_width", f"must be a multiple of {tower}_heads"
        if self.kind == "pretrained" and not self.weights:
            if not self.pretrained_tag:
                yield "weights", "clip=pretrained needs clip.weights (a local file) or clip.pretrained_tag"
            elif not self.allow_network:
                yield "pretrained_tag", "downloading weights needs clip.allow_network=true (or use clip.weights)"


@dataclass
class ProbeConfig:
    width: int = param(32, gt=0)
    feature_dim: int = param(128, gt=0)
    train: TrainConfig = field(default_factory=TrainConfig)
    num_train_images: int = param(20000, gt=0, help="fresh real images rendered for the probe")


@dataclass
class EvaluatorConfig:
    probe: ProbeConfig = section(ProbeConfig, keys=("probe",))
    clip_seed: int = param(1000, keys=("eval_clip",),
                           help="seed of the independent evaluation CLIP (never the conditioning one)")
    clip_width_factor: float = param(0.75, gt=0, keys=("eval_clip",),
                                     help="the evaluation CLIP's tower widths: the conditioning CLIP's times this, "
                                          "rounded to a multiple of its heads")
    clip_extra_layers: int = param(1, ge=0, keys=("eval_clip",),
                                   help="layers the evaluation CLIP has beyond the conditioning CLIP's")
    # A pretrained judge instead of one trained here (its weights, and a registry or custom architecture); it
    # keys on its fingerprint.
    clip_weights: str = param("", help="a local open_clip weights file: the evaluation CLIP is then this model")
    clip_architecture: str = "ViT-B-32"
    clip_model_config: str = param("", help="a custom open_clip model config (JSON) for clip_weights")

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        if not self.clip_weights and self.clip_width_factor == 1 and self.clip_extra_layers == 0:
            yield "clip_width_factor", ("the evaluation CLIP must differ from the conditioning CLIP in more than its "
                                        "seed: set clip_width_factor != 1 or clip_extra_layers > 0")


@dataclass
class PriorConfig:
    kind: str = param("diffusion", choices=("diffusion", "identity", "mean_shift", "linear"))
    compare: List[str] = param(["identity", "mean_shift", "linear", "diffusion"], min_len=1,
                               choices=("diffusion", "identity", "mean_shift", "linear"))
    width: int = param(128, gt=0)
    depth: int = param(4, gt=0)
    heads: int = param(4, gt=0)
    p_uncond: float = param(0.1, ge=0, le=1)
    guidance: float = param(1.0, ge=0)
    best_of: int = param(2, ge=1)
    sample_steps: int = param(32, gt=0)
    ridge_alpha: float = param(1e-2, ge=0)
    # The diffusion prior's own recipe, kept when it moved onto the shared loop: weight decay, cosine decay.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(weight_decay=0.01, lr_schedule="cosine"))


@dataclass
class DecoderConfig:
    size: str = param("tiny", choices=("tiny", "small", "base"))
    # v-prediction with Min-SNR-5 weighting: on the quick preset's 1000-step unclip decoder it lifted
    # attribute accuracy at guidance 3 from 0.75 to 0.82 and cut FID from 606 to 321 against epsilon with
    # the plain MSE (same data, steps and sampling noise).
    prediction: str = param("v_prediction", choices=("epsilon", "v_prediction"))
    beta_schedule: str = param("squaredcos_cap_v2", choices=("linear", "scaled_linear", "squaredcos_cap_v2"))
    num_train_timesteps: int = param(1000, gt=0)
    min_snr_gamma: float = param(5.0, ge=0, help="Min-SNR loss weighting (5 as in the paper); 0 is the plain MSE")
    train: TrainConfig = field(default_factory=TrainConfig)


MODE_KEYS = ("decoder", "sweep")  # what a conditioning mode's fields key unless marked otherwise
# What kind of mode a mode is, declared in its YAML: the report's questions select modes by these, never by name.
# core: one of the four modes of the DALL-E 2 comparison; sequence: reads the caption's tokens (GLIDE's pathway);
# vector_only: reads one CLIP vector and no token sequence; text_vector / image_vector: which CLIP vector; prior:
# its image vector comes from the prior; two_pathway: a vector and the token sequence; oracle: the true image
# vector of a real image (not text-to-image); ablation: a variant of a core mode.
MODE_TAGS = ("core", "sequence", "vector_only", "text_vector", "image_vector", "prior", "two_pathway", "oracle",
             "ablation")


@dataclass
class ConditioningConfig:
    """One conditioning mode. `module` names the Python mode (harness/conditioning/<module>.py). Its fields key
    its decoders and its sweep cells (`MODE_KEYS`) unless marked otherwise: what only sampling reads does not
    retrain a decoder."""
    module: str = param(MISSING, keys=("sweep",))  # a decoder keys on the mode's training identity instead
    clip_tokens: int = param(4, ge=0, help="K extra attention tokens projected from the CLIP vector")
    # 0 sizes GLIDE's text transformer like the decoder's attention tokens (4 x UNet width), so the text
    # pathway grows with the decoder it feeds: at `tiny` a width of 128 cost more than the UNet itself.
    text_width: int = param(0, ge=0, help="GLIDE text transformer width; 0: the decoder's token width")
    text_depth: int = param(2, gt=0)
    text_heads: int = param(4, gt=0)
    pooled: bool = True
    null_condition: str = param("learned", choices=("learned", "zeros", "empty_caption"))
    p_drop_vector: float = param(0.1, ge=0, le=1)
    p_drop_text: float = param(0.2, ge=0, le=1)
    image_noise: float = param(0.0, ge=0, help="std of Gaussian noise added to training CLIP image vectors")
    # An ablation may need fewer seeds than the core modes: the cpu preset trains its extras once.
    train_seeds: Optional[List[int]] = param(None, min_len=1, keys=(),
                                             help="decoder seeds of this mode; None: the run's train_seeds")
    options: Dict[str, Any] = field(default_factory=dict)
    tags: List[str] = param([], keys=(), choices=MODE_TAGS, help="what kind of mode it is; the report's questions "
                                                                   "select modes by these")

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        # The automatic width (the decoder's 4 x UNet width: 64, 256 or 512) splits into any power-of-two heads.
        if self.text_width and self.text_width % self.text_heads:
            yield "text_width", "must be a multiple of text_heads"


@dataclass
class ArmConfig:
    """One sampling arm (harness/arms/<module>.py): what happens to the condition or the guidance at sampling
    time. Arms key only the sweep: adding one samples the trained decoders again, it retrains nothing."""
    module: str = param(MISSING, keys=("sweep",))
    modes: List[str] = param([], keys=("sweep",), help="the modes it is sampled with; empty: every mode it applies to")
    # The arm's own parameters, typed and checked by its module's `Params` dataclass (a wrong name or value fails
    # here, naming arms.<arm>.params.<key>).
    params: Dict[str, Any] = param({}, keys=("sweep",))

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        from harness.arms.base import arm_class, check_params

        try:
            cls = arm_class(self.module)
        except ConfigError as exc:
            yield "module", exc.message
            return
        for key, message in check_params(cls, self.params):
            yield f"params.{key}", message


# ---------------------------------------------------------------------------------------------------------
# Sweep, logging, root
# ---------------------------------------------------------------------------------------------------------

WORLD_PROMPT_KINDS = ("full", "free", "binding")
CAPTION_PROMPTS = "caption"  # the one prompt kind of a dataset: its held-out captions


@dataclass
class SweepConfig:
    guidance: List[float] = param([1.0, 2.0, 3.0, 5.0], ge=0, min_len=1)
    sampler: str = param("dpmpp", choices=("ddpm", "ddim", "dpmpp", "unipc"))
    sample_steps: int = param(20, gt=0)
    prompts_per_kind: int = param(16, gt=0)
    samples_per_prompt: int = param(8, ge=2)
    prompt_kinds: List[str] = param(["full", "free", "binding"], choices=(*WORLD_PROMPT_KINDS, CAPTION_PROMPTS),
                                    min_len=1, help="the shapes world's kinds, or `caption` (a dataset's "
                                                    "held-out captions; data=hf sets it)")
    cells_per_chunk: int = param(16, gt=0, help="prompts per saved cell: the unit of resumption")
    grid_prompts: int = param(4, gt=0)
    reliance_guidance: List[float] = param([3.0], gt=0, help="scales at which modes with two token groups are also "
                                                             "sampled with each group hidden (Q4's reliance test)")
    text_guidance: List[float] = param([], ge=0, help="separate text scales for modes with two pathways: each is a "
                                                      "line of its own (`combined@text2`), `guidance` then scaling the "
                                                      "vector and this the text on top of it; empty: one joint scale")
    seed: int = 0


CONTRASTS = ("difference", "drop_difference", "matched_fidelity", "matched_diversity")
QUESTIONS = ("q1", "q2", "q3", "q4", "q5", "q6")


@dataclass
class PrimaryContrast:
    """One primary contrast of a research question (harness/report/primary.py): a - b, Holm-adjusted with the
    other primary contrasts of the run."""
    question: str = param("q1", choices=QUESTIONS)
    contrast: str = param("difference", choices=CONTRASTS,
                          help="difference: a - b at `guidance`; drop_difference: drop(a) - drop(b) between the "
                               "lowest and highest guidance; matched_fidelity: fidelity a - b at matched diversity; "
                               "matched_diversity: diversity a - b at matched fidelity (the middle of the range "
                               "both curves reach)")
    a: str = param("", help="a curve: mode, or mode/arm (unclip/per_sample, clip_text/text_noise)")
    b: str = param("", help="the other curve")
    metric: str = param("", help="empty: the run's primary fidelity measure (attribute accuracy on the world, CLIP "
                                 "score on a dataset), or for drop_difference and matched_diversity its primary "
                                 "diversity measure")
    b_metric: str = param("", help="difference only: b's metric when it is not `metric` (attention per group)")
    a_base: str = param("", help="matched_diversity only: compare gains, (a - a_base) - (b - b_base), each pair "
                                 "read at the fidelity both of its curves reach (set both bases or neither)")
    b_base: str = param("", help="matched_diversity only: the curve b's gain is taken over")
    guidance: float = param(3.0, gt=0, help="difference only: the guidance scale compared at")
    margin: float = param(0.0, ge=0, help="> 0: an equivalence test (two one-sided tests) that a - b lies within "
                                          "±margin, in the Holm family like the others; 0: a - b = 0 is tested")
    resolve: float = param(0.15, gt=0, help="the largest minimal detectable difference at which the contrast is "
                                           "primary: where a pilot of the recipe says the run's seeds and prompts "
                                           "cannot detect this much, it is exploratory")
    if_positive: str = param("", help="what a - b > 0 means, in words (default: a generic sentence)")
    if_negative: str = param("", help="what a - b < 0 means, in words")

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        for side in ("a", "b"):
            if not getattr(self, side).strip():
                yield side, "must name a curve (mode or mode/arm)"


def _default_primary() -> list[PrimaryContrast]:
    return [
        PrimaryContrast("q1", "matched_fidelity", "unclip/per_sample", "glide"),
        PrimaryContrast("q2", "matched_fidelity", "clip_text", "glide"),
        PrimaryContrast("q2", "matched_fidelity", "clip_text", "unclip/per_sample"),
        PrimaryContrast("q3", "drop_difference", "glide", "unclip/per_sample"),
        PrimaryContrast("q3", "drop_difference", "unclip/fixed", "unclip/per_sample"),
        # Reliance: accuracy without the text tokens - without the CLIP tokens = drop(CLIP) - drop(text).
        PrimaryContrast("q4", "difference", "combined-without_text/per_sample", "combined-without_clip/per_sample",
                        resolve=0.1,
                        if_positive="combined relies more on its CLIP tokens than on its text tokens",
                        if_negative="combined relies more on its text tokens than on its CLIP tokens"),
        # The paper's "the GLIDE pathway adds little" (to binding): an equivalence test within ±0.1.
        PrimaryContrast("q5", "difference", "combined/per_sample", "unclip/per_sample", "binding_accuracy", margin=0.1,
                        if_positive="combined and unclip (both per_sample) bind equally well within ±0.1",
                        if_negative="combined and unclip (both per_sample) bind equally well within ±0.1"),
        PrimaryContrast("q5", "difference", "clip_text_seq", "clip_text", "binding_accuracy",
                        if_positive="adding the token sequence to the CLIP vector improves binding",
                        if_negative="adding the token sequence to the CLIP vector worsens binding"),
        PrimaryContrast("q5", "difference", "glide", "glide_seq", "binding_accuracy",
                        if_positive="GLIDE's pooled token improves binding",
                        if_negative="GLIDE's pooled token worsens binding"),
        # Q6 (experiment=mechanism), diversity at matched fidelity: plausibility against randomness, then guidance
        # variants against plain CFG.
        # Per-sample randomness on each decoder, read against the same decoder without it: the prior's draws
        # (against one draw per prompt) on unclip, noise of the prior's spread (against the text vector) on clip_text.
        PrimaryContrast("q6", "matched_diversity", "unclip/per_sample", "clip_text/text_noise",
                        a_base="unclip/fixed", b_base="clip_text",
                        if_positive="the prior's draws add more diversity at equal fidelity than noise of their own "
                                    "spread adds to the text vector",
                        if_negative="noise of the prior's spread adds more diversity at equal fidelity to the text "
                                    "vector than the prior's draws add"),
        PrimaryContrast("q6", "matched_diversity", "unclip/per_sample", "unclip/cads",
                        if_positive="fresh prior draws keep more diversity at equal fidelity than one draw with "
                                    "condition-annealed noise",
                        if_negative="one draw with condition-annealed noise keeps more diversity at equal fidelity "
                                    "than fresh prior draws"),
        *(PrimaryContrast("q6", "matched_diversity", f"{mode}/{arm}", mode)
          for arm in ("interval", "apg") for mode in ("glide", "clip_text")),
    ]


@dataclass
class ReportConfig:
    confidence: float = param(0.95, gt=0.5, le=0.999, keys=("metrics",),
                              help="interval level, and 1 - the family-wise error rate")
    matched_diversity: float = param(0.75, gt=0, le=1.5, help="Q1: fidelity read where diversity is this "
                                                                "fraction of the real images'")
    matched_band: List[float] = param([0.65, 0.85], min_len=2, help="matched-level contrasts are also read at "
                                      "every 0.05 between these two fractions: how much the verdict rests on the level")
    pilot: str = param("auto", help="where a one-seed run borrows the training-seed variance of its primary "
                                    "contrasts: auto (the shipped pilot study of the run's recipe, if any), none, a "
                                    "shipped pilot's name or a pilot file (harness/report/pilot.py)")
    min_recognisable: float = param(0.25, ge=0, le=1, help="a verdict needs samples the evaluation CLIP "
                                    "recognises: its retrieval rate at least this far from chance toward the real "
                                    "images' (0: no check)")
    primary: List[PrimaryContrast] = field(default_factory=_default_primary)


@dataclass
class LoggerConfig:
    mode: str = param("offline", choices=("offline", "online", "disabled"))
    project: str = "unclip-harness"
    dir: str = param("", help="where wandb writes; empty: the run folder")
    group: str = param("", help="wandb group of every run; empty: one per invocation, <experiment>-<run folder>")
    run_prefix: str = param("", help="prepended to run names; each job of a multirun sets `job<N> ` here")


@dataclass
class Config:
    experiment_name: str = "default"
    device: str = param("auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    precision: str = param("auto", choices=("auto", "bf16", "fp32"))
    cache_dir: str = param(".cache/artifacts", help="artifact cache; a relative path is taken from the launch folder")
    train_seeds: List[int] = param([0], min_len=1)
    progress: bool = True
    workers: int = param(1, ge=1, help="processes for stages that do not feed each other (harness/parallel.py)")
    data: DataConfig = field(default_factory=DataConfig)
    clip: ClipConfig = section(ClipConfig, keys=("clip", "eval_clip"))
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    prior: PriorConfig = section(PriorConfig, keys=("prior",))
    decoder: DecoderConfig = section(DecoderConfig, keys=("decoder",))
    conditioning: Dict[str, ConditioningConfig] = field(default_factory=dict)  # each keyed by MODE_KEYS
    arms: Dict[str, ArmConfig] = field(default_factory=dict)  # sampling arms, each keyed by the sweep
    sweep: SweepConfig = section(SweepConfig, keys=("sweep",))
    report: ReportConfig = field(default_factory=ReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def seeds_for(self, mode: str) -> list[int]:
        """The training seeds of one mode's decoder."""
        return list(self.conditioning[mode].train_seeds or self.train_seeds)

    def cross_checks(self) -> Iterator[tuple[str, str]]:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            yield "device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}"
        if not self.cache_dir.strip():
            yield "cache_dir", "must name a folder (default .cache/artifacts)"
        if not self.conditioning:
            yield "conditioning", "choose at least one mode, e.g. conditioning=[glide,clip_text]"
        if self.data.source == "hf" and self.sweep.prompt_kinds != [CAPTION_PROMPTS]:
            yield "sweep.prompt_kinds", (f"a dataset's prompts are its held-out captions: use [{CAPTION_PROMPTS}] "
                                         f"(data=hf sets it), got {self.sweep.prompt_kinds}")
        if self.data.source == "shapes" and CAPTION_PROMPTS in self.sweep.prompt_kinds:
            yield "sweep.prompt_kinds", (f"{CAPTION_PROMPTS!r} prompts are a dataset's held-out captions (data=hf); "
                                         f"the shapes world has {', '.join(WORLD_PROMPT_KINDS)}")
        if self.data.resolution % self.clip.patch_size:
            yield "clip.patch_size", f"must divide data.resolution ({self.data.resolution})"
        if self.data.source == "hf" and self.clip.hard_negatives:
            yield "clip.hard_negatives", "hard-negative captions come from the shapes world; use data=shapes"


def register_configs() -> None:
    """Make the schemas available to Hydra: `conf/config.yaml` lists `schema` first in its defaults."""
    ConfigStore.instance().store(name="schema", node=Config)


def _unknown_keys(node: Any, schema: type, prefix: str = "") -> Iterator[str]:
    """Keys that `+key=value` added although the schema has no such field."""
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        if key not in hints:
            yield f"{prefix}{key}"
            continue
        hint, value = hints[key], node[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, DictConfig):
            yield from _unknown_keys(value, hint, f"{prefix}{key}.")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            for name in value.keys():
                yield from _unknown_keys(value[name], typing.get_args(hint)[1], f"{prefix}{key}.{name}.")


def _drop_modes_not_chosen(cfg: DictConfig) -> None:
    """Every mode's YAML names its module, so an entry without one holds keys that a preset set for a mode the
    conditioning list does not choose: `experiment=quick conditioning=[glide]` leaves quick's `combined` keys
    behind (the command line cannot: Hydra refuses keys of modes not chosen). They are dropped with a warning;
    a name that is no mode at all is an error."""
    modes = cfg.get("conditioning") or {}
    known = sorted(path.stem for path in (CONF_DIR / "conditioning").glob("*.yaml"))
    for name in [name for name in modes if OmegaConf.is_missing(modes[name], "module")]:
        if name not in known:
            raise ConfigError(f"conditioning.{name}", f"no such mode; choose from {', '.join(known)}")
        log.warning("conditioning.%s: set but not chosen in conditioning=[...]; ignored", name)
        with open_dict(modes):
            del modes[name]


def _arm_modes_not_chosen(cfg: DictConfig) -> None:
    """An arm restricted to modes (`arms.fixed.modes=[unclip]`) keeps the restriction when the run chooses fewer
    modes: a mode it names that is not chosen is dropped with a warning; a name that is no mode is an error."""
    known = {path.stem for path in (CONF_DIR / "conditioning").glob("*.yaml")}
    chosen = set(cfg.get("conditioning") or {})
    for arm, node in (cfg.get("arms") or {}).items():
        modes = list(node.get("modes") or [])
        for mode in modes:
            if mode not in known | chosen:
                raise ConfigError(f"arms.{arm}.modes", f"no mode {mode!r}; choose from {', '.join(sorted(known))}")
        if any(mode not in chosen for mode in modes):
            log.warning("arms.%s.modes: %s not chosen in conditioning=[...]; ignored", arm,
                        ", ".join(m for m in modes if m not in chosen))
            node.modes = [m for m in modes if m in chosen]


def validate(cfg: DictConfig) -> Config:
    """Turn a composed config into checked dataclasses, or raise one `ConfigError` naming the first bad key."""
    _drop_modes_not_chosen(cfg)
    _arm_modes_not_chosen(cfg)
    for key in _unknown_keys(cfg, Config):
        raise ConfigError(key, "no such key in the schema (harness/config.py)")
    try:
        typed: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except Exception as exc:  # OmegaConf reports the key in `full_key`
        key = getattr(exc, "full_key", None) or "config"
        raise ConfigError(key, str(exc).splitlines()[0]) from None
    for key, message in _walk(typed, ""):
        raise ConfigError(key, message)
    return typed

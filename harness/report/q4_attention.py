"""Question 4: in combined, does attention fixate on the K CLIP tokens and ignore the text tokens?

Measured at every guidance scale on the conditional branch, per group of tokens (the share of a layer's
attention that goes to the CLIP tokens, to the text tokens) and per token (a group's mass divided by its
attendable tokens: 4 CLIP tokens against up to ~15 text tokens, so a group's total favours the larger one).
Mass says where attention goes, not what the samples depend on: the reliance test samples the same decoder with
one token group hidden from attention (the rest of the condition unchanged) and measures what that costs in
attribute accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.report.contrasts import difference
from harness.line import Line
from harness.metrics.estimate import Estimate, Sweep
from harness.report.figures import plot_attention_layers
from harness.report.markdown import CANNOT_TELL, Section, as_json, by_sign, fmt, fmt_est, name, table, verdict

TITLE = "Q4. In combined, does attention fixate on the CLIP tokens and ignore the text?"
ATTENTION_CLIP, ATTENTION_TEXT = "attention_clip", "attention_text"
PER_TOKEN = "_per_token"
RELIANCE_METRIC = "attribute_accuracy"


@dataclass(frozen=True)
class AttentionSplit:
    """Attention on CLIP tokens and on text tokens at one guidance scale (and layer), and clip - text."""

    guidance: float
    clip: Estimate
    text: Estimate
    difference: Estimate


def attention_layers(sweep: Sweep) -> list[str]:
    """Layer names that have both a CLIP and a text attention metric (`attention_clip@down.1.attn`)."""
    clip = {m.partition("@")[2] for m in sweep.metrics_named(ATTENTION_CLIP + "@")}
    text = {m.partition("@")[2] for m in sweep.metrics_named(ATTENTION_TEXT + "@")}
    # in the network's order: down before mid before up, and block 10 after block 2
    order = {"down": 0, "mid": 1, "up": 2}
    return sorted(clip & text, key=lambda layer: [order.get(part, 3) if not part.isdigit() else int(part)
                                                  for part in layer.split(".")])


def attention_split(sweep: Sweep, curve: Line, layer: str | None = None, per_token: bool = False
                    ) -> list[AttentionSplit]:
    suffix = (PER_TOKEN if per_token else "") + (f"@{layer}" if layer else "")
    clip_metric, text_metric = ATTENTION_CLIP + suffix, ATTENTION_TEXT + suffix
    splits = []
    for g in sweep.guidances(curve, clip_metric, text_metric):
        clip, text = sweep.cell(curve, g, clip_metric), sweep.cell(curve, g, text_metric)
        splits.append(AttentionSplit(g, sweep.value(clip), sweep.value(text), difference(sweep, clip, text)))
    return splits


def _split_table(splits: list[AttentionSplit], unit: str) -> list[str]:
    rows = [[f"{s.guidance:g}", fmt_est(s.clip), fmt_est(s.text), fmt_est(s.difference)] for s in splits]
    return table(["guidance", f"CLIP tokens ({unit})", f"text tokens ({unit})", "CLIP − text"], rows)


def reliance_lines(sweep: Sweep, answer: dict) -> list[str]:
    """What hiding each token group costs in attribute accuracy, per line and reliance guidance scale."""
    hidden = sweep.curves(RELIANCE_METRIC, reliance=True)
    first = sweep.tagged("two_pathway", "prior")
    intact = sorted(sweep.order({c.intact for c in hidden}), key=lambda c: c.mode not in first)
    answer["reliance"] = {}
    if not intact:
        return []
    lines = ["#### Reliance: what hiding a token group costs", "",
             f"Drop in {name(RELIANCE_METRIC)} when the decoder samples with the CLIP tokens, or the text tokens, "
             "hidden from attention (the rest of the condition unchanged); positive = the samples depend on them.",
             ""]
    for curve in intact:
        variants = {c.ablation: c for c in hidden if c.intact == curve}
        for g in sorted(set.intersection(*(set(sweep.guidances(c, RELIANCE_METRIC)) for c in variants.values()))
                        & set(sweep.guidances(curve, RELIANCE_METRIC))):
            full = sweep.cell(curve, g, RELIANCE_METRIC)
            costs = {group: difference(sweep, full, sweep.cell(c, g, RELIANCE_METRIC))
                     for group, c in sorted(variants.items())}
            lines += [f"- {curve.label}, g = {g:g}: {name(RELIANCE_METRIC)} {fmt_est(sweep.value(full))}; "
                      + "; ".join(f"without the {group} tokens it drops by {fmt_est(cost)}"
                                  for group, cost in costs.items()) + "."]
            if {"clip", "text"} <= set(variants):
                gap = sweep.contrast([sweep.cell(variants["text"], g, RELIANCE_METRIC),
                                      sweep.cell(variants["clip"], g, RELIANCE_METRIC)], [1.0, -1.0])
                lines.append(verdict("  Drop without CLIP − drop without text", gap,
                                     "the samples rely more on the CLIP tokens", "the samples rely more on the text "
                                     "tokens", CANNOT_TELL))
                costs["clip_minus_text"] = gap
            answer["reliance"].setdefault(curve.label, {})[f"{g:g}"] = {k: as_json(v) for k, v in costs.items()}
    return lines + [""]


def section(sweep: Sweep, out_dir: Path | None = None) -> Section:
    """The section; with `out_dir`, also `q4_attention_layers.png`: each curve's attention per layer."""
    # The question is about combined (two pathways, the prior's vector): its lines first, then the other modes
    # with both kinds of tokens.
    first = sweep.tagged("two_pathway", "prior")
    curves = sorted(sweep.curves(ATTENTION_CLIP, ATTENTION_TEXT), key=lambda c: c.mode not in first)
    if not curves:
        return Section.absent(TITLE, "no mode with both CLIP and text tokens recorded its attention mass")
    section = Section(TITLE, ["Attention of the conditional branch on the CLIP tokens and on the text tokens, "
                              "averaged over layers, heads, image positions and sampling steps (the rest goes to "
                              "image positions): per group (the share of attention) and per token (the group's "
                              "share divided by its attendable tokens).", ""], {"measured": True, "curves": {}})
    section.lines += reliance_lines(sweep, section.answer)
    for curve in curves:
        groups, tokens = attention_split(sweep, curve), attention_split(sweep, curve, per_token=True)
        summary = by_sign([(s.guidance, s.difference) for s in groups], "CLIP tokens get more mass than text tokens",
                          "text tokens get more mass than CLIP tokens")
        section.lines += [f"### {curve.label}", "", f"- Per group, CLIP − text: {summary}"]
        if tokens:
            section.lines.append("- Per token, CLIP − text: " + by_sign(
                [(s.guidance, s.difference) for s in tokens], "a CLIP token gets more mass than a text token",
                "a text token gets more mass than a CLIP token"))
        section.lines += ["", *_split_table(groups, "share"), *(_split_table(tokens, "per token") if tokens else []),
                          *_layer_table(sweep, curve)]
        section.answer["curves"][curve.label] = {
            kind: [{"guidance": s.guidance, "clip": as_json(s.clip), "text": as_json(s.text),
                    "clip_minus_text": as_json(s.difference)} for s in splits]
            for kind, splits in (("per_group", groups), ("per_token", tokens))}
    figure = None if out_dir is None else plot_attention_layers(
        {curve.label: [(layer, s.guidance, s.clip, s.text) for layer in attention_layers(sweep)
                       for s in attention_split(sweep, curve, layer)] for curve in curves},
        out_dir / "q4_attention_layers.png")
    if figure is not None:
        section.lines += ["", f"![attention per layer]({figure.name})", ""]
    return section


def _layer_table(sweep: Sweep, curve: Line) -> list[str]:
    layers = [(layer, attention_split(sweep, curve, layer)) for layer in attention_layers(sweep)]
    layers = [(layer, splits) for layer, splits in layers if splits]
    if not layers:
        return []
    scales = sorted({s.guidance for _, splits in layers for s in splits})
    rows = [[layer] + [next((f"{fmt(s.clip.value)} / {fmt(s.text.value)}" for s in splits if s.guidance == g), "-")
                       for g in scales] for layer, splits in layers]
    return ["Per layer, CLIP / text share:", "", *table(["layer"] + [f"g = {g:g}" for g in scales], rows)]

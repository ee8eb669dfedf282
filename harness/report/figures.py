"""The report's figures: the diversity–fidelity curves (`plot_curves`), the image grids (rows: modes, columns:
guidance scales, same prompts and noise, like the DALL-E 2 paper's vase figure) and one contact sheet per mode
with every sample of the grid prompts."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Config
from harness.data.world import Prompt
from harness.report.contrasts import first_measured
from harness.metrics.catalogue import DIVERSITY, FIDELITY, FREE_JSD, lower_is_better
from harness.line import NONE, Line
from harness.metrics.estimate import Estimate, Sweep
from harness.report.markdown import NOT_MEASURED, name
from harness.report.q1_frontier import frontier_points
from harness.sampling.arms.base import FIXED, PER_SAMPLE
from harness.sampling.cell import Cell

OWN_SAMPLING = (NONE, PER_SAMPLE, FIXED)  # a mode's own ways of sampling: drawn in the mode's colour


def plot_curves(sweep: Sweep, path: Path, curves: Sequence[Line] | None = None, title: str = "") -> Path:
    """One panel per fidelity measure (columns) against free-attribute entropy and a second diversity measure
    (rows): one line per curve, guidance scales as points that grow with the scale (numbers at every point
    overlapped where curves meet), 95% intervals both ways, the real ceiling as a star with dotted guides. Fixed prior draws are dashed, a CLIP variant of a joint report uses squares.
    `curves`: only these, one colour each (one mode's arms, Q6); default every curve, one colour per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fidelities = [f for f in FIDELITY if sweep.has(f)]
    primary = first_measured(sweep, DIVERSITY)
    second = first_measured(sweep, [m for m in ("pairwise_distance", "recall") if m != primary])
    # The free attributes' divergence to the world's distribution sits beside their entropy: spread, but the right one.
    diversities = [d for d in (primary, second, FREE_JSD if sweep.has(FREE_JSD) else None) if d]
    rows, cols = max(1, len(diversities)), max(1, len(fidelities))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows + 1.0), squeeze=False)
    if not fidelities or not diversities:
        axes[0][0].text(0.5, 0.5, f"{NOT_MEASURED}: no fidelity and diversity measures", ha="center", va="center")
        axes[0][0].axis("off")
    colour_of = line_colours(sweep, curves if curves is not None else sweep.curves(), plt)
    handles: dict[str, Any] = {}
    sizes = guidance_sizes(sweep, curves)
    for row, diversity in enumerate(diversities):
        for col, fidelity in enumerate(fidelities):
            _panel(axes[row][col], sweep, diversity, fidelity, colour_of, handles, sizes, curves)
    from matplotlib.lines import Line2D
    for g, size in sizes.items():
        handles[f"guidance {g:g}"] = Line2D([], [], color="0.35", marker="o", markersize=size, linestyle="none")
    columns = min(len(handles), 2 * cols) or 1  # as many legend columns as the figure is wide for
    legend_rows = -(-len(handles) // columns) if handles else 0
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=columns, frameon=False,
                   fontsize=8.5)
    heading = title or "Diversity–fidelity curves: larger points are higher guidance scales, bars are 95% intervals"
    fig.suptitle(textwrap.fill(heading, width=55 * cols), fontsize=11)
    bottom = min(0.4, (0.1 + 0.2 * legend_rows) / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, 0.97 if len(heading) <= 55 * cols else 0.93))
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def line_colours(sweep: Sweep, lines: Sequence[Line], plt: Any) -> Callable[[Line], Any]:
    """One colour per mode in every figure of a run (the run's mode order; a mode's own sampling, plain or a
    prior-draw policy, in its mode's colour, fixed draws dashed), and the other arms' lines in colours of their
    own after the modes'. Past ten colours tab20 keeps them apart."""
    modes = list(dict.fromkeys([*sweep.tags, *(line.mode for line in lines)]))
    others = list(dict.fromkeys(line.label for line in lines if line.arm not in OWN_SAMPLING))
    count = len(modes) + len(others)
    palette = [f"C{i}" for i in range(10)] if count <= 10 else list(plt.get_cmap("tab20").colors)

    def colour(line: Line) -> Any:
        index = modes.index(line.mode) if line.arm in OWN_SAMPLING else len(modes) + others.index(line.label)
        return palette[index % len(palette)]

    return colour


def noise_scale_families(curves: Sequence[Line], arms: dict) -> dict[str, list[tuple[float, Line]]]:
    """Per arm module with a `noise_scale` parameter, the curves of its arms sampled at two or more scales, by
    scale: one control traced over its spread (Q6)."""
    families: dict[str, list[tuple[float, Line]]] = {}
    for curve in curves:
        info = arms.get(curve.arm) or {}
        if "noise_scale" in info:
            families.setdefault(info["module"], []).append((float(info["noise_scale"]), curve))
    return {module: sorted(found) for module, found in families.items() if len({s for s, _ in found}) > 1}


def plot_noise_scales(sweep: Sweep, curves: Sequence[Line], arms: dict, path: Path, title: str) -> Path | None:
    """Each control's diversity and fidelity against its noise scale (in units of the prior draws' own spread),
    one column per guidance scale, with the mode's own sampling as dotted levels; None when no control was
    sampled at two scales."""
    families = noise_scale_families(curves, arms)
    diversity, fidelity = first_measured(sweep, DIVERSITY), first_measured(sweep, FIDELITY)
    if not families or diversity is None or fidelity is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = [c for c in curves if c.arm == NONE or (arms.get(c.arm) or {}).get("baseline")]
    scales = sorted({g for c in curves for g in sweep.guidances(c, diversity)})
    fig, axes = plt.subplots(2, len(scales), figsize=(3.8 * len(scales), 6.4), squeeze=False)
    for col, g in enumerate(scales):
        for row, metric in enumerate((diversity, fidelity)):
            ax = axes[row][col]
            for i, (module, found) in enumerate(families.items()):
                points = [(s, sweep.value(sweep.cell(c, g, metric))) for s, c in found]
                points = [(s, e) for s, e in points if e is not None]
                if points:
                    ax.errorbar([s for s, _ in points], [e.value for _, e in points],
                                yerr=_bar([e for _, e in points]), marker="o", capsize=2, color=f"C{i}", label=module)
            for j, base in enumerate(own):
                level = sweep.value(sweep.cell(base, g, metric))
                if level is not None:
                    ax.axhline(level.value, color=f"C{len(families) + j}", linestyle=":", label=base.label)
            ax.set_xscale("log", base=2)
            ticks = sorted({scale for found in families.values() for scale, _ in found})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_title(f"guidance {g:g}", fontsize=9)
            ax.set_xlabel("the arm's noise_scale (its own unit: see the report)", fontsize=8)
            ax.set_ylabel(name(metric), fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.25)
    axes[0][0].legend(fontsize=8, framealpha=0.8)
    heading = textwrap.fill(title, width=int(48 * len(scales)))  # the width of the figure at 10 pt
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.035 * (heading.count("\n") + 1)))
    return _save(fig, path, dpi=130)


def guidance_sizes(sweep: Sweep, curves: Sequence[Line] | None) -> dict[float, float]:
    """A marker size per guidance scale of the curves, from 3.5 (the lowest) to 9 (the highest)."""
    scales = sorted({g for c in (curves if curves is not None else sweep.curves()) for g in sweep.guidances(c)})
    step = 5.5 / max(1, len(scales) - 1)
    return {g: 3.5 + step * i for i, g in enumerate(scales)}


def _panel(ax: Any, sweep: Sweep, diversity: str, fidelity: str, color_of: Callable[[Line], str],
           handles: dict[str, Any], sizes: dict[float, float], only: Sequence[Line] | None = None) -> None:
    from matplotlib.lines import Line2D

    curves = [c for c in sweep.curves(diversity, fidelity) if only is None or c in only]
    for curve in curves:
        points = frontier_points(sweep, curve, diversity, fidelity)
        x, y = [p.diversity for p in points], [p.fidelity for p in points]
        color = color_of(curve)
        marker = "s" if curve.clip_variant != NONE else "o"
        style = dict(color=color, linestyle="--" if curve.arm == FIXED else "-", linewidth=1.6)
        ax.errorbar([e.value for e in x], [e.value for e in y], xerr=_bar(x), yerr=_bar(y), elinewidth=0.7,
                    capsize=2, alpha=0.9, **style)
        for p in points:
            ax.plot([p.diversity.value], [p.fidelity.value], marker=marker, markersize=sizes.get(p.guidance, 4.5),
                    color=color, linestyle="none", alpha=0.9)
        handles.setdefault(curve.label, Line2D([], [], marker=marker, markersize=5, **style))
    real_x, real_y = (sweep.value(sweep.ceiling_cell(m)) for m in (diversity, fidelity))
    if real_x is not None:
        ax.axvline(real_x.value, color="0.45", linestyle=":", linewidth=1)
    if real_y is not None:
        ax.axhline(real_y.value, color="0.45", linestyle=":", linewidth=1)
    if real_x is not None and real_y is not None:
        star = dict(color="black", marker="*", markersize=12, linestyle="none")
        ax.errorbar([real_x.value], [real_y.value], xerr=_bar([real_x]), yerr=_bar([real_y]), elinewidth=0.7,
                    capsize=2, **star)
        handles.setdefault("real images (ceiling, dotted)", Line2D([], [], **star))
    if not curves:
        ax.text(0.5, 0.5, NOT_MEASURED, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_title(f"{name(fidelity)} vs {name(diversity)}", fontsize=9.5)
    direction = "further from the world" if lower_is_better(diversity) else "more diverse"
    ax.set_xlabel(f"{name(diversity)} ({direction} →)", fontsize=9)
    ax.set_ylabel(f"{name(fidelity)} (better ↑)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)


def _bar(estimates: Sequence[Estimate]) -> list[list[float]]:
    # Distances from the value to each bound; a bound that is missing (NaN) draws no bar on that side.
    below = [max(0.0, e.value - e.low) if math.isfinite(e.low) else 0.0 for e in estimates]
    above = [max(0.0, e.high - e.value) if math.isfinite(e.high) else 0.0 for e in estimates]
    return [below, above]


# ---------------------------------------------------------------- grids and sheets


def _sample_images(cells: list[tuple[Cell, dict]], cfg: Config) -> dict[tuple[Line, float], dict[int, np.ndarray]]:
    """(line, guidance) -> prompt id -> the prompt's K samples [K, H, W, 3], from each mode's first training
    seed; the reliance lines (a token group hidden) and separate text scales are not pictured."""
    images: dict[tuple[Line, float], dict[int, np.ndarray]] = {}
    for cell, data in cells:
        line = cell.line
        if cell.seed == cfg.seeds_for(line.mode)[0] and line.ablation == NONE and line.text_scale is None:
            bucket = images.setdefault((line, cell.guidance), {})
            bucket.update({int(pid): data["images"][row] for row, pid in enumerate(data["prompt_ids"])})
    return images


def _lines_in_order(images: dict, cfg: Config) -> list[Line]:
    return sorted({line for line, _ in images}, key=lambda line: (list(cfg.conditioning).index(line.mode), line.arm))


def _save(fig, path: Path, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _grid_prompt_ids(prompts: list[Prompt], cfg: Config, kind: str) -> list[int]:
    return [i for i, p in enumerate(prompts) if p.kind == kind][: cfg.sweep.grid_prompts]


def _strip(tiles: Sequence[np.ndarray], pad: int) -> np.ndarray:
    """Tiles [H, W, 3] side by side with `pad` white pixels between them (tiles edge to edge run together)."""
    gap = np.full((tiles[0].shape[0], pad, 3), 255, dtype=tiles[0].dtype)
    return np.concatenate([part for tile in tiles for part in (gap, tile)][1:], axis=1)


def write_grids(cells: list[tuple[Cell, dict]], prompts: list[Prompt], cfg: Config, out_dir: Path,
                real: dict[int, np.ndarray] | None = None) -> list[Path]:
    """One sheet per prompt kind: rows are modes (and sampling arms), columns guidance scales; each cell
    shows the same prompts' first sample from the same noise, like the DALL-E 2 paper's vase figure. `real`
    (prompt id -> its real images [K, H, W, 3]) adds a first row of the same prompts' real images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = _sample_images(cells, cfg)
    rows = _lines_in_order(images, cfg)
    scales = sorted({g for _, g in images})
    pad = max(1, cfg.data.resolution // 8)
    written = []
    for kind in cfg.sweep.prompt_kinds:
        ids = _grid_prompt_ids(prompts, cfg, kind)
        if not ids or not rows:
            continue
        real_row = real is not None and all(i in real for i in ids)
        fig, axes = plt.subplots(len(rows) + real_row, len(scales),
                                 figsize=(1.15 * len(ids) * len(scales) + 1.6, 1.3 * (len(rows) + real_row) + 1.3),
                                 squeeze=False)
        if real_row:
            axes[0][0].imshow(_strip([real[i][0] for i in ids], pad), interpolation="nearest")
            axes[0][0].set_ylabel("real images", fontsize=8)
            axes[0][0].set_xticks([])
            axes[0][0].set_yticks([])
            for ax in axes[0][1:]:
                ax.axis("off")
        for r, line in enumerate(rows, start=int(real_row)):
            for c, g in enumerate(scales):
                tiles = images.get((line, g), {})
                blank = np.full_like(next(iter(tiles.values()))[0], 255)
                ax = axes[r][c]
                ax.imshow(_strip([tiles[i][0] if i in tiles else blank for i in ids], pad), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == int(real_row):
                    ax.set_title(f"guidance {g:g}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(line.label.replace(" (", "\n("), fontsize=8)
        captions = "; ".join(f"{n + 1}: {prompts[i].caption}" for n, i in enumerate(ids))
        fig.suptitle(textwrap.fill(f"{kind} prompts (left to right) - {captions}", width=int(28 * len(scales) * len(ids) ** 0.5)),
                     fontsize=8)
        written.append(_save(fig, out_dir / f"grid_{kind}.png", dpi=120))
    return written


def write_mode_sheets(cells: list[tuple[Cell, dict]], prompts: list[Prompt], cfg: Config,
                      out_dir: Path) -> list[Path]:
    """One contact sheet per mode (and sampling arm): a row per prompt (the grid prompts of every kind), and
    for each guidance scale all K samples of that prompt, so the reader sees both what guidance fixes and
    what diversity it costs. Same prompts and noise on every sheet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = _sample_images(cells, cfg)
    scales = sorted({g for _, g in images})
    ids = [i for kind in cfg.sweep.prompt_kinds for i in _grid_prompt_ids(prompts, cfg, kind)]
    written = []
    for line in _lines_in_order(images, cfg):
        fig, axes = plt.subplots(1, len(scales), figsize=(0.22 * cfg.sweep.samples_per_prompt * len(scales) + 5.0,
                                                          0.3 * len(ids) + 1.1), squeeze=False)
        for c, g in enumerate(scales):
            tiles = images[(line, g)]
            # rows: prompts; columns: the prompt's K samples
            pad = max(1, cfg.data.resolution // 8)
            strips = [_strip(list(tiles[i]), pad) for i in ids if i in tiles]
            gap = np.full((pad, strips[0].shape[1], 3), 255, dtype=strips[0].dtype)
            mosaic = np.concatenate([part for strip in strips for part in (gap, strip)][1:], axis=0)
            ax = axes[0][c]
            ax.imshow(mosaic, interpolation="nearest")
            ax.set_title(f"guidance {g:g}", fontsize=9)
            ax.set_xticks([])
            tile = (mosaic.shape[0] + pad) / len(strips)
            ax.set_yticks([tile * n + (tile - pad) / 2 for n in range(len(strips))])
            ax.set_yticklabels([prompts[i].caption for i in ids if i in tiles] if c == 0 else [], fontsize=8)
        fig.suptitle(f"{line.label}: {cfg.sweep.samples_per_prompt} samples per prompt", fontsize=9)
        name_part = line.mode if line.arm == NONE else f"{line.mode}_{line.arm}"
        written.append(_save(fig, out_dir / f"sheet_{name_part}.png", dpi=150))
    return written


def plot_forest(order: Sequence[str], entries: dict[str, list[dict | None]], labels: Sequence[str],
                path: Path, title: str = "Key-findings contrasts per run") -> Path | None:
    """Each contrast of `order` (a statement) as a row, with one point and interval per run (`entries[key][r]`,
    a summary.json primary entry, for the run labelled `labels[r]`); None when none has an interval. A
    contrast outside the family (exploratory) is drawn hollow."""
    measured = [key for key in order if any(e and all((e.get("estimate") or {}).get(side) is not None
                                                      for side in ("value", "low", "high"))
                                            for e in entries[key])]
    if not measured:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.6 * len(measured) * max(1, len(labels)) ** 0.5 + 1.6))
    for r, label in enumerate(labels):
        offset = (r - (len(labels) - 1) / 2) * 0.8 / max(1, len(labels))
        for i, key in enumerate(measured):
            e = (entries[key][r] or {}).get("estimate") or {}
            if any(e.get(side) is None for side in ("value", "low", "high")):  # no interval to draw
                continue
            primary = (entries[key][r] or {}).get("family") == "primary"
            ax.errorbar(e["value"], i + offset, xerr=[[e["value"] - e["low"]], [e["high"] - e["value"]]], fmt="o",
                        color=f"C{r}", capsize=3, label=label if i == 0 and len(labels) > 1 else None,
                        markerfacecolor=f"C{r}" if primary else "white")
    ax.axvline(0, color="0.5", linestyle=":")
    ax.set_yticks(range(len(measured)), [textwrap.fill(key, 60) for key in measured], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("a − b, with its interval", fontsize=9)
    if len(labels) > 1:
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(textwrap.fill(title, 90), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_against_guidance(sweep: Sweep, metric: str, curves: Sequence[Line], path: Path, title: str) -> Path | None:
    """`metric` against the guidance scale, one line per curve in its mode's colour (fixed draws dashed), 95%
    intervals as bars, the real ceiling as a dotted level; None when no curve has two scales."""
    curves = [c for c in curves if len(sweep.guidances(c, metric)) >= 2]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour_of = line_colours(sweep, curves, plt)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for curve in curves:
        scales = sweep.guidances(curve, metric)
        values = [sweep.value(sweep.cell(curve, g, metric)) for g in scales]
        ax.errorbar(scales, [v.value for v in values], yerr=_bar(values), marker="o", markersize=4, capsize=2,
                    color=colour_of(curve), linestyle="--" if curve.arm == FIXED else "-", label=curve.label)
    ceiling = sweep.value(sweep.ceiling_cell(metric))
    if ceiling is not None:
        ax.axhline(ceiling.value, color="0.45", linestyle=":", linewidth=1, label="real images")
    ax.set_xscale("log")
    scales = sorted({g for c in curves for g in sweep.guidances(c, metric)})
    ax.set_xticks(scales, [f"{g:g}" for g in scales])
    ax.minorticks_off()
    ax.set_xlabel("guidance scale", fontsize=9)
    ax.set_ylabel(name(metric), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, framealpha=0.8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi=130)


def plot_attention_layers(rows: dict[str, list[tuple[str, float, Estimate, Estimate]]], path: Path) -> Path | None:
    """Per curve (a panel each), the attention share on the CLIP tokens (solid) and on the text tokens (dashed)
    at each layer, a colour per guidance scale, 95% intervals as bars. `rows`: curve label -> (layer, guidance,
    CLIP share, text share). None when no curve has a layer."""
    rows = {label: points for label, points in rows.items() if points}
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 4.4), squeeze=False, sharey=True)
    for ax, (label, points) in zip(axes[0], rows.items()):
        layers = list(dict.fromkeys(layer for layer, *_ in points))
        for n, g in enumerate(sorted({g for _, g, _, _ in points})):
            at = [(layers.index(layer), clip, text) for layer, scale, clip, text in points if scale == g]
            x = [i for i, _, _ in at]
            for share, style, kind in ((1, "-", "CLIP"), (2, "--", "text")):
                estimates = [row[share] for row in at]
                ax.errorbar(x, [e.value for e in estimates], yerr=_bar(estimates), marker="o", markersize=4,
                            capsize=2, color=f"C{n}", linestyle=style, label=f"{kind} tokens, g = {g:g}")
        ax.set_xticks(range(len(layers)), [layer.removesuffix(".attn") for layer in layers], rotation=30,
                      ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("share of attention", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.25)
    axes[0][0].legend(fontsize=8, framealpha=0.8)
    fig.suptitle("Attention per layer: CLIP tokens (solid) and text tokens (dashed)", fontsize=10)
    return _save(fig, path, dpi=130)

"""Figures of the controlled mechanism study (notebook 05): the dial sweeps and the information
plane with intervals, in the style of `paperlib.reports.plots`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from paperlib.reports.plots import (
    objective_color,
    objective_label,
    panel_grid,
    styled,
)


@styled
def fig_dial_sweep(
    panels: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    ylabel: str,
    references: Mapping[str, Mapping[str, Any]] | None = None,
    xlabels: Mapping[str, str] | None = None,
    title: str = "",
    ylim: tuple[float, float] | None = (0.0, 1.02),
    panel_titles: Mapping[str, str] | None = None,
) -> Figure:
    """A metric against each dial, objectives side by side with 95 % intervals.

    Parameters
    ----------
    panels : dial name -> objective -> list of (dial value, mean, lo, hi). Dial values are
        placed at equal spacing (categorical axis) and the objectives are dodged around them.
    ylabel : the metric's axis label.
    references : dial name -> label -> a number (a horizontal line, e.g. chance) or a list of
        numbers, one per dial value (a dashed line through the values, e.g. a ceiling that
        moves with the dial).
    xlabels : dial name -> axis label.
    panel_titles : dial name -> title of its panel.
    """
    fig, axes = panel_grid(len(panels), max_cols=len(panels), panel=(3.8, 3.2))
    grey = sns.color_palette("Greys", 6)[2:]  # four distinguishable greys, light to dark
    styles = [(":", None), ("--", None), ("--", "x"), ("-.", "+")]
    for ax, (dial, by_obj) in zip(axes, panels.items()):
        values = sorted({float(p[0]) for pts in by_obj.values() for p in pts})
        pos = {v: i for i, v in enumerate(values)}
        width = 0.6 / max(len(by_obj), 1)
        for k, (obj, pts) in enumerate(by_obj.items()):
            arr = np.array([[float(c) for c in p] for p in pts])
            x = np.array([pos[v] for v in arr[:, 0]]) + (k - (len(by_obj) - 1) / 2) * width
            lo = np.nan_to_num(arr[:, 1] - arr[:, 2])
            hi = np.nan_to_num(arr[:, 3] - arr[:, 1])
            ax.errorbar(
                x,
                arr[:, 1],
                yerr=[lo, hi],
                fmt="o",
                color=objective_color(obj),
                capsize=3,
                markersize=5,
                label=objective_label(obj),
            )
        for j, (label, ref) in enumerate((references or {}).get(dial, {}).items()):
            color, (ls, marker) = grey[j % len(grey)], styles[j % len(styles)]
            if isinstance(ref, (int, float)):
                ax.axhline(float(ref), color=color, ls=ls, lw=1, label=label)
            else:
                ax.plot(
                    range(len(ref)),
                    ref,
                    ls=ls,
                    marker=marker or "x",
                    color=color,
                    lw=1,
                    label=label,
                )
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel((xlabels or {}).get(dial, dial))
        ax.set_ylabel(ylabel)
        if panel_titles and dial in panel_titles:
            ax.set_title(panel_titles[dial], fontsize="medium")
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    return fig


@styled
def fig_information_plane_intervals(
    points: Mapping[str, Sequence[Sequence[Any]]], title: str = "Information plane"
) -> Figure:
    """I(z; s) (x) against I(x; z) (y) with 95 % intervals on both axes, per objective.

    ``points``: objective -> list of (x mean, x lo, x hi, y mean, y lo, y hi, label).
    """
    fig, ax = plt.subplots(figsize=(5.0, 3.8), layout="constrained")
    for obj, pts in points.items():
        for k, p in enumerate(pts):
            xm, xl, xh, ym, yl, yh = (float(v) for v in p[:6])
            ax.errorbar(
                xm,
                ym,
                xerr=[[np.nan_to_num(xm - xl)], [np.nan_to_num(xh - xm)]],
                yerr=[[np.nan_to_num(ym - yl)], [np.nan_to_num(yh - ym)]],
                fmt="o",
                color=objective_color(obj),
                capsize=2,
                markersize=4,
                label=objective_label(obj) if k == 0 else None,
            )
            if len(p) > 6 and p[6]:
                ax.annotate(
                    str(p[6]),
                    (xm, ym),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize="xx-small",
                    color=objective_color(obj),
                )
    ax.set_xlabel("post-hoc I(z; s) [nats]")
    ax.set_ylabel("I(x; z) [nats]")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


@styled
def fig_regime_map(
    panels: Mapping[str, Mapping[str, Sequence[Sequence[Any]]]],
    margins: Mapping[str, float],
    title: str = "Where cmi beats mi on the global factor",
) -> Figure:
    """The regime map: paired cmi - mi on a global-factor probe against z's dimension.

    Parameters
    ----------
    panels : probe label -> series label (study and setting) -> list of (z dimension, mean,
        lo, hi, decision). z dimensions sit on a log2 axis; the series are dodged around them.
    margins : probe label -> the stated margin, drawn as a grey band around 0 (inside it a
        difference does not matter).
    """
    fig, axes = panel_grid(len(panels), max_cols=len(panels), panel=(4.2, 3.3))
    series = list(dict.fromkeys(name for by in panels.values() for name in by))
    # one x axis for every panel: each z dimension that any study ran
    zs = sorted({float(p[0]) for by in panels.values() for pts in by.values() for p in pts})
    markers = ["o", "s", "D", "^", "v", "P", "X"]
    colors = sns.color_palette("colorblind", len(series))
    for ax, (probe, by_series) in zip(axes, panels.items()):
        m = float(margins.get(probe, 0.0))
        ax.axhspan(-m, m, color="0.9", zorder=0, label=f"margin ±{m:g}")
        ax.axhline(0.0, color="0.5", lw=0.8, zorder=1)
        for k, name in enumerate(series):
            pts = by_series.get(name, [])
            if not pts:
                continue
            arr = np.array([[float(c) for c in p[:4]] for p in pts])
            # log2 position, dodged so that series at one z dimension do not overlap
            x = np.log2(arr[:, 0]) + (k - (len(series) - 1) / 2) * 0.12
            ax.errorbar(
                x,
                arr[:, 1],
                yerr=[np.nan_to_num(arr[:, 1] - arr[:, 2]), np.nan_to_num(arr[:, 3] - arr[:, 1])],
                fmt=markers[k % len(markers)],
                color=colors[k],
                capsize=3,
                markersize=5,
                label=name,
            )
        ax.set_xticks(np.log2(zs), [f"{z:g}" for z in zs])
        ax.set_xlim(np.log2(zs[0]) - 0.5, np.log2(zs[-1]) + 0.5)
        ax.set_xlabel("z dimension (budget)")
        ax.set_ylabel(f"cmi - mi, {probe} on z")
        ax.set_title(probe, fontsize="medium")
    # one legend for every series of every panel (a study may lack one probe)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[-1].legend(
        handles.values(), handles.keys(), fontsize="x-small", loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig


__all__ = [
    "fig_regime_map",
    "fig_dial_sweep",
    "fig_information_plane_intervals",
]

"""Figures of information and its trade-offs: the information diagram of notebook 00, and the
rate-distortion, information-plane and probe-vs-beta figures of notebook 03's sweep, in the style
of `paperlib.reports.plots`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from paperlib.reports.plots import (
    metric_label,
    objective_color,
    objective_label,
    styled,
)


def _trajectory(
    ax, obj: str, pts: Sequence[Sequence[Any]], annotate: bool, connect: bool = False
) -> None:
    """Points of one objective; joined by a line only when they form a path (``connect``)."""
    arr = np.array([[float(p[0]), float(p[1])] for p in pts])
    ax.plot(
        arr[:, 0],
        arr[:, 1],
        "-o" if connect else "o",
        color=objective_color(obj),
        label=objective_label(obj),
        markersize=4,
    )
    if annotate:
        for p in pts:
            if len(p) > 2 and p[2] is not None:
                ax.annotate(
                    str(p[2]),
                    (float(p[0]), float(p[1])),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize="x-small",
                    color=objective_color(obj),
                )


@styled
def fig_rate_distortion(
    points: Mapping[str, Sequence[Sequence[Any]]], annotate: bool = True
) -> Figure:
    """Rate KL(q(z|x)||p(z)) against distortion -log p(x|z,s) per objective.

    ``points``: objective -> list of (rate_nats, distortion_nats[, label]) (e.g. over training
    steps or over an alpha/beta sweep; the optional label annotates the point).
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.5), layout="constrained")
    for obj, pts in points.items():
        if len(pts):
            _trajectory(ax, obj, pts, annotate)
    ax.set_xlabel("rate KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion -log p(x|z,s) [nats]")
    ax.set_title("Rate-distortion")
    ax.legend()
    return fig


@styled
def fig_information_plane(
    points: Mapping[str, Sequence[Sequence[Any]]],
    bound_nats: float | None = None,
    annotate: bool = True,
    connect: bool = False,
) -> Figure:
    """Information plane: I_q(z; s) (x) against I_q(x; z) (y) per objective.

    ``points``: objective -> list of (mi_zs_nats, mi_xz_nats[, label]), e.g. over training or
    over beta. The goal of ``cmi`` is the upper left: much about x in z, little shared with s.
    ``bound_nats`` draws the log N ceiling of the minibatch I(x; z) estimate. ``connect`` joins
    the points in order (a trajectory over training); grid points stay unjoined.
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.5), layout="constrained")
    for obj, pts in points.items():
        if len(pts):
            _trajectory(ax, obj, pts, annotate, connect)
    if bound_nats is not None:
        ax.axhline(bound_nats, color="0.5", ls="--", lw=1, label="log N (estimator bound)")
    ax.set_xlabel("I(z; s) [nats]")
    ax.set_ylabel("I(x; z) [nats]")
    # at most 5 ticks: long labels of close values (a smoke run's) overlap on a 4.5-inch axis
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_title("Information plane (post-hoc estimates)")
    ax.legend()
    return fig


@styled
def fig_probe_vs_beta(
    series: Mapping[str, Sequence[Sequence[float]]],
    chance: float | Mapping[str, float] | None = None,
    xlabel: str = "beta (weight of I(z; s))",
    ylabel: str = "probe accuracy",
    title: str = "Probe accuracy against beta",
) -> Figure:
    """Probe accuracy (mean +- sd over seeds) against beta, one line per series.

    Parameters
    ----------
    series : name (e.g. "speaker_probe_acc_z") -> list of (beta, mean[, std]).
    chance : a chance level (dashed line), or name -> chance for per-series levels.
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.3), layout="constrained")
    palette = sns.color_palette("colorblind", max(len(series), 1))
    all_x = []
    for (name, pts), col in zip(series.items(), palette):
        arr = np.array([[float(v) for v in p] + [0.0] * (3 - len(p)) for p in pts])
        order = np.argsort(arr[:, 0])
        arr = arr[order]
        all_x.extend(arr[:, 0])
        ax.errorbar(
            arr[:, 0],
            arr[:, 1],
            yerr=arr[:, 2],
            fmt="-o",
            color=col,
            capsize=3,
            markersize=4,
            label=metric_label(name),
        )
        if isinstance(chance, Mapping) and name in chance:
            ax.axhline(chance[name], color=col, ls=":", lw=1)
    if isinstance(chance, (int, float)):
        ax.axhline(float(chance), color="0.5", ls="--", lw=1, label="chance")
    # beta grids are usually geometric and may include 0: a symmetric log axis shows both
    positive = [v for v in all_x if v > 0]
    if positive and max(positive) / min(positive) >= 20:
        ax.set_xscale("symlog", linthresh=min(positive))
        # no empty negative half: start just left of the smallest beta
        ax.set_xlim(left=min(all_x) - 0.3 * min(positive), right=max(all_x) * 1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------------
# the idea in one picture (notebook 00)


def _node(ax, xy, text, observed=False, r=0.32):
    from matplotlib.patches import Circle

    face = "0.85" if observed else "white"
    ax.add_patch(Circle(xy, r, facecolor=face, edgecolor="k", lw=1.2, zorder=3))
    ax.text(*xy, text, ha="center", va="center", fontsize="large", zorder=4)


def _edge(ax, a, b, r=0.32):
    from matplotlib.patches import FancyArrowPatch

    a, b = np.asarray(a, float), np.asarray(b, float)
    u = (b - a) / np.linalg.norm(b - a)
    ax.add_patch(
        FancyArrowPatch(
            tuple(a + r * u),
            tuple(b - r * u),
            arrowstyle="-|>",
            mutation_scale=12,
            lw=1.1,
            color="k",
            zorder=2,
        )
    )


@styled
def fig_information_diagram(show_graph: bool = True) -> Figure:
    """The paper's argument in one figure: the generative model and an information diagram.

    (a) The sequential VAE's generative model: a global z (one per sequence) and local s_t
    (a Markov chain) both generate each frame x_t.
    (b) Information diagram (Yeung 1991) of H(x), H(z), H(s) under the encoder q, drawn with
    I(z; s | x) = 0, i.e. z and s independent given x (the factorized posterior of the DSAE, or
    s a function of x in the PixelCNN-VAE): the lens of z and s then lies inside H(x), and

        I(x; z) = I(x; z | s) + I(z; s).

    Maximising I(x; z) (``mi``) rewards both parts; subtracting I(z; s) (``cmi``, alpha = beta)
    leaves I(x; z | s), the information about x that only z carries. Areas are schematic.

    Parameters
    ----------
    show_graph : draw panel (a); False gives panel (b) alone.
    """
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Circle

    def tint(color, amount):  # opaque mix with white: overlaps stay the colour they name
        return tuple(1 - amount * (1 - c) for c in to_rgb(color))

    ncols = 2 if show_graph else 1
    fig, axes = plt.subplots(
        1,
        ncols,
        figsize=(4.2 * ncols + 1.8, 4.2),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": [1.0, 1.5] if show_graph else [1.0]},
    )
    axes = list(axes.flat)
    for ax in axes:
        ax.set_aspect("equal")
        ax.axis("off")
    muted = dict(ha="left", va="center", fontsize="small", color="0.35")

    if show_graph:  # s_t on top, frames x_t in the middle, z below: no edge crosses a node
        ax = axes[0]
        xs = [0.0, 1.25, 2.5]
        z = (1.25, -1.45)
        _node(ax, z, "$z$")
        for t, xt in enumerate(xs, start=1):
            _node(ax, (xt, 1.3), f"$s_{t}$")
            _node(ax, (xt, 0.0), f"$x_{t}$", observed=True)
            _edge(ax, (xt, 1.3), (xt, 0.0))
            _edge(ax, z, (xt, 0.0))
            if t > 1:
                _edge(ax, (xs[t - 2], 1.3), (xt, 1.3))
        for y in (1.3, 0.0):
            ax.text(3.0, y, r"$\cdots$", ha="left", va="center", fontsize="large")
        ax.text(-0.8, 1.85, "local, one per frame", **muted)
        ax.text(-0.8, 0.55, "observed frames", **muted)
        ax.text(-0.8, -1.45, "global,\none per\nsequence", **muted)
        ax.set_xlim(-0.85, 3.4)
        ax.set_ylim(-2.0, 2.1)
        ax.set_title(r"(a) generative model: $x_t \sim p(x_t\,|\,z, s_t)$", fontsize="medium")

    ax = axes[-1]
    wanted, redundant = tint(objective_color("cmi"), 0.6), tint(objective_color("cmi_club"), 0.75)
    cx, cz, cs = (0.0, -0.25), (-0.78, 0.62), (0.78, 0.62)
    rx, rz, rs = 1.65, 1.0, 1.0
    clip_x = Circle(cx, rx, transform=ax.transData)
    clip_s = Circle(cs, rs, transform=ax.transData)
    # I(x; s | z) and I(x; z): the parts of H(s) and H(z) inside H(x) ...
    for c, r, face in ((cs, rs, "0.9"), (cz, rz, wanted)):
        part = ax.add_patch(Circle(c, r, facecolor=face, lw=0, zorder=1))
        part.set_clip_path(clip_x)
    # ... and the lens of z and s, I(z; s), inside H(x) because I(z; s | x) = 0
    lens = ax.add_patch(Circle(cz, rz, facecolor=redundant, lw=0, zorder=2))
    lens.set_clip_path(clip_s)
    for c, r in ((cx, rx), (cz, rz), (cs, rs)):
        ax.add_patch(Circle(c, r, facecolor="none", edgecolor="0.15", lw=1.2, zorder=3))
    ax.text(-1.5, -1.6, "$H(x)$", ha="center", va="center", fontsize="large")
    ax.text(-1.5, 1.75, "$H(z)$", ha="center", va="center", fontsize="large")
    ax.text(1.5, 1.75, "$H(s)$", ha="center", va="center", fontsize="large")
    labels = (  # (text, point in the region, text position)
        ("$I(x;z\\,|\\,s)$\nwanted in z:\nglobal, not in s", (-0.95, 0.3), (-4.1, 0.35)),
        ("$I(z;s)$\nredundant:\nalso in s", (0.0, 0.75), (2.1, 1.25)),
        ("$I(x;s\\,|\\,z)$\nlocal content", (0.95, 0.15), (2.1, -0.3)),
    )
    for text, xy, xytext in labels:
        ax.annotate(
            text,
            xy=xy,
            xytext=xytext,
            ha="left",
            va="center",
            fontsize="small",
            arrowprops=dict(arrowstyle="-", color="0.25", lw=0.8, shrinkA=2, shrinkB=0),
        )
    ax.text(
        0.0,
        -2.2,
        "$I(x;z) = I(x;z\\,|\\,s) + I(z;s)$   when   $I(z;s\\,|\\,x) = 0$\n"
        "mi:  $+\\,\\alpha\\, I(x;z)$ rewards both coloured parts\n"
        "cmi:  $+\\,\\alpha\\, I(x;z) - \\beta\\, I(z;s)$ rewards $I(x;z\\,|\\,s)$ only ($\\alpha=\\beta$)",
        ha="center",
        va="top",
        fontsize="small",
        linespacing=1.6,
    )
    ax.set_xlim(-4.15, 3.5)
    ax.set_ylim(-3.45, 2.1)
    ax.set_title("(b) what z, s and x share under the encoder q", fontsize="medium")
    return fig


__all__ = [
    "fig_information_diagram",
    "fig_information_plane",
    "fig_probe_vs_beta",
    "fig_rate_distortion",
]

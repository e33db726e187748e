"""Figures for results/: ``fig_*`` functions return matplotlib Figures in one shared style.

Style: seaborn's "paper" context and "ticks" style, the colourblind palette, and one fixed colour
per objective (`OBJECTIVE_COLORS`: elbo, mi, cmi, cmi_club), so a method keeps its colour across
every figure of the suite. The style is applied inside each ``fig_*`` call through an rc context:
importing this module changes no global matplotlib state.

``save_figure(fig, "results/01_speech_dsae/tsne")`` writes ``tsne.png`` (200 dpi) and ``tsne.pdf``.

This module holds the style, the labels, the reference rows and flags, and the figures of every
experiment (training curves, t-SNE, metric tables, paired differences, the disentanglement
matrix); the figures of one study live beside it in the same style: `paperlib.reports.plots_generation`
(voice conversion, image samples), `paperlib.reports.plots_information` (information diagram, rate and
distortion, information plane, probe vs beta) and `paperlib.reports.plots_mechanism` (notebook 05).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PNG_DPI = 200

PALETTE = sns.color_palette("colorblind", 10)
# One colour per objective, fixed across every figure.
OBJECTIVE_COLORS: dict[str, tuple[float, float, float]] = {
    "elbo": PALETTE[0],  # blue
    "mi": PALETTE[1],  # orange
    "cmi": PALETTE[2],  # green
    "cmi_club": PALETTE[3],  # red
}
OBJECTIVE_LABELS = {
    "elbo": "ELBO",
    "mi": "MI-VAE",
    "cmi": "CMI (proposed)",
    "cmi_club": "CMI (CLUB)",
}

# Axis labels (with units) for the metric names of DESIGN section 6.
METRIC_LABELS = {
    "probe_acc": "probe accuracy, z means",
    "probe_acc_sample": "probe accuracy, z samples",
    "kl_z_nats": "KL(q(z|x) || p(z)) [nats]",
    "eer": "speaker EER",
    "phone_probe_acc_z": "phone probe accuracy from z",
    "speaker_probe_acc_s": "speaker probe accuracy from s",
    "speaker_probe_acc_z": "speaker probe accuracy from z",
    "phone_probe_acc_s": "phone probe accuracy from s",
    "class_consistency": "class consistency",
    "nll_bits_per_dim": "NLL [bits/dim]",
    "nll_nats": "NLL [nats/utterance]",
    "mi_xz_nats": "I(x; z) [nats]",
    "mi_zs_nats": "I(z; s) [nats]",
    "mi_zs_target_nats": "I(z; s), penalty's target, other family [nats]",
    "eval_seconds": "evaluation time [s]",
    "train_seconds": "training time [s]",
    "critic_acc_zs_heldout": "training critic accuracy, held-out batch",
    "loss": "loss [nats]",
    "elbo": "ELBO [nats]",
    "kl_z": "KL_z [nats]",
    "kl_s": "KL_s [nats]",
    "log_px": "log p(x|z,s) [nats]",
    "mi_xz": "I(x; z) estimate [nats]",
    "mi_zs": "I(z; s) estimate [nats]",
    "rate_nats": "rate KL(q(z|x) || p(z)) [nats]",
    "distortion_nats": "distortion -log p(x|z,s) [nats]",
}


def objective_color(name: str) -> tuple[float, float, float]:
    """The fixed colour of an objective; other names get the palette's later colours."""
    if name in OBJECTIVE_COLORS:
        return OBJECTIVE_COLORS[name]
    # deterministic across runs (no hash randomisation): a sum of character codes
    return PALETTE[4 + sum(map(ord, name)) % (len(PALETTE) - 4)]


def objective_label(name: str) -> str:
    return OBJECTIVE_LABELS.get(name, name)


def metric_label(name: str) -> str:
    """Axis label with units for a metric name (the name itself, spaced, when unknown)."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def title_and_unit(name: str) -> tuple[str, str]:
    """("KL(q(z|x) || p(z))", "nats") from "KL(q(z|x) || p(z)) [nats]"; unitless -> "fraction"."""
    label = metric_label(name)
    if label.endswith("]") and " [" in label:
        title, unit = label[:-1].rsplit(" [", 1)
        return title, unit
    return label, "fraction"


@contextmanager
def style() -> Iterator[None]:
    """The suite's figure style, as a temporary rc context."""
    rc = {
        **sns.plotting_context("paper", font_scale=1.1),
        **sns.axes_style("ticks"),
        "axes.prop_cycle": plt.cycler(color=PALETTE),
        "figure.dpi": 100,
        "savefig.bbox": "tight",
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "image.cmap": "viridis",
    }
    with plt.rc_context(rc):
        try:
            yield
        finally:  # the first figure may load Jupyter's inline backend, which turns interactive
            interactive = plt.isinteractive()  # mode on: the rc restore must not undo that,
    plt.interactive(interactive)  # or no later figure would be shown in the notebook


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Decorator: draw the figure of `fn` inside `style` (every ``fig_*`` of the suite)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with style():
            return fn(*args, **kwargs)

    return wrapper


def save_figure(fig: Figure, path_without_ext: str | Path) -> list[Path]:
    """Write `fig` as ``<path>.png`` (PNG_DPI dpi) and ``<path>.pdf``; return both paths."""
    base = Path(path_without_ext)
    if base.suffix in (".png", ".pdf"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.parent / f"{base.name}.png", base.parent / f"{base.name}.pdf"]
    with style():
        fig.savefig(paths[0], dpi=PNG_DPI, bbox_inches="tight")
        fig.savefig(paths[1], bbox_inches="tight")
    return paths


def panel_grid(n: int, max_cols: int = 4, panel: tuple[float, float] = (3.2, 2.8)):
    """A figure of `n` panels, at most `max_cols` a row, each `panel` inches: (fig, axes)."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


# ----------------------------------------------------------------------------------------------
# what a metrics.json says beside its values: reference rows and flagged seeds (the figures and
# paperlib.reports.summary's tables show the same ones)


# Reference rows under each table, in order: (key suffix of the floors, row label).
REFERENCE_ROWS: tuple[tuple[str, str], ...] = (
    ("chance", "chance"),
    ("random_init", "random init"),
    ("raw_input", "raw input"),
    ("shuffled_z", "shuffled z"),
    ("ceiling", "ceiling"),
)

# A cmi run whose training critic's accuracy over the last 20 % of logged steps stayed below
# this is flagged: its I(z;s) penalty was (close to) inert, so its row is not a test of cmi.
CRITIC_CHANCE_ACC = 0.55
CRITIC_ACC_KEY = "critic_acc_zs_final"
FLAG = "†"


def critic_flags(metrics: dict[str, Any], threshold: float = CRITIC_CHANCE_ACC) -> dict[str, list]:
    """``{objective: [indices of seeds whose training critic stayed at chance]}``.

    Reads ``critic_acc_zs_final`` (per seed) where an objective reports it; objectives without
    the key (elbo, mi, or runs from before it existed) are never flagged.
    """
    return seeds_where(metrics, CRITIC_ACC_KEY, lambda v: v < threshold)


def seeds_where(metrics: dict[str, Any], key: str, bad: Callable[[float], bool]) -> dict[str, list]:
    """``{objective: [indices of seeds whose per-seed `key` is `bad`]}`` (objectives without
    `key` are left out)."""
    out: dict[str, list] = {}
    for o, ms in metrics.items():
        if o.startswith("_") or key not in ms:
            continue
        vals = ms[key].get("per_seed") or [ms[key]["mean"]]
        hit = [i for i, v in enumerate(vals) if v is not None and bad(float(v))]
        if hit:
            out[o] = hit
    return out


def floors_of(metrics: dict[str, Any], floors: dict[str, float] | None) -> dict[str, float]:
    """Floors from the argument, else ``_meta.floors``, plus per-run ``<metric>@<ref>`` keys
    (e.g. ``class_consistency@shuffled_z``) averaged over every objective's runs."""
    out = dict(floors if floors is not None else metrics.get("_meta", {}).get("floors", {}))
    per_run: dict[str, list[float]] = {}
    for o, ms in metrics.items():
        if o.startswith("_"):
            continue
        for k, v in ms.items():
            if "@" in k and v.get("mean") is not None and math.isfinite(v["mean"]):
                per_run.setdefault(k, []).append(float(v["mean"]))
    for k, vals in per_run.items():
        out.setdefault(k, sum(vals) / len(vals))
    return out


# ----------------------------------------------------------------------------------------------
# training curves


def _history_long(history: Any) -> pd.DataFrame:
    """A history as a long DataFrame (step, key, value[, seed]).

    Accepts a long DataFrame with columns step/key/value, a wide DataFrame with a ``step``
    column, or a list of wide rows (dicts with ``step`` and metric columns).
    """
    df = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if {"step", "key", "value"} <= set(df.columns):
        return df
    if "step" not in df.columns:
        raise ValueError(f"a history needs a 'step' column, got columns {list(df.columns)}")
    id_vars = [c for c in ("step", "seed") if c in df.columns]
    return df.melt(id_vars=id_vars, var_name="key", value_name="value")


@styled
def fig_training_curves(
    histories: Mapping[str, Any], keys: Sequence[str], title: str | None = None
) -> Figure:
    """One panel per logged key, one line per objective (mean and sd band over seeds if present).

    Parameters
    ----------
    histories : objective -> list of rows (dicts with ``step`` and metric columns) or a
        DataFrame, long (step, key, value) or wide; a ``seed`` column is averaged over.
    keys : the logged keys to plot (e.g. ["loss", "kl_z", "mi_zs"]).
    """
    if not keys:
        raise ValueError("fig_training_curves: keys must name at least one logged key")
    fig, axes = panel_grid(len(keys), max_cols=3)
    for ax, key in zip(axes, keys):
        for obj, hist in histories.items():
            df = _history_long(hist)
            df = df[df["key"] == key]
            if df.empty:
                continue
            sns.lineplot(
                data=df,
                x="step",
                y="value",
                ax=ax,
                color=objective_color(obj),
                label=objective_label(obj),
                errorbar="sd",
            )
        panel_title, unit = title_and_unit(key)
        ax.set_xlabel("training step")
        ax.set_ylabel(unit if unit != "fraction" else panel_title)
        ax.set_title(panel_title)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------
# embeddings


@styled
def fig_tsne(
    embeddings_by_objective: Mapping[str, tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    max_points: int = 500,
    label_name: str = "speaker",
    perplexity: float = 30.0,
) -> Figure:
    """t-SNE (van der Maaten & Hinton 2008; sklearn.manifold.TSNE) of z, one panel per objective.

    Parameters
    ----------
    embeddings_by_objective : objective -> (Z (N, D), labels (N,)); points coloured by label.
    seed : seeds the point subset and t-SNE.
    max_points : at most this many points per panel (a seeded random subset).
    label_name : what the colours mean (legend title; shown for up to 10 classes).
    perplexity : t-SNE perplexity, lowered to (n - 1) / 3 for small sets.
    """
    from sklearn.manifold import TSNE

    fig, axes = panel_grid(len(embeddings_by_objective), max_cols=4, panel=(3.0, 3.0))
    for ax, (obj, (Z, labels)) in zip(axes, embeddings_by_objective.items()):
        Z, labels = np.asarray(Z, dtype=np.float64), np.asarray(labels)
        if len(Z) > max_points:
            keep = np.random.default_rng(seed).choice(len(Z), size=max_points, replace=False)
            Z, labels = Z[keep], labels[keep]
        perp = min(perplexity, max(1.0, (len(Z) - 1) / 3))
        xy = TSNE(2, perplexity=perp, init="pca", random_state=seed).fit_transform(Z)
        classes = np.unique(labels)
        palette = sns.color_palette("colorblind" if len(classes) <= 10 else "husl", len(classes))
        for c, col in zip(classes, palette):
            m = labels == c
            ax.scatter(xy[m, 0], xy[m, 1], s=6, color=col, label=str(c), linewidths=0)
        ax.set_title(objective_label(obj), color=objective_color(obj))
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 10:  # one legend, outside the last panel
        axes[-1].legend(
            title=label_name,
            markerscale=2,
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
        )
    fig.suptitle(f"t-SNE of z, coloured by {label_name}")
    return fig


# ----------------------------------------------------------------------------------------------
# metrics


def _label_reference_lines(ax, lines: list[tuple[float, str]], min_gap: float = 0.08) -> None:
    """Label horizontal reference lines at the right end, above each line; a line closer than
    `min_gap` of the axis height to the one labelled below it gets its label at the left end
    instead, so that two close references (chance and shuffled z) do not print over each
    other."""
    lo, hi = ax.get_ylim()
    span = (hi - lo) or 1.0
    last_right = -math.inf
    for value, label in sorted(lines):
        right = (value - last_right) / span >= min_gap
        if right:
            last_right = value
        ax.annotate(
            label,
            (1.0 if right else 0.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(-2 if right else 2, 1),
            textcoords="offset points",
            ha="right" if right else "left",
            va="bottom",
            fontsize="x-small",
            color="0.25",
        )


@styled
def fig_metric_table(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    metric_names: Sequence[str] | None = None,
    title: str | None = None,
    floors: Mapping[str, float] | None = None,
) -> Figure:
    """Bar chart: one panel per metric, one bar per objective (mean +- sd, seeds as dots).

    Floors and ceilings (``"<metric>@<reference>"`` keys of `floors`, e.g. from
    ``paperlib.studies.references.floors``; default ``metrics["_meta"]["floors"]``, plus per-run keys
    such as ``class_consistency@shuffled_z`` averaged over objectives) are drawn as labelled
    horizontal lines in the metric's panel. An objective with a seed whose training critic
    stayed at chance (``critic_acc_zs_final`` < 0.55, `critic_flags`) gets a
    dagger on its tick label, and the figure a footnote.

    Parameters
    ----------
    metrics : metrics.json layout, objective -> metric -> {"mean", "std"[, "per_seed"]}
        (keys starting with "_", e.g. "_meta", are skipped).
    metric_names : which metrics, in order (default: all metrics of the first objective that
        are neither floors nor per-seed bootstrap bounds ``<metric>_low`` / ``_high``).
    title : optional figure title.
    floors : the reference values (see above).
    """
    from paperlib.stats import is_bound

    objectives = [o for o in metrics if not o.startswith("_")]
    if not objectives:
        raise ValueError("fig_metric_table: metrics holds no objective")
    first = metrics[objectives[0]]
    # per-seed bootstrap bounds (mi_zs_nats_low / _high) are no metric of their own
    names = (
        list(metric_names)
        if metric_names
        else [k for k in first if "@" not in k and not is_bound(k, first)]
    )
    refs = floors_of(dict(metrics), dict(floors) if floors is not None else None)
    flags = critic_flags(dict(metrics))
    ref_styles = dict(zip([r for r, _ in REFERENCE_ROWS], [":", "--", "-.", (0, (1, 3)), "-"]))
    fig, axes = panel_grid(len(names), max_cols=4, panel=(2.6, 2.6))
    x = np.arange(len(objectives))
    ticks = [objective_label(o) + (f" {FLAG}" if o in flags else "") for o in objectives]
    for ax, name in zip(axes, names):
        for k, obj in enumerate(objectives):
            entry = metrics[obj].get(name)
            if entry is None:
                continue
            mean, std = float(entry["mean"]), float(entry.get("std", 0.0) or 0.0)
            ax.bar(k, mean, yerr=std, color=objective_color(obj), capsize=3, width=0.7)
            seeds = entry.get("per_seed") or []
            if len(seeds) > 1:
                jitter = np.linspace(-0.15, 0.15, len(seeds))
                ax.scatter(k + jitter, seeds, s=8, color="k", zorder=3, linewidths=0)
        lines = []
        for ref, label in REFERENCE_ROWS:
            value = refs.get(f"{name}@{ref}")
            if value is None or not math.isfinite(value):
                continue
            ax.axhline(value, color="0.35", lw=0.9, ls=ref_styles[ref], zorder=4, gid=ref)
            lines.append((value, label))
        _label_reference_lines(ax, lines)
        ax.set_xticks(x, ticks, rotation=30, ha="right")
        panel_title, unit = title_and_unit(name)
        ax.set_ylabel(unit)
        ax.set_title(panel_title)
    if flags:
        fig.text(
            0.01,
            0.0,
            f"{FLAG} training critic at chance (accuracy < 0.55) in some seed: "
            "its I(z;s) penalty was close to inert",
            fontsize="small",
            va="bottom",
        )
    if title:
        fig.suptitle(title)
    return fig


@styled
def fig_paired_differences(
    paired: Mapping[str, Mapping[str, Mapping[str, float]]],
    metric_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Paired per-seed differences with their intervals: one panel per metric.

    Parameters
    ----------
    paired : ``{"cmi - mi": {metric: {"mean", "low", "high", "n"}}}``, e.g.
        ``ExperimentResult.paired()`` or ``paperlib.stats.paired_table``.
    metric_names : metrics to show, in order (default: every metric of any pair).
    title : optional figure title.

    Each panel shows one point per pair at its mean difference with the interval as a
    horizontal bar, and a vertical line at 0: an interval crossing it shows no difference.
    """
    pairs = [p for p in paired if paired[p]]
    if not pairs:
        # fewer than two seeds (the smoke profile): say so in the figure instead of failing
        fig, ax = plt.subplots(figsize=(5.0, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no paired differences: they need at least two seeds per objective",
                ha="center", va="center")  # fmt: skip
        return fig
    names = (
        list(metric_names)
        if metric_names
        else list(dict.fromkeys(m for p in pairs for m in paired[p]))
    )
    fig, axes = panel_grid(len(names), max_cols=4, panel=(2.6, 1.0 + 0.35 * len(pairs)))
    for ax, name in zip(axes, names):
        for k, pair in enumerate(pairs):
            d = paired[pair].get(name)
            if d is None:
                continue
            first = pair.split(" - ")[0]
            ax.errorbar(
                d["mean"],
                k,
                xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]],
                fmt="o",
                color=objective_color(first),
                capsize=3,
            )
        ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
        # at most 4 ticks: differences of a few thousandths (an EER) otherwise print labels
        # like -0.010 and -0.005 into each other in a 2.6-inch panel
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.set_yticks(range(len(pairs)), pairs)
        ax.set_ylim(-0.6, len(pairs) - 0.4)
        panel_title, unit = title_and_unit(name)
        ax.set_title(panel_title)
        ax.set_xlabel(f"difference [{unit}]")
    if title:
        fig.suptitle(title)
    return fig


_DIS_KEYS = (
    ("speaker_probe_acc_z", "phone_probe_acc_z"),
    ("speaker_probe_acc_s", "phone_probe_acc_s"),
)


def _as_2x2(m: Any) -> np.ndarray:
    """A disentanglement matrix as rows (z, s) x columns (speaker, phone)."""
    if isinstance(m, Mapping):
        return np.array([[float(m.get(k, np.nan)) for k in row] for row in _DIS_KEYS])
    arr = np.asarray(m, dtype=float)
    if arr.shape != (2, 2):
        raise ValueError(f"a disentanglement matrix must be 2x2 or a dict, got shape {arr.shape}")
    return arr


@styled
def fig_disentanglement(
    matrices: Mapping[str, Any],
    chance: Mapping[str, float] | None = None,
) -> Figure:
    """Heatmaps of probe accuracy, rows = latent (z, s), columns = factor (speaker, phone).

    Parameters
    ----------
    matrices : objective -> output of `paperlib.evaluation.evaluate.disentanglement_matrix` (a dict) or a
        2x2 array [[speaker|z, phone|z], [speaker|s, phone|s]].
    chance : optional {"speaker": p, "phone": p} chance accuracies, shown in column labels
        (taken from the first dict's ``speaker_chance`` / ``phone_chance`` when omitted).
    """
    if chance is None:
        first = next(iter(matrices.values()), None)
        if isinstance(first, Mapping) and "speaker_chance" in first:
            chance = {"speaker": first["speaker_chance"], "phone": first.get("phone_chance")}
    cols = ["speaker", "phone"]
    if chance:
        cols = [f"{c}\nchance {chance[c]:.2f}" if chance.get(c) is not None else c for c in cols]
    fig, axes = plt.subplots(
        1,
        len(matrices),
        figsize=(2.9 * len(matrices) + 1.0, 3.0),
        squeeze=False,
        layout="constrained",
    )
    for k, (ax, (obj, m)) in enumerate(zip(axes.flat, matrices.items())):
        sns.heatmap(
            _as_2x2(m),
            ax=ax,
            vmin=0.0,
            vmax=1.0,
            annot=True,
            fmt=".2f",
            cmap="mako",
            cbar=False,
            xticklabels=cols,
            yticklabels=["z", "s"],
            square=True,
        )
        ax.set_title(objective_label(obj), color=objective_color(obj))
        ax.set_xlabel("predicted factor")
        ax.set_ylabel("latent" if k == 0 else "")
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", labelsize="small")
    mappable = plt.cm.ScalarMappable(cmap="mako", norm=plt.Normalize(0.0, 1.0))
    fig.colorbar(mappable, ax=axes, label="probe accuracy", shrink=0.85)
    fig.suptitle("Linear-probe accuracy (ideal: z -> speaker, s -> phone)")
    return fig


__all__ = [
    "METRIC_LABELS",
    "OBJECTIVE_COLORS",
    "critic_flags",
    "fig_disentanglement",
    "fig_metric_table",
    "fig_paired_differences",
    "fig_training_curves",
    "fig_tsne",
    "floors_of",
    "metric_label",
    "objective_color",
    "objective_label",
    "panel_grid",
    "save_figure",
    "style",
    "styled",
]

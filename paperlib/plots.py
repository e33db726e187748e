"""Figures for results/: ``fig_*`` functions return matplotlib Figures in one shared style.

Style: seaborn's "paper" context and "ticks" style, the colourblind palette, and one fixed colour
per objective (`OBJECTIVE_COLORS`: elbo, mi, cmi, cmi_club), so a method keeps its colour across
every figure of the suite. The style is applied inside each ``fig_*`` call through an rc context:
importing this module changes no global matplotlib state.

``save_figure(fig, "results/01_speech_dsae/tsne")`` writes ``tsne.png`` (200 dpi) and ``tsne.pdf``.
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

PNG_DPI = 200

_PALETTE = sns.color_palette("colorblind", 10)
# One colour per objective, fixed across every figure.
OBJECTIVE_COLORS: dict[str, tuple[float, float, float]] = {
    "elbo": _PALETTE[0],  # blue
    "mi": _PALETTE[1],  # orange
    "cmi": _PALETTE[2],  # green
    "cmi_club": _PALETTE[3],  # red
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
    return _PALETTE[4 + sum(map(ord, name)) % (len(_PALETTE) - 4)]


def objective_label(name: str) -> str:
    return OBJECTIVE_LABELS.get(name, name)


def metric_label(name: str) -> str:
    """Axis label with units for a metric name (the name itself, spaced, when unknown)."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def _title_and_unit(name: str) -> tuple[str, str]:
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
        "axes.prop_cycle": plt.cycler(color=_PALETTE),
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


def _styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
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


def _grid(n: int, max_cols: int = 4, panel: tuple[float, float] = (3.2, 2.8)):
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
# paperlib.summary's tables show the same ones)


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


@_styled
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
    fig, axes = _grid(len(keys), max_cols=3)
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
        panel_title, unit = _title_and_unit(key)
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


@_styled
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

    fig, axes = _grid(len(embeddings_by_objective), max_cols=4, panel=(3.0, 3.0))
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


@_styled
def fig_metric_table(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    metric_names: Sequence[str] | None = None,
    title: str | None = None,
    floors: Mapping[str, float] | None = None,
) -> Figure:
    """Bar chart: one panel per metric, one bar per objective (mean +- sd, seeds as dots).

    Floors and ceilings (``"<metric>@<reference>"`` keys of `floors`, e.g. from
    ``paperlib.experiment.floors``; default ``metrics["_meta"]["floors"]``, plus per-run keys
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
    fig, axes = _grid(len(names), max_cols=4, panel=(2.6, 2.6))
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
        for ref, label in REFERENCE_ROWS:
            value = refs.get(f"{name}@{ref}")
            if value is None or not math.isfinite(value):
                continue
            ax.axhline(value, color="0.35", lw=0.9, ls=ref_styles[ref], zorder=4, gid=ref)
            ax.annotate(
                label,
                (1.0, value),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 1),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize="x-small",
                color="0.25",
            )
        ax.set_xticks(x, ticks, rotation=30, ha="right")
        panel_title, unit = _title_and_unit(name)
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


@_styled
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
    fig, axes = _grid(len(names), max_cols=4, panel=(2.6, 1.0 + 0.35 * len(pairs)))
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
        ax.set_yticks(range(len(pairs)), pairs)
        ax.set_ylim(-0.6, len(pairs) - 0.4)
        panel_title, unit = _title_and_unit(name)
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


@_styled
def fig_disentanglement(
    matrices: Mapping[str, Any],
    chance: Mapping[str, float] | None = None,
) -> Figure:
    """Heatmaps of probe accuracy, rows = latent (z, s), columns = factor (speaker, phone).

    Parameters
    ----------
    matrices : objective -> output of `paperlib.evaluate.disentanglement_matrix` (a dict) or a
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


# ----------------------------------------------------------------------------------------------
# generation


@_styled
def fig_voice_conversion(
    spectrograms: Sequence[Sequence[np.ndarray]] | np.ndarray | Mapping[str, np.ndarray],
    row_labels: Sequence[str] | None = None,
    column_titles: Sequence[str] = ("content source", "speaker source", "converted"),
    frame_ms: float = 10.0,
) -> Figure:
    """Grid of log-mel spectrograms: each row (content source, speaker source, converted).

    Parameters
    ----------
    spectrograms : rows of (T, n_mels) arrays, an array (rows, cols, T, n_mels), or the dict of
        `paperlib.conversion.voice_conversion_examples` (keys content / speaker / converted).
    row_labels : one label per row (default: speakers from the dict, else "pair k").
    frame_ms : frame hop for the time axis.
    """
    if isinstance(spectrograms, Mapping):
        d = spectrograms
        grid = [list(row) for row in zip(d["content"], d["speaker"], d["converted"])]
        if row_labels is None and "content_speaker" in d:
            row_labels = [
                f"spk {a} -> spk {b}" for a, b in zip(d["content_speaker"], d["speaker_speaker"])
            ]
    else:
        grid = [[np.asarray(s) for s in row] for row in spectrograms]
    n_rows, n_cols = len(grid), max(len(r) for r in grid)
    all_vals = np.concatenate([np.ravel(s) for row in grid for s in row])
    vmin, vmax = np.percentile(all_vals, [1, 99])
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(3.0 * n_cols + 0.6, 2.0 * n_rows),
        squeeze=False,
        layout="constrained",
        sharey=True,
    )
    im = None
    for r, row in enumerate(grid):
        for c, spec in enumerate(row):
            ax = axes[r, c]
            spec = np.asarray(spec)
            T = spec.shape[0]
            im = ax.imshow(
                spec.T,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=vmin,
                vmax=vmax,
                extent=(0, T * frame_ms, 0, spec.shape[1]),
            )
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c])
            if c == 0:
                label = row_labels[r] if row_labels is not None else f"pair {r + 1}"
                ax.set_ylabel(f"{label}\nmel bin")
            if r == n_rows - 1:
                ax.set_xlabel("time [ms]")
    if im is not None:
        fig.colorbar(im, ax=axes, label="normalised log-mel", shrink=0.8)
    fig.suptitle("Voice conversion by swapping z")
    return fig


@_styled
def fig_sample_grid(
    images: np.ndarray,
    row_labels: Sequence[str] | None = None,
    title: str = "Samples: each row one z, columns are decoder samples",
) -> Figure:
    """Image grid (rows, cols, H, W) or (rows, cols, C, H, W) with values in [0, 1].

    Typically the first column is the image that gave z and the rest are autoregressive samples.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim == 5:
        images = images.transpose(0, 1, 3, 4, 2)  # (rows, cols, H, W, C)
        if images.shape[-1] == 1:
            images = images[..., 0]
    if images.ndim not in (4, 5):
        raise ValueError(
            f"fig_sample_grid: images must be (rows, cols, H, W[, C]), got {images.shape}"
        )
    n_rows, n_cols = images.shape[:2]
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(0.8 * n_cols + 0.8, 0.8 * n_rows + 0.4),
        squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.05},
    )
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(np.clip(images[r, c], 0, 1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------
# information and trade-offs


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


@_styled
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


@_styled
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
    ax.set_title("Information plane (post-hoc estimates)")
    ax.legend()
    return fig


@_styled
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


@_styled
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
    "METRIC_LABELS",
    "OBJECTIVE_COLORS",
    "fig_disentanglement",
    "fig_information_diagram",
    "fig_information_plane",
    "fig_metric_table",
    "fig_paired_differences",
    "fig_probe_vs_beta",
    "fig_rate_distortion",
    "fig_sample_grid",
    "fig_training_curves",
    "fig_tsne",
    "fig_voice_conversion",
    "objective_color",
    "save_figure",
    "style",
]


# ----------------------------------------------------------------------------------------------
# the controlled mechanism study (notebook 05)


@_styled
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
    fig, axes = _grid(len(panels), max_cols=len(panels), panel=(3.8, 3.2))
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


@_styled
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

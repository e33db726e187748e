"""Figures of what the decoder makes: voice conversion (notebook 01) and image samples
(notebook 02), in the style of `paperlib.reports.plots`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from paperlib.reports.plots import (
    styled,
)


@styled
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
        `paperlib.evaluation.conversion.voice_conversion_examples` (keys content / speaker / converted).
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


@styled
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


__all__ = [
    "fig_sample_grid",
    "fig_voice_conversion",
]

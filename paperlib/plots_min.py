"""Temporary figure helpers for the pipeline check (replaced by paperlib.plots)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def fig_gaussian_mi(rho: np.ndarray, dims=(1, 4, 8)):
    fig, ax = plt.subplots(figsize=(4, 3))
    for d in dims:
        # I = -d/2 log(1 - rho^2)
        ax.plot(rho, -0.5 * d * np.log1p(-(rho**2)), label=f"d = {d}")
    ax.set_xlabel("correlation rho")
    ax.set_ylabel("I(x; y) [nats]")
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=200)
    fig.savefig(out[1])
    return out

"""What the local features s hold: the measurement that chooses the `cmi` penalty's target.

The penalty beta I_q(z; s) is only meaningful if s is *local*. If the whole sequence s_1:T
holds nearly all of x, then I(z; s_1:T) ~ I(z; x) = I(x; z) and, with alpha = beta,

    alpha I(x; z) - beta I(z; s_1:T) ~ 0,

so `cmi` would undo the reward of `mi` instead of removing only what s already holds. This
module measures, for a model's s, how much of three targets a linear read-out recovers from
three sources:

    sources: one position s_t | a window of positions around t | the whole sequence s_1:T
    targets: x_t (the frame / pixel at t) | x as a whole | the global label (speaker / class)

x-targets are scored by the fraction of variance a ridge regression explains on held-out rows
(R^2, pooled over dimensions; 1 = recovered exactly), the label by a linear probe's held-out
accuracy (`paperlib.evaluation.evaluate.linear_probe`; for s_1:T and for x itself the better of a probe on
the flattened sequence and one on its mean over positions). Linear read-outs are lower bounds on what s holds;
they are the same read-outs at random initialisation and after training, so the change between
the two is what training put into s.

For the PixelCNN-VAE s_t = h(x_<t) sees the pixels before t, so s_{t+1} holds x_t and s_1:T holds
x up to its last pixel: the sequence target is degenerate there (docs/DESIGN.md, "What s holds").
For the DSAE with the factorized posterior s_t ~ q(s_t | x_t) holds only a compressed frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV

from paperlib.evaluation.evaluate import linear_probe

#: sources and targets of the table, in reading order
SOURCES = ("s_t", "window", "s_1:T")
TARGETS = ("x_t", "x", "label")
#: components kept before a read-out of a high-dimensional source (speed; PCA is fitted on the
#: read-out's training rows only)
MAX_COMPONENTS = 256
#: ridge penalties tried by leave-one-out for the x read-outs
RIDGE_ALPHAS = np.logspace(-2, 4, 7)


@dataclass
class Encoded:
    """Per-item arrays of one split: x per position (N, T, Dx), s (N, T, Ds), labels (N,)."""

    x: np.ndarray
    s: np.ndarray
    y: np.ndarray
    grid: tuple[int, int] | None  # (H, W) when positions are pixels in raster order


@torch.no_grad()
def encode(model: torch.nn.Module, dataset, max_items: int, seed: int = 0) -> Encoded:
    """x per position, s and y of the first `max_items` items of `dataset` (model in eval mode).

    Images (N, C, H, W) become (N, H * W, C) in raster order, as s is; speech stays (N, T, D).
    """
    n = min(max_items, len(dataset))
    items = [dataset[i] for i in range(n)]
    x = torch.stack([it["x"] for it in items])
    y = np.asarray([int(it["y"]) for it in items])
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    parts = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for chunk in x.split(256):
            parts.append(model(chunk.to(dev)).s.float().cpu())
    model.train(was_training)
    s = torch.cat(parts).numpy()
    grid = None
    if x.dim() == 4:  # images: raster order, as the PixelCNN's s
        _, C, H, W = x.shape
        x = x.permute(0, 2, 3, 1).reshape(n, H * W, C)
        grid = (H, W)
    return Encoded(x=x.numpy().astype(np.float32), s=s, y=y, grid=grid)


def _window_index(T: int, grid: tuple[int, int] | None, t: np.ndarray, window: int) -> np.ndarray:
    """(N, w) positions of the window around each t: a window x window patch on an image grid
    (clipped at the borders), `window` consecutive frames of a sequence; clipped indices repeat."""
    half = window // 2
    offs = np.arange(-half, window - half)
    if grid is None:
        return np.clip(t[:, None] + offs[None, :], 0, T - 1)
    H, W = grid
    i, j = np.divmod(t, W)
    ii = np.clip(i[:, None, None] + offs[None, :, None], 0, H - 1)
    jj = np.clip(j[:, None, None] + offs[None, None, :], 0, W - 1)
    return (ii * W + jj).reshape(len(t), -1)


def _sources(enc: Encoded, t: np.ndarray, window: int) -> dict[str, np.ndarray]:
    n, T, _ = enc.s.shape
    rows = np.arange(n)
    idx = _window_index(T, enc.grid, t, window)
    return {
        "s_t": enc.s[rows, t],
        "window": enc.s[rows[:, None], idx].reshape(n, -1),
        "s_1:T": enc.s.reshape(n, -1),
    }


def _reduce(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA to at most MAX_COMPONENTS, fitted on `a`; applied to both.

    No per-column standardisation here or in `r2`: a column of s that is nearly constant on the
    training rows (a PixelCNN position whose context is all background) would be divided by a
    std near 0 and blow up on held-out rows. s's columns share one scale (activations).
    """
    k = min(MAX_COMPONENTS, a.shape[1], a.shape[0] - 1)
    if a.shape[1] <= k:
        return a, b
    pipe = PCA(n_components=k, random_state=seed)
    return pipe.fit_transform(a), pipe.transform(b)


def r2(train_f, train_t, test_f, test_t) -> float:
    """Held-out fraction of variance of the targets a ridge regression explains (pooled).

    R^2 = 1 - sum (t - t_hat)^2 / sum (t - mean_train t)^2 over rows and dimensions; the ridge
    penalty is chosen by efficient leave-one-out on the training rows (`RidgeCV`).
    """
    ridge = RidgeCV(alphas=RIDGE_ALPHAS)
    model = ridge.fit(train_f, train_t)
    # reshape: a one-column target comes back as (N,) and would broadcast against (N, 1)
    resid = ((test_t - model.predict(test_f).reshape(test_t.shape)) ** 2).sum()
    total = ((test_t - train_t.mean(0, keepdims=True)) ** 2).sum()
    return float(1.0 - resid / max(total, 1e-12))


def what_s_holds(
    train: Encoded, test: Encoded, window: int = 5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """The table ``{source: {target: score}}`` (module docstring), plus the raw-input reference.

    Parameters
    ----------
    train, test : encodings of two disjoint splits (read-outs fit on `train`, scored on `test`).
    window : side of the image patch, or number of frames, of the "window" source.
    seed : chooses the position t of each item and seeds PCA and the probes.

    Returns
    -------
    ``{"s_t": {"x_t", "x", "label"}, "window": {...}, "s_1:T": {...}, "raw x": {"label"}}``;
    x-targets as held-out R^2, the label as held-out probe accuracy.
    """
    if train.s.shape[1:] != test.s.shape[1:]:
        raise ValueError(f"train and test s differ in shape: {train.s.shape} vs {test.s.shape}")
    rng = np.random.default_rng(seed)
    T = train.s.shape[1]
    t_tr, t_te = rng.integers(0, T, len(train.s)), rng.integers(0, T, len(test.s))
    src_tr, src_te = _sources(train, t_tr, window), _sources(test, t_te, window)
    targets_tr = {
        "x_t": train.x[np.arange(len(t_tr)), t_tr],
        "x": train.x.reshape(len(train.x), -1),
    }
    targets_te = {
        "x_t": test.x[np.arange(len(t_te)), t_te],
        "x": test.x.reshape(len(test.x), -1),
    }
    table: dict[str, dict[str, float]] = {}
    for name in SOURCES:
        a, b = _reduce(src_tr[name], src_te[name], seed)
        # x_t from s_1:T is left out: t differs per item, and a linear map of s_1:T cannot know it
        keys = ("x_t", "x") if name != "s_1:T" else ("x",)
        row = {key: r2(a, targets_tr[key], b, targets_te[key]) for key in keys}
        row["label"] = linear_probe(a, train.y, b, test.y, seed)
        if name == "s_1:T":  # the best of the flattened and the position-mean read-outs
            row["label"] = max(row["label"], _mean_probe(train.s, test.s, train.y, test.y, seed))
        table[name] = row
    a, b = _reduce(targets_tr["x"], targets_te["x"], seed)
    raw = max(
        linear_probe(a, train.y, b, test.y, seed),
        _mean_probe(train.x, test.x, train.y, test.y, seed),
    )
    table["raw x"] = {"label": raw}
    return table


def _mean_probe(a: np.ndarray, b: np.ndarray, ya, yb, seed: int) -> float:
    """Probe accuracy of the label from the mean over positions (N, T, D) -> (N, D): the
    read-out that finds a global factor spread evenly over a sequence (a speaker's voice),
    which a linear map of the flattened sequence after PCA can miss."""
    return linear_probe(a.mean(1), ya, b.mean(1), yb, seed)


def choose_target(
    table: dict[str, dict[str, float]], holds_x: float = 0.9, holds_label: float = 0.9
) -> str:
    """The penalty's target for a model's s, from its trained `what_s_holds` table.

    "sequence" (I(z; s_1:T)) unless s_1:T is x again: it holds x (held-out R^2 >= `holds_x`)
    *and* the label as well as x does (probe >= `holds_label` x the raw-input probe). Then
    I(z; s_1:T) ~ I(x; z) and the penalty would cancel the reward, so the target is the local
    "window" (I(z; s_window), what one receptive field of the local path holds).
    """
    seq = table["s_1:T"]
    degenerate = seq["x"] >= holds_x and seq["label"] >= holds_label * table["raw x"]["label"]
    return "window" if degenerate else "sequence"


def format_table(tables: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table: one row per (model state, source), columns the targets."""
    lines = ["| model | source | x_t (R^2) | x (R^2) | label (acc.) |", "|---|---|---|---|---|"]
    for state, table in tables.items():
        for name in (*SOURCES, "raw x"):
            row = table.get(name, {})
            cells = [f"{row[k]:.3f}" if k in row else "" for k in TARGETS]
            lines.append(f"| {state} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "Encoded",
    "SOURCES",
    "TARGETS",
    "choose_target",
    "encode",
    "format_table",
    "r2",
    "what_s_holds",
]

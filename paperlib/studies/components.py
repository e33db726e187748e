"""Which component names are accepted: the built-ins plus whatever a user registered.

The registries (``paperlib.data.DATASETS``, ``paperlib.models.MODELS``,
``paperlib.training.regularizers.OBJECTIVES``) are the truth; their ``get`` raises an error naming the
config key and the registered names when a run uses an unknown one. This module answers the
question before a run starts, for the runner's parameter check (paperlib.suite.notebooks), without
paperlib.config importing the model, objective and data packages (docs/DESIGN.md,
"Architecture"). The ``BUILTIN_*`` tuples name what ships with the package; they can be read
without importing torch (tests/test_architecture.py checks them against the registries).
"""

from __future__ import annotations

BUILTIN_DATASETS = (
    "synthetic_speech",
    "timit",
    "librispeech",
    "mnist5k",
    "digits8x8",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "toy",
    "factors",
)
BUILTIN_MODELS = ("dsae", "pixelcnn_vae", "toy")
BUILTIN_OBJECTIVES = ("elbo", "mi", "cmi", "cmi_club")


def registry(kind: str):
    """The registry of ``kind``: "dataset", "model" or "objective"."""
    if kind == "dataset":
        from paperlib.data import DATASETS

        return DATASETS
    if kind == "model":
        from paperlib.models import MODELS

        return MODELS
    if kind == "objective":
        from paperlib.training.regularizers import OBJECTIVES

        return OBJECTIVES
    raise ValueError(f"kind {kind!r} is not accepted; choose 'dataset', 'model' or 'objective'")


def registered(kind: str) -> tuple[str, ...]:
    """Names accepted for a component: the built-ins plus whatever a user registered.

    ``kind`` is "dataset", "model" or "objective". A model, dataset or objective added with
    ``@REGISTRY.register("name")`` is accepted without editing this file.
    """
    builtin = {
        "dataset": BUILTIN_DATASETS,
        "model": BUILTIN_MODELS,
        "objective": BUILTIN_OBJECTIVES,
    }[kind]
    return tuple(dict.fromkeys([*builtin, *registry(kind).names()]))


__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_MODELS",
    "BUILTIN_OBJECTIVES",
    "registered",
    "registry",
]

"""Models, looked up by name: ``build_model(cfg)``.

To add a model, subclass `SequentialVAE`, return `VAEOutput` from ``forward``, decorate the class
with ``@MODELS.register("name")`` and give it a ``from_config(model_cfg, data_info)`` classmethod.
"""

from __future__ import annotations

import importlib

from paperlib.models.base import SequentialVAE, VAEOutput
from paperlib.registry import Registry

MODELS: Registry = Registry("model", key="model.name")

# Modules that register models on import.
_MODULES = ("paperlib.models.toy", "paperlib.models.dsae", "paperlib.models.pixelcnn_vae")


def _import_all() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # a model module not written yet
            if err.name != name:
                raise


def build_model(model_cfg, data_info: dict) -> SequentialVAE:
    """Instantiate the model named ``model_cfg.name`` for a dataset described by `data_info`."""
    _import_all()
    return MODELS.get(model_cfg.name).from_config(model_cfg, data_info)


__all__ = ["MODELS", "SequentialVAE", "VAEOutput", "build_model"]

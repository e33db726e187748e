"""Seeding, device choice and the working folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (CPU and CUDA); return a torch.Generator seeded the same.

    Deterministic algorithms are requested where torch offers them without erroring, so the same
    seed gives the same numbers on the same CPU.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def get_device(choice: str = "auto") -> torch.device:
    """``cuda`` when available (for ``auto``), else CPU; ``cpu`` or ``cuda`` to force one.

    Raises
    ------
    ValueError
        For an unknown choice, or ``cuda`` on a machine without a CUDA device.
    """
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "train.device='cuda' but no CUDA device is available; use 'auto' or 'cpu'"
            )
        return torch.device("cuda")
    raise ValueError(f"device {choice!r} is not accepted; choose one of ['auto', 'cpu', 'cuda']")


#: environment variable naming the working folder (runs/ and the data cache); a shared
#: filesystem path lets cluster jobs and the notebooks see the same run folders
WORKDIR_ENV = "PAPERLIB_WORKDIR"


def work_dir() -> Path:
    """Where training runs (``runs/``) and the data cache (``.cache/``) live.

    ``$PAPERLIB_WORKDIR`` when set; else the source checkout's root when paperlib is imported
    from one (a ``pyproject.toml`` beside the package); else the current directory (a wheel
    install, as on Colab, must not write into site-packages).
    """
    env = os.environ.get("PAPERLIB_WORKDIR")  # WORKDIR_ENV; a literal name (test_faults)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


def in_work_dir(path: str | Path) -> Path:
    """`path` itself when absolute, else `path` inside `work_dir()`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else work_dir() / path

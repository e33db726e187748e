"""Verified on-disk caches of generated or extracted arrays (one .npz plus a sidecar .json).

A cache file is ``cache_dir/<name>-<sha256 of the parameters, 16 hex>.npz``; beside it a
``.json`` holds the sha256 of the .npz bytes, its size and the parameters. Both are written
atomically (paperlib.records.atomic_path). A missing, truncated or mismatching file is reported
with a warning that names it, and regenerated. Used by the synthetic speech corpus
(paperlib.data.speech) and the real-speech features (paperlib.data.real).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from paperlib.records import atomic_path
from paperlib.runtime import in_work_dir


def cache_file(cache_dir: str | Path, name: str, params: dict[str, Any]) -> Path:
    """``cache_dir/<name>-<sha256 of the parameters as sorted json, 16 hex>.npz``."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return in_work_dir(cache_dir) / f"{name}-{digest}.npz"


def save_arrays(path: Path, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
    """Write ``path`` (.npz) atomically, then a sidecar ``.json`` with its sha256 and params."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    meta = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "params": params}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def load_arrays(path: Path, params: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """Arrays of a verified cache file, or None (with a warning) when missing or corrupted."""
    side = path.with_suffix(".json")
    if not path.exists():
        return None
    try:
        meta = json.loads(side.read_text())
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["sha256"] or meta["params"] != params:
            raise ValueError("checksum or parameters do not match the sidecar json")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:  # a truncated zip, a missing sidecar, a bad checksum
        warnings.warn(
            f"cache file {path} is corrupted or incomplete ({type(err).__name__}: {err}); "
            "regenerating it",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


def load_or_build(
    path: Path, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], str]:
    """(arrays, "cache") from a verified ``path``, else (build(), "generated"), saved to ``path``."""
    arrays = load_arrays(path, params)
    if arrays is not None:
        return arrays, "cache"
    arrays = build()
    save_arrays(path, arrays, params)
    return arrays, "generated"


__all__ = ["cache_file", "load_arrays", "load_or_build", "save_arrays"]

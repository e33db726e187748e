"""Run directories (`run_dir_for`, named by `config_hash`), crash-safe checkpoints, metrics.json
and history.csv; one trainer per run folder (`run_lock`).

Checkpoints hold only tensors, lists, dicts and scalars so that they load with
``torch.load(..., weights_only=True)``: no pickle payload from a checkpoint is ever executed.
Every write goes to a temporary file in the same folder and is renamed into place, so a kill
leaves either the previous file or the new one, never a half-written file that looks valid.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlib import __version__, runtime
from paperlib.config import Config
from paperlib.progress import PREFIX

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a paperlib checkpoint."""


# ----------------------------------------------------------------------------------------------
# provenance


def _checkout_root(root: str | Path | None = None) -> Path | None:
    """The source checkout that paperlib is imported from (a pyproject.toml beside the package)."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() else None


def installed_commit() -> str:
    """The commit an installed (non-checkout) paperlib was built from, from package metadata.

    pip records the resolved commit of a ``pip install git+URL`` (what the Colab cell does) in
    the distribution's ``direct_url.json`` (PEP 610). Without one (a wheel or sdist install) the
    answer is ``unknown (paperlib <version>, ...)``, which still names the package version.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("paperlib")
    except PackageNotFoundError:
        return "unknown (paperlib is not installed and not in a git checkout)"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except json.JSONDecodeError:
        direct = {}
    commit = direct.get("vcs_info", {}).get("commit_id")
    if commit:
        return str(commit)
    where = direct.get("url", "an index or a wheel file")
    return f"unknown (paperlib {dist.version} installed from {where}; no git checkout)"


def git_commit(root: str | Path | None = None) -> str:
    """The commit the code comes from.

    In a source checkout: ``git rev-parse HEAD``, with ``-dirty`` when tracked files outside
    ``results/`` have changes (``unknown`` when git is missing or it is no repository).
    Elsewhere (a non-editable install, as on Colab): `installed_commit` from package metadata.
    """
    checkout = _checkout_root(root)
    if checkout is None:
        return installed_commit()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            # results/ is written by the runs themselves: it does not make the code dirty
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers.

    paperlib's own version is the source's ``__version__`` in a checkout and the installed
    distribution's metadata otherwise.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    own = __version__
    if _checkout_root() is None:
        try:
            own = version("paperlib")
        except PackageNotFoundError:
            pass
    return {
        "paperlib": own,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "scikit-learn": version("scikit-learn"),  # metadata: importing sklearn costs seconds
    }


def provenance(cfg: Config | None = None, **extra: Any) -> dict[str, Any]:
    """What `_meta` holds: config, versions, git commit, time, plus any extra fields."""
    meta: dict[str, Any] = {
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if cfg is not None:
        meta["profile"] = cfg.profile
        meta["config"] = cfg.to_dict()
    meta.update(extra)
    return meta


# ----------------------------------------------------------------------------------------------
# atomic writes


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (NaN and inf become null, so the file stays valid JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ----------------------------------------------------------------------------------------------
# RNG states as tensors (weights_only-loadable)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states, as tensors and lists only."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by `rng_state`."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: str | Path, *, cfg: Config, step: int, **state: Any) -> Path:
    """Atomically save a checkpoint.

    Parameters
    ----------
    path : where to write; the parent folder is created.
    cfg : the run's Config (saved as a plain dict).
    step : the number of completed optimisation steps.
    **state : state dicts and tensors (``model=model.state_dict()``, ``optimizer=...``,
        ``generator=gen.get_state()``, ...). Only tensors, lists, dicts, str and numbers.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "config": cfg.to_dict(),
        "rng": rng_state(),
        "versions": versions(),
        "git_commit": git_commit(),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint` with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        When the file is missing, truncated/corrupted, holds a disallowed (pickled) object, or
        is not a paperlib checkpoint. The message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or unsafe files
        raise CheckpointError(
            f"checkpoint {path} could not be loaded (truncated, corrupted, or holding objects "
            f"that weights_only loading refuses): {type(err).__name__}: {str(err)[:200]}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a paperlib checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def latest_valid_checkpoint(folder: str | Path, pattern: str = "step_*.pt"):
    """The newest checkpoint in `folder` that loads, with any corrupted newer ones reported.

    Returns
    -------
    (path, payload, skipped) where path and payload are None when no valid checkpoint exists and
    skipped lists ``(path, reason)`` for files that failed to load.
    """
    folder = Path(folder)
    skipped: list[tuple[Path, str]] = []
    candidates = sorted(folder.glob(pattern), key=_step_of, reverse=True)
    for path in candidates:
        try:
            return path, load_checkpoint(path), skipped
        except CheckpointError as err:
            skipped.append((path, str(err)))
    return None, None, skipped


def _step_of(path: Path) -> int:
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits else -1


# ----------------------------------------------------------------------------------------------
# metrics.json (DESIGN section 6) and history.csv


def summarize(per_seed: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` of a list of per-seed values (NaNs ignored in mean/std)."""
    vals = [float(v) for v in per_seed]
    finite = [v for v in vals if math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else float("nan")
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std, "per_seed": vals}


def summarize_objective(
    per_seed: dict[str, list[float]], seeds: list | None = None
) -> dict[str, dict[str, Any]]:
    """The metrics.json entries of one objective: `summarize` of every metric.

    A metric m with per-seed bootstrap bounds (m_low, m_high, e.g. ``mi_zs_nats``) also gets
    its interval over seeds, ``low`` / ``high`` with its label ``interval``
    (`paperlib.stats.across_seeds`: a 95 % t-interval of the per-seed values). The bounds keep
    their per-seed values only: their mean and std are NaN (null in the file), since the mean
    of per-seed bootstrap bounds would read as an interval across seeds, which it is not.
    """
    from paperlib import stats  # lazy: scipy only when metrics are written

    out = {m: summarize(v) for m, v in per_seed.items()}
    for m, iv in stats.across_seeds(per_seed, seeds).items():
        out[m].update(low=iv["low"], high=iv["high"], interval=iv["interval"])
        for sfx in stats.BOUND_SUFFIXES:
            out[m + sfx].update(
                mean=math.nan,
                std=math.nan,
                interval=f"per-seed bootstrap bound of {m}; not averaged over seeds",
            )
    return out


def write_metrics(
    path: str | Path,
    results: dict[str, dict[str, list[float]]],
    cfg: Config | None = None,
    **meta: Any,
) -> Path:
    """Write metrics.json: ``{objective: {metric: {mean, std, per_seed}}, "_meta": {...}}``.

    Metrics with per-seed bootstrap bounds carry their interval over seeds
    (`summarize_objective`).

    Parameters
    ----------
    results : ``{objective: {metric: [value per seed]}}``.
    cfg : the base Config of the experiment (saved in ``_meta``).
    **meta : extra ``_meta`` fields (notebook parameters, selection evidence, wall time...);
        ``params["seeds"]`` names the seeds in interval labels.
    """
    seeds = (meta.get("params") or {}).get("seeds")
    out: dict[str, Any] = {
        obj: summarize_objective(metrics, seeds) for obj, metrics in results.items()
    }
    out["_meta"] = provenance(cfg, **meta)
    return write_json(path, out)


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read a metrics.json, checking its shape; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read metrics file {path}: {err}") from err
    for obj, metrics in data.items():
        if obj == "_meta":
            continue
        for metric, v in metrics.items():
            if not isinstance(v, dict) or not {"mean", "std", "per_seed"} <= set(v):
                raise ValueError(f"{path}: {obj}.{metric} lacks mean/std/per_seed")
    return data


class HistoryWriter:
    """Append-only long-format history: one row per (step, key, value).

    Rows after a resume step are dropped on open, so a resumed run does not duplicate them.
    """

    FIELDS = ("step", "key", "value")

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            rows = [r for r in self.read(self.path) if int(r["step"]) <= resume_step]
            with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self.FIELDS)
                w.writeheader()
                w.writerows(rows)
        elif resume_step is None or not self.path.exists():
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.FIELDS).writeheader()

    def log(self, step: int, values: dict[str, float]) -> None:
        with open(self.path, "a", newline="") as fh:
            w = csv.writer(fh)
            for key, value in values.items():
                w.writerow([step, key, f"{float(value):.6g}"])

    @staticmethod
    def read(path: str | Path) -> list[dict[str, str]]:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))


def run_dir(root: str | Path, *parts: str) -> Path:
    """``root/part/part...``, created."""
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_hash(cfg: Config) -> str:
    """A short stable hash of a Config (names run folders): its `Config.identity` (fields added
    later that the run never reads left out, `paperlib.config.ADDED_LATER`) without the
    progress flag."""
    d = cfg.identity()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("progress",)}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def run_dir_for(cfg: Config, root: str | Path | None = None) -> Path:
    """``runs/<experiment>/<profile>/<objective>_a<alpha>_b<beta>_s<seed>_<hash>``."""
    root = Path(root) if root is not None else runtime.work_dir() / "runs"
    o = cfg.objective
    name = f"{o.name}_a{o.alpha:g}_b{o.beta:g}_s{cfg.train.seed}_{config_hash(cfg)}"
    return root / cfg.experiment / cfg.profile / name


# ----------------------------------------------------------------------------------------------
# one trainer per run folder
#
# Two processes that train the same run folder (a notebook beside a cluster job, two notebooks
# whose plans share a run) would interleave their checkpoints and history rows. `fit` holds the
# folder's lock while it trains. The lock is an OS file lock (``filelock``: flock on Unix), so
# the kernel drops it when its holder dies, however it dies; a record beside it says who holds
# it, and a record found by the next holder is the trace of a killed one.

#: environment variable: how many seconds `run_lock` waits for another trainer of the same run
#: folder. Unset or empty: as long as it takes (the run then resumes from the other's
#: checkpoints); 0: refuse at once.
LOCK_WAIT_ENV = "PAPERLIB_LOCK_WAIT"
#: the lock file and its holder record, in the run folder
LOCK_FILE = "train.lock"
HOLDER_FILE = "train.lock.json"


class RunLocked(RuntimeError):
    """Another process trains the same run folder, and this one was told not to wait (longer)."""


def lock_wait() -> float:
    """Seconds to wait for a run folder's lock, from ``$PAPERLIB_LOCK_WAIT`` (inf when unset).

    Raises
    ------
    ValueError
        For a value that is not a number >= 0, naming the variable and what it accepts.
    """
    text = os.environ.get("PAPERLIB_LOCK_WAIT", "").strip()  # LOCK_WAIT_ENV
    if not text:
        return math.inf
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ValueError(
            f"{LOCK_WAIT_ENV}={text!r} is not accepted; use a number of seconds >= 0 (0 refuses "
            "at once), or leave it unset to wait as long as the other run trains"
        )
    return seconds


def _holder(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _who(record: dict[str, Any] | None) -> str:
    if record is None:
        return "another process (it has not written its pid yet)"
    return (
        f"pid {record.get('pid', '?')} on host {record.get('host', '?')} "
        f"since {record.get('since', '?')}"
    )


def _say(line: str) -> None:
    # the progress prefix: run_all.sh echoes the line to the terminal, not only to the log
    print(f"{PREFIX} {line}", flush=True)


@contextmanager
def run_lock(run_dir: str | Path, wait: float | None = None) -> Iterator[Path]:
    """Hold `run_dir`'s lock for the duration of the block: one trainer per run folder.

    - Free: taken at once, and the holder record (pid, host, start time, command) is written
      to ``train.lock.json`` beside the lock.
    - Held by another process: one line says who holds it, then the call waits up to `wait`
      seconds (default ``$PAPERLIB_LOCK_WAIT``, unset: without limit) and takes it once the
      other run has finished; the caller then resumes from that run's checkpoints.
    - Left by a killed process: the OS released its lock with the process, so the lock is
      taken at once; its record is still there, and one line says whose lock is taken over.

    Raises
    ------
    RunLocked
        When the lock is still held after `wait` seconds (at once for ``wait=0``); the message
        names the holder and the fix.
    """
    from filelock import FileLock, Timeout

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    wait = lock_wait() if wait is None else float(wait)
    lock, record = FileLock(str(folder / LOCK_FILE)), folder / HOLDER_FILE
    try:
        lock.acquire(timeout=0)
    except Timeout:
        held = _holder(record)
        holder = _who(held)
        stop = f"`kill {held['pid']}` on {held.get('host', '?')}" if held else "stop it"
        fix = (
            "start this run again once that one has finished (it resumes from the "
            f"checkpoints), or stop that one ({stop})"
        )
        mine = held is not None and held.get("pid") == os.getpid()
        if mine and held.get("host") == socket.gethostname():
            raise RunLocked(
                f"run folder {folder} is already being trained by this process (pid "
                f"{os.getpid()}); train each run folder once at a time"
            ) from None
        if wait == 0:
            raise RunLocked(
                f"run folder {folder} is being trained by {holder}; {fix}; unset "
                f"{LOCK_WAIT_ENV} to wait for it instead"
            ) from None
        limit = "until it finishes" if math.isinf(wait) else f"up to {wait:g} s"
        _say(f"waiting: run folder {folder} is being trained by {holder}; waiting {limit}")
        try:
            lock.acquire(timeout=-1 if math.isinf(wait) else wait)
        except Timeout:
            raise RunLocked(
                f"run folder {folder} is still being trained by {_who(_holder(record))} after "
                f"{wait:g} s ({LOCK_WAIT_ENV}={wait:g}); {fix}"
            ) from None
    try:
        left = _holder(record)
        if left is not None:  # its holder died without releasing: the OS released the lock
            _say(f"taking over run folder {folder}: its lock was left by {_who(left)}, "
                 "which no longer holds it")  # fmt: skip
        write_json(
            record,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(sys.argv)[:300],
            },
        )
        yield folder
    finally:
        record.unlink(missing_ok=True)  # before the release: a record found later means a kill
        lock.release()

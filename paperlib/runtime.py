"""Seeding, device choice and the working folder."""

from __future__ import annotations

import contextlib
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
WORKDIR_ENV = "PAPERLIB_WORKDIR"  # read by name in work_dir(), for the secrets scan


def has_amx() -> bool:
    """Whether this CPU has AMX bf16 tiles (``amx_bf16`` in /proc/cpuinfo), where bf16
    autocast pays; False where the file is missing (macOS, Windows)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@contextlib.contextmanager
def autocast(device: torch.device, precision: str):
    """The context of a forward pass at `precision` ("fp32": none; "bf16": torch.autocast).

    Where the device has no bf16 kernel for a layer (oneDNN's bf16 LSTM needs AVX-512 bf16 or
    AMX), the error says so and names the setting that avoids it.
    """
    if precision == "fp32":
        yield
        return
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    except RuntimeError as e:
        if "primitive" not in str(e):
            raise
        first = str(e).splitlines()[0]
        raise RuntimeError(
            f"train.precision='bf16': this {device.type} has no bf16 kernel for a layer of the "
            f"model ({first}); on a CPU bf16 needs AVX-512 bf16 or AMX (amx_bf16 in "
            "/proc/cpuinfo). Use train.precision='fp32'."
        ) from e


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


# ----------------------------------------------------------------------------------------------
# CPU threads: paperlib processes on one machine never oversubscribe the cores.
#
# Two processes that each run torch with every core slow each other down many times over
# (OpenMP threads spin while they wait). Every `fit` claims its threads in a small registry of
# files, one per live process, in the temporary folder; a run that starts while others hold the
# cores takes what is left (at least one thread) and says so in one line, with the fix.

_CLAIMS = Path(os.environ.get("TMPDIR", "/tmp")) / f"paperlib-threads-{os.getuid()}"


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def other_claims() -> dict[int, int]:
    """Threads claimed by other live paperlib processes: ``{pid: threads}``.

    Files of processes that have ended are removed on the way.
    """
    claims: dict[int, int] = {}
    if not _CLAIMS.is_dir():
        return claims
    for f in _CLAIMS.glob("*.threads"):
        try:
            pid, threads = int(f.stem), int(f.read_text().strip() or 0)
        except (ValueError, OSError):
            continue
        if pid == os.getpid():
            continue
        if _alive(pid):
            claims[pid] = threads
        else:
            f.unlink(missing_ok=True)
    return claims


def kernel_threads(parallel: int) -> tuple[int, str | None]:
    """Threads for each of `parallel` notebook kernels started now: the cores that neither other
    paperlib runs (their claims) nor other programs (the load average) hold, shared out, at
    least 1. Returns (threads, a one-line note when busy cores lowered them, else None).

    When in doubt this errs low: one thread too few costs up to 2x, one too many on a busy core
    16x (00's smoke notebook ran in 403 s beside one busy process at 2 threads, 24 s at 1).
    """
    cores = cpu_cores()
    busy = min(cores - 1, max(sum(other_claims().values()), round(_load_average())))
    threads = max(1, (cores - busy) // max(parallel, 1))
    idle = max(1, cores // max(parallel, 1))
    if threads >= idle:
        return idle, None
    return threads, (
        f"paperlib: the machine is busy (load average {_load_average():.1f} on {cores} cores); "
        f"each notebook runs with {threads} thread(s) instead of {idle} (set OMP_NUM_THREADS to "
        "choose)."
    )


class ThreadClaim:
    """Context manager: set torch's CPU threads for a training run and register the claim.

    Parameters
    ----------
    requested : threads asked for; 0 chooses: ``$OMP_NUM_THREADS`` when the user set it, else
        the cores left by other live paperlib runs (at least 1).

    Attributes
    ----------
    threads : what this process runs with.
    warning : the one-line warning issued (None when the cores were not oversubscribed).
    """

    _last_warning: str | None = None

    def __init__(self, requested: int = 0):
        self.requested = requested
        self.threads = 0
        self.warning: str | None = None
        self._file = _CLAIMS / f"{os.getpid()}.threads"

    def __enter__(self) -> ThreadClaim:
        import warnings

        cores, others = cpu_cores(), other_claims()
        taken = sum(others.values())
        # processes outside this registry (an older paperlib, any other program) show up in the
        # load average only; this process itself counts for about one
        busy = max(taken, round(_load_average() - 1.0))
        env = os.environ.get("OMP_NUM_THREADS", "")
        if self.requested > 0:
            self.threads = self.requested
        elif env.isdigit() and int(env) > 0:
            self.threads = int(env)
        else:
            self.threads = max(1, cores - busy)
        if others and taken + self.threads > cores:
            pids = ", ".join(str(p) for p in sorted(others))
            self.warning = (
                f"paperlib: {len(others)} other run(s) (pid {pids}) hold {taken} thread(s) of "
                f"{cores} cores; this run uses {self.threads}, so the cores are oversubscribed "
                "and both slow down: give each run OMP_NUM_THREADS=1 (or cores/runs), or use "
                "./run_all.sh --jobs 1."
            )
        elif self.requested == 0 and not env and self.threads < cores:
            held = (
                f"{len(others)} other paperlib run(s) (pid {', '.join(map(str, sorted(others)))})"
                f" hold {taken} of {cores} cores"
                if taken >= busy
                else f"the machine is busy (load average {_load_average():.1f} on {cores} cores)"
            )
            self.warning = f"paperlib: {held}; this run takes the {self.threads} left."
        if self.warning and self.warning != ThreadClaim._last_warning:
            # once per situation: a notebook that trains nine runs says it once, not nine times
            warnings.warn(self.warning, RuntimeWarning, stacklevel=2)
        ThreadClaim._last_warning = self.warning
        torch.set_num_threads(self.threads)
        try:
            _CLAIMS.mkdir(parents=True, exist_ok=True)
            self._file.write_text(f"{self.threads}\n")
        except OSError:  # a read-only temporary folder only loses the bookkeeping
            pass
        return self

    def __exit__(self, *exc) -> None:
        self._file.unlink(missing_ok=True)

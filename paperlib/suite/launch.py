"""Train the notebooks' runs as cluster jobs with submitit: ``python -m paperlib.suite.launch``.

The notebooks train their runs one after another inside a kernel. This launcher lists exactly
the Configs that the notebooks of a profile will train (``paperlib.suite.plan``), skips the run folders
that are already complete, and submits the rest as a SLURM job array (or as local processes)
through submitit, one run per job. Each job loads the data of its Config and calls
``experiment.train_run``, which writes the same hash-named run folder that the notebook would. When
the jobs have finished, ``./run_all.sh`` runs unchanged: every run folder is complete, so the
notebooks only evaluate::

    python -m paperlib.suite.launch --profile paper --dry-run              # the listing, GPU-hours
    python -m paperlib.suite.launch --profile paper --launcher slurm --cluster-config cluster.yaml
    ./run_all.sh --profile paper                                      # evaluates only

or both steps at once: ``./run_all.sh --profile paper --launcher slurm --cluster-config FILE``.

- **Shared storage.** Jobs write to ``runtime.work_dir() / "runs"`` of the submitting process,
  and load data with the same working folder (``$PAPERLIB_WORKDIR``) and from the notebooks'
  folder (so a relative ``data_dir`` means what it means in the notebook). Point
  ``PAPERLIB_WORKDIR`` at a filesystem that the compute nodes share.
- **Preemption.** A job is checkpointable: on SLURM's preemption or time-limit signal submitit
  calls `TrainJob.checkpoint`, which requeues the same job; it resumes from the newest
  checkpoint in its run folder (``train.checkpoint_every`` steps apart, written atomically).
- **Failures.** A job that fails (an exception, a kill, a node failure) is reported with its log
  path, then resubmitted once; it too resumes from its checkpoints. A second failure is
  reported and the launcher exits with status 1.
- **Optional.** submitit is imported only when jobs are submitted:
  ``pip install "paperlib[cluster]"``. ``--dry-run`` needs nothing beyond paperlib.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlib import records, runtime
from paperlib.config import PROFILES, Config
from paperlib.studies import experiment
from paperlib.suite import plan
from paperlib.suite.notebooks import NOTEBOOK_DIR
from paperlib.suite.params import ParameterError, notebook_names

#: ASSUMPTION, not a measurement: milliseconds per training step of a paper-profile model
#: (DSAE: batch 64 x 128 frames x 80 mels, hidden 256; PixelCNN-VAE: batch 128 x 28 x 28, 8 gated
#: layers) on one data-centre GPU. No GPU was available to this project: benchmarks/README.md
#: reports CPU times only (quick-profile models, one thread: DSAE 100-108 ms, PixelCNN-VAE
#: 172-182 ms per step). 30 ms is an order-of-magnitude guess for models this small, whose step
#: is a few hundred kernel launches (cuDNN LSTMs / convolutions, 2 critic updates, Adam). Replace
#: it with a measured figure: ``--gpu-step-ms``.
ASSUMED_GPU_STEP_MS = 30.0

LAUNCHERS = ("slurm", "local")


# ----------------------------------------------------------------------------------------------
# settings: defaults < YAML file < command-line flags


@dataclass
class ClusterSettings:
    """Resources of each job and of the array (``cluster.yaml.example`` documents each key).

    ``None`` means "the launcher's default" (see `resolved`).
    """

    partition: str | None = None  # SLURM partition (sbatch --partition)
    gpus_per_job: int | None = None  # slurm: 1; local: 1 when CUDA is available, else 0
    cpus_per_task: int | None = None  # slurm: 4; local: not used
    mem_gb: float | None = None  # slurm: the partition's default
    time_min: int | None = None  # per job (sbatch --time); default 240
    array_parallelism: int | None = None  # jobs running at once; slurm 32, local: see resolved
    max_timeouts: int | None = None  # requeues after reaching time_min; default 10
    threads: int | None = None  # torch CPU threads per job; slurm: cpus_per_task; local: share
    log_dir: str | None = None  # default: <work dir>/runs/_jobs
    setup: list[str] = field(default_factory=list)  # shell lines run before each job
    slurm_additional: dict[str, Any] = field(default_factory=dict)  # extra sbatch options

    @classmethod
    def from_yaml(cls, path: str | Path) -> ClusterSettings:
        """Read a YAML mapping of the fields above; an unknown key or wrong type is an error."""
        import yaml

        path = Path(path)
        if not path.exists():
            raise ParameterError(f"--cluster-config {path}: file not found")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ParameterError(
                f"{path}: expected a mapping of settings, got {type(data).__name__}"
            )
        return cls().updated(data, where=str(path))

    def updated(self, values: Mapping[str, Any], where: str = "settings") -> ClusterSettings:
        """A copy with `values` applied (``None`` values are ignored), each checked by type."""
        kinds = {f.name: f for f in dataclasses.fields(self)}
        out = dataclasses.replace(self)
        for key, value in values.items():
            if key not in kinds:
                raise ParameterError(
                    f"{where}: unknown cluster setting {key!r}; accepted: {sorted(kinds)}"
                )
            if value is None:
                continue
            _check_setting(key, value, where)
            setattr(out, key, value)
        return out

    def resolved(self, launcher: str) -> ClusterSettings:
        """Defaults filled in for `launcher` ("slurm" or "local")."""
        s = dataclasses.replace(self)
        cores = os.cpu_count() or 1
        if launcher == "slurm":
            s.gpus_per_job = 1 if s.gpus_per_job is None else s.gpus_per_job
            s.cpus_per_task = s.cpus_per_task or 4
            s.array_parallelism = s.array_parallelism or 32
            # torch would otherwise start one thread per core of the whole node
            s.threads = s.threads or s.cpus_per_task
        else:
            if s.gpus_per_job is None:
                import torch

                s.gpus_per_job = 1 if torch.cuda.is_available() else 0
            # local jobs share this machine: one per core on CPU, one at a time on a GPU
            s.array_parallelism = s.array_parallelism or (1 if s.gpus_per_job else cores)
            s.threads = s.threads or max(1, cores // s.array_parallelism)
        s.time_min = s.time_min or 240
        s.max_timeouts = 10 if s.max_timeouts is None else s.max_timeouts
        s.log_dir = s.log_dir or str(runtime.work_dir() / "runs" / "_jobs")
        return s


_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "partition": (str,),
    "gpus_per_job": (int,),
    "cpus_per_task": (int,),
    "mem_gb": (int, float),
    "time_min": (int,),
    "array_parallelism": (int,),
    "max_timeouts": (int,),
    "threads": (int,),
    "log_dir": (str,),
    "setup": (list,),
    "slurm_additional": (dict,),
}


def _check_setting(key: str, value: Any, where: str) -> None:
    types = _SETTING_TYPES[key]
    ok = isinstance(value, types) and not isinstance(value, bool)
    if ok and key == "setup":
        ok = all(isinstance(v, str) for v in value)
    if ok and isinstance(value, (int, float)):
        ok = value >= 0 if key in ("gpus_per_job", "max_timeouts") else value > 0
    if not ok:
        accepted = {
            "partition": "a string",
            "log_dir": "a string (a folder)",
            "setup": "a list of shell lines (strings)",
            "slurm_additional": "a mapping of sbatch options, e.g. {account: myproj}",
            "gpus_per_job": "an int >= 0",
            "max_timeouts": "an int >= 0",
            "mem_gb": "a number > 0",
        }.get(key, "an int > 0")
        raise ParameterError(f"{where}: cluster setting {key!r} = {value!r}; expected {accepted}")


# ----------------------------------------------------------------------------------------------
# the job


@dataclass
class TrainJob:
    """One run as a submitit job: load the Config's data, then ``experiment.train_run``.

    Picklable (plain fields). ``checkpoint`` makes it requeueable: the state lives in the run
    folder, so the requeued job is the same job and `experiment.train_run` resumes from the newest
    checkpoint there.
    """

    config: dict[str, Any]  # Config.to_dict()
    run_dir: str  # the folder the launcher planned; the job checks that it computes the same
    run_root: str
    work_dir: str  # $PAPERLIB_WORKDIR of the submitter: data cache and runs
    cwd: str = str(NOTEBOOK_DIR)  # the notebooks' folder: a relative data_dir means the same
    threads: int | None = None

    def __call__(self) -> dict[str, Any]:
        with _job_context(self.work_dir, self.cwd, self.threads):
            # the progress bar is left out of the run's hash; a job logs start and end instead
            cfg = Config.from_dict(self.config).replace(train__progress=False)
            run_dir = records.run_dir_for(cfg, self.run_root)
            if run_dir != Path(self.run_dir):
                raise RuntimeError(
                    f"this job computes the run folder {run_dir}, the launcher planned "
                    f"{self.run_dir}: the paperlib on this node differs from the submitter's"
                )
            start = plan.checkpoint_step(run_dir)
            info = {"run_dir": self.run_dir, "resumed_from": start, "host": socket.gethostname()}
            if start >= cfg.train.steps:
                return {**info, "steps": start, "train_seconds": 0.0, "device": "none"}
            _write_job_record(run_dir, start)
            print(f"train {run_dir} from step {start} of {cfg.train.steps}", flush=True)
            from paperlib.data import load_data

            bundle = load_data(cfg.data)
            model, _, history = experiment.train_run(cfg, bundle, self.run_root)
            device = str(next(model.parameters()).device)
            print(f"done  {run_dir}: {history.steps} steps on {device}", flush=True)
            return {
                **info,
                "steps": history.steps,
                "train_seconds": history.train_seconds,
                "device": device,
            }

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption or time-out: requeue this same job.

        The newest checkpoint in the run folder is at most ``train.checkpoint_every`` steps old;
        the requeued job resumes from it.
        """
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


@contextlib.contextmanager
def _job_context(work_dir: str, cwd: str, threads: int | None) -> Iterator[None]:
    """The submitter's working folder and the notebooks' cwd, restored afterwards.

    Restoring matters for submitit's in-process DebugExecutor (tests); a job process exits.
    """
    import torch

    old_env, old_cwd = dict(os.environ), os.getcwd()
    old_threads = torch.get_num_threads()
    os.environ[runtime.WORKDIR_ENV] = work_dir
    os.chdir(cwd)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        torch.set_num_threads(old_threads)
        if runtime.WORKDIR_ENV in old_env:
            os.environ[runtime.WORKDIR_ENV] = old_env[runtime.WORKDIR_ENV]
        else:
            del os.environ[runtime.WORKDIR_ENV]


def _write_job_record(run_dir: Path, start: int) -> None:
    """``run_dir/job.json``: which job trains this run folder (job id, host, pid, start step)."""
    job_id = None
    with contextlib.suppress(Exception):  # outside a submitit job there is no environment
        import submitit

        job_id = submitit.JobEnvironment().job_id
    records.write_json(
        run_dir / "job.json",
        {
            "job_id": job_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start_step": start,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


# ----------------------------------------------------------------------------------------------
# submission


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ImportError(
            "submitting jobs needs submitit, which is not installed: "
            'pip install "paperlib[cluster]" (or pip install submitit)'
        ) from None
    return submitit


def make_executor(launcher: str, settings: ClusterSettings, name: str = "paperlib"):
    """A submitit executor for `launcher` ("slurm" or "local") with resolved `settings`."""
    if launcher not in LAUNCHERS:
        raise ParameterError(f"--launcher {launcher!r} is not accepted; choose one of {LAUNCHERS}")
    submitit = _submitit()
    if launcher == "slurm" and shutil.which("sbatch") is None:
        raise ParameterError(
            "--launcher slurm: sbatch was not found; run this on a SLURM login node, "
            "or use --launcher local to train on this machine"
        )
    s = settings
    executor = submitit.AutoExecutor(
        folder=str(Path(s.log_dir) / "%j"),
        cluster=launcher,
        # requeues after reaching the time limit (preemptions do not count)
        slurm_max_num_timeout=s.max_timeouts,
        local_max_num_timeout=s.max_timeouts,
    )
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": s.time_min,
        "gpus_per_node": s.gpus_per_job,
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if launcher == "slurm":
        params.update(
            cpus_per_task=s.cpus_per_task,
            slurm_array_parallelism=s.array_parallelism,
            slurm_setup=list(s.setup),
            slurm_additional_parameters=dict(s.slurm_additional),
        )
        if s.partition:
            params["slurm_partition"] = s.partition
        if s.mem_gb:
            params["mem_gb"] = s.mem_gb
    elif s.setup:
        params["local_setup"] = list(s.setup)
    executor.update_parameters(**params)
    return executor


@dataclass
class Failure:
    """A job that did not finish its run: where to look and why."""

    run: plan.Run
    job_id: str
    log: Path
    error: str


@dataclass
class LaunchReport:
    """What `train_runs` did: finished runs (with the job's result), failures and retries."""

    skipped: list[plan.Run] = field(default_factory=list)
    done: list[tuple[plan.Run, dict[str, Any]]] = field(default_factory=list)
    resubmitted: list[Failure] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


def train_runs(
    runs: list[plan.Run],
    executor,
    *,
    run_root: str | Path | None = None,
    threads: int | None = None,
    parallelism: int | None = None,
    retries: int = 1,
    poll_s: float = 1.0,
    log: Callable[[str], None] = print,
) -> LaunchReport:
    """Submit every incomplete run as a job, wait, and resubmit failed ones `retries` times.

    Parameters
    ----------
    runs : from ``plan.runs``; complete run folders are skipped.
    executor : a submitit executor (``make_executor``, or submitit's LocalExecutor /
        DebugExecutor in tests).
    run_root : the runs' root folder (default ``runtime.work_dir() / "runs"``).
    threads : torch CPU threads in each job (None: torch's default).
    parallelism : local executors only: at most this many jobs at once (a rolling window,
        since submitit's local executor starts every submitted job immediately). None submits
        all at once as one array (SLURM limits the array with its own parallelism setting).
    retries : resubmissions of a failed run (the issue asks for one).
    poll_s : seconds between checks of the jobs' states.
    log : where progress lines go.
    """
    root = Path(run_root) if run_root is not None else runtime.work_dir() / "runs"
    report = LaunchReport(skipped=[r for r in runs if r.complete])
    todo = [r for r in runs if not r.complete]
    log(f"{len(runs)} runs planned, {len(report.skipped)} complete, {len(todo)} to train")
    for attempt in range(retries + 1):
        if not todo:
            break
        failures = []
        for run, job, outcome in _execute(executor, todo, root, threads, parallelism, poll_s, log):
            if isinstance(outcome, BaseException):
                failures.append(
                    Failure(run, str(job.job_id), Path(job.paths.stderr), _one_line(outcome))
                )
                f = failures[-1]
                log(f"FAILED {_short(run)} (job {f.job_id}): {f.error}\n  log: {f.log}")
            else:
                report.done.append((run, outcome))
                log(
                    f"done   {_short(run)} (job {job.job_id}): {outcome['steps']} steps, "
                    f"from step {outcome['resumed_from']}, {outcome['train_seconds']:.0f} s "
                    f"on {outcome['device']}"
                )
        if failures and attempt < retries:
            report.resubmitted += failures
            log(
                f"resubmitting {len(failures)} failed run(s) once; "
                "each resumes from the checkpoints in its run folder"
            )
        else:
            report.failed = failures
        todo = [f.run for f in failures]
    return report


def _execute(executor, runs, root, threads, parallelism, poll_s, log):
    """Yield ``(run, job, result or exception)`` as jobs finish."""
    work = str(runtime.work_dir())

    def job_of(run: plan.Run) -> TrainJob:
        return TrainJob(run.cfg.to_dict(), str(run.run_dir), str(root), work, threads=threads)

    pending = list(runs)
    active: list[tuple[plan.Run, Any]] = []
    if parallelism is None:  # one job array
        from submitit.helpers import clean_env

        # a launcher that runs inside a SLURM job must not pass that job's SLURM_* variables on
        with clean_env(), executor.batch():
            active = [(r, executor.submit(job_of(r))) for r in pending]
        pending = []
        log(f"submitted {len(active)} jobs as one array; logs in {_log_folder(active)}")
    try:
        while pending or active:
            while pending and len(active) < parallelism:
                run = pending.pop(0)
                active.append((run, executor.submit(job_of(run))))
                log(f"start  {_short(run)} (job {active[-1][1].job_id})")
            finished = [(r, j) for r, j in active if j.done()]
            if not finished:
                time.sleep(poll_s)
                continue
            for run, job in finished:
                active.remove((run, job))
                try:
                    yield run, job, job.result()
                except Exception as err:  # every failure is reported (and retried once)
                    yield run, job, err
    except KeyboardInterrupt:
        if parallelism is not None:  # local processes: stop them; their checkpoints remain
            for _, job in active:
                job.cancel(check=False)
            log(f"interrupted: stopped {len(active)} local job(s)")
        else:
            arrays = sorted({str(j.job_id).split("_")[0] for _, j in active})
            log(
                f"interrupted: {len(active)} job(s) are still queued or running; "
                f"cancel them before launching again: scancel {' '.join(arrays)}"
            )
        raise


def _log_folder(active) -> str:
    return str(Path(active[0][1].paths.stderr).parent.parent) if active else "-"


_RULE = "-" * 22  # submitit frames a failed job's traceback with this line


def _one_line(err: BaseException) -> str:
    """The informative line of a job's error: the exception that ended a failed job (the last
    line of the traceback that submitit frames), or "has not produced any output" for a job
    that was killed."""
    text = str(err).strip()
    if "failed during processing with trace:" in text:  # FailedJobError
        text = text.split(f"\n{_RULE}\n")[1]  # "...trace:\n----\n<traceback>\n----\nlogs"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    if len(lines) > 1 and lines[1].startswith("has not produced any output"):
        return f"{type(err).__name__}: {lines[0]} {lines[1]}"  # UncompletedJobError
    return f"{type(err).__name__}: {lines[-1]}"


def _short(run: plan.Run) -> str:
    return "/".join(run.run_dir.parts[-3:])


# ----------------------------------------------------------------------------------------------
# listing


def listing(runs: list[plan.Run], run_root: str | Path) -> str:
    """A table: notebook(s), experiment, objective, alpha, beta, seed, steps, state, run folder."""
    root = Path(run_root)
    head = (
        "nb",
        "experiment",
        "objective",
        "alpha",
        "beta",
        "seed",
        "steps",
        "state",
        "run folder",
    )
    rows = [head]
    for r in runs:
        o, done = r.cfg.objective, r.steps_done
        state = "complete" if r.complete else ("new" if done == 0 else f"at {done}")
        state = f"{state} (pending)" if r.pending else state
        rel = r.run_dir.relative_to(root) if r.run_dir.is_relative_to(root) else r.run_dir
        rows.append(
            (
                ",".join(nb.split("_", 1)[0] for nb in r.notebooks),
                r.cfg.experiment,
                o.name,
                f"{o.alpha:g}",
                f"{o.beta:g}",
                str(r.cfg.train.seed),
                str(r.cfg.train.steps),
                state,
                str(rel),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def totals(runs: list[plan.Run], gpu_step_ms: float, measured: bool) -> str:
    """Counts per notebook, steps left and the GPU-hours they take at `gpu_step_ms`."""
    per_nb: dict[str, int] = {}
    for r in runs:
        for nb in r.notebooks:
            per_nb[nb] = per_nb.get(nb, 0) + 1
    left = [r for r in runs if not r.complete]
    steps_left = sum(r.cfg.train.steps - r.steps_done for r in left)
    steps_all = sum(r.cfg.train.steps for r in runs)
    hours = steps_left * gpu_step_ms / 3.6e6
    source = (
        "given by --gpu-step-ms"
        if measured
        else "ASSUMED (launch.ASSUMED_GPU_STEP_MS; no GPU step time was measured in this "
        "project: pass --gpu-step-ms with a measured figure)"
    )
    by_nb = ", ".join(f"{nb} {n}" for nb, n in per_nb.items())
    return "\n".join(
        [
            f"runs: {len(runs)} ({by_nb}; a run shared by notebooks is trained once)",
            f"complete: {len(runs) - len(left)}; to train: {len(left)}",
            f"steps: {steps_all:,} in all, {steps_left:,} to train",
            f"estimated GPU time: {hours:.1f} GPU-hours at {gpu_step_ms:g} ms per step, {source}; "
            "training only (the notebooks' evaluation runs afterwards, outside the jobs)",
        ]
    )


# ----------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m paperlib.suite.launch",
        description="Train the runs of the notebooks as submitit jobs (SLURM array or local).",
    )
    p.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)} (default quick)")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="plan only this notebook (repeatable); name or number, e.g. 01",
    )
    p.add_argument(
        "-p",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="override a parameter of every selected notebook (JSON value), as in run_all.sh",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and GPU-hours; submit nothing"
    )
    p.add_argument(
        "--gpu-step-ms",
        type=float,
        default=None,
        help=f"GPU milliseconds per training step for the estimate (default: an assumed "
        f"{ASSUMED_GPU_STEP_MS:g}, not measured)",
    )
    p.add_argument("--launcher", choices=LAUNCHERS, help="where jobs run: slurm or local")
    p.add_argument("--cluster-config", metavar="YAML", help="settings file (cluster.yaml.example)")
    c = p.add_argument_group("cluster settings (override the YAML file)")
    for name, kind, text in (
        ("partition", str, "SLURM partition"),
        ("gpus-per-job", int, "GPUs per job (slurm default 1)"),
        ("cpus-per-task", int, "CPUs per job (slurm default 4)"),
        ("mem-gb", float, "memory per job in GB"),
        (
            "time-min",
            int,
            "time limit per job in minutes (default 240); a checkpointed job requeues",
        ),
        ("array-parallelism", int, "jobs running at once (slurm default 32)"),
        ("threads", int, "torch CPU threads per job"),
        ("log-dir", str, "submitit logs (default <work dir>/runs/_jobs)"),
    ):
        c.add_argument(f"--{name}", type=kind, default=None, help=text)
    # ./run_all.sh passes its own options here too; they concern the notebooks, not the jobs
    p.add_argument("--jobs", type=int, help=argparse.SUPPRESS)
    p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    return p


@dataclass
class _Launch:
    """What one call of the launcher trains, checked before anything is submitted."""

    chosen: list[str]  # the planned notebooks among --only
    unplanned: list[str]  # selected notebooks that train nothing here
    run_root: Path
    runs: list[plan.Run]
    pending: list[str] | None  # why 01/02 wait for notebook 03 (None in a dry run)
    settings: ClusterSettings


def _checked(args: argparse.Namespace) -> _Launch:
    """The runs and cluster settings of `args`; ParameterError or ValueError for a refusal."""
    from paperlib.suite.runner import parse_value, resolve_names, results_folder

    if args.profile not in PROFILES:
        raise ParameterError(
            f"--profile {args.profile!r} is not accepted; choose one of {list(PROFILES)}"
        )
    if args.gpu_step_ms is not None and args.gpu_step_ms <= 0:
        raise ParameterError(f"--gpu-step-ms must be > 0, got {args.gpu_step_ms}")
    if not args.dry_run and args.launcher is None:
        raise ParameterError("choose --launcher slurm or --launcher local, or pass --dry-run")
    names = resolve_names(args.only)
    chosen = [n for n in names if n in plan.PLANNERS]
    unplanned = [n for n in names if n not in plan.PLANNERS and n in notebook_names()]
    extra = {k: parse_value(v) for k, v in args.p}
    run_root = runtime.work_dir() / "runs"
    # a dry run counts 01/02 with fallback weights while 03's selection is missing; a real
    # launch leaves them out until it exists
    pending: list[str] | None = None if args.dry_run else []
    # 01/02 read notebook 03's selection where the runner will: the profile's results folder
    results = results_folder(args.profile, args.results)
    runs = plan.runs(args.profile, chosen, extra, run_root, pending=pending, results_dir=results)
    settings = ClusterSettings()
    if args.cluster_config:
        settings = ClusterSettings.from_yaml(args.cluster_config)
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(settings)}
    settings = settings.updated({k: v for k, v in flags.items() if v is not None}, "flags")
    return _Launch(chosen, unplanned, run_root, runs, pending, settings)


def _print_plan(profile: str, launch: _Launch) -> None:
    """What will be trained, what waits and what is not planned."""
    if launch.unplanned:
        print(
            "not planned (they train nothing, or train on the machine that runs them): "
            f"{launch.unplanned}"
        )
    print(f"profile {profile}, notebooks {launch.chosen}, runs under {launch.run_root}")
    for reason in launch.pending or []:
        print(f"waiting: {reason}")
    if any(r.pending for r in launch.runs):
        print(
            "note: runs marked 'pending' use the fallback weights until notebook 03 has written "
            "its selection; their run folders will change"
        )


def _print_report(report: LaunchReport, minutes: float) -> int:
    """The launch's counts, and each run that failed twice; the exit status."""
    print(
        f"launch: {len(report.done)} trained, {len(report.skipped)} already complete, "
        f"{len(report.resubmitted)} resubmitted, {len(report.failed)} failed "
        f"({minutes:.1f} min)"
    )
    if report.failed:
        print("failed twice, not resubmitted again (see each log above):", file=sys.stderr)
        for f in report.failed:
            print(f"  {_short(f.run)}: {f.error}\n    log: {f.log}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m paperlib.suite.launch``: check, list (``--dry-run``), or train every run."""
    args = _parser().parse_args(argv)
    try:
        launch = _checked(args)
    except (ParameterError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_plan(args.profile, launch)
    if args.dry_run:
        print(listing(launch.runs, launch.run_root))
        step_ms = args.gpu_step_ms if args.gpu_step_ms is not None else ASSUMED_GPU_STEP_MS
        print(totals(launch.runs, step_ms, measured=args.gpu_step_ms is not None))
        return 0
    try:
        settings = launch.settings.resolved(args.launcher)
        executor = make_executor(args.launcher, settings, name=f"paperlib-{args.profile}")
    except (ParameterError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        report = train_runs(
            launch.runs,
            executor,
            run_root=launch.run_root,
            threads=settings.threads,
            parallelism=settings.array_parallelism if args.launcher == "local" else None,
            poll_s=30.0 if args.launcher == "slurm" else 1.0,
        )
    except KeyboardInterrupt:
        return 130
    return _print_report(report, (time.perf_counter() - t0) / 60)


if __name__ == "__main__":
    sys.exit(main())

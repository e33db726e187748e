"""The cluster launcher: the plan is what the notebooks train, jobs resume, notebooks then skip.

Jobs run through submitit's DebugExecutor (in this process) or LocalExecutor (a subprocess per
job, as on a cluster node). Everything writes into a temporary working folder
($PAPERLIB_WORKDIR), never into the checkout's runs/.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import jupytext
import pytest
import torch

from paperlib import config, records
from paperlib.evaluation import evaluate
from paperlib.studies import experiment, references, selection
from paperlib.suite import launch, plan
from paperlib.suite.notebooks import NOTEBOOK_DIR
from paperlib.suite.params import ParameterError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A private working folder: runs/ and the data cache of this test only."""
    monkeypatch.setenv("PAPERLIB_WORKDIR", str(tmp_path))
    return tmp_path


def _submitit():
    return pytest.importorskip(
        "submitit", reason='submitit is not installed (pip install "paperlib[cluster]")'
    )


# ----------------------------------------------------------------------------------------------
# the plan


def test_plan_expands_the_notebook_parameters():
    p = plan.notebook_params("03_information_plane", "paper")
    per_experiment = len(p["alphas"]) + len(p["alphas"]) * len(p["betas"])  # mi, cmi
    cfgs = plan.configs("03_information_plane", "paper")
    assert len(cfgs) == per_experiment * len(p["seeds"]) * len(p["experiments"])
    assert len({records.config_hash(c) for c in cfgs}) == len(cfgs), "runs are distinct"
    # notebook 01: objectives x seeds, with the weights that run_experiment would use
    p01 = {"objectives": ["elbo", "cmi"], "steps": 7, "alpha": 1.5, "beta": 3.0}
    cfgs = plan.configs("01_speech_dsae", "smoke", p01)
    assert [(c.objective.name, c.train.steps) for c in cfgs] == [("elbo", 7), ("cmi", 7)]
    assert (cfgs[1].objective.alpha, cfgs[1].objective.beta) == (1.5, 3.0)
    assert cfgs[0].data.data_dir == "data", "the preset's folder (inside the working folder)"


def test_plan_takes_01_and_02_weights_from_notebook_03s_selection(tmp_path):
    with pytest.raises(plan.SelectionPending, match="--only 03"):
        plan.configs("01_speech_dsae", "smoke", results_dir=tmp_path)
    pending = plan.configs("01_speech_dsae", "smoke", results_dir=tmp_path, pending_ok=True)
    w = selection.weights_for("speech", "cmi")  # the fallback, for counts only
    assert (pending[-1].objective.alpha, pending[-1].objective.beta) == (w["alpha"], w["beta"])
    _write_smoke_selection(tmp_path)
    cfgs = plan.configs("01_speech_dsae", "smoke", results_dir=tmp_path)
    assert (cfgs[-1].objective.name, cfgs[-1].objective.beta) == ("cmi", 5.0)


def _write_smoke_selection(results_dir, alpha=1.0, beta=5.0):
    """What notebook 03 writes, for the smoke profile, without running it."""
    p = plan.notebook_params("03_information_plane", "smoke")
    cfgs = {n: plan.base_config("03_information_plane", p, n) for n in ("speech", "images")}
    weights = {"mi": {"alpha": alpha, "beta": 0.0}, "cmi": {"alpha": alpha, "beta": beta}}
    path = Path(results_dir) / "03_information_plane" / selection.SELECTION_FILE
    selection.write_selection(path, {n: dict(weights) for n in cfgs}, cfgs, p["seeds"])
    return path


def test_plan_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match="no training plan; planned: .*01_speech_dsae"):
        plan.configs("04_summary", "smoke")
    with pytest.raises(ParameterError, match="unknown parameter 'seed'.*did you mean 'seeds'"):
        plan.configs("01_speech_dsae", "smoke", {"seed": [0]})
    with pytest.raises(ParameterError, match="'alphas' = \\[-1\\] is not accepted"):
        plan.configs("03_information_plane", "smoke", {"alphas": [-1]})


def test_dry_run_lists_runs_and_gpu_hours(workdir, capsys):
    runs = plan.runs("paper")
    steps = sum(r.cfg.train.steps for r in runs)
    assert launch.main(["--profile", "paper", "--dry-run", "--gpu-step-ms", "20"]) == 0
    out = capsys.readouterr().out
    assert f"runs: {len(runs)} (" in out and f"steps: {steps:,} in all" in out
    assert f"{steps * 20 / 3.6e6:.1f} GPU-hours at 20 ms per step, given by --gpu-step-ms" in out
    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("nb "))
    assert lines[header].split()[:7] == [
        *("nb", "experiment", "objective", "alpha", "beta", "seed", "steps"),
    ]
    assert len([ln for ln in lines[header + 1 :] if " new " in ln]) == len(runs)
    assert launch.main(["--profile", "paper", "--dry-run"]) == 0
    assert "ASSUMED" in capsys.readouterr().out, "the default step time says it is an assumption"


def test_launcher_usage_errors(workdir, capsys):
    assert launch.main(["--profile", "smoke"]) == 2
    assert "choose --launcher slurm or --launcher local" in capsys.readouterr().err
    assert launch.main(["--profile", "smoke", "--dry-run", "-p", "objectives", '["nope"]']) == 2
    assert "'objectives'" in capsys.readouterr().err


def test_cluster_settings_from_yaml(tmp_path):
    s = launch.ClusterSettings.from_yaml(ROOT / "cluster.yaml.example")
    assert s.partition == "gpu" and s.gpus_per_job == 1 and s.setup == ["module load cuda"]
    bad = tmp_path / "c.yaml"
    bad.write_text("partion: gpu\n")
    with pytest.raises(ParameterError, match="unknown cluster setting 'partion'; accepted: "):
        launch.ClusterSettings.from_yaml(bad)
    bad.write_text("time_min: soon\n")
    with pytest.raises(ParameterError, match="'time_min' = 'soon'; expected an int > 0"):
        launch.ClusterSettings.from_yaml(bad)
    local = launch.ClusterSettings(array_parallelism=2).resolved("local")
    assert local.threads == max(1, (os.cpu_count() or 1) // 2) and local.time_min == 240


def test_slurm_job_script_carries_the_settings(tmp_path, monkeypatch):
    _submitit()
    monkeypatch.setattr(launch.shutil, "which", lambda name: f"/usr/bin/{name}")  # no SLURM here
    s = launch.ClusterSettings.from_yaml(ROOT / "cluster.yaml.example")
    s = s.updated({"partition": "a100", "log_dir": str(tmp_path)}, "flags").resolved("slurm")
    executor = launch.make_executor("slurm", s, name="paperlib-paper")
    script = executor._executor._make_submission_file_text("python -m job", "uid")
    for line in (
        "--partition=a100",  # the flag overrides the file's "gpu"
        "--gpus-per-node=1",
        "--time=240",
        "--account=my_project",
        "--signal=USR2@90",  # submitit's preemption signal: TrainJob.checkpoint requeues
        "--job-name=paperlib-paper",
        "module load cuda",
    ):
        assert line in script, line
    assert executor._executor.parameters["array_parallelism"] == 32
    assert executor._executor.max_num_timeout == 10


def test_missing_submitit_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(ImportError, match=r'pip install "paperlib\[cluster\]"'):
        launch.make_executor("local", launch.ClusterSettings().resolved("local"))


# ----------------------------------------------------------------------------------------------
# a smoke sweep through the launcher, then the notebooks' own training code trains nothing


def _training_cells(notebook: str, profile: str, trained: list, results: Path) -> None:
    """Execute `notebook`'s code cells in order until the first cell that called train()."""
    ns: dict = {"__name__": "__notebook__"}
    for cell in jupytext.read(NOTEBOOK_DIR / f"{notebook}.py").cells:
        if cell.cell_type != "code":
            continue
        before = len(trained)
        exec(compile(cell.source, f"{notebook}.py", "exec"), ns)
        if "parameters" in cell.metadata.get("tags", []):
            ns["profile"] = profile  # what papermill injects
            if "results_dir" in ns:  # and what the runner passes
                ns["results_dir"] = str(results)
        if len(trained) > before:
            return
    raise AssertionError(f"{notebook} trained nothing")


def test_smoke_sweep_then_the_notebooks_skip_training(workdir, monkeypatch):
    submitit = _submitit()
    results = workdir / "results"
    _write_smoke_selection(results)  # 03's output: 01/02 read their weights from it
    runs = plan.runs("smoke", results_dir=results)
    lines: list[str] = []
    report = launch.train_runs(runs, submitit.DebugExecutor(workdir / "jobs"), log=lines.append)
    assert not report.failed and len(report.done) == len(runs), lines
    assert all(r.complete for r in runs)
    assert all((r.run_dir / "job.json").exists() for r in runs), "each job records itself"

    # the notebooks' cells, with evaluation stubbed out: which runs they train, and how many
    # optimisation steps actually run (fit draws one batch per step)
    from paperlib.training import train as train_mod

    trained, steps = [], []
    real_train, real_batch = experiment.train_run, train_mod.BatchStream.batch

    def recording_train(cfg, bundle, run_root=None):
        trained.append(records.run_dir_for(cfg, run_root))
        return real_train(cfg, bundle, run_root)

    def counting_batch(self, step):
        steps.append(step)
        return real_batch(self, step)

    monkeypatch.setattr(experiment, "train_run", recording_train)
    # notebook 03 sweeps its experiments in worker processes; here in this one, to record them
    real_sweeps = experiment.sweeps
    monkeypatch.setattr(experiment, "sweeps", lambda *a, **kw: real_sweeps(*a, **{**kw, "jobs": 1}))
    monkeypatch.setattr(train_mod.BatchStream, "batch", counting_batch)
    monkeypatch.setattr(experiment, "fit_classifiers", lambda cfg, b: references.Classifiers())
    monkeypatch.setattr(experiment, "evaluate_run", lambda model, cfg, b, c, **kw: ({}, {}))
    # 01/02 train inside experiment.compare_objectives, which then reads the (stubbed) metrics
    monkeypatch.setattr(evaluate, "describe_regime", lambda metrics: "stubbed")
    for nb in plan.planned_notebooks():
        before = len(trained)
        _training_cells(nb, "smoke", trained, results)
        assert set(trained[before:]) == {r.run_dir for r in runs if nb in r.notebooks}, nb
    assert steps == [], "every run folder was complete: no training step ran"

    again = launch.train_runs(runs, submitit.DebugExecutor(workdir / "jobs"), log=lines.append)
    assert len(again.skipped) == len(runs) and not again.done


class _FailingExecutor:
    """Jobs that fail at once, as a job whose dataset is missing does (no subprocess needed)."""

    def __init__(self, folder: Path):
        self.folder, self.submitted = folder, []

    @contextlib.contextmanager
    def batch(self):
        yield

    def submit(self, fn):
        self.submitted.append(fn)
        k = len(self.submitted)
        rule = "-" * 22  # the format of submitit's FailedJobError
        err = RuntimeError(
            f"Job (task=0) failed during processing with trace:\n{rule}\n"
            f"Traceback (most recent call last):\n  ...\nValueError: no TIMIT here\n{rule}\n"
            f"You can check full logs ... or at paths:\n  - {self.folder}/77_{k}_log.err"
        )
        return types.SimpleNamespace(
            job_id=f"77_{k}",
            paths=types.SimpleNamespace(stderr=self.folder / f"77_{k}_log.err"),
            done=lambda: True,
            result=lambda: (_ for _ in ()).throw(err),
        )


def test_a_failing_run_is_reported_with_its_log_and_resubmitted_once(tmp_path):
    _submitit()  # the launcher submits arrays inside submitit's clean_env()
    cfg = config.load("smoke", "toy")
    run = plan.Run(cfg, records.run_dir_for(cfg, tmp_path), ("test",))
    executor, lines = _FailingExecutor(tmp_path), []
    report = launch.train_runs([run], executor, run_root=tmp_path, log=lines.append)
    assert len(executor.submitted) == 2, "submitted, then resubmitted once, not more"
    assert [f.job_id for f in report.resubmitted] == ["77_1"]
    assert [f.job_id for f in report.failed] == ["77_2"] and not report.done
    assert report.failed[0].error == "RuntimeError: ValueError: no TIMIT here"
    text = "\n".join(lines)
    assert f"log: {tmp_path / '77_1_log.err'}" in text and "resubmitting 1 failed run" in text


# ----------------------------------------------------------------------------------------------
# preemption and failure, with real job processes


def _watch(run_dir: Path, events: list, timeout: float = 120.0) -> None:
    """Preempt the job (SIGUSR2, as SLURM does) after its first checkpoint; once it runs again,
    SIGKILL it after a later checkpoint. Job process ids come from the job's job.json."""

    def pid_and_step():
        rec = run_dir / "job.json"
        pid = json.loads(rec.read_text())["pid"] if rec.exists() else None
        return pid, plan.checkpoint_step(run_dir)

    t_end = time.monotonic() + timeout
    first_pid = None
    while time.monotonic() < t_end:
        pid, step = pid_and_step()
        if first_pid is None and pid and step >= 20:
            first_pid = pid
            os.kill(pid, signal.SIGUSR2)
            events.append(("preempted", step))
        elif first_pid is not None and pid not in (None, first_pid) and step >= 100:
            os.kill(pid, signal.SIGKILL)
            events.append(("killed", step))
            return
        time.sleep(0.02)


def test_preempted_and_killed_job_resumes_to_the_same_weights(workdir, monkeypatch):
    submitit = _submitit()
    # submitit waits up to 15 s for the result file of a dead job (slow shared filesystems);
    # local files appear at once
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)
    cfg = config.load(
        "smoke",
        "toy",
        objective__name="cmi",  # model, critic and both optimisers must resume exactly
        objective__alpha=1.0,
        objective__beta=1.0,
        train__steps=300,
        train__checkpoint_every=20,
    )
    root = workdir / "runs"
    run = plan.Run(cfg, records.run_dir_for(cfg, root), ("test",))
    executor = submitit.LocalExecutor(workdir / "jobs" / "%j")
    # a long limit: submitit treats a signal within 10 minutes of a shorter limit as a time-out
    executor.update_parameters(timeout_min=60)
    events: list = []
    watcher = threading.Thread(target=_watch, args=(run.run_dir, events), daemon=True)
    watcher.start()
    lines: list[str] = []
    report = launch.train_runs(
        [run], executor, run_root=root, threads=1, parallelism=1, poll_s=0.05, log=lines.append
    )
    watcher.join(timeout=1)
    assert [e for e, _ in events] == ["preempted", "killed"], (events, lines)
    # the preempted job requeued itself (submitit's checkpoint); the killed one was reported
    # with its log and resubmitted once, and the resubmitted job finished the run
    assert len(report.resubmitted) == 1 and not report.failed, lines
    failure = report.resubmitted[0]
    assert failure.log.exists() and any(str(failure.log) in ln for ln in lines)
    job_log = failure.log.read_text() + failure.log.with_suffix(".out").read_text()
    assert "this job is preempted" in job_log and "Requeued job" in job_log, job_log
    assert "has not produced any output" in failure.error
    (_, result), *_ = report.done
    assert result["resumed_from"] >= events[-1][1] and result["steps"] == 300

    # an uninterrupted run in this process ends with the same weights, bit for bit
    from paperlib.data import load_data

    other = workdir / "uninterrupted"
    experiment.train_run(cfg.replace(train__progress=False), load_data(cfg.data), other)
    a = records.load_checkpoint(run.run_dir / "checkpoints" / "step_0000300.pt")
    b = records.load_checkpoint(records.run_dir_for(cfg, other) / "checkpoints" / "step_0000300.pt")
    for part in ("model", "objective"):
        for key, tensor in a[part].items():
            if torch.is_tensor(tensor):
                assert torch.equal(tensor, b[part][key]), f"{part}.{key} differs"


# ----------------------------------------------------------------------------------------------
# end to end: ./run_all.sh --launcher local, then the notebook evaluates only


@pytest.mark.slow
def test_run_all_with_local_launcher_trains_first_and_notebooks_only_evaluate(tmp_path):
    _submitit()
    env = {**os.environ, "PAPERLIB_WORKDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    common = ["--profile", "smoke", "--only", "01", "-p", "objectives", '["elbo"]']
    common += ["-p", "alpha", "0", "-p", "beta", "0"]  # elbo: no selection needed
    first = subprocess.run(
        [sys.executable, "-m", "paperlib.suite.launch", "--launcher", "local", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 runs planned, 0 complete, 1 to train" in first.stdout
    files = sorted((tmp_path / "runs").rglob("*.pt"))
    stamp = {f: f.stat().st_mtime_ns for f in files}
    assert files and all("speech/smoke/elbo_" in str(f) for f in files)

    results = tmp_path / "results"
    r = subprocess.run(
        [str(ROOT / "run_all.sh"), "--launcher", "local", *common, "--results", str(results)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 runs planned, 1 complete, 0 to train" in r.stdout
    assert (results / "01_speech_dsae" / "metrics.json").exists()
    after = sorted((tmp_path / "runs").rglob("*.pt"))
    assert {f: f.stat().st_mtime_ns for f in after} == stamp, "the notebook trained nothing"

"""One trainer per run folder (issue 22, item 7): `fit` holds the folder's lock while it trains.

Two real processes on one run folder of a tiny config: a holder that trains in a subprocess and
pauses after its first step, and this test process. The second trainer refuses in one line
naming the holder, or waits and then resumes from the holder's checkpoints; the lock of a
killed holder is taken over.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from paperlib import records
from paperlib.config import load
from paperlib.data import make_loaders
from paperlib.models import build_model
from paperlib.training.regularizers import build_objective
from paperlib.training.train import fit

ROOT = Path(__file__).resolve().parent.parent
STEPS = 4  # the holder pauses after step 1 (checkpointed), so 3 are left for whoever resumes

#: the holder: trains the tiny config in `run_dir`, checkpoints step 1, writes `ready`, then
#: waits until `release` exists (or is killed there)
HOLDER = """
import sys, time
from pathlib import Path
from paperlib.config import load
from paperlib.data import make_loaders
from paperlib.models import build_model
from paperlib.training.regularizers import build_objective
from paperlib.training.train import fit

run_dir, ready, release = (Path(a) for a in sys.argv[1:4])
cfg = load("smoke", "toy", train__steps={steps}, train__checkpoint_every=1, train__progress=False)
loaders = make_loaders(cfg.data, seed=cfg.train.seed)
model = build_model(cfg.model, loaders["info"])

def pause(step, **_):
    if step == 1:
        ready.write_text("1")
        while not release.exists():
            time.sleep(0.05)

fit(model, build_objective(cfg.objective, model), loaders, cfg, run_dir, callbacks=[pause])
"""


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _start_holder(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    run_dir, ready, release = tmp_path / "run", tmp_path / "ready", tmp_path / "release"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop(records.LOCK_WAIT_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(steps=STEPS), run_dir, ready, release],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the holder exited before its first step: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the holder did not reach its first step within 120 s")
        time.sleep(0.05)
    return proc, run_dir


def _fit_here(run_dir: Path) -> tuple[int, object]:
    """Train the holder's config in this process; returns (steps trained here, history)."""
    cfg = load("smoke", "toy", train__steps=STEPS, train__checkpoint_every=1, train__progress=False)
    loaders = make_loaders(cfg.data, seed=cfg.train.seed)
    model = build_model(cfg.model, loaders["info"])
    trained = []
    history = fit(
        model,
        build_objective(cfg.objective, model),
        loaders,
        cfg,
        run_dir,
        callbacks=[lambda step, **_: trained.append(step)],
    )
    return len(trained), history


def _said(monkeypatch) -> tuple[list[str], threading.Event]:
    """Collect the lines that `run_lock` prints; the event is set at the first one."""
    lines, said = [], threading.Event()

    def say(line: str) -> None:
        lines.append(line)
        said.set()

    monkeypatch.setattr(records, "_say", say)
    return lines, said


def test_a_second_trainer_refuses_in_one_line_naming_the_holder_or_waits_and_resumes(
    tmp_path, monkeypatch
):
    holder, run_dir = _start_holder(tmp_path)
    try:
        # refuse at once: one line naming who trains the folder and what to do
        monkeypatch.setenv(records.LOCK_WAIT_ENV, "0")
        with pytest.raises(records.RunLocked) as refused:
            _fit_here(run_dir)
        message = str(refused.value)
        assert len(message.splitlines()) == 1
        assert f"pid {holder.pid} on host " in message and " since " in message
        assert f"`kill {holder.pid}`" in message and "resumes from the checkpoints" in message

        # wait: the line first, then the holder finishes and this process resumes its run
        monkeypatch.setenv(records.LOCK_WAIT_ENV, "120")  # a bound, so a bug cannot hang CI
        lines, said = _said(monkeypatch)

        def release_once_waiting():
            said.wait(timeout=60)
            (tmp_path / "release").write_text("1")

        threading.Thread(target=release_once_waiting, daemon=True).start()
        trained_here, history = _fit_here(run_dir)
        assert holder.wait(timeout=60) == 0, holder.stderr.read()
    finally:
        holder.kill()
        holder.wait()
    assert len(lines) == 1 and lines[0].startswith(f"waiting: run folder {run_dir} ")
    assert f"pid {holder.pid} on host " in lines[0]
    assert trained_here == 0 and history.steps == STEPS, "the holder's finished run is resumed"
    assert not (run_dir / records.HOLDER_FILE).exists(), "a clean release leaves no record"


def test_the_lock_of_a_killed_trainer_is_taken_over(tmp_path, monkeypatch):
    holder, run_dir = _start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert (run_dir / records.HOLDER_FILE).exists(), "a killed holder leaves its record"
    monkeypatch.setenv(records.LOCK_WAIT_ENV, "0")  # taken at once: no waiting
    lines, _ = _said(monkeypatch)
    trained_here, history = _fit_here(run_dir)
    assert len(lines) == 1 and lines[0].startswith(f"taking over run folder {run_dir}")
    assert f"pid {holder.pid} on host " in lines[0]
    assert trained_here == STEPS - 1 and history.steps == STEPS, "resumed from step 1"


def test_the_lock_wait_setting_is_checked(monkeypatch):
    monkeypatch.setenv(records.LOCK_WAIT_ENV, "soon")
    with pytest.raises(ValueError, match="PAPERLIB_LOCK_WAIT='soon' is not accepted; use a"):
        records.lock_wait()
    monkeypatch.setenv(records.LOCK_WAIT_ENV, "")
    assert records.lock_wait() == float("inf")

"""Shared test settings: small thread counts so the suite behaves on 2 cores."""

import os
import subprocess
import sys

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests only; executed notebooks keep the inline backend
torch.set_num_threads(1)
# ... and in every process a test starts (notebook kernels, trainers): pytest-xdist runs a test
# file per core, and a kernel that took both cores beside it ran 00's smoke notebook in 403 s
# instead of 24 (OpenMP threads spinning on a busy core). test_threads unsets it where it tests
# the choice itself.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture
def tiny_cfg():
    from paperlib import config

    return config.load("smoke", "toy")


def _run_smoke_walkthrough(cwd, env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if k != "PAPERLIB_WORKDIR"}
    r = subprocess.run(
        [sys.executable, "-m", "paperlib.suite.runner", "--profile", "smoke", "--only", "00"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture
def run_smoke_walkthrough():
    """``run(cwd, env)``: ``python -m paperlib.suite.runner --profile smoke --only 00`` in `cwd`
    (without PAPERLIB_WORKDIR, so the results land where a user's would), asserted to succeed."""
    return _run_smoke_walkthrough


@pytest.fixture
def cmi_run_with_last_monitor(tmp_path, monkeypatch):
    """A smoke speech `cmi` run whose one validation step (its last, 6) runs the monitor on
    training items, with the other family's budget cut to 40 steps in both the monitor and
    evaluation, so that they fit alike. Returns (cfg, bundle, model, history, run folder)."""
    from paperlib import config
    from paperlib.data import load_data
    from paperlib.estimators import instrument
    from paperlib.studies import experiment

    small = {"sequence": dict(steps=40, batch_size=32), "window": dict(steps=40, batch_size=32)}
    monkeypatch.setattr(instrument, "EVALUATION", small)
    cfg = config.load(
        "smoke", "speech", objective__name="cmi", objective__monitor_every=6,
        objective__monitor_fit_items=2000, train__steps=6, train__eval_every=6,
        train__num_threads=1,
    )  # fmt: skip
    bundle = load_data(cfg.data)
    run = tmp_path / "run"
    model, _, history = experiment.train_run(cfg, bundle, run_dir=run)
    return cfg, bundle, model, history, run

"""The speed scripts run (tiny sizes): gpu_check's CPU path and its CPU/CUDA agreement check."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_gpu_check_refuses_clearly_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "no CUDA device" in r.stderr


def test_gpu_check_agreement_uses_the_same_noise_on_both_devices():
    import gpu_check

    # CPU against CPU must agree exactly: the check draws eps on the CPU for both sides
    for experiment in ("speech", "images"):
        check = gpu_check.agree(experiment, "cmi", "cpu", tiny=True, n=2, rtol=0.0)
        assert check["ok"] and check["max_rel_gap"] == 0.0


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu"]
    cmd += ["--tiny", "--steps", "1", "--no-compile", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "GPU hours" in r.stdout and out.exists()


def test_speed_vs_base_names_a_bad_base(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed_vs_base.py"), "--base", "no-such-rev"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "--base 'no-such-rev' is not a commit" in r.stderr

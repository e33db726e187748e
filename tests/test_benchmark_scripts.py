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


def test_speech_budget_study_resumes_one_run_from_budget_to_budget(tmp_path, monkeypatch):
    """scripts/speech_budget.py: one run folder per objective, each budget resumes the last and
    is evaluated on validation; the figure is drawn from the saved json."""
    import json

    sys.path.insert(0, str(ROOT / "scripts"))
    import speech_budget

    monkeypatch.setenv("PAPERLIB_WORKDIR", str(tmp_path))
    out = tmp_path / "study"
    argv = ["--profile", "smoke", "--steps", "2", "4", "--fallback-weights", "--out", str(out)]
    speech_budget.main(argv)
    rows = json.loads((out / "budget.json").read_text())["rows"]
    assert [(r["objective"], r["steps"]) for r in rows] == [("mi", 2), ("mi", 4)]
    assert rows[1]["train_seconds"] >= rows[0]["train_seconds"]  # resumed, not retrained
    assert "probe_acc" in rows[0] and "vc_speaker_acc" in rows[0]
    assert (out / "budget.png").exists() and (out / "budget.pdf").exists()


def test_qualify_critics_writes_seed_means_and_the_command(tmp_path):
    """The qualification script on the smoke presets: each planted row is the mean of its
    seeds (the per-seed readings kept), and its README names the command that made it."""
    import json

    out = tmp_path / "q"
    args = ["--profile", "smoke", "--experiments", "images", "--levels", "1", "--seeds", "0", "1"]
    args += ["--n", "64", "--skip-frozen", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "qualify_critics.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((out / "qualification.json").read_text())["rows"]
    assert [row["case"] for row in rows] == ["planted", "independent"]
    for row in rows:
        assert len(row["critic_nats_per_seed"]) == 2
        assert row["critic_nats"] == pytest.approx(sum(row["critic_nats_per_seed"]) / 2, abs=1e-3)
    assert (
        "qualify_critics.py --profile smoke --experiments images" in (out / "README.md").read_text()
    )
    # a part run beside it (its record written here), then both merged into one table
    part = tmp_path / "part"
    part.mkdir()
    row = dict(rows[0], true_nats=2.0, critic_nats_per_seed=[1.7])
    command = "python benchmarks/qualify_critics.py --levels 2 --seeds 3"
    record = {"rows": [row], "command": command, "args": {"seeds": [3]}}
    (part / "qualification.json").write_text(json.dumps(record))
    merged = tmp_path / "merged"
    script = [sys.executable, str(ROOT / "benchmarks" / "qualify_critics.py")]
    r = subprocess.run(
        [*script, "--merge", str(out), str(part), "--out", str(merged)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((merged / "qualification.json").read_text())
    # in the order one run writes them: planted by level, then independent
    assert [row["case"] for row in record["rows"]] == ["planted", "planted", "independent"]
    assert record["rows"][1]["true_nats"] == pytest.approx(2.0, rel=1e-3)
    readme = (merged / "README.md").read_text()
    assert "--levels 1 --seeds 0 1" in readme and command in readme
    assert "seeds [0, 1, 3]" in readme


def test_quick_profile_splits_each_notebook_into_training_and_evaluation_sections(tmp_path):
    import json

    from paperlib import records

    nb = tmp_path / "results" / "01_speech_dsae"
    per_run = {"train_seconds": [30.0, 50.0], "eval_seconds_probes": [4.0, 6.0]}
    per_run["eval_seconds_nll"] = [1.0, 1.0]
    records.write_metrics(nb / "metrics.json", {"elbo": per_run, "mi": per_run})
    (nb / "run.json").write_text(json.dumps({"wall_seconds": 200.0}))
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quick_profile.py"),
         "--results", str(tmp_path / "results"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(out.read_text())["profile_time"]["01_speech_dsae"]
    assert got["runs"] == 4 and got["train"] == pytest.approx(160.0)
    assert got["eval"] == {"probes": pytest.approx(20.0), "nll": pytest.approx(4.0)}
    assert got["other"] == pytest.approx(16.0)  # 200 - 160 - 24
    assert "| evaluation: probes | 20 | 10% |" in r.stdout

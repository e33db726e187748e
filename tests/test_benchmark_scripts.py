"""The speed scripts run (tiny sizes): gpu_check's CPU path and its CPU/CUDA agreement check."""

import json
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
    assert rows[0]["trained"] in (True, False) and "val_elbo_gain_last_fifth" in rows[0]
    assert (out / "budget.png").exists() and (out / "budget.pdf").exists()
    # the decoder variance's fit as an override: its own run folder, named in the json
    grad = tmp_path / "gradient"
    speech_budget.main([*argv[:-1], str(grad), "--decoder-variance", "gradient"])
    result = json.loads((grad / "budget.json").read_text())
    assert result["overrides"] == {"model__decoder_variance": "gradient"}
    assert (tmp_path / "runs" / "speech_budget" / "mi_s200_decoder_variancegradient").is_dir()
    # --compare draws the two side by side and trains nothing; a missing folder is named
    speech_budget.main(["--compare", f"ML={out}", f"gradient={grad}", "--out", str(tmp_path)])
    assert (tmp_path / "compare.png").exists() and (tmp_path / "compare.pdf").exists()
    with pytest.raises(SystemExit):
        speech_budget.main(["--compare", f"x={tmp_path / 'nowhere'}", "--out", str(tmp_path)])


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


def test_critic_catch_up_continues_the_final_critic_on_the_frozen_encoder(tmp_path):
    import json

    out = tmp_path / "c"
    args = ["--profile", "smoke", "--run-root", str(tmp_path / "runs"), "--out", str(out)]
    args += ["--continue-steps", "2", "3", "--fit-items", "40", "--set", "objective__n_critic=2"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "critic_catch_up.py"), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((out / "catch_up.json").read_text())
    assert [c["updates"] for c in record["continued"]] == [0, 2, 5]
    assert record["overrides"] == {"objective__n_critic": 2}
    assert record["config"]["objective"]["n_critic"] == 2 and "git_commit" in record["_meta"]
    assert "| updates | 0 | 2 | 5 |" in (out / "README.md").read_text()
    bad = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "critic_catch_up.py"), "--set", "n_critic"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_cmi_cost_times_each_part_of_a_run_and_projects_the_whole_run(tmp_path):
    import json

    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"other": 1}))
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cmi_cost.py"), "--profile", "smoke",
         "--steps", "6", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["other"] == 1, "the other benchmarks' entries are kept"
    cmi = got["cmi_cost"]["rows"]["cmi"]
    # the short run validates once (every min(50, steps) steps); smoke's run of 6 steps, every
    # 3 steps: twice
    m, parts = cmi["measured"], cmi["projected_run"]
    assert m["validate_calls"] == 1 and m["critic_step_seconds"] > 0
    assert parts["validate"] == pytest.approx(2 * m["validate_seconds_per_call"])
    assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
    assert "| critic_step |" in r.stdout and "cmi / mi =" in r.stdout


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


#: a stand-in for DVAE's checkout (github.com/XiaoyuBIE1994/DVAE): the three files the script
#: imports, with the interface its DSAE exposes (build_DSAE(cfg), (T, B, F) in and out, the
#: posterior and prior parameters as attributes), so the test needs no download
_STUB_DVAE = {
    "dvae/model/dsae.py": """
import torch
from torch import nn


class DSAE(nn.Module):
    def __init__(self, x_dim, z_dim, v_dim, hidden):
        super().__init__()
        self.rnn_g_v = nn.LSTM(x_dim, hidden)
        self.inf_v_mean, self.inf_v_logvar = nn.Linear(hidden, v_dim), nn.Linear(hidden, v_dim)
        self.inf_z_mean, self.inf_z_logvar = nn.Linear(x_dim, z_dim), nn.Linear(x_dim, z_dim)
        self.gen_out = nn.Linear(v_dim + z_dim, x_dim)

    def forward(self, x):
        T = x.shape[0]
        _, (h, _) = self.rnn_g_v(x)
        self.v_mean, self.v_logvar = self.inf_v_mean(h[-1]), self.inf_v_logvar(h[-1])
        self.z_mean, self.z_logvar = self.inf_z_mean(x), self.inf_z_logvar(x)
        self.z_mean_p, self.z_logvar_p = torch.zeros_like(self.z_mean), torch.zeros_like(self.z_mean)
        self.v_mean_p, self.v_logvar_p = torch.zeros_like(self.v_mean), torch.zeros_like(self.v_mean)
        v = self.v_mean.expand(T, -1, -1)
        return self.gen_out(torch.cat([v, self.z_mean], -1))


def build_DSAE(cfg, device="cpu"):
    net = cfg["Network"]
    return DSAE(int(net["x_dim"]), int(net["z_dim"]), int(net["v_dim"]), int(net["dim_RNN_gv"]))
""",
    "dvae/utils/loss.py": """
import torch


def loss_ISD(x, y):
    return torch.sum(x / y - torch.log(x / y) - 1)


def loss_KLD(m, lv, m_p=0, lv_p=0):
    return -0.5 * torch.sum(lv - lv_p - (lv.exp() + (m - m_p).pow(2)) / lv_p.exp())
""",
    "config/speech/cfg_dsae.ini": (
        "[Network]\nx_dim = 513\nz_dim = 16\nv_dim = 16\ndim_RNN_gv = 128\ndim_RNN_gxv = 128\n"
        "dim_RNN_gz = 128\ndim_RNN_prior = 128\n[Training]\nlr = 0.002\nbeta = 1\n"
    ),
}


def test_dsae_vs_dvae_refuses_a_missing_dvae_checkout(tmp_path):
    script = [sys.executable, str(ROOT / "benchmarks" / "dsae_vs_dvae.py")]
    r = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--dvae PATH is required" in r.stderr
    r = subprocess.run([*script, "--dvae", str(tmp_path / "nowhere")], capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode != 0 and "--dvae" in r.stderr and "lacks dvae/model/dsae.py" in r.stderr


def test_dsae_vs_dvae_times_both_sides_and_merges_its_result(tmp_path):
    """Tiny sizes against the stub checkout: three models timed, ratios and a breakdown, the
    result merged beside what the benchmarks file already held."""
    import json

    dvae = tmp_path / "dvae"
    for rel, text in _STUB_DVAE.items():
        (dvae / rel).parent.mkdir(parents=True, exist_ok=True)
        (dvae / rel).write_text(text)
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"other": 1}))
    args = ["--dvae", str(dvae), "--out", str(out), "--reps", "1", "--steps", "1"]
    args += ["--blocks", "1", "--warmup", "1", "--breakdown-runs", "1"]
    args += ["--frames", "6", "--mels", "8", "--batch", "3", "--hidden", "8", "--latent", "2"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dsae_vs_dvae.py"), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    got = data["dsae_vs_dvae"]
    assert data["other"] == 1
    assert [row["model"] for row in got["rows"]] == ["ours_full", "theirs", "ours_factorized"]
    assert got["rows"][1]["ratio_to_theirs"] == 1.0
    assert got["dvae"]["dsae_py_sha256"] and got["sizes"]["T"] == 6
    parts = {row["component"]: row for row in got["breakdown_ms"]}
    assert parts["q(local): forward GRU (ours) / tanh RNN (theirs)"]["ours_full"] > 0
    assert parts["q(global | x): bi-LSTM"]["theirs"] > 0  # the stub's rnn_g_v
    assert "ours/theirs" in r.stdout


def test_critic_lag_resumes_a_run_faithfully_and_renders_the_lag(tmp_path):
    import critic_lag
    import numpy as np

    from paperlib import config
    from paperlib.data import load_data, make_loaders
    from paperlib.models import build_model
    from paperlib.studies import experiment
    from paperlib.training.regularizers import build_objective
    from paperlib.training.train import fit

    assert critic_lag.parse_variant("n12:objective__n_critic=12,objective__critic_lr=0.01") == (
        "n12",
        {"objective__n_critic": 12, "objective__critic_lr": 0.01},
    )
    assert critic_lag.parse_variant("preset") == ("preset", {})
    base = config.load(
        "smoke", "images", train__steps=6, train__checkpoint_every=2, train__num_threads=1,
        objective__critic_refresh_every=3, objective__monitor_fit_items=64,
    )  # fmt: skip
    cfg = experiment.run_config(base, "cmi", 0, alpha=1.0, beta=1.0)
    bundle = load_data(cfg.data)
    _, _, straight = experiment.train_run(cfg, bundle, run_dir=tmp_path / "source")
    # the preset variant: the run's own settings, resumed at step 4, retrace its last steps
    scratch = critic_lag.resume_variant(tmp_path / "source", 4, cfg, tmp_path / "scratch")
    model = build_model(cfg.model, bundle.info)
    objective = build_objective(cfg.objective, model, seed=cfg.train.seed)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    resumed = fit(model, objective, loaders, cfg, run_dir=scratch)
    for key in ("val_elbo", "critic_lag_before", "critic_lag_after", "loss"):
        assert resumed.rows[-1][key] == pytest.approx(straight.rows[-1][key], rel=1e-5), key
    bursts = [
        {"step": 3, "critic_lag_before": 0.5, "critic_lag_after": 1.0},
        {"step": 6, "critic_lag_before": 0.3, "critic_lag_after": 0.8},
    ]
    # the lag of the mean readings, not the mean of the per-burst ratios
    assert critic_lag._mean_lag(bursts) == pytest.approx(0.9 / 0.4)
    v = dict(overrides={}, bursts=bursts, mean_lag=critic_lag._mean_lag(bursts),
             final_critic=0.5, final_other=1.0, final_ratio=2.0, seconds_per_step=1.0,
             command="python benchmarks/critic_lag.py")  # fmt: skip
    text = critic_lag.render({"variants": {"preset": v, "n0": {**v, "final_ratio": None}}})
    assert "| preset | 2 | 0.40 (0.30 to 0.50) | 0.90 | 2.25x | 0.50 / 1.00 (2.00x) |" in text
    assert "| n0 | 2 |" in text and "| – |" in text
    fig = critic_lag.figure({"variants": {"preset": v, "n0": {**v, "final_other": np.nan}}})
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2


def test_other_fit_noise_reads_fresh_fits_and_the_monitors_critic_on_evaluations_rows(
    tmp_path, cmi_run_with_last_monitor
):
    import math

    import other_fit_noise

    from paperlib.studies import experiment

    cfg, bundle, model, history, run = cmi_run_with_last_monitor
    out = tmp_path / "out"
    assert other_fit_noise.main([str(run), "--fits", "2", "--out", str(out)]) == 0
    record = json.loads((out / "run" / "fits.json").read_text())
    assert set(record["fits"]) == {"0", "1", "monitor"}
    assert record["fits"]["0"]["nats"] != record["fits"]["1"]["nats"]  # other seeds, other fits
    assert record["summary"]["fits"] == 2 and math.isfinite(record["summary"]["sd"])
    assert (
        "git_commit" in record["_meta"]
        and "Across 2 fresh fits" in (out / "run" / "README.md").read_text()
    )
    # the monitor's critic read on the very rows evaluation reads it on
    classifiers = experiment.fit_classifiers(cfg, bundle)
    m, _ = experiment.evaluate_run(model, cfg, bundle, classifiers, other=history.other_family)
    assert m["mi_zs_target_from_monitor"] == 1.0
    assert m["mi_zs_target_nats"] == pytest.approx(record["fits"]["monitor"]["nats"], abs=1e-6)
    # a fit is repeatable: seed 0 again, merged into the same file
    first = record["fits"]["0"]["nats"]
    assert other_fit_noise.main([str(run), "--only", "0", "--out", str(out)]) == 0
    again = json.loads((out / "run" / "fits.json").read_text())
    assert again["fits"]["0"]["nats"] == pytest.approx(first, abs=1e-6)
    with pytest.raises(SystemExit):
        other_fit_noise.main([str(tmp_path / "no_run")])

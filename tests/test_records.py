"""Checkpoints round-trip bitwise, refuse pickles, survive truncation; metrics.json shape."""

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

from paperlib import config, records, runtime


def _model_and_opt():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # populate Adam's moment buffers
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_checkpoint_round_trip_is_bitwise(tmp_path):
    cfg = config.load("smoke", "toy")
    model, opt = _model_and_opt()
    runtime.seed_everything(3)
    path = records.save_checkpoint(
        tmp_path / "c.pt", cfg=cfg, step=3, model=model.state_dict(), optimizer=opt.state_dict()
    )
    expected = (random.random(), np.random.rand(), torch.rand(1))

    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # disturb every RNG
    ckpt = records.load_checkpoint(path)
    model2, opt2 = _model_and_opt()
    for p in model2.parameters():
        p.data.add_(1.0)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    records.set_rng_state(ckpt["rng"])

    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    assert ckpt["step"] == 3 and config.Config.from_dict(ckpt["config"]) == cfg
    assert ckpt["versions"]["torch"] == torch.__version__


def test_truncated_checkpoint_is_reported_with_its_path(tmp_path):
    cfg = config.load("smoke", "toy")
    model, _ = _model_and_opt()
    good = records.save_checkpoint(
        tmp_path / "step_0000010.pt", cfg=cfg, step=10, model=model.state_dict()
    )
    bad = records.save_checkpoint(
        tmp_path / "step_0000020.pt", cfg=cfg, step=20, model=model.state_dict()
    )
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(records.CheckpointError, match="step_0000020.pt"):
        records.load_checkpoint(bad)
    path, payload, skipped = records.latest_valid_checkpoint(tmp_path)
    assert path == good and payload["step"] == 10
    assert [p for p, _ in skipped] == [bad]


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "evil": _Payload()}, path)
    with pytest.raises(records.CheckpointError, match="weights_only"):
        records.load_checkpoint(path)
    # The same bytes would run code under a plain pickle load: the refusal is what protects us.
    assert b"system" in path.read_bytes() or pickle.HIGHEST_PROTOCOL


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "m.json"
    records.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), records.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


def test_metrics_json_follows_the_contract(tmp_path):
    cfg = config.load("smoke", "toy")
    path = records.write_metrics(
        tmp_path / "metrics.json",
        {"elbo": {"probe_acc": [0.5, 0.7]}, "cmi": {"probe_acc": [0.9]}},
        cfg,
        params={"seeds": [0, 1]},
    )
    data = records.read_metrics(path)
    assert data["elbo"]["probe_acc"]["mean"] == pytest.approx(0.6)
    assert data["elbo"]["probe_acc"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert data["cmi"]["probe_acc"] == {"mean": 0.9, "std": 0.0, "per_seed": [0.9]}
    meta = data["_meta"]
    assert meta["profile"] == "smoke" and meta["params"] == {"seeds": [0, 1]}
    assert {"git_commit", "versions", "config"} <= set(meta)


def test_history_resume_drops_rows_after_the_checkpoint(tmp_path):
    h = records.HistoryWriter(tmp_path / "history.csv")
    for step in (1, 2, 3):
        h.log(step, {"loss": step})
    h = records.HistoryWriter(tmp_path / "history.csv", resume_step=2)
    h.log(3, {"loss": 30})
    rows = records.HistoryWriter.read(tmp_path / "history.csv")
    assert [(r["step"], r["value"]) for r in rows] == [("1", "1"), ("2", "2"), ("3", "30")]


def test_seed_everything_is_deterministic_and_validates():
    runtime.seed_everything(5)
    a = torch.randn(3), np.random.rand(), random.random()
    runtime.seed_everything(5)
    b = torch.randn(3), np.random.rand(), random.random()
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_device_choice():
    assert runtime.get_device("cpu").type == "cpu"
    assert runtime.get_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        runtime.get_device("tpu")


def test_work_dir_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.WORKDIR_ENV, str(tmp_path))
    assert runtime.work_dir() == tmp_path.resolve()
    assert runtime.in_work_dir(".cache/x") == tmp_path.resolve() / ".cache/x"
    assert str(runtime.in_work_dir("/abs/x")) == "/abs/x"
    cfg = config.load("smoke", "toy")
    assert records.run_dir_for(cfg).is_relative_to(tmp_path.resolve() / "runs")

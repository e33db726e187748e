"""Fault tests: kills, truncated files, NaNs, bad parameters, failing notebooks, missing or
corrupted data, determinism, and the security rules (weights_only, no secrets, checksums).

Every test uses the smoke presets (or smaller) and one torch thread; the file runs in well
under a minute on 2 cores. The two run_all.sh tests start a Jupyter kernel (a few seconds each).
"""

from __future__ import annotations

import ast
import hashlib
import io as _io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from paperlib import config
from paperlib.data import load_data, make_loaders, real
from paperlib.data.speech import cache_path
from paperlib.models import build_model
from paperlib.records import load_checkpoint
from paperlib.suite import notebooks, params
from paperlib.training.regularizers import build_objective
from paperlib.training.train import fit

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------
# training: SIGKILL + resume, truncated checkpoint, NaN guard

# smoke toy with a critic, 10 batches per epoch (the run crosses epoch boundaries), a checkpoint
# every 10 steps
KILL_KW = dict(
    objective__name="cmi",
    objective__alpha=2.0,
    objective__beta=1.0,
    train__steps=60,
    train__checkpoint_every=10,
    data__max_items=640,
    # bitwise equality needs one thread count in both runs: left at 0, fit takes the cores that
    # other processes leave, which differs between runs when tests run side by side (xdist)
    train__num_threads=1,
)


def _train(run_dir, *, sleep: float = 0.0, callbacks=None, **overrides):
    """Build the smoke toy model + objective and fit them (also run in a subprocess below).

    ``sleep`` seconds per step (a callback; it changes no number) keep the run alive long enough
    for the parent to kill it between checkpoints.
    """
    torch.set_num_threads(1)
    cfg = config.load("smoke", "toy", **overrides)
    loaders = make_loaders(cfg.data, seed=cfg.train.seed)
    torch.manual_seed(123)
    model = build_model(cfg.model, loaders["info"])
    obj = build_objective(cfg.objective, model)
    cbs = list(callbacks or [])
    if sleep:
        cbs.append(lambda **_: time.sleep(sleep))
    return model, obj, fit(model, obj, loaders, cfg, run_dir, callbacks=cbs)


def _final_state(run_dir: Path, step: int) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / f"step_{step:07d}.pt")


def _assert_same_state(a: dict, b: dict) -> None:
    for block in ("model", "objective"):
        assert a[block].keys() == b[block].keys()
        for k, v in a[block].items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, b[block][k]), f"{block}.{k} differs"


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_resumes_and_matches_uninterrupted(tmp_path):
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_faults as t; "
        f"t._train({str(killed_dir)!r}, sleep=0.05, **t.KILL_KW)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)
    ckpts = killed_dir / "checkpoints"
    deadline = time.monotonic() + 60
    try:
        while not list(ckpts.glob("step_*.pt")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        time.sleep(0.3)  # a few steps past the first checkpoint, mid-way to the next one
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in ckpts.glob("step_*.pt"))
    assert left and "step_0000060.pt" not in left, left  # killed before the end
    last = max(int(p[5:12]) for p in left)

    seen: list[int] = []
    _, _, hist_resumed = _train(
        killed_dir, callbacks=[lambda step, **_: seen.append(step)], **KILL_KW
    )
    assert seen[0] == last + 1  # resumed from its last checkpoint, not from scratch
    _, _, hist_straight = _train(straight_dir, **KILL_KW)

    _assert_same_state(_final_state(killed_dir, 60), _final_state(straight_dir, 60))
    assert hist_resumed.final == hist_straight.final
    assert [r["step"] for r in hist_resumed.rows] == [r["step"] for r in hist_straight.rows]


def test_truncated_checkpoint_is_reported_and_the_previous_one_resumes(tmp_path):
    # one thread in every run, as KILL_KW: bitwise equality across runs side by side (xdist)
    kw = dict(train__steps=20, train__checkpoint_every=10, data__max_items=640,
              train__num_threads=1)  # fmt: skip
    _train(tmp_path / "run", **kw)
    bad = tmp_path / "run" / "checkpoints" / "step_0000020.pt"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # a disk that lost the second half

    seen: list[int] = []
    kw30 = {**kw, "train__steps": 30}
    with pytest.warns(UserWarning, match=re.escape(str(bad))):
        _, _, hist = _train(
            tmp_path / "run", callbacks=[lambda step, **_: seen.append(step)], **kw30
        )
    assert seen[0] == 11 and hist.steps == 30  # resumed from step_0000010.pt
    # and it ends where an uninterrupted 30-step run ends
    _train(tmp_path / "straight", **kw30)
    _assert_same_state(_final_state(tmp_path / "run", 30), _final_state(tmp_path / "straight", 30))


@pytest.mark.parametrize(
    ("where", "term"),
    [("model_loss", "kl_z"), ("model_loss", "mi_zs"), ("critic_step", "critic_loss_zs")],
)
def test_nan_in_a_loss_term_stops_fit_naming_term_and_step(tmp_path, where, term):
    bad_step = 7
    cfg = config.load(
        "smoke", "toy", objective__name="cmi", objective__beta=1.0, train__checkpoint_every=5
    )
    loaders = make_loaders(cfg.data, seed=0)
    model = build_model(cfg.model, loaders["info"])
    obj = build_objective(cfg.objective, model)
    original = getattr(obj, where)
    calls = {"n": 0}

    def poisoned(out, *args):
        calls["n"] += 1  # one call per step (n_critic = 1)
        result = original(out, *args)
        if calls["n"] - 1 == bad_step:
            terms = result[1] if where == "model_loss" else result
            terms[term] = float("nan")
        return result

    setattr(obj, where, poisoned)
    with pytest.raises(FloatingPointError, match=rf"'{term}' = nan at step {bad_step}\b"):
        fit(model, obj, loaders, cfg, tmp_path)
    # the last good checkpoint (step 5) is the newest: nothing was written after the NaN
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == ["step_0000005.pt"]


# ----------------------------------------------------------------------------------------------
# notebook parameters and run_all.sh failures


def _ns01(**changes):
    ns = {
        "profile": "smoke",
        "seeds": None,
        "objectives": ["elbo", "mi", "cmi"],
        "alpha": None,
        "beta": None,
        "dataset": "synthetic_speech",
        "data_dir": "../data",
        "steps": None,
        "results_dir": "r",
        "out_dir": "x",
        "overrides": {},
        "np": np,  # modules, functions and classes in the namespace are not parameters
        "config": config,
    }
    ns.update(changes)
    return ns


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"dataset": "imagenet"}, "'dataset' = 'imagenet'"),
        ({"beta": -1.0}, "'beta' = -1.0"),
        ({"steps": "100"}, "'steps' = '100'"),  # wrong type: a string
        ({"seeds": 0}, "'seeds' = 0"),  # wrong type: an int, not a list
        ({"objectives": ["elbo", "vae"]}, "'objectives'"),
        ({"overrides": {"hidden": 3}}, "'overrides'"),  # not 'block__key'
        ({"alpah": 2.0}, "'alpah' (did you mean 'alpha'?)"),  # misspelled name
    ],
)
def test_bad_notebook_parameters_are_named(changes, named):
    with pytest.raises(params.ParameterError, match=re.escape(named)):
        params.check_params("01_speech_dsae", _ns01(**changes))


def test_good_parameters_resolve_profile_defaults():
    # the reported seeds are never the ones notebook 03 selects on ([0] in the smoke profile)
    assert params.check_params("01_speech_dsae", _ns01())["seeds"] == [100]


@pytest.mark.parametrize("name", params.notebook_names())
def test_parameters_are_checked_in_the_first_cell_after_the_parameters_cell(name):
    # setup() calls params.check_params
    import jupytext

    cells = [c for c in jupytext.read(notebooks.NOTEBOOK_DIR / f"{name}.py").cells]
    code = [c for c in cells if c.cell_type == "code"]
    i = next(k for k, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    first = code[i + 1].source.lstrip()
    assert re.match(rf'params, \w+ = setup\("{name}", globals\(\)\)', first), first


def _run_all(*args):
    return subprocess.run(
        [str(ROOT / "run_all.sh"), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _fake_results(results: Path, name: str) -> dict[str, bytes]:
    d = results / name
    (d / "sub").mkdir(parents=True)
    (d / "metrics.json").write_text('{"elbo": {"probe_acc": {"mean": 0.5}}}\n')
    (d / "run.json").write_text(json.dumps({"profile": "smoke", "wall_seconds": 1.0}))
    (d / "sub" / "figure.png").write_bytes(os.urandom(256))
    return _snapshot(d)


def test_run_all_rejects_an_unknown_dataset_naming_it_and_keeps_other_results(tmp_path):
    before = {n: _fake_results(tmp_path, n) for n in ("01_speech_dsae", "02_images_pixelcnn_vae")}
    r = _run_all(
        "--profile", "smoke", "--only", "01", "-p", "dataset", '"imagenet"',
        "--results", str(tmp_path),
    )  # fmt: skip
    assert r.returncode != 0
    assert "parameter 'dataset' = 'imagenet'" in r.stderr
    for n, snap in before.items():
        assert _snapshot(tmp_path / n) == snap, f"{n} changed"


@pytest.mark.slow
def test_run_all_notebook_failing_in_a_cell_names_it_and_keeps_its_old_results(tmp_path):
    results = tmp_path / "results"
    before = {n: _fake_results(results, n) for n in ("01_speech_dsae", "02_images_pixelcnn_vae")}
    missing = tmp_path / "no_data"
    r = _run_all(
        "--profile", "smoke", "--only", "01", "--force",
        "-p", "dataset", '"timit"', "-p", "data_dir", json.dumps(str(missing)),
        "-p", "alpha", "1", "-p", "beta", "1",  # no weight selection needed
        "--results", str(results),
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "notebook 01_speech_dsae failed in cell" in r.stderr
    assert "FileNotFoundError: dataset 'timit' not found in" in r.stderr
    assert str(missing / "timit") in r.stderr and "LDC93S1" in r.stderr
    assert "FAILED: ['01_speech_dsae']" in r.stderr
    for n, snap in before.items():
        assert _snapshot(results / n) == snap, f"{n} changed"


# ----------------------------------------------------------------------------------------------
# missing or corrupted data


def test_missing_timit_names_the_folder_and_where_to_get_it(tmp_path):
    cfg = config.load("smoke", "speech", data__name="timit", data__data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_data(cfg.data)
    msg = str(err.value)
    assert str(tmp_path / "timit") in msg and "LDC93S1" in msg and "data_dir" in msg


def test_missing_mnist_without_download_names_folder_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_NO_DOWNLOAD", "1")
    cfg = config.load("smoke", "images", data__name="mnist", data__data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_data(cfg.data)
    msg = str(err.value)
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte" in msg
    assert "PAPERLIB_NO_DOWNLOAD" in msg and "ossci-datasets" in msg


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_truncated_mnist_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_NO_DOWNLOAD", "1")
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 255, (n, 28, 28))))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))
    bad = folder / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    cfg = config.load("smoke", "images", data__name="mnist", data__data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(f"IDX file {bad} is truncated")):
        load_data(cfg.data)


def test_corrupted_speech_cache_is_regenerated_with_a_warning_naming_it(tmp_path):
    cfg = config.load("smoke", "speech", data__cache_dir=str(tmp_path)).data
    first = load_data(cfg)
    assert first.info["source"] == "generated"
    path = cache_path(cfg)
    path.write_bytes(path.read_bytes()[:1000])  # truncated zip
    with pytest.warns(RuntimeWarning, match=re.escape(f"cache file {path} is corrupted")):
        again = load_data(cfg)
    assert again.info["source"] == "generated"
    assert torch.equal(first.train.tensors["x"], again.train.tensors["x"])
    assert load_data(cfg).info["source"] == "cache"  # the rewritten cache verifies


# ----------------------------------------------------------------------------------------------
# determinism


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_same_seed_gives_identical_metrics(tmp_path):
    from paperlib.studies import experiment  # imported here: the SIGKILL test's child skips sklearn

    # one thread in both runs: left at 0, fit takes the cores other processes leave (xdist)
    cfg = config.load("smoke", "speech", train__num_threads=1)
    bundle = load_data(cfg.data)
    runs = [
        experiment.run_experiment(cfg, ["cmi"], [0], run_root=tmp_path / k, bundle=bundle)
        for k in ("a", "b")
    ]
    a, b = (r.metrics["cmi"] for r in runs)
    assert a.keys() == b.keys()
    # wall times (training, each evaluation section) are the only metrics allowed to differ
    clocks = {"train_seconds"} | {k for k in a if k.startswith("eval_seconds")}
    differ = [k for k in a if not all(map(_same, a[k], b[k]))]
    assert set(differ) <= clocks, {k: (a[k], b[k]) for k in differ}
    assert len(a) > 10
    # evaluation's time is recorded per section, and the sections add up to its total
    sections = ("encode", "probes", "posthoc_mi_zs", "other_family", "training_critic", "nll")
    assert {f"eval_seconds_{k}" for k in sections} <= set(a)
    total = sum(a[k][0] for k in clocks if k.startswith("eval_seconds_"))
    assert a["eval_seconds"][0] == pytest.approx(total)


# ----------------------------------------------------------------------------------------------
# security


def _py_files(*folders: str) -> list[Path]:
    files = []
    for f in folders:
        files += [p for p in (ROOT / f).rglob("*.py") if ".venv" not in p.parts]
    return files


def _unsafe_torch_loads(source: str) -> list[int]:
    """Line numbers of torch.load / torch.serialization.load calls without weights_only=True."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        if f.attr != "load" or ast.unparse(f.value) not in ("torch", "torch.serialization"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        w = kw.get("weights_only")
        if not (isinstance(w, ast.Constant) and w.value is True):
            bad.append(node.lineno)
    return bad


SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def _secret_reads(source: str) -> list[str]:
    """Environment reads (os.environ[...], .get, .pop, os.getenv) of secret-like or computed
    names. Writes such as ``os.environ.setdefault("OMP_NUM_THREADS", ...)`` are not reads."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value).endswith("environ")
        ):
            name = node.slice
        elif isinstance(node, ast.Call) and node.args:
            if ast.unparse(node.func).endswith(("environ.get", "getenv", "environ.pop")):
                name = node.args[0]
        if name is None:
            continue
        if not isinstance(name, ast.Constant):
            bad.append(f"line {node.lineno}: a computed name")
        elif SECRET.search(str(name.value)):
            bad.append(f"line {node.lineno}: {name.value}")
    return bad


def test_the_source_scanners_catch_what_they_look_for():
    assert _unsafe_torch_loads("import torch\ntorch.load(p)\ntorch.load(p, weights_only=False)")
    assert _unsafe_torch_loads("torch.serialization.load(p, weights_only=flag)") == [1]
    assert not _unsafe_torch_loads("torch.load(p, map_location='cpu', weights_only=True)")
    assert _secret_reads("import os\nos.environ['HF_TOKEN']\nos.getenv('API_KEY')") == [
        "line 2: HF_TOKEN",
        "line 3: API_KEY",
    ]
    assert _secret_reads("os.environ.get(name)") == ["line 1: a computed name"]
    assert not _secret_reads("os.environ['PATH'] = 'x'\nos.environ.setdefault('OMP', '1')")


def test_every_torch_load_uses_weights_only_true():
    bad, n_files = [], 0
    for path in _py_files("paperlib", "benchmarks", "notebooks", "scripts", "tests"):
        text = path.read_text()
        if "load" not in text:
            continue
        n_files += 1
        bad += [f"{path.relative_to(ROOT)}:{n}" for n in _unsafe_torch_loads(text)]
        if path.parent.name != "tests":  # no alias that would hide a call from the scan
            assert not re.search(r"from torch(\.serialization)? import .*\bload\b", text), path
    assert n_files and not bad, bad
    assert "weights_only=True" in (ROOT / "paperlib" / "records.py").read_text()


def test_no_code_reads_secrets_from_the_environment():
    bad = []
    for path in _py_files("paperlib", "benchmarks", "notebooks", "scripts"):
        bad += [f"{path.relative_to(ROOT)} {b}" for b in _secret_reads(path.read_text())]
    assert not bad, bad
    for sh in [*(ROOT / "scripts").glob("*.sh"), ROOT / "run_all.sh"]:
        assert not re.search(r"\$\{?\w*(TOKEN|SECRET|PASSWORD)", sh.read_text()), sh


class _FakeResponse(_io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_with_a_wrong_checksum_is_refused(tmp_path, monkeypatch):
    payload = b"not the MNIST you are looking for"
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return _FakeResponse(payload)

    monkeypatch.setattr(real.urllib.request, "urlopen", fake_urlopen)
    dest = tmp_path / "f.gz"
    with pytest.raises(ValueError, match="has MD5 .* expected 0123; not kept"):
        real._download("https://example.invalid/f.gz", dest, "0123")
    assert not dest.exists() and list(tmp_path.iterdir()) == []  # nor a temporary file
    # the right checksum is kept (the check is not simply failing everything)
    real._download("https://example.invalid/f.gz", dest, hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload

    # through the loader: every mirror serves bad bytes -> nothing kept, the error says why
    monkeypatch.delenv("PAPERLIB_NO_DOWNLOAD", raising=False)
    cfg = config.load("smoke", "images", data__name="mnist", data__data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download failed: .*has MD5"):
        load_data(cfg.data)
    assert list((tmp_path / "mnist").glob("*")) == []
    assert urls[-1].startswith(real._IDX_MIRRORS["mnist"][0])  # the official mirror was asked

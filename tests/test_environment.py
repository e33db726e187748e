"""The lock, pyproject, conda's environment.yml and Binder's binder/ name the same packages, and
Binder's requirements install into a fresh virtualenv (issue 14, point 2)."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch-cpu": "torch", "pysoundfile": "soundfile"}


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements-lock.txt: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def _torch_cpu() -> str:
    text = (ROOT / "requirements-torch-cpu.txt").read_text()
    return re.search(r"^torch==(\S+)$", text, re.M).group(1)


def _env() -> dict[str, str]:
    """environment.yml's conda packages as {pip name: lower bound}."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "conda users get conda-forge only"
    bounds = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and not dep.startswith(("python", "pip")):
            name, sep, bound = dep.partition(">=")
            assert sep and "==" not in dep, f"environment.yml: {dep!r} must be a lower bound"
            bounds[CONDA_NAMES.get(name, name)] = bound
    return bounds


def _pyproject_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {}
    for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, _, bound = dep.partition(">=")
        bounds[name.strip().lower()] = bound.strip()
    return bounds


def test_environment_yml_has_pyprojects_lower_bounds_which_the_lock_meets():
    env, lock, wanted = _env(), _lock(), _pyproject_bounds()
    assert set(env) == set(wanted), f"environment.yml vs pyproject: {set(env) ^ set(wanted)}"
    for name, bound in env.items():
        assert bound == wanted[name], (
            f"{name}: environment.yml >={bound}, pyproject >={wanted[name]}"
        )
        locked = _torch_cpu() if name == "torch" else lock[name]
        assert Version(locked) >= Version(bound), f"the lock's {name} {locked} is below {bound}"
    pip_section = [
        d
        for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
        if isinstance(d, dict)
    ]
    assert pip_section and "-e ." in pip_section[0]["pip"], "conda users get the package too"


def test_every_pyproject_dependency_is_locked():
    lock = _lock()
    for name in _pyproject_bounds():
        assert name == "torch" or name in lock, f"pyproject names {name}, which the lock lacks"


def test_binder_uses_pypi_files_that_repo2docker_reads():
    binder = ROOT / "binder"
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
    req = (binder / "requirements.txt").read_text()
    assert "-r ../requirements-lock.txt" in req, "Binder installs the lock's exact versions"
    assert f"torch=={_torch_cpu()}" in req and "download.pytorch.org/whl/cpu" in req
    post = binder / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-deps -e ." in post.read_text()
    # with binder/ present repo2docker ignores the root: nothing there may pretend otherwise
    assert not (ROOT / "postBuild").exists()


@pytest.mark.slow
def test_binder_requirements_install_into_a_fresh_virtualenv(tmp_path):
    """repo2docker's steps, without Docker: a fresh venv of runtime.txt's Python, pip install -r
    binder/requirements.txt, postBuild's install of the package, then import it. pip's cache
    (shared with the bootstrap) keeps this to a minute or two; the PyTorch CPU index is not
    reachable from this project's machines, where pip's configuration supplies the +cpu wheel."""
    version = (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    base = subprocess.run(
        ["bash", "-c", f"command -v python{version}"], capture_output=True, text=True
    ).stdout.strip()
    if not base:
        pytest.skip(f"no python{version} on PATH to build Binder's environment with")
    venv = tmp_path / "binder-venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_RETRIES="0", PIP_TIMEOUT="10")  # an unreachable index fails fast
    for step in (
        [py, "-m", "pip", "install", "-q", "-r", str(ROOT / "binder" / "requirements.txt")],
        [py, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ):
        r = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{' '.join(step)}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    code = (
        "import paperlib, torch, papermill, jupyterlab; from paperlib.studies import experiment; "
        "print(sys.version_info[:2], torch.__version__)"
    )
    r = subprocess.run(
        [py, "-c", "import sys; " + code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert f"({version.replace('.', ', ')})" in r.stdout and _torch_cpu() in r.stdout, r.stdout
    freeze = subprocess.run(
        [py, "-m", "pip", "freeze", "--all"], env=env, capture_output=True, text=True
    ).stdout
    lock = _lock()
    for line in freeze.splitlines():
        name, _, got = line.partition("==")
        name = name.lower().replace("_", "-")
        if name in lock:
            assert got == lock[name], f"Binder got {name} {got}, the lock says {lock[name]}"


def test_notebook_twins_are_in_sync_and_output_free():
    import json

    from paperlib.suite.notebooks import sync_ipynb

    assert sync_ipynb(check=True) == [], "run: python -m paperlib.suite.notebooks sync"
    for twin in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(twin.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), twin

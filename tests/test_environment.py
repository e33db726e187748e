"""The lock, pyproject and Binder's environment.yml name the same packages."""

import re
from pathlib import Path

import tomllib
import yaml

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


def _env() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "Binder must use conda-forge only"
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and not dep.startswith(("python", "pip")):
            name, _, version = dep.partition("==")
            pins[CONDA_NAMES.get(name, name)] = version
    return pins


def test_lock_pins_the_cpu_torch():
    assert _lock()["torch"] == "2.13.0"


def test_environment_yml_agrees_with_the_lock():
    lock, env = _lock(), _env()
    assert "python=3.11" in (ROOT / "environment.yml").read_text()
    for name, version in env.items():
        assert name in lock, f"environment.yml names {name}, which the lock lacks"
        assert version == lock[name], f"{name}: environment.yml {version} vs lock {lock[name]}"


def test_every_pyproject_dependency_is_locked_and_in_environment_yml():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    lock, env = _lock(), _env()
    for dep in deps:
        name = re.split(r"[<>=!~ ]", dep)[0].lower()
        assert name in lock, f"pyproject names {name}, which requirements-lock.txt lacks"
        assert name in env, f"pyproject names {name}, which environment.yml lacks"


def test_notebook_twins_are_in_sync_and_output_free():
    import json

    from paperlib.notebooks import sync_ipynb

    assert sync_ipynb(check=True) == [], "run: python -m paperlib.notebooks sync"
    for twin in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(twin.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), twin

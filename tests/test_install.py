"""Install and open anywhere: the Python floor, the torch builds, a fresh bootstrap, the wheel,
Colab's install cell and badges, and the documents a new user reads first (issue 14)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from paperlib import records
from paperlib.suite import colab, notebooks, params, runner

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FLOOR = "3.11"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new user: no active virtualenv, no paperlib on PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PAPERLIB_PYTHON")
    }
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def _bootstrap_tree(tmp: Path) -> Path:
    """A copy of the checkout without its environment or run products."""
    dest = tmp / "checkout"
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "runs", "results", ".cache", "build", "*.egg-info", "__pycache__"
        ),
    )
    return dest


def _old_python(tmp: Path) -> tuple[str, str]:
    """A Python 3.10 interpreter: pyenv's real one when installed, else a stand-in that reports
    3.10 and fails every version check (then the refusal is tested, not the interpreter)."""
    for real in sorted(Path("/root/.pyenv/versions").glob("3.10*/bin/python3.10")):
        return str(real), "real"
    fake = tmp / "fake-python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.13" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    return str(fake), "fake"


# ----------------------------------------------------------------------------------------------
# 1. one Python floor; exact locks; torch builds chosen explicitly


def test_the_python_floor_is_the_same_everywhere():
    assert PYPROJECT["project"]["requires-python"] == f">={FLOOR}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + FLOOR.replace(".", "")
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == f"python-{FLOOR}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python>={FLOOR}" in env["dependencies"]
    assert f"Python >= {FLOOR}" in (ROOT / "README.md").read_text()
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "requires-python" in bootstrap, "the bootstrap must read the floor from pyproject"
    assert not re.search(r"python3\.10|3, 10\)", bootstrap), "a hard-coded older floor"


@pytest.mark.parametrize("how", ["PAPERLIB_PYTHON", "PATH"])
def test_bootstrap_refuses_a_python_below_the_floor_and_says_what_to_do(tmp_path, how):
    tree = _bootstrap_tree(tmp_path)
    old, kind = _old_python(tmp_path)
    if how == "PAPERLIB_PYTHON":
        env = _clean_env(PAPERLIB_PYTHON=old)
    else:  # the only pythons on PATH are 3.10: the search must refuse, not pick one
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("python3", "python", "python3.10"):
            (bin_dir / name).symlink_to(old)
        for tool in ("bash", "sed", "cat", "cut", "sha256sum", "dirname"):
            (bin_dir / tool).symlink_to(shutil.which(tool))
        env = _clean_env(PATH=str(bin_dir))
    r = subprocess.run(
        ["bash", "-c", "source scripts/bootstrap.sh"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0, f"({kind} 3.10) the bootstrap went ahead: {r.stdout}{r.stderr}"
    assert f"Python >= {FLOOR}" in r.stderr and "3.10" in r.stderr, r.stderr
    assert not (tree / ".venv").exists(), "no environment may be created with an old Python"


def test_bootstrap_rejects_an_unknown_torch_choice(tmp_path):
    tree = _bootstrap_tree(tmp_path)
    r = subprocess.run(
        ["bash", "-c", "source scripts/bootstrap.sh"],
        cwd=tree,
        env=_clean_env(PAPERLIB_TORCH="rocm"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "PAPERLIB_TORCH=rocm is not accepted; use auto (default), cpu or cuda" in r.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_locks_are_exact_and_torch_has_one_file_per_build():
    lock = _pins(ROOT / "requirements-lock.txt")
    assert "torch" not in lock, "torch's build depends on the machine: it has its own lock files"
    cpu_text = (ROOT / "requirements-torch-cpu.txt").read_text()
    cpu, cuda = (
        _pins(ROOT / "requirements-torch-cpu.txt"),
        _pins(ROOT / "requirements-torch-cuda.txt"),
    )
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu_text
    assert cpu["torch"].endswith("+cpu"), "only the +cpu label makes the CPU pin exact"
    assert cuda["torch"] == cpu["torch"].removesuffix("+cpu")
    binder = _pins(ROOT / "binder" / "requirements.txt")
    assert binder["torch"] == cpu["torch"], "Binder runs the CPU build of the same torch"
    # torch's own dependencies are pinned by the main lock (the CPU build goes in --no-deps)
    for dep in ("filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec"):
        assert dep in lock, f"torch needs {dep}, which requirements-lock.txt lacks"


def test_the_running_environment_is_the_lock():
    from importlib.metadata import PackageNotFoundError, version

    if Path(sys.prefix).resolve() == Path(sys.base_prefix).resolve():
        pytest.skip("not running in a virtualenv made by the bootstrap")
    drift = []
    for name, want in _pins(ROOT / "requirements-lock.txt").items():
        try:
            got = version(name)
        except PackageNotFoundError:
            got = None
        if got != want:
            drift.append(f"{name}: lock {want}, installed {got}")
    assert not drift, drift


@pytest.mark.slow
def test_a_fresh_bootstrap_installs_the_lock_and_says_which_torch(tmp_path):
    """What `./run_tests.sh` does on a new machine, in a copy of the checkout. The PyTorch CPU
    index is unreachable from this project's machines, so this exercises the fallback; pip's
    cache makes the second install of the same wheels fast."""
    tree = _bootstrap_tree(tmp_path)
    code = 'source scripts/bootstrap.sh && "$PY" -c "import paperlib, torch, papermill"'
    r = subprocess.run(
        ["bash", "-c", code],
        cwd=tree,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert f"creating {tree}/.venv with Python 3." in out
    assert "bootstrap: torch:" in out, "the bootstrap must say which torch build it installs"
    assert re.search(r"bootstrap: torch \d+\.\d+\.\d+\S* \((CPU|CUDA [\d.]+) build\)", out), out
    assert "environment ready" in out
    # a second run finds the environment ready and installs nothing
    again = subprocess.run(
        ["bash", "-c", code], cwd=tree, env=_clean_env(), capture_output=True, text=True
    )
    assert again.returncode == 0 and "installing" not in again.stdout, again.stdout


# ----------------------------------------------------------------------------------------------
# 3. Colab for every notebook, the repository URL in one place


def test_every_notebook_starts_with_the_shared_install_cell():
    import jupytext

    cell = colab.install_cell()
    for src in sorted(notebooks.NOTEBOOK_DIR.glob("[0-9][0-9]_*.py")):
        code = [c for c in jupytext.read(src).cells if c.cell_type == "code"]
        assert code[0].source == cell, f"{src.name}: run python -m paperlib.suite.colab sync"
    assert PYPROJECT["project"]["urls"]["Repository"] in cell


def test_badges_cells_and_twins_follow_pyproject():
    assert colab.sync(check=True) == [], "run: python -m paperlib.suite.colab sync"
    readme = (ROOT / "README.md").read_text()
    path = colab.github_path()
    for name in params.notebook_names():
        if name != "04_summary":
            assert colab.colab_url(name) in readme
            assert (ROOT / "notebooks" / f"{name}.ipynb").exists(), "Colab opens the twin"
    assert f"mybinder.org/v2/gh/{path}/HEAD" in readme
    assert "OWNER/REPO" not in readme


def test_a_new_repository_url_changes_every_link():
    fork = "https://github.com/someone/my-fork"
    badges = colab.badges_markdown(fork)
    assert badges.count("someone/my-fork") == 1 + len(params.notebook_names())
    assert colab.github_path() not in badges
    assert "git+https://github.com/someone/my-fork" in colab.install_cell(fork)
    with pytest.raises(ValueError, match="https://github.com/OWNER/REPO"):
        colab.github_path("https://gitlab.com/someone/fork")


def _run_cell(namespace: dict) -> dict:
    exec(compile(colab.install_cell(), "install-cell", "exec"), namespace)
    return namespace


def test_install_cell_does_nothing_outside_colab():
    ns = _run_cell({})
    user = {k for k in ns if not k.startswith("_") and k != "sys"}
    assert user == set(), f"the cell must not leave globals that the parameter check sees: {user}"


def test_install_cell_installs_from_the_repository_keeping_colabs_torch(monkeypatch):
    import types
    from importlib.metadata import version

    calls = []
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append((cmd, check)))
    monkeypatch.setattr(colab, "setup", lambda: calls.append("setup"))
    ns = _run_cell({})
    cmd, check = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and check
    assert f"torch=={version('torch')}" in cmd, "pip must not replace Colab's torch"
    assert f"paperlib @ git+{colab.repository_url()}" in cmd
    assert calls[1] == "setup"
    params.check_params(
        "04_summary",
        {**ns, "profile": "smoke", "results_dir": "r", "out_dir": "o"},
    )  # nothing the cell defined trips the parameter check


def test_setup_makes_and_enters_a_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAPERLIB_WORKDIR", raising=False)
    root = colab.setup(tmp_path / "work")
    assert root == (tmp_path / "work").resolve()
    assert Path.cwd() == root / "notebooks", "../results and ../data must land in the folder"
    assert os.environ["PAPERLIB_WORKDIR"] == str(root)


# ----------------------------------------------------------------------------------------------
# 4. a non-editable install works


def _build_wheel(dest: Path) -> Path:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(dest), str(_bootstrap_tree(dest))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return next(dest.glob("paperlib-*.whl"))


def test_the_wheel_ships_every_subpackage_and_the_notebooks(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "paperlib").rglob("__init__.py"):
        rel = init.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} is missing: add its package to pyproject's packages"
    for src in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"):
        assert f"paperlib/_notebooks/{src.name}" in names
    # results never ship in the package: notebook 03's selection lives in results/
    assert "paperlib/selected_weights.json" not in names


def test_no_notebooks_is_an_error_that_names_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(notebooks, "CHECKOUT_NOTEBOOKS", tmp_path / "a")
    monkeypatch.setattr(notebooks, "PACKAGED_NOTEBOOKS", tmp_path / "b")
    with pytest.raises(FileNotFoundError) as err:
        notebooks.find_notebook_dir()
    assert str(tmp_path / "a") in str(err.value) and str(tmp_path / "b") in str(err.value)
    assert runner.main(["--profile", "smoke", "--results", str(tmp_path / "r")]) == 2
    assert "no notebook sources" in capsys.readouterr().err


def test_installed_commit_comes_from_package_metadata(monkeypatch):
    import importlib.metadata as md

    class Dist:
        version = "0.1.0"

        def __init__(self, direct):
            self.direct = direct

        def read_text(self, name):
            return json.dumps(self.direct) if name == "direct_url.json" else None

    git = {"url": "https://github.com/a/b", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
    monkeypatch.setattr(md, "distribution", lambda name: Dist(git))
    assert records.installed_commit() == "abc123"
    monkeypatch.setattr(md, "distribution", lambda name: Dist({"url": "file:///w.whl"}))
    assert records.installed_commit() == (
        "unknown (paperlib 0.1.0 installed from file:///w.whl; no git checkout)"
    )


@pytest.mark.slow
def test_a_wheel_install_runs_a_notebook_into_the_working_folder(tmp_path, run_smoke_walkthrough):
    """pip install of the wheel (no checkout beside it), then the runner from another folder."""
    wheel = _build_wheel(tmp_path / "dist")
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(PYTHONPATH=str(site), PATH=os.environ["PATH"])
    r = run_smoke_walkthrough(work, env)
    assert "done  00_walkthrough" in r.stdout
    out = work / "results" / "smoke" / "00_walkthrough"  # each profile has its own folder
    assert (out / "run.json").exists() and list(out.glob("*.png"))
    assert (work / "runs").is_dir(), "training runs go to the working folder"
    assert not list(site.rglob("runs")) and not (site / "results").exists()
    meta = records.read_metrics(out / "metrics.json")["_meta"]
    assert meta["versions"]["paperlib"] == PYPROJECT["project"]["version"]
    assert "installed from" in meta["git_commit"] or re.fullmatch(
        r"[0-9a-f]{40}", meta["git_commit"]
    )


# ----------------------------------------------------------------------------------------------
# 5. pre-commit; 7. licence, citation, data card, the README's claim map


def test_pre_commit_runs_ruff_jupytext_sync_and_output_stripping():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff", "ruff-format", "jupytext", "nbstripout"} <= set(hooks)
    assert "--sync" in hooks["jupytext"]["args"]
    revs = {repo["repo"].rsplit("/", 1)[-1]: repo.get("rev") for repo in config["repos"]}
    lock = _pins(ROOT / "requirements-lock.txt")
    assert revs["ruff-pre-commit"] == f"v{lock['ruff']}", "the hook's ruff is the lock's"
    assert revs["jupytext"] == f"v{lock['jupytext']}"


def test_licence_and_citation():
    licence = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "MIT" and licence.startswith("MIT License")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["repository-code"] == PYPROJECT["project"]["urls"]["Repository"]
    assert cff["version"] == PYPROJECT["project"]["version"]
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("Information-theoretic regularization")
    assert [a["family-names"] for a in paper["authors"]] == ["Akuzawa", "Iwasawa", "Matsuo"]
    assert (paper["journal"], paper["year"]) == ("Machine Learning", 2021)


def test_data_card_describes_every_registered_dataset():
    from paperlib.data import DATASETS

    card = (ROOT / "docs" / "DATA_CARD.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", card, re.M)}
    for name in DATASETS.names():
        assert name in rows, f"docs/DATA_CARD.md lacks a row for dataset {name!r}"
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert len(cells) == 6 and all(cells), f"{name}: every column needs an entry"


#: the README's front door (what the suite is, the headline tables, the reading path and the two
#: commands) ends within this many lines (issue 23, item 5)
FRONT_DOOR_LINES = 60


def test_readme_front_door_names_the_headline_the_code_path_and_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    front = "\n".join(lines[: FRONT_DOOR_LINES - 1])
    # the two commands, as .ci/run and a newcomer run them, in a closed fence inside the door
    assert re.search(r"^```bash\n\./run_all\.sh .*\n\./run_tests\.sh .*\n```$", front, re.M)
    assert "(FINDINGS.md)" in front and "Which code made which folder" in front
    assert "| study (factor) | setting | z dim |" in front, "the regime map's table"
    # the reading path: objective -> model -> fit -> evaluate, each a file that exists
    path = front.split("## Reading the code", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(paperlib/[\w/]+\.py)`", path)
    assert len(named) >= 5 and all((ROOT / f).is_file() for f in named), named
    for part in ("regularizers", "models/", "train", "evaluate"):
        assert any(part in f for f in named), part


def test_findings_map_each_claim_to_real_results():
    findings = (ROOT / "FINDINGS.md").read_text()
    headings = re.findall(r"^## (.+)$", findings, re.M)
    assert headings[0].startswith("Findings") and headings[1].startswith("Each claim")
    section = findings.split("## Each claim", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert len(rows) >= 6
    for row in rows:
        claim, _, nbs, figure, metrics = (c.strip() for c in row.strip("|").split("|"))
        fig = ROOT / figure.strip("`")
        assert fig.exists(), f"{claim}: {figure} does not exist"
        for metric in re.findall(r"`([\w.]+)`", metrics):
            key, _, name = metric.rpartition(".")
            found = [
                m
                for m in (ROOT / "results").glob("[0-9][0-9]_*/metrics.json")
                if m.parent.name[:2] in nbs and name in json.loads(m.read_text()).get(key, {})
            ]
            assert found, f"{claim}: no metrics.json of notebook {nbs} has {metric}"

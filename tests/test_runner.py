"""run_all.sh: smoke profile end to end, skip logic, and clear failures that keep old results."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from paperlib.studies import selection
from paperlib.suite import params, plan, runner

ROOT = Path(__file__).resolve().parent.parent


def _run_all(*args, results):
    return subprocess.run(
        [str(ROOT / "run_all.sh"), *args, "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_run_all_smoke_writes_the_figure_then_skips(tmp_path):
    r = _run_all("--profile", "smoke", "--only", "00", results=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "00_walkthrough"
    assert (out / "run.json").exists()
    assert list(out.glob("*.png")) and list(out.glob("*.pdf"))
    again = _run_all("--profile", "smoke", "--only", "00", results=tmp_path)
    assert again.returncode == 0 and "skip  00_walkthrough" in again.stdout
    # a fresh clone has committed results but no stamp: it regenerates them
    (tmp_path / "_logs" / "00_walkthrough.inputs").unlink()
    fresh = _run_all("--profile", "smoke", "--only", "00", results=tmp_path)
    assert fresh.returncode == 0 and "done  00_walkthrough" in fresh.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "fast"], "--profile 'fast'"),
        (["--only", "99_nothing"], "--only '99_nothing'"),
        (["--only", "00", "-p", "bta", "1"], "unknown parameter 'bta' (did you mean 'beta'?)"),
        (["--only", "00", "-p", "seeds", "[1, 1]"], "'seeds' = [1, 1] is not accepted (1 appears"),
        (["--only", "00", "-p", "out_dir", "x"], "'out_dir' is set by the runner; use --results"),
        (["--only", "00", "-p", "beta", "-1"], "parameter 'beta' = -1"),
        (["--only", "00", "-p", "03:steps", "10"], "notebook 03_information_plane is not among"),
        (["--only", "00", "-p", "77:steps", "10"], "--only '77'"),
    ],
)
def test_bad_arguments_fail_in_one_line_naming_them(tmp_path, args, message):
    r = _run_all(*args, results=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_check_params_catches_a_misspelled_injected_name():
    ns = {
        "profile": "smoke",
        "seeds": None,
        "steps": None,
        "beta": None,
        "out_dir": "x",
        "profil": "quick",
        "np": params,
    }
    with pytest.raises(params.ParameterError, match="'profil'.*did you mean 'profile'"):
        params.check_params("00_walkthrough", ns)
    del ns["profil"]
    assert params.check_params("00_walkthrough", ns)["seeds"] == [0]


# ----------------------------------------------------------------------------------------------
# progress that a person sees (issue 14, point 6)


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_text_progress_prints_step_loss_and_eta_at_most_every_interval():
    import io

    from paperlib.progress import PREFIX, TextProgress

    out, clock = io.StringIO(), _Clock()
    bar = TextProgress(total=100, initial=20, desc="fit", interval_s=5.0, file=out, clock=clock)
    for _ in range(60):  # 60 steps of 1 s: one line at the first step, then one per 5 s
        clock.t += 1.0
        bar.set_postfix({"loss": "3.1", "kl_z": "2.5"})
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 12, lines
    assert lines[0] == f"{PREFIX} fit 21/100 (21%) loss=3.1 kl_z=2.5 | 0:01 elapsed, ETA 1:19"
    # 56 steps in 56 s (the 20 resumed steps do not count): 24 left, ETA 24 s
    assert lines[-1] == f"{PREFIX} fit 76/100 (76%) loss=3.1 kl_z=2.5 | 0:56 elapsed, ETA 0:24"
    for _ in range(20):
        clock.t += 1.0
        bar.update(1)
    bar.close()
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"{PREFIX} fit 100/100 (100%)") and "ETA" not in last
    assert out.getvalue().count("100/100") == 1, "close() after the last step prints nothing new"


def test_progress_bar_follows_the_environment(monkeypatch):
    from tqdm.auto import tqdm

    from paperlib import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "text")
    assert isinstance(progress.progress_bar(10), progress.TextProgress)
    monkeypatch.setenv(progress.PROGRESS_ENV, "off")
    assert progress.progress_bar(10).disable
    monkeypatch.delenv(progress.PROGRESS_ENV)
    bar = progress.progress_bar(10, disable=True)
    assert isinstance(bar, tqdm), "interactive front ends keep tqdm.auto's widget"
    monkeypatch.setenv(progress.PROGRESS_ENV, "widget")
    with pytest.raises(ValueError, match="PAPERLIB_PROGRESS='widget' is not accepted"):
        progress.progress_bar(10)


def test_the_runner_logs_every_line_and_echoes_progress_lines(tmp_path):
    import io

    from paperlib.progress import PREFIX
    from paperlib.suite import runner

    log, echo = io.StringIO(), io.StringIO()
    tee = runner._ProgressTee(log, "01_speech_dsae", echo=echo)
    tee.write("a printed table\n")
    tee.write(f"{PREFIX} fit 5/10 (50%) loss=1 | 0:01 el")  # a line can arrive in pieces
    tee.write("apsed, ETA 0:01\nmore output\n")
    assert log.getvalue().count("\n") == 3
    assert echo.getvalue() == "01_speech_dsae  fit 5/10 (50%) loss=1 | 0:01 elapsed, ETA 0:01\n"


def test_headless_runs_get_text_progress_unless_the_user_chose(monkeypatch):
    from paperlib import progress
    from paperlib.suite import runner

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    runner.headless_environment()
    assert os.environ[progress.PROGRESS_ENV] == "text"
    monkeypatch.setenv(progress.PROGRESS_ENV, "off")
    runner.headless_environment()
    assert os.environ[progress.PROGRESS_ENV] == "off"


def test_a_notebook_under_papermill_prints_progress_to_its_log_and_the_terminal(
    tmp_path, monkeypatch, capsys
):
    """The kernel inherits the runner's environment: the training loop's bar is text, not a
    widget, its lines reach the log while the notebook runs, and the terminal gets them too."""
    import nbformat

    from paperlib import progress
    from paperlib.suite import runner

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    runner.headless_environment()
    code = (
        "from paperlib.progress import progress_bar\n"
        "bar = progress_bar(total=3, desc='fit')\n"
        "for i in range(3):\n"
        "    bar.set_postfix({'loss': f'{3 - i}.0'})\n"
        "    bar.update(1)\n"
        "bar.close()"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "in.ipynb")
    log = tmp_path / "nb.log"
    runner.execute(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {}, log, "99_probe")
    logged = log.read_text()
    assert "[progress] fit 1/3 (33%) loss=3.0" in logged and "fit 3/3 (100%) loss=1.0" in logged
    terminal = capsys.readouterr().out
    assert "99_probe  fit 3/3 (100%) loss=1.0" in terminal
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_a_prefixed_override_reaches_only_its_notebook():
    from paperlib.suite.runner import overrides

    got = overrides(
        [("steps", "1500"), ("03:experiments", '["speech"]'), ("01:objectives", "elbo")],
        ["01_speech_dsae", "03_information_plane"],
    )
    assert got == {
        "01_speech_dsae": {"steps": 1500, "objectives": "elbo"},
        "03_information_plane": {"steps": 1500, "experiments": ["speech"]},
    }


# ----------------------------------------------------------------------------------------------
# what the user asks is what runs (issue 24): reruns that see parameters, refusals before a run
#
# The notebooks' execution is stubbed (`_stub`): these tests check the runner's decisions, not
# the notebooks, so each call takes a fraction of a second.


@pytest.fixture
def stubbed(monkeypatch):
    """`runner.main` in this process with papermill replaced by `_stub`; the environment that
    the runner sets for its kernels is put back afterwards. Yields the list of executed names."""
    for var in ("PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    for var in ("PAPERLIB_PROGRESS", "PAPERLIB_WORKDIR"):
        monkeypatch.delenv(var, raising=False)
    executed: list[str] = []

    def stub(input_path, output_path, params_, log_path, name):
        executed.append(name)
        Path(output_path).write_text("{}")
        if name == runner.SELECTION:  # what notebook 03 writes: a selection for its params
            given = {k: v for k, v in params_.items() if k != "out_dir"}
            p = plan.notebook_params(name, params_["profile"], given)
            cfgs = {e: plan.base_config(name, p, e) for e in p["experiments"]}
            a = p["alphas"][0]
            w = {"mi": {"alpha": a, "beta": 0.0}, "cmi": {"alpha": a, "beta": a}}
            path = Path(params_["out_dir"]) / selection.SELECTION_FILE
            selection.write_selection(path, {e: dict(w) for e in cfgs}, cfgs, p["seeds"])

    monkeypatch.setattr(runner, "execute", stub)
    return executed


def _main(capsys, results, *args):
    rc = runner.main([*args, "--results", str(results)])
    out, err = capsys.readouterr()
    return rc, out, err


def _line(out: str, start: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith(start))


def test_a_changed_parameter_reruns_and_skip_says_what_matched(stubbed, capsys, tmp_path):
    smoke = ("--profile", "smoke")
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "03", "--only", "01")
    assert rc == 0 and stubbed == ["03_information_plane", "01_speech_dsae"]
    assert "run   01_speech_dsae (profile smoke; no result yet)" in out
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "03", "--only", "01")
    assert rc == 0 and len(stubbed) == 2, "the same request again: nothing runs"
    skip = _line(out, "skip  01_speech_dsae (up to date: ")
    assert "the same profile smoke, parameters (the defaults), configuration, code " in skip
    assert "inputs ['03_information_plane/selected_weights.json']" in skip

    # the case (a): one changed parameter reruns the notebook, and says which
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "01", "-p", "seeds", "[5]")
    assert rc == 0 and stubbed[-1] == "01_speech_dsae"
    assert "run   01_speech_dsae (profile smoke; parameters changed: seeds [100] -> [5])" in out
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "01", "-p", "seeds", "[5]")
    assert "skip  01_speech_dsae" in out and "parameters (seeds=[5])" in out
    # back to the defaults: a rerun again (the result holds seed 5 now)
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "01")
    assert "parameters changed: seeds [5] -> [100]" in out

    # 03 reruns with another grid: 01 reads a new selection, so it reruns after it
    n = len(stubbed)
    grid = ("-p", "03:alphas", "[1.0]")
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "03", "--only", "01", *grid)
    assert rc == 0 and stubbed[n:] == ["03_information_plane", "01_speech_dsae"]
    assert "parameters changed: alphas [2.0] -> [1.0]" in _line(out, "run   03_information_plane")
    reason = _line(out, "run   01_speech_dsae")
    assert "inputs changed: 03_information_plane/selected_weights.json" in reason
    rc, out, _ = _main(capsys, tmp_path, *smoke, "--only", "01", "--force")
    assert "run   01_speech_dsae (profile smoke; --force)" in out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _selection(results: Path, profile: str = "smoke", **given) -> None:
    """Notebook 03's selection in `results`, as its run with `given` would write it."""
    p = plan.notebook_params("03_information_plane", profile, given)
    cfgs = {e: plan.base_config("03_information_plane", p, e) for e in p["experiments"]}
    w = {"mi": {"alpha": 1.0, "beta": 0.0}, "cmi": {"alpha": 1.0, "beta": 1.0}}
    path = results / "03_information_plane" / selection.SELECTION_FILE
    selection.write_selection(path, {e: dict(w) for e in cfgs}, cfgs, p["seeds"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # (b) duplicate seeds
        (
            ["--only", "01", "-p", "01:seeds", "[1, 1]"],
            "01_speech_dsae: parameter 'seeds' = [1, "
            "1] is not accepted (1 appears more than once: that run would be trained and counted "
            "twice); expected a non-empty list of distinct non-negative ints",
        ),
        (
            ["--only", "03", "-p", "03:alphas", "[1, 1.0]"],
            "parameter 'alphas' = [1, 1.0] is not accepted (1.0 appears more than once",
        ),
        # (c) reported seeds that chose the weights: with 03 in the run, and from its file
        (
            ["--only", "03", "--only", "01", "-p", "01:seeds", "[0, 7]"],
            "01_speech_dsae: "
            "parameter 'seeds' = [0, 7] overlaps the seeds [0] on which notebook 03 in this run "
            "chooses the weights (seed 0 in both), so the reported runs would not be held out; "
            "accepted: seeds that the selection does not use (the profile's: [100])",
        ),
        (
            ["--only", "01", "-p", "01:seeds", "[0]"],
            "overlaps the seeds [0] on which notebook 03's selection",
        ),
        (
            ["--only", "05", "-p", "05:selection_seeds", "[1]"],
            "05_mechanism: parameter 'seeds' "
            "= [0, 1] overlaps the seeds [1] on which its parameter 'selection_seeds' chooses",
        ),
        # a per-notebook parameter for a notebook not in the run
        (
            ["--only", "01", "-p", "03:steps", "9"],
            "-p 03:steps 9: notebook 03_information_plane "
            "is not among the selected ['01_speech_dsae']; accepted prefixes here: ['01'] (add "
            "--only 03 to run 03_information_plane too)",
        ),
        # (d) a step count or profile that the selection cannot serve, with the command
        (
            ["--only", "03", "--only", "01", "-p", "01:steps", "9"],
            "01_speech_dsae: parameter "
            "'steps' = 9 trains 9 steps, but notebook 03 in this run chose the speech weights at "
            "STEPS steps; accepted: the same step count for 03 (-p 03:steps 9, or -p steps 9 for "
            "both), or fixed weights: -p 01:alpha and -p 01:beta",
        ),
        (
            ["--only", "01", "-p", "01:steps", "9"],
            "chose the speech weights at STEPS steps; make a "
            "matching selection with `./run_all.sh --profile smoke --results RESULTS --only 03 -p "
            "03:steps 9`",
        ),
        (
            ["--only", "03", "--only", "02", "-p", "03:experiments", '["speech"]'],
            "02_images_"
            "pixelcnn_vae: takes its images weights from notebook 03, whose parameter "
            "'experiments' = ['speech'] leaves out 'images'",
        ),
    ],
)
def test_refusals_come_before_anything_runs_in_one_line(stubbed, capsys, tmp_path, args, message):
    results = tmp_path / "results"
    _selection(results)  # the on-disk selection of the smoke profile (STEPS steps, seeds [0])
    before = _snapshot(results)
    rc, out, err = _main(capsys, results, "--profile", "smoke", *args)
    assert rc == 2 and not stubbed, out
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    steps = plan.base_config("01_speech_dsae", plan.notebook_params("01_speech_dsae", "smoke"))
    message = message.replace("RESULTS", str(results)).replace("STEPS", str(steps.train.steps))
    assert message in err
    assert _snapshot(results) == before, "a refused run writes nothing"


def test_a_selection_made_for_another_profile_is_refused_with_the_command(
    stubbed, capsys, tmp_path
):
    _selection(tmp_path, "smoke")
    rc, _, err = _main(capsys, tmp_path, "--only", "01")
    assert rc == 2 and not stubbed
    assert (
        f"01_speech_dsae: profile 'quick' cannot use notebook 03's selection "
        f"{tmp_path / '03_information_plane' / selection.SELECTION_FILE}, made for profile "
        f"'smoke'; make a matching one with `./run_all.sh --results {tmp_path} --only 03`"
    ) in err
    shutil.rmtree(tmp_path / "03_information_plane")
    rc, _, err = _main(capsys, tmp_path, "--only", "01")
    assert rc == 2 and "selected_weights.json does not exist; make it with `./run_all.sh" in err


def test_a_notebook_run_by_hand_refuses_reported_seeds_that_chose_its_weights(tmp_path):
    """The same check inside notebooks 01/02 (JupyterLab, no runner), before any training."""
    _selection(tmp_path)  # chosen on seed 0
    cell = {**plan.parameters_cell("01_speech_dsae"), "profile": "smoke"}
    namespace = {**cell, "seeds": [0, 100], "results_dir": str(tmp_path)}
    with pytest.raises(params.ParameterError, match=r"'seeds' = \[0, 100\] overlaps the seeds"):
        plan.setup("01_speech_dsae", namespace)


# ----------------------------------------------------------------------------------------------
# each profile writes its own results folder (issue 22, item 8)


def test_each_profile_writes_its_own_results_folder():
    from paperlib.runtime import in_work_dir

    assert runner.results_folder("quick") == in_work_dir("results")
    assert runner.results_folder("smoke") == in_work_dir("results") / "smoke"
    assert runner.results_folder("paper") == in_work_dir("results") / "paper"
    assert runner.results_folder("smoke", "elsewhere") == Path("elsewhere")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "results/smoke/00_walkthrough/run.json"], cwd=ROOT
    )
    assert ignored.returncode == 0, "results/smoke/ is git-ignored"


def test_smoke_on_a_fresh_checkout_leaves_the_committed_results_as_they_are(
    tmp_path, run_smoke_walkthrough
):
    """The working tree (tracked and untracked files) as a fresh repository; a smoke run of the
    walkthrough there writes results/smoke/ and must leave ``git status`` clean."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    repo = tmp_path / "repo"
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fresh"]):
        subprocess.run([*git, *cmd], cwd=repo, check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    r = run_smoke_walkthrough(repo, env)
    assert f"-> {repo / 'results' / 'smoke' / '00_walkthrough'}" in r.stdout
    assert json.loads((repo / "results/smoke/00_walkthrough/run.json").read_text())["request"]
    # nothing tracked changed, nothing untracked appeared (results/smoke/, runs/ are ignored)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True)
    assert status.stdout == b"", f"the smoke run changed the checkout:\n{status.stdout.decode()}"

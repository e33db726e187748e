"""run_all.sh: smoke profile end to end, skip logic, and clear failures that keep old results."""

import os
import subprocess
from pathlib import Path

import pytest

from paperlib import params

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

    from paperlib import runner
    from paperlib.progress import PREFIX

    log, echo = io.StringIO(), io.StringIO()
    tee = runner._ProgressTee(log, "01_speech_dsae", echo=echo)
    tee.write("a printed table\n")
    tee.write(f"{PREFIX} fit 5/10 (50%) loss=1 | 0:01 el")  # a line can arrive in pieces
    tee.write("apsed, ETA 0:01\nmore output\n")
    assert log.getvalue().count("\n") == 3
    assert echo.getvalue() == "01_speech_dsae  fit 5/10 (50%) loss=1 | 0:01 elapsed, ETA 0:01\n"


def test_headless_runs_get_text_progress_unless_the_user_chose(monkeypatch):
    from paperlib import progress, runner

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

    from paperlib import progress, runner

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
    from paperlib.runner import overrides

    got = overrides(
        [("steps", "1500"), ("03:experiments", '["speech"]'), ("01:objectives", "elbo")],
        ["01_speech_dsae", "03_information_plane"],
    )
    assert got == {
        "01_speech_dsae": {"steps": 1500, "objectives": "elbo"},
        "03_information_plane": {"steps": 1500, "experiments": ["speech"]},
    }

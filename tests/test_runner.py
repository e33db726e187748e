"""run_all.sh: smoke profile end to end, skip logic, and clear failures that keep old results."""

import subprocess
from pathlib import Path

import pytest

from paperlib import notebooks

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
        "np": notebooks,
    }
    with pytest.raises(notebooks.ParameterError, match="'profil'.*did you mean 'profile'"):
        notebooks.check_params("00_walkthrough", ns)
    del ns["profil"]
    assert notebooks.check_params("00_walkthrough", ns)["seeds"] == [0]

"""Every notebook runs under papermill in the smoke profile and writes its expected files;
the summary step turns fixture metrics into the expected table."""

import json
import subprocess
from pathlib import Path

import pytest

from paperlib import records
from paperlib.reports import summary
from paperlib.suite.params import notebook_names

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "00_walkthrough": ["metrics.json"],
    "01_speech_dsae": [
        "metrics.json",
        "tsne_z.png",
        "tsne_z.pdf",
        "disentanglement.png",
        "voice_conversion.png",
        "training_curves.png",
        "metrics.png",
        "rate_distortion.png",
        "figures.json",
    ],
    "02_images_pixelcnn_vae": [
        "metrics.json",
        "tsne_z.png",
        "samples_cmi.png",
        "metrics.png",
        "rate_distortion.png",
        "figures.json",
    ],
    "03_information_plane": [
        "metrics.json",
        "selected_weights.json",
        "information_plane_speech.png",
        "information_plane_images.png",
        "probe_vs_beta_speech.png",
        "rate_distortion_images.png",
    ],
    "05_mechanism": [
        "metrics.json",
        "selected_weights.json",
        "g_probe_vs_dials.png",
        "g_probe_vs_dials.pdf",
        "local_info_vs_dials.png",
        "information_plane.png",
        "figures.json",
    ],
}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Run every notebook once, smoke profile, two at a time, into a temporary results folder."""
    out = tmp_path_factory.mktemp("results")
    r = subprocess.run(
        [str(ROOT / "run_all.sh"), "--profile", "smoke", "--jobs", "2", "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_notebook_runs_in_smoke_profile(smoke_results, name):
    folder = smoke_results / name
    assert (folder / "run.json").exists(), f"{name} did not finish"
    assert (folder / f"{name}.ipynb").exists(), "the executed notebook is kept beside its results"
    for f in EXPECTED.get(name, []):
        assert (folder / f).exists(), f"{name} did not write {f}"
    if (folder / "metrics.json").exists():
        metrics = records.read_metrics(folder / "metrics.json")
        assert metrics["_meta"]["profile"] == "smoke"
        assert "git_commit" in metrics["_meta"] and "versions" in metrics["_meta"]


@pytest.mark.slow
def test_experiment_metrics_follow_the_contract(smoke_results):
    for name in ("01_speech_dsae", "02_images_pixelcnn_vae"):
        metrics = records.read_metrics(smoke_results / name / "metrics.json")
        assert {"elbo", "mi", "cmi"} <= set(metrics)
        for objective in ("elbo", "mi", "cmi"):
            for key in (
                "probe_acc",
                "probe_acc_sample",
                "probe_acc_knn",
                "kl_z_nats",
                "mi_xz_nats",
                "mi_zs_nats",
                "train_seconds",
            ):
                assert key in metrics[objective], f"{name}: {objective} lacks {key}"
    speech = records.read_metrics(smoke_results / "01_speech_dsae" / "metrics.json")
    assert {"eer", "phone_probe_acc_z", "speaker_probe_acc_s", "nll_nats"} <= set(speech["cmi"])
    images = records.read_metrics(smoke_results / "02_images_pixelcnn_vae" / "metrics.json")
    assert {"class_consistency", "nll_bits_per_dim"} <= set(images["cmi"])


@pytest.mark.slow
def test_mechanism_metrics_hold_every_measure_and_the_readings(smoke_results):
    metrics = records.read_metrics(smoke_results / "05_mechanism" / "metrics.json")
    meta = metrics["_meta"]
    names = [k for k in metrics if k != "_meta"]
    # one entry per objective and dial point of the smoke sweep (leak 0.1 and 0.9, z_dim 2)
    assert {
        f"{o}_leak{leak}_zdim2" for o in ("elbo", "mi", "cmi") for leak in ("0.1", "0.9")
    } == set(names)
    for key in ("probe_acc", "local_probe_acc_z", "g_probe_acc_s", "mi_zs_nats", "mi_xz_nats"):
        assert len(metrics["cmi_leak0.1_zdim2"][key]["per_seed"]) == 2, key  # the smoke seeds
    assert "critic_acc_zs" in metrics["cmi_leak0.1_zdim2"]
    # weights chosen on the validation split, with their evidence
    assert meta["weights"]["_evidence"]["criterion"].endswith("on the 'val' split")
    assert "cmi - mi on the g-probe" in meta["notes"]
    assert set(meta["paired_differences_cmi_minus_mi"]["probe_acc"]) == {
        "leak0.1_zdim2",
        "leak0.9_zdim2",
    }
    readme = (smoke_results / "README.md").read_text()
    assert "## 05_mechanism" in readme and "cmi - mi on the g-probe" in readme


@pytest.mark.slow
def test_summary_readme_embeds_every_figure(smoke_results):
    readme = (smoke_results / "README.md").read_text()
    for folder in smoke_results.iterdir():
        figures = folder / "figures.json"
        if figures.exists():
            for fig in json.loads(figures.read_text()):
                assert f"{folder.name}/{fig}.png" in readme


def test_summary_table_from_fixture_metrics(tmp_path):
    nb = tmp_path / "01_speech_dsae"
    records.write_metrics(
        nb / "metrics.json",
        {
            "elbo": {"probe_acc": [0.5, 0.6], "eer": [0.3, 0.2], "kl_z_nats": [1.0, 1.0]},
            "cmi": {"probe_acc": [0.8, 0.9], "eer": [0.1, 0.1], "kl_z_nats": [5.0, 6.0]},
        },
        params={"seeds": [0, 1]},
    )
    (nb / "run.json").write_text(json.dumps({"profile": "quick", "wall_seconds": 12.0}))
    summary.add_figure(
        __import__("matplotlib.pyplot").pyplot.figure(), nb, "fig_a", "What A shows."
    )
    text = summary.write_summary(tmp_path).read_text()
    # one table per question; a | inside a label is escaped, so the table keeps its columns
    assert "| objective | probe acc. z (mean) | EER |" in text
    assert r"| objective | KL(q(z\|x)\|\|p(z)) [nats] |" in text
    assert "| elbo | 0.550 ± 0.071 | 0.250 ± 0.071 |" in text
    # best per column in bold where a direction exists; no bold for the rate
    assert "| cmi | **0.850 ± 0.071** | **0.100 ± 0.000** |" in text
    assert "| cmi | 5.500 ± 0.707 |" in text
    assert "![fig_a](01_speech_dsae/fig_a.png)" in text and "*What A shows.*" in text
    assert "sum of the notebooks' wall times: 12 s" in text
    assert "Regenerate with `./run_all.sh`" in text and "Parameters set" not in text

    # a run with overrides names them, and the command that made the folder
    run = {"profile": "quick", "wall_seconds": 1.0, "params": {"profile": "quick", "steps": 1500}}
    (nb / "run.json").write_text(json.dumps(run))
    command = "./run_all.sh --results r --only 01 -p 01:steps 1500"
    (tmp_path / "run_all.json").write_text(json.dumps({"command": command}))
    text = summary.write_summary(tmp_path).read_text()
    assert "Parameters set for this run: `steps=1500`." in text
    assert f"Regenerate with `{command}`" in text


# ----------------------------------------------------------------------------------------------
# the .ipynb twins: what jupytext --sync and JupyterLab write is in sync (issue 14, point 5)


def _copy_notebooks(tmp_path):
    import shutil

    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    return folder


def test_twin_check_accepts_a_standard_jupytext_sync(tmp_path):
    import os
    import sys
    import time

    from paperlib.suite.notebooks import sync_ipynb

    folder = _copy_notebooks(tmp_path)
    src = folder / "00_walkthrough.py"
    src.write_text(src.read_text() + "\n# %% [markdown]\n# A cell added by an editor.\n")
    later = time.time() + 5
    os.utime(src, (later, later))  # the source is the newer file: jupytext updates the twin
    r = subprocess.run(
        [sys.executable, "-m", "jupytext", "--sync", str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    twin = json.loads(src.with_suffix(".ipynb").read_text())
    assert "A cell added by an editor." in twin["cells"][-1]["source"][0]
    assert not twin["cells"][-1]["id"].startswith("cell-"), "jupytext chose its own cell id"
    assert sync_ipynb(check=True, folder=folder) == []


def test_twin_check_ignores_jupyterlab_metadata_but_not_content(tmp_path):
    import nbformat

    from paperlib.suite.notebooks import sync_ipynb

    folder = _copy_notebooks(tmp_path)
    twin = folder / "01_speech_dsae.ipynb"
    nb = nbformat.read(twin, as_version=4)
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"lab-{i}"
        cell.metadata["collapsed"] = False
    nbformat.write(nb, twin)
    assert sync_ipynb(check=True, folder=folder) == []
    nb.cells[-1].source += "\nprint('an edit made only in the .ipynb')"
    nbformat.write(nb, twin)
    assert sync_ipynb(check=True, folder=folder) == [twin]
    nb.cells[-1].source = nb.cells[-1].source.rsplit("\n", 1)[0]
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nbformat.write(nb, twin)
    assert sync_ipynb(check=True, folder=folder) == [twin], "a twin with outputs is stale"
    assert sync_ipynb(folder=folder) == [twin] and sync_ipynb(check=True, folder=folder) == []


# ----------------------------------------------------------------------------------------------
# each notebook reads like a paper: set-up in one call, a reader's guide after every figure


@pytest.mark.parametrize("name", notebook_names())
def test_every_figure_is_followed_by_what_to_look_for(name):
    import jupytext

    from paperlib.suite.notebooks import NOTEBOOK_DIR

    cells = jupytext.read(NOTEBOOK_DIR / f"{name}.py").cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and "figs.add(" in cell.source:
            nxt = cells[i + 1] if i + 1 < len(cells) else None
            assert nxt is not None and nxt.cell_type == "markdown", f"{name}: cell {i}"
            assert nxt.source.startswith("**What to look for"), f"{name}: cell {i + 1}"


def test_setup_checks_the_parameters_and_builds_each_notebooks_config():
    from paperlib import config
    from paperlib.suite import plan
    from paperlib.suite.params import ParameterError
    from paperlib.suite.plan import setup

    ns = {"profile": "smoke", "seeds": None, "steps": None, "beta": None, "out_dir": "o"}
    params, cfg = setup("00_walkthrough", ns)
    assert params["seeds"] == [0] and cfg == config.load("smoke", "speech")
    _, quick = setup("00_walkthrough", {**ns, "profile": "quick"})
    assert quick.model.hidden == 64 and quick.train.steps == 300  # shrunk to the 3-minute budget
    with pytest.raises(ParameterError, match="'stpes'"):
        setup("00_walkthrough", {**ns, "stpes": 3})

    ns01 = {
        **{"profile": "smoke", "seeds": None, "objectives": ["elbo", "mi", "cmi"]},
        **{"alpha": None, "beta": None, "dataset": None, "data_dir": None, "steps": 7},
        **{"results_dir": "r", "out_dir": "o", "overrides": {}},
    }
    params, cfg = setup("01_speech_dsae", ns01)
    assert cfg == plan.base_config("01_speech_dsae", params) and cfg.train.steps == 7
    # `overrides` replaces any preset value, and names itself when a key or value is wrong
    ml = {"model__decoder_variance": "ml"}
    _, cfg_ml = setup("01_speech_dsae", {**ns01, "overrides": ml})
    assert cfg_ml == cfg.replace(**ml) and cfg_ml.model.decoder_variance == "ml"
    for bad in ({"model__hiden": 3}, {"hidden": 3}, {"model__hidden": [3]}, ["model__hidden"]):
        with pytest.raises(ParameterError, match="overrides"):
            setup("01_speech_dsae", {**ns01, "overrides": bad})
    assert setup("04_summary", {"profile": "smoke", "results_dir": "r", "out_dir": "o"})[1] is None


def test_a_partial_rerun_still_names_the_command_for_every_folder(tmp_path):
    from paperlib.reports.summary import _command

    for name in ("00_walkthrough", "01_speech_dsae"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    record = {
        "command": "./run_all.sh --only 00 --only 04 --force",
        "notebooks": ["00_walkthrough"],
    }
    (tmp_path / "run_all.json").write_text(json.dumps(record))
    assert _command(tmp_path) == (
        "`./run_all.sh` (this version's last run: `./run_all.sh --only 00 --only 04 --force`)"
    )
    # a folder that the partial command made whole (a side study) is regenerated by it
    record["notebooks"] = ["00_walkthrough", "01_speech_dsae"]
    (tmp_path / "run_all.json").write_text(json.dumps(record))
    assert _command(tmp_path) == "`./run_all.sh --only 00 --only 04 --force`"

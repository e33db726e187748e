"""What each notebook trains, computed in one place: ``plan.configs(notebook, profile, params)``.

The experiment notebooks build their base Config with `base_config` (and notebook 03 its grid with
`sweep_grid`), then train through ``experiment.run_experiment`` or ``experiment.sweep``, which
expand a base Config into runs with ``experiment.grid_configs``. `configs` composes the same
functions, starting from the notebook's own ``parameters`` cell, so the list that the cluster
launcher (``paperlib.launch``) trains is the list that the notebooks would train::

    plan.configs("01_speech_dsae", "paper", {"dataset": "timit", "data_dir": "/data"})
    # -> [Config(objective=elbo, seed=0, ...), ..., Config(objective=cmi, seed=4, ...)]

After the launcher has trained them, each notebook finds every run folder complete
(``runs/<experiment>/<profile>/<objective>_a<alpha>_b<beta>_s<seed>_<hash>``) and only evaluates.

A notebook is *planned* when `PLANNERS` has an entry for it. A new training notebook adds one
function ``params -> [(base Config, grid, seeds)]`` here and calls `base_config` itself.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlib import config, experiment, notebooks, runtime
from paperlib.config import Config

#: the objectives that notebook 03 sweeps (elbo once, mi per alpha, cmi per (alpha, beta))
SWEEP_OBJECTIVES = ("elbo", "mi", "cmi")

#: the experiment (config preset) that each single-experiment notebook trains
_EXPERIMENT_OF = {"01_speech_dsae": "speech", "02_images_pixelcnn_vae": "images"}

Grid = list[tuple[str, float, float]]


def parameters_cell(notebook: str) -> dict[str, Any]:
    """The literal assignments of the ``parameters`` cell of ``notebooks/<notebook>.py``.

    Raises
    ------
    ValueError
        When the notebook's source is missing, has no cell tagged ``parameters``, or that cell
        holds something other than ``name = literal`` lines (the line is named).
    """
    import jupytext

    path = notebooks.NOTEBOOK_DIR / f"{notebook}.py"
    if not path.exists():
        raise ValueError(
            f"notebook source {path} not found; accepted notebooks: {notebooks.notebook_names()}"
        )
    cells = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: expected one cell tagged 'parameters', found {len(cells)}")
    values: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        ok = (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        )
        try:
            value = ast.literal_eval(node.value) if ok else None
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{path}: the parameters cell must hold 'name = literal' lines only; "
                f"got {ast.unparse(node)!r}"
            )
        values[node.targets[0].id] = value
    return values


def notebook_params(
    notebook: str, profile: str = "quick", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The parameters a notebook runs with: its parameters cell, `profile` and `overrides`.

    ``None`` values are resolved to the profile's defaults exactly as inside the notebook
    (``notebooks.check_params``). An unknown or invalid override raises
    ``notebooks.ParameterError`` naming it.
    """
    values = {**parameters_cell(notebook), "profile": profile, **(overrides or {})}
    return notebooks.check_params(notebook, values)


def base_config(notebook: str, params: Mapping[str, Any], name: str | None = None) -> Config:
    """The base Config that `notebook` trains from, given its resolved `params`.

    Parameters
    ----------
    notebook : a planned notebook (a key of `PLANNERS`).
    params : from ``notebooks.check_params`` (inside the notebook) or `notebook_params`.
    name : the experiment ("speech", "images") for notebooks that train several (03).
    """
    profile = params["profile"]
    if notebook in _EXPERIMENT_OF:
        cfg = config.load(
            profile,
            _EXPERIMENT_OF[notebook],
            data__name=params["dataset"],
            data__data_dir=params["data_dir"],
        )
    elif notebook == "03_information_plane":
        if name is None:
            raise ValueError("03_information_plane: base_config needs the experiment name")
        cfg = config.load(profile, name)
    else:
        raise ValueError(f"notebook {notebook!r} has no training plan; planned: {sorted(PLANNERS)}")
    if params.get("steps") is not None:
        cfg = cfg.replace(train__steps=params["steps"])
    return cfg


def sweep_grid(params: Mapping[str, Any]) -> Grid:
    """Notebook 03's grid: (objective, alpha, beta) for `SWEEP_OBJECTIVES` over its weights."""
    return experiment.sweep_grid(list(SWEEP_OBJECTIVES), params["alphas"], params["betas"])


def _plan_experiment(notebook: str) -> Callable[[Mapping[str, Any]], list[tuple]]:
    # 01 and 02: experiment.run_experiment(cfg, objectives, seeds, alpha=alpha, beta=beta)
    def plan(p: Mapping[str, Any]) -> list[tuple[Config, Grid, list[int]]]:
        base = base_config(notebook, p)
        grid = experiment.objective_grid(base.experiment, p["objectives"], p["alpha"], p["beta"])
        return [(base, grid, p["seeds"])]

    return plan


def _plan_sweep(p: Mapping[str, Any]) -> list[tuple[Config, Grid, list[int]]]:
    # 03: experiment.sweep(base_config(..., name), sweep_grid(params), seeds) per experiment
    grid = sweep_grid(p)
    return [(base_config("03_information_plane", p, n), grid, p["seeds"]) for n in p["experiments"]]


#: notebook -> function of its resolved parameters giving [(base Config, grid, seeds)]
PLANNERS: dict[str, Callable[[Mapping[str, Any]], list[tuple[Config, Grid, list[int]]]]] = {
    "01_speech_dsae": _plan_experiment("01_speech_dsae"),
    "02_images_pixelcnn_vae": _plan_experiment("02_images_pixelcnn_vae"),
    "03_information_plane": _plan_sweep,
}


def configs(
    notebook: str, profile: str = "quick", params: Mapping[str, Any] | None = None
) -> list[Config]:
    """Every Config that `notebook` trains in `profile` with parameter overrides `params`.

    Raises
    ------
    ValueError
        For a notebook without a plan (the message lists the planned ones), or an invalid
        parameter (``notebooks.ParameterError``, naming it).
    """
    if notebook not in PLANNERS:
        raise ValueError(f"notebook {notebook!r} has no training plan; planned: {sorted(PLANNERS)}")
    resolved = notebook_params(notebook, profile, params)
    return [
        cfg
        for base, grid, seeds in PLANNERS[notebook](resolved)
        for cfg in experiment.grid_configs(base, grid, seeds)
    ]


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its Config, its run folder and who trains it."""

    cfg: Config
    run_dir: Path
    notebooks: tuple[str, ...]

    @property
    def steps_done(self) -> int:
        """Steps of the newest checkpoint in the run folder (0 when none)."""
        return checkpoint_step(self.run_dir)

    @property
    def complete(self) -> bool:
        return self.steps_done >= self.cfg.train.steps


def checkpoint_step(run_dir: str | Path) -> int:
    """The step of the newest ``checkpoints/step_XXXXXXX.pt`` in `run_dir` (0 when none).

    Read from the file names: ``paperlib.train.fit`` writes checkpoints atomically, so a file
    that exists is complete.
    """
    folder = Path(run_dir) / "checkpoints"
    steps = [int(p.stem[5:]) for p in folder.glob("step_*.pt") if p.stem[5:].isdigit()]
    return max(steps, default=0)


def runs(
    profile: str,
    notebook_list: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    run_root: str | Path | None = None,
) -> list[Run]:
    """The runs of several notebooks, in order, each run folder once.

    Parameters
    ----------
    profile : "smoke", "quick" or "paper".
    notebook_list : planned notebooks (default: every planned notebook).
    params : parameter overrides given to every notebook (as ``./run_all.sh -p``).
    run_root : where run folders live (default ``runtime.work_dir() / "runs"``).
    """
    names = notebook_list if notebook_list is not None else planned_notebooks()
    root = Path(run_root) if run_root is not None else runtime.work_dir() / "runs"
    by_dir: dict[Path, Run] = {}
    for nb in names:
        for cfg in configs(nb, profile, params):
            d = experiment.run_dir_for(cfg, root)
            if d in by_dir:
                r = by_dir[d]
                if nb not in r.notebooks:
                    by_dir[d] = Run(r.cfg, d, (*r.notebooks, nb))
            else:
                by_dir[d] = Run(cfg, d, (nb,))
    return list(by_dir.values())


def planned_notebooks() -> list[str]:
    """The notebooks with a training plan whose source exists, in order."""
    return [n for n in notebooks.notebook_names() if n in PLANNERS]

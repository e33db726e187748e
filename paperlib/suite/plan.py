"""What each notebook trains, computed in one place: ``plan.configs(notebook, profile, params)``.

The experiment notebooks build their base Config with `base_config` (and notebook 03 its grid with
`sweep_grid`), then train through ``experiment.run_experiment`` or ``experiment.sweep``, which
expand a base Config into runs with ``experiment.grid_configs``. `configs` composes the same
functions, starting from the notebook's own ``parameters`` cell, so the list that the cluster
launcher (``paperlib.suite.launch``) trains is the list that the notebooks would train::

    plan.configs("01_speech_dsae", "paper", {"dataset": "timit", "data_dir": "/data"})
    # -> [Config(objective=elbo, seed=0, ...), ..., Config(objective=cmi, seed=4, ...)]

After the launcher has trained them, each notebook finds every run folder complete
(``runs/<experiment>/<profile>/<objective>_a<alpha>_b<beta>_s<seed>_<hash>``) and only evaluates.

Every notebook's first call, `setup`, is here too: it checks the notebook's parameters and builds
the Config it trains from (`notebook_config`), from the same functions.

A notebook is *planned* when `PLANNERS` has an entry for it. A new training notebook adds one
function ``params -> [(base Config, grid, seeds)]`` here and calls `base_config` itself.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlib import config, presets, records, runtime
from paperlib.config import Config
from paperlib.studies import experiment, selection
from paperlib.suite import notebooks
from paperlib.suite.params import (
    SPECS,
    ParameterError,
    check_params,
    check_unseen_seeds,
    notebook_names,
)
from paperlib.training import train

#: the objectives that notebook 03 sweeps (mi per alpha, cmi per (alpha, beta)); elbo has no
#: weight to choose, and notebooks 01/02 train it
SWEEP_OBJECTIVES = ("mi", "cmi")

#: the experiment (config preset) that each single-experiment notebook trains
_EXPERIMENT_OF = {"01_speech_dsae": "speech", "02_images_pixelcnn_vae": "images"}

#: the notebook that selects the weights of 01/02 (its selection file, `selection.SELECTION_FILE`)
_SWEEP = "03_information_plane"

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
            f"notebook source {path} not found; accepted notebooks: {notebook_names()}"
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
    (``paperlib.suite.params.check_params``). An unknown or invalid override raises
    ``paperlib.suite.params.ParameterError`` naming it.
    """
    values = {**parameters_cell(notebook), "profile": profile, **(overrides or {})}
    return check_params(notebook, values)


def base_config(notebook: str, params: Mapping[str, Any], name: str | None = None) -> Config:
    """The base Config that `notebook` trains from, given its resolved `params`.

    Parameters
    ----------
    notebook : a planned notebook (a key of `PLANNERS`).
    params : from `setup` (inside the notebook) or `notebook_params`.
    name : the experiment ("speech", "images") for notebooks that train several (03).
    """
    profile = params["profile"]
    if notebook in _EXPERIMENT_OF:
        data = {"data__name": params["dataset"], "data__data_dir": params["data_dir"]}
        cfg = config.load(
            profile, _EXPERIMENT_OF[notebook], **{k: v for k, v in data.items() if v is not None}
        )
    elif notebook == "03_information_plane":
        if name is None:
            raise ValueError("03_information_plane: base_config needs the experiment name")
        cfg = config.load(profile, name)
    else:
        raise ValueError(f"notebook {notebook!r} has no training plan; planned: {sorted(PLANNERS)}")
    if params.get("steps") is not None:
        cfg = cfg.replace(train__steps=params["steps"])
    if params.get("overrides"):
        try:
            cfg = cfg.replace(**params["overrides"])
        except ValueError as err:
            raise ParameterError(f"{notebook}: parameter 'overrides': {err}") from err
    return cfg


def sweep_grid(params: Mapping[str, Any]) -> Grid:
    """Notebook 03's grid: (objective, alpha, beta) for `SWEEP_OBJECTIVES` over its weights."""
    return selection.sweep_grid(list(SWEEP_OBJECTIVES), params["alphas"], params["betas"])


class SelectionPending(FileNotFoundError):
    """A notebook's weights come from notebook 03's selection, which does not exist yet."""


def selection_path(params: Mapping[str, Any]) -> Path:
    """Where notebooks 01/02 read notebook 03's selection (``results_dir`` is relative to the
    notebooks' folder, where the runner starts their kernels)."""
    results = Path(params["results_dir"])
    if not results.is_absolute():
        results = notebooks.NOTEBOOK_DIR / results
    return results / "03_information_plane" / selection.SELECTION_FILE


def _plan_experiment(notebook: str) -> Callable[[Mapping[str, Any]], list[tuple]]:
    # 01 and 02: experiment.run_experiment(cfg, objectives, seeds, alpha, beta, selection) with
    # the selection that notebook 03 wrote, unless both weights are given
    def plan(
        p: Mapping[str, Any], pending_ok: bool = False
    ) -> list[tuple[Config, Grid, list[int]]]:
        base = base_config(notebook, p)
        chosen = None
        if p["alpha"] is None or p["beta"] is None:
            path = selection_path(p)
            try:
                chosen = selection.load_selection(path, base)
            except (FileNotFoundError, ValueError) as err:
                if not pending_ok:
                    raise SelectionPending(
                        f"{notebook} takes its weights from notebook 03's selection, which is "
                        f"not usable yet ({err}); train and run 03 first (`python -m "
                        "paperlib.suite.launch --only 03`, then `./run_all.sh --only 03`), then launch "
                        "again; or pass -p alpha and -p beta"
                    ) from None
        grid = selection.objective_grid(
            base.experiment, p["objectives"], p["alpha"], p["beta"], chosen
        )
        return [(base, grid, p["seeds"])]

    return plan


def _plan_sweep(
    p: Mapping[str, Any], pending_ok: bool = False
) -> list[tuple[Config, Grid, list[int]]]:
    # 03: experiment.sweep(base_config(..., name), sweep_grid(params), seeds) per experiment
    grid = sweep_grid(p)
    return [(base_config("03_information_plane", p, n), grid, p["seeds"]) for n in p["experiments"]]


# ----------------------------------------------------------------------------------------------
# the notebooks of one run agree on notebook 03's selection


def selection_users(resolved: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The notebooks of a run (name -> resolved parameters) that take notebook 03's weights:
    01/02 unless both ``alpha`` and ``beta`` are given."""
    return [
        n
        for n in _EXPERIMENT_OF
        if n in resolved and (resolved[n]["alpha"] is None or resolved[n]["beta"] is None)
    ]


def check_run(
    profile: str,
    resolved: Mapping[str, Mapping[str, Any]],
    results_dir: str | Path,
    command: str = "./run_all.sh",
) -> None:
    """Refuse, before anything runs, a run whose 01/02 cannot use notebook 03's selection.

    The selection is the one notebook 03 makes in this run when 03 is among `resolved`, else the
    file in `results_dir`. It serves notebook 01 (02) when it was made for the same profile, the
    same step count and base configuration (``selection.base_hash``), for its experiment, on
    seeds that 01 (02) does not report (held-out reporting, DESIGN section 2).

    Parameters
    ----------
    profile : the run's profile.
    resolved : notebook -> its resolved parameters (``notebook_params``), for the run's notebooks.
    results_dir : the run's results folder.
    command : how the user calls the runner here (``./run_all.sh --profile smoke``), for the fix.

    Raises
    ------
    ParameterError
        One line: the notebook, the parameter and its value, what the selection was made for,
        and the command or parameter that makes them match.
    """
    users = selection_users(resolved)
    if not users:
        return
    if _SWEEP in resolved:
        made = _selection_in_run(profile, resolved[_SWEEP])
    else:
        made = _selection_on_file(
            Path(results_dir) / _SWEEP / selection.SELECTION_FILE, users, command
        )
    for nb in users:
        _check_user(nb, profile, resolved, made, command)


@dataclass(frozen=True)
class _MadeSelection:
    """What notebook 03's selection was made for, as `check_run` compares it."""

    where: str  # how a refusal names it
    profile: str
    seeds: list[int]
    #: experiment -> (steps, ``selection.base_hash`` of its base config)
    entries: dict[str, tuple[int, str]]
    in_run: bool  # made by notebook 03 in this run (else read from its file)


def _selection_in_run(profile: str, p03: Mapping[str, Any]) -> _MadeSelection:
    """The selection that notebook 03 will make in this run, with parameters `p03`."""
    made = {e: base_config(_SWEEP, p03, e) for e in p03["experiments"]}
    entries = {e: (c.train.steps, selection.base_hash(c)) for e, c in made.items()}
    return _MadeSelection("notebook 03 in this run", profile, p03["seeds"], entries, True)


def _selection_on_file(path: Path, users: list[str], command: str) -> _MadeSelection:
    """The selection that notebook 03 wrote to `path`; ParameterError when it is missing or
    cannot be read."""
    where = f"notebook 03's selection {path}"
    make = f"`{command} --only 03`"
    if not path.exists():
        raise ParameterError(
            f"{users[0]} takes its weights from notebook 03's selection, and {path} does not "
            f"exist; make it with {make} (or run both: add --only 03), or pass -p "
            f"{users[0][:2]}:alpha and -p {users[0][:2]}:beta"
        )
    try:
        data = json.loads(path.read_text())
        made_for, seeds = data["profile"], list(data["seeds"])
        entries = {
            e: (int(v["steps"]), str(v["base_hash"])) for e, v in data["experiments"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ParameterError(
            f"{where} cannot be read ({type(err).__name__}: {err}); make it again with {make}"
        ) from None
    return _MadeSelection(where, made_for, seeds, entries, False)


def _check_user(
    nb: str,
    profile: str,
    resolved: Mapping[str, Mapping[str, Any]],
    made: _MadeSelection,
    command: str,
) -> None:
    """Refuse notebook `nb` (01 or 02) when `made` was not made for its profile, its
    experiment, its step count and base configuration, or on seeds that it does not report."""
    p, short = resolved[nb], nb[:2]
    name, base = _EXPERIMENT_OF[nb], base_config(nb, p)
    fixed = f"or fixed weights: -p {short}:alpha and -p {short}:beta"
    where = made.where
    if made.profile != profile:
        raise ParameterError(
            f"{nb}: profile {profile!r} cannot use {where}, made for profile {made.profile!r}; "
            f"make a matching one with `{command} --only 03`, {fixed}"
        )
    if name not in made.entries:
        if made.in_run:
            raise ParameterError(
                f"{nb}: takes its {name} weights from notebook 03, whose parameter "
                f"'experiments' = {resolved[_SWEEP]['experiments']} leaves out {name!r}; "
                f"accepted: experiments that include {name!r}, {fixed}"
            )
        raise ParameterError(
            f"{nb}: {where} holds no {name!r} weights (made for {sorted(made.entries)}); make "
            f"them with `{command} --only 03`, {fixed}"
        )
    steps, made_hash = made.entries[name]
    if steps != base.train.steps:
        shown = p["steps"] if p["steps"] is not None else f"None (the preset's {steps})"
        match = (
            f"accepted: the same step count for 03 (-p 03:steps {base.train.steps}, or -p "
            f"steps {base.train.steps} for both)"
            if made.in_run
            else f"make a matching selection with `{command} --only 03 -p 03:steps "
            f"{base.train.steps}`"
        )
        raise ParameterError(
            f"{nb}: parameter 'steps' = {shown} trains {base.train.steps} steps, but {where} "
            f"chose the {name} weights at {steps} steps; {match}, {fixed}"
        )
    if made_hash != selection.base_hash(base):
        given = {k: p[k] for k in ("dataset", "data_dir") if p[k] is not None}
        what = f"parameters {given}" if given else "its preset"
        raise ParameterError(
            f"{nb}: its {name} configuration ({what}; base config "
            f"{selection.base_hash(base)}) is not the one {where} selected on "
            f"({made_hash}); make a matching selection with `{command} --only 03`"
            + ("" if given else " (the code or a preset changed since)")
            + f", {fixed}"
        )
    default = SPECS[nb]["seeds"].defaults[profile]
    check_unseen_seeds(
        nb,
        p["seeds"],
        made.seeds,
        where,
        f"seeds that the selection does not use (the profile's: {default}), {fixed}",
    )


#: notebook -> function of its resolved parameters giving [(base Config, grid, seeds)]
PLANNERS: dict[str, Callable[[Mapping[str, Any]], list[tuple[Config, Grid, list[int]]]]] = {
    "01_speech_dsae": _plan_experiment("01_speech_dsae"),
    "02_images_pixelcnn_vae": _plan_experiment("02_images_pixelcnn_vae"),
    "03_information_plane": _plan_sweep,
}


def configs(
    notebook: str,
    profile: str = "quick",
    params: Mapping[str, Any] | None = None,
    pending_ok: bool = False,
    results_dir: str | Path | None = None,
) -> list[Config]:
    """Every Config that `notebook` trains in `profile` with parameter overrides `params`.

    ``pending_ok=True`` plans 01/02 with the fallback weights while notebook 03's selection is
    missing (for counts and estimates; the run folders will differ once it exists).
    ``results_dir`` is the results folder the runner will use (``run_all.sh --results``); it
    reaches the notebooks that take one, as the runner passes it.

    Raises
    ------
    ValueError
        For a notebook without a plan (the message lists the planned ones), or an invalid
        parameter (``paperlib.suite.params.ParameterError``, naming it).
    SelectionPending
        For 01/02 before notebook 03 wrote its selection (unless `pending_ok`).
    """
    if notebook not in PLANNERS:
        raise ValueError(f"notebook {notebook!r} has no training plan; planned: {sorted(PLANNERS)}")
    params = dict(params or {})
    if results_dir is not None and "results_dir" in SPECS[notebook]:
        params["results_dir"] = str(results_dir)
    resolved = notebook_params(notebook, profile, params)
    return [
        cfg
        for base, grid, seeds in PLANNERS[notebook](resolved, pending_ok=pending_ok)
        for cfg in experiment.grid_configs(base, grid, seeds)
    ]


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its Config, its run folder and who trains it."""

    cfg: Config
    run_dir: Path
    notebooks: tuple[str, ...]
    #: planned with fallback weights while notebook 03's selection is missing (dry runs only)
    pending: bool = False

    @property
    def steps_done(self) -> int:
        """Steps of the newest checkpoint in the run folder (0 when none)."""
        return checkpoint_step(self.run_dir)

    @property
    def complete(self) -> bool:
        """All steps done, or stopped early on a validation plateau (``fit`` leaves a marker)."""
        if (self.run_dir / "checkpoints" / train.STOPPED_MARKER).exists():
            return True
        return self.steps_done >= self.cfg.train.steps


def checkpoint_step(run_dir: str | Path) -> int:
    """The step of the newest ``checkpoints/step_XXXXXXX.pt`` in `run_dir` (0 when none).

    Read from the file names: ``paperlib.training.train.fit`` writes checkpoints atomically, so a file
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
    pending: list[str] | None = None,
    results_dir: str | Path | None = None,
) -> list[Run]:
    """The runs of several notebooks, in order, each run folder once.

    A notebook whose weights wait for notebook 03's selection is left out and named, with the
    reason, in `pending` when a list is given; otherwise its runs are planned with the fallback
    weights and marked ``pending`` (for a dry run's counts).

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
        waiting = False
        try:
            cfgs = configs(nb, profile, params, results_dir=results_dir)
        except SelectionPending as err:
            if pending is not None:
                pending.append(str(err))
                continue
            cfgs = configs(nb, profile, params, pending_ok=True, results_dir=results_dir)
            waiting = True
        for cfg in cfgs:
            d = records.run_dir_for(cfg, root)
            if d in by_dir:
                r = by_dir[d]
                if nb not in r.notebooks:
                    by_dir[d] = Run(r.cfg, d, (*r.notebooks, nb), r.pending)
            else:
                by_dir[d] = Run(cfg, d, (nb,), waiting)
    return list(by_dir.values())


def planned_notebooks() -> list[str]:
    """The notebooks with a training plan whose source exists, in order."""
    return [n for n in notebook_names() if n in PLANNERS]


# ----------------------------------------------------------------------------------------------
# the first call of every notebook


def notebook_config(notebook: str, params: Mapping[str, Any]) -> Any:
    """The configuration that `notebook` trains from, given its resolved `params`.

    - ``00_walkthrough``: the smoke speech preset in the smoke profile, otherwise the quick
      speech preset shrunk to the walkthrough's budget (``presets.speech.WALKTHROUGH_SHRINK``);
    - ``01_speech_dsae``, ``02_images_pixelcnn_vae``: `base_config` (the preset of the profile
      with ``dataset``, ``data_dir`` and ``steps``), the Config that the cluster launcher plans
      from as well;
    - ``03_information_plane``: ``{experiment: base_config(...)}`` for each of ``experiments``;
    - ``05_mechanism``: the mechanism preset of the profile;
    - ``04_summary``: None (it trains nothing).

    ``steps``, where the notebook has it and it is not None, replaces the preset's step count;
    ``overrides`` (01, 02, 03) replaces any other preset value.
    """
    if notebook in _EXPERIMENT_OF:
        return base_config(notebook, params)
    if notebook == "03_information_plane":
        return {name: base_config(notebook, params, name) for name in params["experiments"]}
    if notebook == "04_summary":
        return None
    if notebook == "00_walkthrough":
        smoke = params["profile"] == "smoke"
        cfg = config.load("smoke" if smoke else "quick", "speech")
        if not smoke:
            cfg = cfg.replace(**presets.speech.WALKTHROUGH_SHRINK)
    elif notebook == "05_mechanism":
        cfg = config.load(params["profile"], "mechanism")
    else:
        raise ParameterError(f"unknown notebook {notebook!r}; accepted: {notebook_names()}")
    if params.get("steps") is not None:
        cfg = cfg.replace(train__steps=params["steps"])
    return cfg


def setup(notebook: str, namespace: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The cell after a notebook's ``parameters`` cell: ``params, cfg = setup(name, globals())``.

    Validates the parameters as they stand in `namespace` (``paperlib.suite.params.check_params``: an
    unknown, misspelled or invalid one raises ParameterError naming it), builds the notebook's
    configuration (`notebook_config`) and, for 01/02 run by hand (JupyterLab, no runner),
    refuses reported seeds that chose notebook 03's weights before anything trains.

    Returns
    -------
    (params, cfg): the parameters with the profile's defaults filled in for ``None``, and the
    notebook's Config (a dict of Configs for 03, None for 04).
    """
    params = check_params(notebook, namespace)
    cfg = notebook_config(notebook, params)
    if notebook in _EXPERIMENT_OF and (params["alpha"] is None or params["beta"] is None):
        # read where experiment.compare_objectives reads it: relative to the working folder
        path = Path(params["results_dir"]) / "03_information_plane" / selection.SELECTION_FILE
        if path.exists():  # a missing selection is refused when the weights are loaded
            check_unseen_seeds(
                f"the {cfg.experiment} experiment",
                params["seeds"],
                json.loads(path.read_text()).get("seeds", []),
                f"notebook 03's selection {path}",
                "seeds that the selection did not use, or fixed weights (alpha and beta)",
            )
    return params, cfg

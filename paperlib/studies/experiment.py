"""Runs: train every objective for every seed, evaluate, collect metrics.

This is what the notebooks call, so that they stay a parameters cell plus a few lines::

    res = experiment.run_experiment(cfg, ["elbo", "mi", "cmi"], seeds=[0, 1, 2])
    res.metrics  # {objective: {metric: [value per seed]}}  -> records.write_metrics

One run is `train_run` then `evaluate_run` (`paperlib.studies.run_metrics`, with `training_metrics`); `run_experiment` runs
objectives x seeds on the test split (notebooks 01 and 02 through `compare_objectives`), `sweep`
and `sweeps` a grid of weights x seeds on the validation split (notebook 03). Which weights a
run uses is `paperlib.studies.selection`'s question; the floors and the shared classifiers beside the
runs are `paperlib.studies.references`'.

Training runs are resumable: each (objective, weights, seed, config) has a run folder under
``runs/`` (`paperlib.records.run_dir_for`) holding its checkpoints, so a notebook killed mid-way
picks up where it stopped, and a finished run is not trained again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlib import records, runtime, stats
from paperlib.config import Config
from paperlib.data import DataBundle, load_data, make_loaders
from paperlib.evaluation import evaluate
from paperlib.models import build_model
from paperlib.studies.references import (
    Classifiers,
    fit_classifiers,
    floors,
)
from paperlib.studies.run_metrics import evaluate_run
from paperlib.studies.selection import SELECTION_FILE, load_selection, objective_grid


def run_config(base: Config, objective: str, seed: int, **weights: float) -> Config:
    """The Config of one training run: `base` with this objective, its weights and seed."""
    w = {"alpha": 0.0, "beta": 0.0, **weights}
    return base.replace(
        objective__name=objective,
        objective__alpha=w["alpha"],
        objective__beta=w["beta"],
        train__seed=seed,
    )


def grid_configs(
    base: Config, grid: list[tuple[str, float, float]], seeds: list[int]
) -> list[Config]:
    """The Config of every training run of `grid` x `seeds`, objective-major.

    `run_experiment` and `sweep` train exactly these, in this order; ``paperlib.suite.plan`` lists
    them for the launcher, so the two cannot drift apart.
    """
    return [run_config(base, o, s, alpha=a, beta=b) for o, a, b in grid for s in seeds]


def train_run(
    cfg: Config,
    bundle: DataBundle,
    run_root: str | Path | None = None,
    run_dir: str | Path | None = None,
):
    """Build the model and objective named by `cfg` and fit them (resuming when possible).

    Runs are resumable and cached under ``runs/<experiment>/<profile>/``
    (`records.run_dir_for`), or in `run_dir` when given (one folder that a study resumes from
    budget to budget).

    Returns
    -------
    (model, objective, history) with the model in eval mode on its training device.
    """
    from paperlib.training.regularizers import build_objective
    from paperlib.training.train import fit

    runtime.seed_everything(cfg.train.seed)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    model = build_model(cfg.model, bundle.info)
    # the objective's own generator (critic shuffles, prior samples) follows the run's seed
    objective = build_objective(cfg.objective, model, seed=cfg.train.seed)
    run_dir = run_dir if run_dir is not None else records.run_dir_for(cfg, run_root)
    history = fit(model, objective, loaders, cfg, run_dir=run_dir)
    model.eval()
    return model, objective, history


# ----------------------------------------------------------------------------------------------
# an experiment: objectives x seeds


@dataclass
class ExperimentResult:
    """Everything a notebook needs for its figures and metrics.json.

    ``metrics[objective][metric]`` is a list with one value per seed; ``histories``,
    ``encodings`` and ``models`` keep the first seed's run of each objective for figures.
    """

    cfg: Config
    seeds: list[int]
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    encodings: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    bundle: DataBundle | None = None
    classifiers: Classifiers | None = None
    wall_seconds: float = 0.0
    floors: dict[str, float] = field(default_factory=dict)

    def loader(self, split: str):
        """A DataLoader over one split of the experiment's data (unshuffled for val/test)."""
        return make_loaders(self.cfg.data, self.bundle, seed=self.seeds[0])[split]

    def embeddings(self, split: str = "test") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{objective: (posterior means of z, labels)}`` of the first seed, for t-SNE plots."""
        return {o: (e[split]["z_mean"], e[split]["y"]) for o, e in self.encodings.items()}

    def seed_points(self, x: str, y: str) -> dict[str, list[tuple[float, float, str]]]:
        """``{objective: [(x, y, "seed k")]}``, one point per seed (e.g. rate vs distortion)."""
        return {
            o: [(m[x][i], m[y][i], f"seed {s}") for i, s in enumerate(self.seeds)]
            for o, m in self.metrics.items()
        }

    def means(self) -> dict[str, dict[str, float]]:
        """``{objective: {metric: mean over seeds}}``.

        A metric m with per-seed bootstrap bounds is given its interval over seeds instead of
        averaged bounds (`paperlib.stats.across_seeds`): ``m_low`` / ``m_high`` are the 95 %
        t-interval of its per-seed values (with one seed, that seed's bootstrap bounds), and
        ``m_seeds`` the number of seeds, which says which of the two it is.
        """
        out = {
            o: {k: float(np.nanmean(v)) for k, v in ms.items()} for o, ms in self.metrics.items()
        }
        for o, ms in self.metrics.items():
            for m, iv in stats.across_seeds(ms, self.seeds).items():
                out[o].update({f"{m}_low": iv["low"], f"{m}_high": iv["high"]})
                out[o][f"{m}_seeds"] = iv["n"]
        return out

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{objective: {metric: {"mean", "std", "per_seed"}}}`` (the metrics.json body,
        `records.summarize_objective`: a metric with per-seed bootstrap bounds also holds its
        t-interval over seeds, and the bounds are not averaged).

        Floors and ceilings (`compute_floors`) and paired differences (`paired`) are separate,
        so this stays the metrics.json layout; pass them to ``records.write_metrics`` as
        ``floors=res.floors`` and ``paired=res.paired()`` to store them in ``_meta``.
        """
        return {o: records.summarize_objective(ms, self.seeds) for o, ms in self.metrics.items()}

    def compute_floors(self) -> dict[str, float]:
        """`floors` of this experiment (random init over the experiment's seeds), cached."""
        if not self.floors:
            if self.bundle is None:
                raise ValueError("compute_floors: this ExperimentResult holds no data bundle")
            self.floors = floors(self.cfg, self.bundle, self.classifiers, seeds=self.seeds)
        return self.floors

    def paired(
        self,
        pairs: tuple[tuple[str, str], ...] = (("cmi", "mi"), ("cmi", "elbo")),
        level: float = 0.95,
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Paired per-seed differences, e.g. ``{"cmi - mi": {metric: {mean, low, high, n}}}``.

        Every objective ran on the same seeds, so ``metrics[o][k][i]`` of two objectives pair
        up by position; see `paperlib.stats.paired_table` (t-interval at `level`; pairs whose
        objectives did not run, and metrics with fewer than 2 finite pairs, are left out).
        """
        return stats.paired_table(self.metrics, self.seeds, pairs=pairs, level=level)


#: a training critic whose balanced accuracy stays below this is a broken instrument (chance is
#: 0.5): its runs are flagged in the tables instead of being compared silently
CRITIC_CHANCE_MARGIN = 0.55


def training_critic(objective, history=None) -> torch.nn.Module | None:
    """The objective's I(z; s) critic (cmi), or None; None too when `history` says the critic
    is not of the step whose weights the model holds (`History.critic_at_best`)."""
    if history is not None and not getattr(history, "critic_at_best", True):
        return None
    critics = getattr(objective, "critics", {})
    return critics["zs"] if "zs" in critics else None


def training_metrics(history) -> dict[str, float]:
    """What a run's training says about itself, as metrics.

    ``train_seconds``; ``train_steps`` and ``best_step`` (the weights kept: the best validation
    ELBO when it was tracked); ``trained`` (1.0 when `History.trained`: it stopped on its
    validation plateau or gained < 1 % over its last fifth, ``val_elbo_gain_last_fifth``); ``critic_acc_zs_final`` and ``mi_zs_train_final``, the training
    critic's balanced accuracy and I(z;s) estimate averaged over the last 20 % of logged steps
    (cmi only); ``critic_at_chance`` = 1.0 when that accuracy is below `CRITIC_CHANCE_MARGIN`.
    """
    m = {"train_seconds": float(history.train_seconds), "train_steps": float(history.steps)}
    if history.best_step is not None:
        m["best_step"] = float(history.best_step)
    # trained: stopped on the validation plateau, or < 1 % better over the last fifth of steps
    gain = history.val_elbo_gain()
    if math.isfinite(gain):  # NaN (not tracked before the last fifth) stays out of the tables
        m["val_elbo_gain_last_fifth"] = gain
    m["trained"] = float(history.trained())
    rows = [r for r in history.rows if "critic_acc_zs" in r]
    if rows:
        tail = rows[-max(1, len(rows) // 5) :]
        m["critic_acc_zs_final"] = float(np.mean([r["critic_acc_zs"] for r in tail]))
        m["mi_zs_train_final"] = float(np.mean([r.get("mi_zs", np.nan) for r in tail]))
        m["critic_at_chance"] = float(m["critic_acc_zs_final"] < CRITIC_CHANCE_MARGIN)
    # the warm-up: the critic's held-out accuracy (each batch before it trained on it) when
    # beta started, and that step (-1: it never started)
    held = [r for r in history.rows if "critic_acc_zs_heldout" in r]
    if held:
        on = [r for r in held if r.get("beta", 0.0) > 0]
        m["beta_start"] = float(on[0]["beta_start"]) if on else -1.0
        before = [r for r in held if r.get("beta", 0.0) == 0]
        if before:
            m["critic_acc_before_beta"] = float(before[-1]["critic_acc_zs_heldout"])
        m["critic_acc_zs_heldout_final"] = float(held[-1]["critic_acc_zs_heldout"])
    # the monitor's last reading: the training critic beside the other family on validation
    mon = [r for r in history.rows if "monitor_ratio" in r]
    if mon:
        for key in ("mi_zs_val_critic", "mi_zs_val_other", "monitor_ratio"):
            m[f"{key}_final"] = float(mon[-1][key])
    return m


def run_experiment(
    base: Config,
    objectives: list[str],
    seeds: list[int],
    *,
    alpha: float | None = None,
    beta: float | None = None,
    split: str = "test",
    run_root: str | Path | None = None,
    bundle: DataBundle | None = None,
    selection: dict[str, dict[str, float]] | None = None,
) -> ExperimentResult:
    """Train and evaluate every objective for every seed.

    Parameters
    ----------
    base : the experiment's Config (a preset, e.g. ``config.load("quick", "speech")``).
    objectives : names from paperlib.training.regularizers (elbo, mi, cmi, cmi_club).
    seeds : one training run per seed and objective.
    alpha, beta : override the selected weights.
    selection : ``{objective: {"alpha", "beta"}}`` from `selection.load_selection` (notebook 03's choice);
        None uses `selection.FALLBACK_WEIGHTS` for what alpha and beta do not give.
    split : "test" for reported numbers; "val" for model selection (never tune on test).
    run_root : where run folders (checkpoints) live; default ``runs/``.
    bundle : a loaded dataset to reuse (default: ``load_data(base.data)``).
    """
    t0 = time.perf_counter()
    bundle = bundle if bundle is not None else load_data(base.data)
    classifiers = fit_classifiers(base, bundle)
    res = ExperimentResult(cfg=base, seeds=list(seeds), bundle=bundle, classifiers=classifiers)
    grid = objective_grid(base.experiment, objectives, alpha, beta, selection)
    res.weights = {o: {"alpha": a, "beta": b} for o, a, b in grid}
    for i, cfg in enumerate(grid_configs(base, grid, list(seeds))):
        objective = cfg.objective.name
        model, trained, history = train_run(cfg, bundle, run_root)
        metrics, enc = evaluate_run(
            model, cfg, bundle, classifiers, split=split,
            critic=training_critic(trained, history), other=history.other_family,
        )  # fmt: skip
        metrics.update(training_metrics(history))
        for key, value in metrics.items():
            res.metrics.setdefault(objective, {}).setdefault(key, []).append(float(value))
        if i % len(seeds) == 0:  # the first seed of this objective
            res.histories[objective] = history.rows
            res.encodings[objective] = enc
            res.models[objective] = model
    res.wall_seconds = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------------------------
# notebooks 01 and 02: the objectives compared on the same seeds


@dataclass
class Comparison:
    """What notebooks 01 and 02 report besides their figures (see `compare_objectives`).

    ``res`` holds the trained models, metrics per seed, histories and encodings; ``floors`` the
    chance, random-init, raw-input and ceiling references; ``paired`` the per-seed differences
    ``cmi - mi`` and ``cmi - elbo``; ``regime`` whether z and s share information under ``mi``.
    """

    res: ExperimentResult
    floors: dict[str, float]
    paired: dict[str, dict[str, dict[str, float]]]
    regime: str
    params: dict[str, Any]

    def write_metrics(self, out_dir: str | Path) -> Path:
        """``<out_dir>/metrics.json``: the metrics per seed, with the parameters, weights, wall
        time, floors, paired differences and regime in ``_meta``."""
        return records.write_metrics(
            f"{out_dir}/metrics.json",
            self.res.metrics,
            self.res.cfg,
            params=self.params,
            weights=self.res.weights,
            wall_seconds=self.res.wall_seconds,
            floors=self.floors,
            paired=self.paired,
            regime=self.regime,
        )


def compare_objectives(params: Mapping[str, Any], cfg: Config) -> Comparison:
    """Train every objective of ``params["objectives"]`` for every seed and evaluate on the test
    split; then the floors, the paired differences and the regime.

    `params` are a notebook's resolved parameters (``paperlib.suite.plan.setup``). Weights: ``alpha``
    and ``beta`` of None take the weights that notebook 03 chose for this profile and step
    count, read from ``<results_dir>/03_information_plane/`` (relative to the working folder,
    like the notebooks' other paths); `load_selection` refuses a stale or foreign selection, and
    ``setup`` has already refused reported seeds that chose it.
    """
    alpha, beta = params["alpha"], params["beta"]
    selection = None
    if alpha is None or beta is None:  # the weights notebook 03 chose, checked against this cfg
        path = Path(params["results_dir"]) / "03_information_plane" / SELECTION_FILE
        selection = load_selection(path, cfg)
    res = run_experiment(
        cfg, params["objectives"], params["seeds"], alpha=alpha, beta=beta, selection=selection
    )
    regime = (
        evaluate.describe_regime(res.means()["mi"]) if "mi" in res.metrics else "mi not trained"
    )
    return Comparison(res, res.compute_floors(), res.paired(), regime, dict(params))


# ----------------------------------------------------------------------------------------------
# sweeps: a grid of weights x seeds on the validation split (notebook 03; the choice itself is
# paperlib.studies.selection)


def sweep(
    base: Config,
    grid: list[tuple[str, float, float]],
    seeds: list[int],
    *,
    split: str = "val",
    run_root: str | Path | None = None,
    bundle: DataBundle | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (objective, alpha, beta) of `grid` for every seed on `split`.

    Returns one row per run: ``{"objective", "alpha", "beta", "seed", **metrics}``. Model
    selection uses ``split="val"``; the test split is never looked at here.
    """
    bundle = bundle if bundle is not None else load_data(base.data)
    classifiers = fit_classifiers(base, bundle)
    rows = []
    for cfg in grid_configs(base, grid, list(seeds)):
        o = cfg.objective
        model, trained, history = train_run(cfg, bundle, run_root)
        metrics, _ = evaluate_run(
            model, cfg, bundle, classifiers, split=split,
            critic=training_critic(trained, history), other=history.other_family,
        )  # fmt: skip
        metrics.update(training_metrics(history))
        rows.append(
            {
                "objective": o.name,
                "alpha": o.alpha,
                "beta": o.beta,
                "seed": cfg.train.seed,
                "split": split,
                **metrics,
            }
        )
    return rows


def sweeps(
    bases: dict[str, Config],
    grid: list[tuple[str, float, float]] | Mapping[str, list[tuple[str, float, float]]],
    seeds: list[int],
    *,
    split: str = "val",
    jobs: int = 1,
) -> dict[str, list[dict[str, Any]]]:
    """`sweep` of several experiments, ``{name: rows}``, up to `jobs` of them at once.

    `grid` is one grid for every experiment, or ``{name: grid}`` (notebook 03's widening
    rounds, where each experiment's choice asks for its own points).

    The experiments are independent, so with ``jobs > 1`` each runs in its own process (spawned:
    a fresh interpreter, safe inside a Jupyter kernel) with one CPU thread, and the two sweeps
    of notebook 03 take the time of the longer one instead of their sum. Run folders, results
    and order are those of ``jobs=1``.
    """
    if jobs < 1:
        raise ValueError(f"sweeps: jobs must be >= 1, got {jobs}")
    grids = {n: grid[n] if isinstance(grid, Mapping) else grid for n in bases}
    jobs = min(jobs, len(bases))
    if jobs == 1:
        return {name: sweep(cfg, grids[name], seeds, split=split) for name, cfg in bases.items()}
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    # the workers' threads: set in the environment they are spawned with, then put back
    threads = str(max(1, runtime.cpu_cores() // jobs))
    saved = (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS"))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {
                name: pool.submit(sweep, cfg, grids[name], list(seeds), split=split)
                for name, cfg in bases.items()
            }
            return {name: f.result() for name, f in futures.items()}
    finally:
        for key, value in zip(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), saved):
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value

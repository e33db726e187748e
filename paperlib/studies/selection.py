"""Weight selection: which alpha and beta each objective trains with.

``alpha`` and ``beta`` come from the validation sweep of notebook 03, handed over explicitly:
03 runs `sweep_grid` through ``experiment.sweeps`` on the validation split, picks the best
point per objective (`select_weights`) and writes
``results/03_information_plane/selected_weights.json`` with its provenance (profile, steps,
seeds, a hash of the experiment's base config, commit); 01/02 read it with `load_selection`,
which refuses a file made for another profile, step count or configuration (DESIGN section 2,
"Fair comparison"). Passing numbers overrides it (`weights_for`); with neither, an objective
trains with `FALLBACK_WEIGHTS`. Nothing that a run produces is written back into the package.
`points`, `probe_vs_beta` and `rows_to_metrics` turn the sweep's rows into figures and
metrics.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from paperlib import records
from paperlib.config import Config

#: the name of notebook 03's selection file (in its results folder)
SELECTION_FILE = "selected_weights.json"

# Used only when no selection is given for an (experiment, objective): a documented starting
# point, not a tuned value. alpha > 1 actively raises I(x;z) through the bounded minibatch
# estimate (DESIGN section 2).
FALLBACK_WEIGHTS: dict[str, dict[str, float]] = {
    "elbo": {"alpha": 0.0, "beta": 0.0},
    "mi": {"alpha": 2.0, "beta": 0.0},
    "cmi": {"alpha": 2.0, "beta": 2.0},
    "cmi_club": {"alpha": 2.0, "beta": 2.0},
}


def weights_for(
    experiment: str,
    objective: str,
    alpha: float | None = None,
    beta: float | None = None,
    selection: dict[str, Any] | None = None,
) -> dict[str, float]:
    """alpha and beta for one objective: explicit values, else `selection`, else the fallback.

    ``selection`` is ``{objective: {"alpha", "beta"}}`` from `load_selection`. ``elbo`` always
    uses alpha = beta = 0, and ``mi`` beta = 0, whatever is passed.
    """
    recorded = (selection or {}).get(objective, {})
    fallback = FALLBACK_WEIGHTS.get(objective, {"alpha": 0.0, "beta": 0.0})
    w = {k: float(recorded.get(k, fallback[k])) for k in ("alpha", "beta")}
    if objective != "elbo" and alpha is not None:
        w["alpha"] = float(alpha)
    if objective in ("cmi", "cmi_club") and beta is not None:
        w["beta"] = float(beta)
    if objective == "elbo":
        w = {"alpha": 0.0, "beta": 0.0}
    elif objective == "mi":
        w["beta"] = 0.0
    return w


def base_hash(cfg: Config) -> str:
    """A hash of what a weight selection depends on: `cfg` without the objective's name,
    weights and the training seed (those vary inside a sweep)."""
    neutral = cfg.replace(
        objective__name="elbo",
        objective__alpha=0.0,
        objective__beta=0.0,
        train__seed=0,
        data__data_dir="",  # where the files are found is not what was selected on
        data__cache_dir="",
    )
    return records.config_hash(neutral)


def write_selection(
    path: str | Path,
    selections: dict[str, dict[str, Any]],
    configs: dict[str, Config],
    seeds: list[int],
) -> Path:
    """Notebook 03: write the chosen weights of every experiment with their provenance."""
    profiles = {c.profile for c in configs.values()}
    if len(profiles) != 1:
        raise ValueError(f"write_selection: configs of several profiles {sorted(profiles)}")
    payload = {
        "profile": profiles.pop(),
        "split": "val",
        "seeds": list(seeds),
        "git_commit": records.git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "experiments": {
            name: {
                "steps": configs[name].train.steps,
                "base_hash": base_hash(configs[name]),
                "weights": {o: w for o, w in sel.items() if not o.startswith("_")},
                "evidence": sel.get("_evidence", {}),
            }
            for name, sel in selections.items()
        },
    }
    records.write_json(path, payload)
    return Path(path)


def load_selection(path: str | Path, cfg: Config) -> dict[str, dict[str, float]]:
    """Notebooks 01/02: the weights notebook 03 chose for ``cfg.experiment``, checked.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist (run notebook 03 first, or pass alpha and beta).
    ValueError
        When the file was made for another profile, experiment, step count or base config.
    """
    path = Path(path)
    fix = f"run `./run_all.sh --profile {cfg.profile} --only 03` first, or pass alpha and beta"
    if not path.exists():
        raise FileNotFoundError(f"no weight selection at {path}: {fix}")
    data = json.loads(path.read_text())
    entry = data.get("experiments", {}).get(cfg.experiment)
    problems = []
    if data.get("profile") != cfg.profile:
        problems.append(f"profile {data.get('profile')!r} (this run: {cfg.profile!r})")
    if entry is None:
        problems.append(f"no entry for experiment {cfg.experiment!r}")
    else:
        if entry["steps"] != cfg.train.steps:
            problems.append(f"{entry['steps']} training steps (this run: {cfg.train.steps})")
        if entry["base_hash"] != base_hash(cfg):
            problems.append(
                f"base config {entry['base_hash']} (this run: {base_hash(cfg)}; data, model, "
                "objective or training settings differ)"
            )
    if problems:
        raise ValueError(f"the weight selection {path} was made for " + "; ".join(problems) +
                         f"; {fix}")  # fmt: skip
    return {o: {k: float(v[k]) for k in ("alpha", "beta")} for o, v in entry["weights"].items()}


def objective_grid(
    experiment: str,
    objectives: list[str],
    alpha: float | None = None,
    beta: float | None = None,
    selection: dict[str, dict[str, float]] | None = None,
) -> list[tuple[str, float, float]]:
    """(objective, alpha, beta) per objective, with the weights of `weights_for`."""
    out = []
    for o in objectives:
        w = weights_for(experiment, o, alpha, beta, selection)
        out.append((o, w["alpha"], w["beta"]))
    return out


#: `sweep_grid`'s betas value for cmi at beta = alpha: ELBO + alpha I(x;z|s), the paper's form
TIED = "tied"


def sweep_grid(
    objectives: list[str], alphas: list[float], betas: list[float] | str
) -> list[tuple[str, float, float]]:
    """(objective, alpha, beta) triples: elbo once, mi per alpha, cmi per (alpha, beta).

    ``betas="tied"`` gives cmi at beta = alpha only: with I(z;s|x) = 0 that is ELBO +
    alpha I_q(x; z | s), the objective the paper argues for, and half the runs of a grid.
    """
    if isinstance(betas, str) and betas != TIED:
        raise ValueError(f"betas must be a list of numbers or {TIED!r}, got {betas!r}")
    grid: list[tuple[str, float, float]] = []
    for o in objectives:
        if o == "elbo":
            grid.append(("elbo", 0.0, 0.0))
        elif o == "mi":
            grid += [("mi", float(a), 0.0) for a in alphas]
        elif betas == TIED:
            grid += [(o, float(a), float(a)) for a in alphas]
        else:
            grid += [(o, float(a), float(b)) for a in alphas for b in betas]
    return grid


def select_weights(rows: list[dict[str, Any]], criterion: str = "probe_acc") -> dict[str, Any]:
    """Per objective, the (alpha, beta) with the best mean `criterion` over seeds.

    Returns ``{objective: {"alpha", "beta", criterion, "on_edge"}, "_evidence": {...}}``
    (`write_selection` stores it); the evidence keeps every row, the criterion and the split.
    ``on_edge`` names each weight chosen at the edge of its grid with the next value to try
    (`widen`): a choice there is not yet a choice, and notebook 03 says so.
    """
    best: dict[str, Any] = {}
    groups: dict[tuple[str, float, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["alpha"], r["beta"]), []).append(r[criterion])
    for (o, a, b), vals in groups.items():
        score = float(np.mean(vals))
        if o not in best or score > best[o][criterion]:
            best[o] = {"alpha": a, "beta": b, criterion: score}
    for o, choice in best.items():
        tried = {
            w: sorted({k[i] for k in groups if k[0] == o}) for i, w in ((1, "alpha"), (2, "beta"))
        }
        edge = {w: widen(tried[w], choice[w]) for w in tried}
        choice["on_edge"] = {w: v for w, v in edge.items() if v is not None}
    best["_evidence"] = {
        "criterion": f"mean {criterion} over seeds on the '{rows[0]['split']}' split",
        "rows": rows,
        "git_commit": records.git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return best


def widen(values: list[float], chosen: float) -> float | None:
    """The next weight to try when `chosen` lies on the edge of the `values` tried, else None.

    A choice at the smallest (largest) of two or more values may be a grid that stops too
    early: the next value continues the grid's geometric step outward (values[0]^2 / values[1]
    below, values[-1]^2 / values[-2] above). A weight tried at one value only has no edge.
    """
    v = sorted(set(float(x) for x in values))
    if len(v) < 2 or chosen not in v:
        return None
    if chosen == v[0]:
        # below 0 (or from 0) a weight has nowhere to go
        return v[0] * v[0] / v[1] if v[0] > 0 else None
    if chosen == v[-1]:
        # from a grid that starts at 0, the step up doubles
        return v[-1] * v[-1] / v[-2] if v[-2] > 0 else 2 * v[-1]
    return None


def widening(
    rows: list[dict[str, Any]], criterion: str = "probe_acc"
) -> list[tuple[str, float, float]]:
    """The (objective, alpha, beta) points that choices on their grid's edge ask for next.

    Per objective, the choice of `select_weights` on the sweep's `rows`; where it lies on its
    grid's edge, a line search outward from it: the next alpha (`widen`) at the chosen beta, and
    the next beta at the chosen alpha. On a tied grid (every point of the objective at beta =
    alpha, the paper's ELBO + alpha I(x;z|s)) the two weights move together. Points already in
    `rows` are not asked for again; an objective inside its grid asks for nothing.
    """
    chosen = select_weights(rows, criterion)
    have = {(r["objective"], r["alpha"], r["beta"]) for r in rows}
    extra: list[tuple[str, float, float]] = []
    for o, w in chosen.items():
        edge = {} if o.startswith("_") else w["on_edge"]
        if not edge:
            continue
        points = {(a, b) for g, a, b in have if g == o}
        if len(points) > 1 and all(a == b for a, b in points):
            nxt = float(edge.get("alpha", edge.get("beta")))
            new = [(o, nxt, nxt)]
        else:
            new = [(o, float(edge["alpha"]), float(w["beta"]))] if "alpha" in edge else []
            new += [(o, float(w["alpha"]), float(edge["beta"]))] if "beta" in edge else []
        extra += [t for t in new if t not in have and t not in extra]
    return extra


def reading_edges(chosen: dict[str, dict[str, Any]]) -> str:
    """One sentence per experiment and objective whose choice lies on its grid's edge, with the
    next value to try (`widen`); the same sentence when none does."""
    parts = []
    for name, sel in chosen.items():
        for o, w in sel.items():
            if o.startswith("_"):
                continue
            for weight, nxt in w.get("on_edge", {}).items():
                parts.append(
                    f"{name} {o}: {weight} = {w[weight]:g} is on the edge of its grid; widen it "
                    f"to {nxt:.3g} before trusting the choice"
                )
    return "; ".join(parts) + "." if parts else "Every choice lies inside its grid."


def _label(r: dict[str, Any]) -> str:
    if r["objective"] == "elbo":
        return "elbo"
    if r["objective"] == "mi":
        return f"a={r['alpha']:g}"
    return f"a={r['alpha']:g}, b={r['beta']:g}"


def points(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float, str]]]:
    """``{objective: [(mean x, mean y, label)]}`` over seeds per grid point, for the plane plots."""
    groups: dict[tuple[str, float, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["alpha"], r["beta"]), []).append(r)
    out: dict[str, list[tuple[float, float, str]]] = {}
    for (o, _, _), rs in groups.items():
        pt = (float(np.mean([r[x] for r in rs])), float(np.mean([r[y] for r in rs])), _label(rs[0]))
        out.setdefault(o, []).append(pt)
    return out


def probe_vs_beta(
    rows: list[dict[str, Any]], metric: str = "probe_acc"
) -> dict[str, list[tuple[float, float, float]]]:
    """``{"alpha=a": [(beta, mean, sd)]}``: `mi` rows give beta = 0 of their alpha's line."""
    groups: dict[tuple[float, float], list[float]] = {}
    for r in rows:
        if r["objective"] in ("mi", "cmi"):
            groups.setdefault((r["alpha"], r["beta"]), []).append(r[metric])
    series: dict[str, list[tuple[float, float, float]]] = {}
    for (a, b), vals in sorted(groups.items()):
        series.setdefault(f"alpha = {a:g}", []).append(
            (b, float(np.mean(vals)), float(np.std(vals)))
        )
    return series


def rows_to_metrics(rows: list[dict[str, Any]], suffix: str = "") -> dict[str, dict[str, list]]:
    """metrics.json body for a sweep: one entry per grid point, named ``cmi_a2_b4<suffix>``."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        name = f"{r['objective']}_a{r['alpha']:g}_b{r['beta']:g}{suffix}"
        for k, v in r.items():
            if k not in ("alpha", "beta", "seed") and isinstance(v, (int, float)):
                out.setdefault(name, {}).setdefault(k, []).append(float(v))
    return out

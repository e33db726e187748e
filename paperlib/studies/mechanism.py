"""Notebook 05: a controlled study of when penalising I(z; s) helps.

The paper's argument (DESIGN section 2): with a budget on z, ``mi`` (ELBO + alpha I(x;z))
rewards any information in z, including what the local features s already hold, while ``cmi``
(ELBO + alpha I(x;z) - beta I(z;s)) rewards only I(x; z | s), so z should keep the global factor
and drop what s holds. On sequences with known factors (`paperlib.data.factors`) we turn two
dials and measure what ends up where:

- ``leak`` (data): how much of the global factor g one frame x_t shows, i.e. how much of g the
  DSAE's factorized local path q(s_t | x_t) can recover;
- ``z_dim`` (model): the budget on z.

The sweep is one-at-a-time around a centre point (each dial varied with the other at its centre
value), for `elbo`, `mi` and `cmi`, several seeds each, with the DSAE (paperlib.models.dsae) and
the one `paperlib.training.train.fit`. Each training seed also seeds the objective's own generator.

Measured on held-out sequences (`evaluate_run`): the probe of g from z (``probe_acc``), the probe
of l_t from z (``local_probe_acc_z``: local information in z), the probe of g from s
(``g_probe_acc_s``), post-hoc I(z;s) with a bootstrap interval (`bootstrap_mi`), I(x;z), and the
training critic's accuracy (``critic_acc_zs``; a critic at chance measures nothing). `references`
gives the floor and ceiling beside the probe: chance, the same model at random initialisation,
and probes on the raw input and on the true factors. `paired_differences` gives per-seed
cmi - mi with 95 % t-intervals, and the ``reading_*`` functions turn the numbers into sentences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from paperlib import runtime
from paperlib.config import Config
from paperlib.data import DataBundle, load_data, make_loaders
from paperlib.estimators.mi import ESTIMATORS
from paperlib.evaluation import evaluate
from paperlib.models import build_model
from paperlib.presets.margins import FAMILY_ALPHA, MARGINS
from paperlib.stats import decide_contrasts, t_interval
from paperlib.studies import experiment, selection

#: the two dials and the config keys they set
DIALS: dict[str, str] = {"leak": "data__leak", "z_dim": "model__z_dim"}
DIAL_LABELS: dict[str, str] = {
    "leak": "leak: share of g visible in one frame",
    "z_dim": "budget: dimension of z",
}
#: a training critic whose late accuracy stays below this is flagged: it tells joint from
#: shuffled pairs no better than a coin, so its I(z;s) estimate (and penalty) measures nothing
CRITIC_CHANCE_MARGIN = 0.55
#: share of the logged training steps, at the end, over which the critic's accuracy is averaged
CRITIC_TAIL = 0.25
#: logged steps per rolling mean when looking for the critic's peak accuracy
CRITIC_WINDOW = 5


# ----------------------------------------------------------------------------------------------
# the sweep's points and configs


def dial_points(centre: dict[str, Any], **values: Sequence[Any]) -> list[dict[str, Any]]:
    """One-at-a-time sweep: the centre, then each dial's values with the others at the centre.

    ``dial_points({"leak": 0.3, "z_dim": 2}, leak=[0.1, 0.3, 0.9], z_dim=[1, 2, 8])`` gives five
    distinct points (the centre once). Raises ValueError on a dial not in `DIALS`.
    """
    for name in [*centre, *values]:
        if name not in DIALS:
            raise ValueError(f"unknown dial {name!r}; accepted dials: {list(DIALS)}")
    missing = set(DIALS) - set(centre)
    if missing:
        raise ValueError(f"the centre point lacks dial(s) {sorted(missing)}")
    points = [dict(centre)]
    for name, vals in values.items():
        for v in vals:
            p = {**centre, name: v}
            if p not in points:
                points.append(p)
    return points


def point_name(point: dict[str, Any]) -> str:
    """``leak0.3_zdim2``: the name of a dial point in metrics.json."""
    return f"leak{point['leak']:g}_zdim{point['z_dim']}"


def point_config(base: Config, point: dict[str, Any]) -> Config:
    """`base` with the dial values of `point` applied."""
    return base.replace(**{DIALS[k]: v for k, v in point.items()})


def planned_configs(
    base: Config,
    points: list[dict[str, Any]],
    objectives: Sequence[str],
    seeds: Sequence[int],
    weights: dict[str, dict[str, float]],
) -> list[Config]:
    """Every training run's Config of `run_sweep`, in order (for launchers: paperlib.suite.plan)."""
    return [
        experiment.run_config(point_config(base, p), o, s, **weights[o])
        for p in points
        for o in objectives
        for s in seeds
    ]


# ----------------------------------------------------------------------------------------------
# one run


def critic_accuracy(
    rows: list[dict[str, float]], tail: float = CRITIC_TAIL, window: int = CRITIC_WINDOW
) -> tuple[float, float]:
    """(late, peak) accuracy of the training critic from the logged ``critic_acc_zs``.

    late: the mean over the last `tail` share of logged steps. peak: the largest mean over
    `window` consecutive logged steps (each logged value is one minibatch, so single values
    are noisy). A critic that the model defeats rises and then falls back towards 0.5 (low
    late, higher peak); one that never learns stays at 0.5 throughout (low peak). Both are NaN
    when nothing was logged (objectives without a z-s critic).
    """
    accs = np.asarray([r["critic_acc_zs"] for r in rows if "critic_acc_zs" in r], dtype=float)
    if len(accs) == 0:
        return math.nan, math.nan
    k = max(1, int(math.ceil(tail * len(accs))))
    w = min(window, len(accs))
    rolling = np.convolve(accs, np.ones(w) / w, mode="valid")
    return float(accs[-k:].mean()), float(rolling.max())


def bootstrap_mi(
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    seed: int = 0,
    hidden: int = 64,
    batch_size: int = 128,
    n_boot: int = 1000,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Post-hoc I(x; y) in nats with a percentile bootstrap interval: (estimate, lo, hi).

    A fresh density-ratio critic T (`paperlib.estimators.mi.DensityRatio`, the default bilinear critic) is
    trained on half of the rows (standardised with that half's statistics); on the other half,

        I ~ 1/n sum_i T(x_i, y_i),

    and the interval resamples those held-out rows ``n_boot`` times. It covers the sampling noise
    of the evaluation rows for this trained critic, not the critic's fitting noise (the seeds'
    spread shows that). `paperlib.estimators.mi.estimate_mi` returns only the mean, hence this function.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap_mi: level must lie in (0, 1), got {level!r}")
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(len(x), -1)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float32).reshape(len(y), -1)
    n = xt.shape[0]
    if n != yt.shape[0] or n < 8:
        raise ValueError(
            f"bootstrap_mi: x and y need the same number of rows, at least 8; got {n} and "
            f"{yt.shape[0]}"
        )
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    tr, va = perm[: n // 2], perm[n // 2 :]
    mx, sx = xt[tr].mean(0), xt[tr].std(0).clamp_min(1e-8)
    my, sy = yt[tr].mean(0), yt[tr].std(0).clamp_min(1e-8)
    xt, yt = (xt - mx) / sx, (yt - my) / sy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        est = ESTIMATORS.get("density_ratio")(xt.shape[1], yt.shape[1], hidden)
    opt = torch.optim.Adam(est.parameters(), lr=1e-3)
    bs = min(batch_size, len(tr))
    for _ in range(steps):
        idx = tr[torch.randint(len(tr), (bs,), generator=gen)]
        loss = est.loss(xt[idx], yt[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        # T(x_i, y_i) on held-out joint pairs                                              (n,)
        t_joint = est.critic.pair(xt[va], yt[va]).numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    boots = t_joint[rng.integers(len(t_joint), size=(n_boot, len(t_joint)))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(t_joint.mean()), float(lo), float(hi)


def evaluate_run(
    model,
    cfg: Config,
    bundle: DataBundle,
    history_rows: list[dict[str, float]] | None = None,
    split: str = "test",
) -> dict[str, float]:
    """The metrics of one run on `split` (probes are fitted on the training split).

    Returns
    -------
    dict with ``probe_acc`` (g from the posterior mean of z), ``probe_acc_sample`` (g from a
    sample of z), ``local_probe_acc_z`` (l_t at a random frame from z), ``g_probe_acc_s`` (g from
    s pooled over time), ``local_probe_acc_s`` (l_t from s_t), ``kl_z_nats``, ``mi_xz_nats``
    (minibatch aggregate-posterior estimate over the split), ``mi_zs_nats`` with its bootstrap
    interval ``mi_zs_lo`` / ``mi_zs_hi`` (z sample against pooled s), ``distortion_nats``, and
    ``critic_acc_zs`` / ``critic_acc_zs_peak`` (the training critic's late and peak accuracy,
    `critic_accuracy`; NaN without a z-s critic).
    """
    seed = cfg.train.seed
    loaders = make_loaders(cfg.data, bundle, seed=seed)
    n = cfg.eval.max_items
    torch.manual_seed(seed)  # the posterior samples drawn while encoding
    gen = torch.Generator().manual_seed(seed)
    tr = evaluate.encode_dataset(model, loaders["train"], max_items=n, generator=gen)
    te = evaluate.encode_dataset(model, loaders[split], max_items=n, generator=gen)
    lp = evaluate.linear_probe
    m = evaluate.probe_metrics(tr, te, seed=seed)
    m["local_probe_acc_z"] = lp(
        tr["z_mean"], tr["y_local_at_frame"], te["z_mean"], te["y_local_at_frame"], seed
    )
    m["g_probe_acc_s"] = lp(tr["s_pooled"], tr["y"], te["s_pooled"], te["y"], seed)
    m["local_probe_acc_s"] = lp(
        tr["s_frames"], tr["y_local_at_frame"], te["s_frames"], te["y_local_at_frame"], seed
    )
    m.update(evaluate.rate_distortion(te))
    m["mi_xz_nats"] = evaluate.aggregate_mi_xz(te["z_sample"], te["z_mean"], te["z_logvar"])
    est, lo, hi = bootstrap_mi(
        te["z_sample"], te["s_pooled"], steps=cfg.eval.posthoc_critic_steps, seed=seed
    )
    m.update(mi_zs_nats=est, mi_zs_lo=lo, mi_zs_hi=hi)
    m["critic_acc_zs"], m["critic_acc_zs_peak"] = critic_accuracy(history_rows or [])
    return m


# ----------------------------------------------------------------------------------------------
# floor and ceiling of the probe of g


def references(
    base: Config, bundle: DataBundle, seeds: Sequence[int], split: str = "test"
) -> dict[str, Any]:
    """Floor and ceiling beside the probe of g from z, on `split` of `bundle`.

    Returns
    -------
    dict with ``chance`` (1/K), ``random_init`` (per-seed probe of g from z of the untrained
    DSAE of `base`), ``raw_input`` (probe on the flattened frames x_1:T), ``one_frame`` (probe
    on a single frame x_t, t drawn per item: what a factorized local path can see) and
    ``true_factors`` (probe on the sequence mean of the true g-parts u_t).
    """
    loaders = make_loaders(base.data, bundle, seed=0)
    n = base.eval.max_items
    tr, te = bundle.train.tensors, getattr(bundle, split).tensors
    tr_n, te_n = min(n, len(tr["y"])), min(n, len(te["y"]))
    ytr, yte = tr["y"][:tr_n].numpy(), te["y"][:te_n].numpy()
    xtr, xte = tr["x"][:tr_n].numpy(), te["x"][:te_n].numpy()
    rng = np.random.default_rng(0)
    t_tr = rng.integers(xtr.shape[1], size=tr_n)
    t_te = rng.integers(xte.shape[1], size=te_n)
    lp = evaluate.linear_probe
    out: dict[str, Any] = {
        "chance": 1.0 / bundle.info["n_classes"],
        "raw_input": lp(xtr.reshape(tr_n, -1), ytr, xte.reshape(te_n, -1), yte),
        "one_frame": lp(xtr[np.arange(tr_n), t_tr], ytr, xte[np.arange(te_n), t_te], yte),
        "true_factors": lp(
            tr["u"][:tr_n].mean(1).numpy(), ytr, te["u"][:te_n].mean(1).numpy(), yte
        ),
    }
    random_init = []
    for seed in seeds:
        runtime.seed_everything(seed)
        model = build_model(base.model, bundle.info).eval()
        gen = torch.Generator().manual_seed(seed)
        enc_tr = evaluate.encode_dataset(model, loaders["train"], max_items=n, generator=gen)
        enc_te = evaluate.encode_dataset(model, loaders[split], max_items=n, generator=gen)
        random_init.append(lp(enc_tr["z_mean"], enc_tr["y"], enc_te["z_mean"], enc_te["y"], seed))
    out["random_init"] = random_init
    return out


# ----------------------------------------------------------------------------------------------
# the sweep


def run_sweep(
    base: Config,
    points: list[dict[str, Any]],
    objectives: Sequence[str],
    seeds: Sequence[int],
    weights: dict[str, dict[str, float]],
    *,
    split: str = "test",
    run_root: Any = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (dial point, objective, seed) with the objective's `weights`.

    Returns one row per run: ``{"objective", "point", "leak", "z_dim", "seed", "alpha", "beta",
    "split", **metrics, "train_seconds"}``. Each point's corpus is generated once.
    """
    for o in objectives:
        if o not in weights:
            raise ValueError(f"run_sweep: no weights for objective {o!r}; got {sorted(weights)}")
    rows = []
    for point in points:
        cfg_point = point_config(base, point)
        bundle = load_data(cfg_point.data)
        for objective in objectives:
            w = {"alpha": 0.0, "beta": 0.0, **weights[objective]}
            for seed in seeds:
                cfg = experiment.run_config(cfg_point, objective, seed, **w)
                model, _, history = experiment.train_run(cfg, bundle, run_root)
                m = evaluate_run(model, cfg, bundle, history.rows, split=split)
                m["train_seconds"] = float(history.train_seconds)
                rows.append(
                    {
                        "objective": objective,
                        "point": point_name(point),
                        **point,
                        "seed": seed,
                        **w,
                        "split": split,
                        **m,
                    }
                )
    return rows


def select_weights(
    base: Config,
    point: dict[str, Any],
    alphas: Sequence[float],
    betas: Sequence[float],
    seeds: Sequence[int],
    criterion: str = "probe_acc",
    run_root: Any = None,
    widen_rounds: int = 0,
) -> dict[str, Any]:
    """Choose alpha for `mi`, then beta for `cmi` at that alpha, on the **validation** split.

    `cmi` keeps `mi`'s alpha so that the two differ only by the -beta I(z;s) term: the
    comparison isolates what the penalty does. Both choices maximise the mean `criterion`
    (default: the probe of g from z) over `seeds` at the dial `point`. A choice on its grid's
    edge is not yet a choice: up to `widen_rounds` times the next value outward
    (`selection.widen`, the grid's geometric step) is trained on the same seeds and the choice
    made again.

    Returns
    -------
    ``{"elbo": {...}, "mi": {"alpha", "beta"}, "cmi": {"alpha", "beta"}, "_evidence": {...}}``;
    the evidence holds every validation row, the criterion, the point, the split, the values
    tried per weight (``grids``) and each weight still on its grid's edge with the next value
    to try (``on_edge``, empty when every choice is inside its grid).
    """
    if not alphas or not betas:
        raise ValueError("select_weights: alphas and betas must be non-empty lists")

    def line_search(objective: str, key: str, grid: Sequence[float], fixed: dict[str, float]):
        """The best value of `objective`'s weight `key` over `grid` (the other weights at
        `fixed`), widened outward from an edge; with the values tried and their rows."""
        tried: list[float] = []
        rows: list[dict[str, Any]] = []
        pending = [float(v) for v in grid]
        for _ in range(widen_rounds + 1):
            for value in pending:
                tried.append(value)
                w = {objective: {**fixed, key: value}}
                rows += run_sweep(base, [point], [objective], seeds, w, split="val",
                                  run_root=run_root)  # fmt: skip
            outward = selection.widen(tried, _best(rows, key, criterion))
            if outward is None:
                break
            pending = [outward]
        return _best(rows, key, criterion), sorted(tried), rows

    alpha, alphas_tried, mi_rows = line_search("mi", "alpha", alphas, {})
    beta, betas_tried, cmi_rows = line_search("cmi", "beta", betas, {"alpha": alpha})
    edges = {"mi alpha": selection.widen(alphas_tried, alpha),
             "cmi beta": selection.widen(betas_tried, beta)}  # fmt: skip
    return {
        "elbo": {"alpha": 0.0, "beta": 0.0},
        "mi": {"alpha": alpha, "beta": 0.0},
        "cmi": {"alpha": alpha, "beta": beta},
        "_evidence": {
            "criterion": f"mean {criterion} over seeds {list(seeds)} on the 'val' split",
            "point": point_name(point),
            "grids": {"mi alpha": alphas_tried, "cmi beta": betas_tried},
            "widen_rounds": int(widen_rounds),
            "on_edge": {w: v for w, v in edges.items() if v is not None},
            "rows": [_compact(r) for r in mi_rows + cmi_rows],
        },
    }


def _best(rows: list[dict[str, Any]], key: str, criterion: str) -> float:
    groups: dict[float, list[float]] = {}
    for r in rows:
        groups.setdefault(float(r[key]), []).append(r[criterion])
    return max(groups, key=lambda k: float(np.mean(groups[k])))


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("objective", "point", "seed", "alpha", "beta", "probe_acc", "mi_zs_nats", "kl_z_nats")
    return {k: row[k] for k in keep if k in row}


# ----------------------------------------------------------------------------------------------
# aggregation: intervals, paired differences, metrics.json


def _on_line(rows: list[dict[str, Any]], dial: str, centre: dict[str, Any]) -> list[dict]:
    """Rows whose other dials sit at the centre (the points of `dial`'s one-at-a-time line)."""
    others = [d for d in DIALS if d != dial]
    return [r for r in rows if all(r[d] == centre[d] for d in others)]


def series(
    rows: list[dict[str, Any]], dial: str, centre: dict[str, Any], metric: str
) -> dict[str, list[tuple[float, float, float, float]]]:
    """``{objective: [(dial value, mean, lo, hi)]}`` of `metric` along `dial` (95 % t-intervals)."""
    out: dict[str, dict[float, list[float]]] = {}
    for r in _on_line(rows, dial, centre):
        out.setdefault(r["objective"], {}).setdefault(r[dial], []).append(r[metric])
    return {
        o: [(float(v), *t_interval(vals)) for v, vals in sorted(by.items())]
        for o, by in out.items()
    }


def paired_differences(
    rows: list[dict[str, Any]], metric: str = "probe_acc", a: str = "cmi", b: str = "mi"
) -> dict[str, dict[str, Any]]:
    """Per dial point, the per-seed differences a - b of `metric` with a 95 % t-interval.

    Returns ``{point: {"mean", "lo", "hi", "n", "per_seed"}}``; seeds present for both
    objectives are paired, others ignored.
    """
    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        by.setdefault((r["point"], r["objective"]), {})[r["seed"]] = r[metric]
    out = {}
    for point in dict.fromkeys(r["point"] for r in rows):
        va, vb = by.get((point, a), {}), by.get((point, b), {})
        diffs = [va[s] - vb[s] for s in sorted(set(va) & set(vb))]
        if diffs:
            mean, lo, hi = t_interval(diffs)
            out[point] = {"mean": mean, "lo": lo, "hi": hi, "n": len(diffs), "per_seed": diffs}
    return out


def separated(
    rows: list[dict[str, Any]], metric: str = "probe_acc", a: str = "cmi", b: str = "mi"
) -> list[str]:
    """Dial points where `a`'s 95 % t-interval of `metric` lies wholly above `b`'s."""
    out = []
    for point in dict.fromkeys(r["point"] for r in rows):
        ia = t_interval([r[metric] for r in rows if r["point"] == point and r["objective"] == a])
        ib = t_interval([r[metric] for r in rows if r["point"] == point and r["objective"] == b])
        if math.isfinite(ia[1]) and math.isfinite(ib[2]) and ia[1] > ib[2]:
            out.append(point)
    return out


def flagged_critics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs whose training critic stayed at chance: its peak accuracy (`critic_accuracy`) never
    reached `CRITIC_CHANCE_MARGIN`, so it never told joint from shuffled pairs and its penalty
    had no direction (a broken instrument). ``[{"objective", "point", "seed",
    "critic_acc_zs", "critic_acc_zs_peak"}]``."""
    return [
        {k: r[k] for k in ("objective", "point", "seed", "critic_acc_zs", "critic_acc_zs_peak")}
        for r in rows
        if math.isfinite(r.get("critic_acc_zs_peak", math.nan))
        and r["critic_acc_zs_peak"] < CRITIC_CHANCE_MARGIN
    ]


def rows_to_metrics(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """metrics.json body: ``{"<objective>_<point>": {metric: [value per seed]}}``."""
    skip = {"point", "objective", "split", "seed", "leak", "z_dim", "alpha", "beta"}
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        name = f"{r['objective']}_{r['point']}"
        for k, v in r.items():
            if k not in skip and isinstance(v, (int, float)):
                out.setdefault(name, {}).setdefault(k, []).append(float(v))
    return out


# ----------------------------------------------------------------------------------------------
# readings: sentences generated from the numbers


def _fmt_interval(d: dict[str, Any] | tuple[float, float, float]) -> str:
    mean, lo, hi = (d["mean"], d["lo"], d["hi"]) if isinstance(d, dict) else d
    if not math.isfinite(lo):
        return f"{mean:+.3f} (one seed, no interval)"
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _verdict(d: dict[str, Any]) -> str:
    if not math.isfinite(d["lo"]):
        return "undecided"
    if d["lo"] > 0:
        return "cmi higher"
    if d["hi"] < 0:
        return "cmi lower"
    return "no clear difference"


def _decisions(diffs: dict[str, dict[str, Any]], metric: str, a: str = "cmi") -> dict[str, str]:
    """point -> "cmi better" / "cmi worse" / "equivalent within +-m" / "inconclusive" for a
    metric with a stated margin (``presets.margins``), Holm-corrected over the points; {} for
    other metrics (they keep the interval's verdict)."""
    if metric not in MARGINS:
        return {}
    margin, direction = MARGINS[metric]
    decided = decide_contrasts(
        {p: (d["per_seed"], margin, direction) for p, d in diffs.items()}, alpha=FAMILY_ALPHA
    )
    words = {"better": f"{a} better", "worse": f"{a} worse"}
    out = {}
    for p, r in decided.items():
        w = words.get(str(r["decision"]), str(r["decision"]))
        if r["decision"] == "equivalent":
            w += f" within ±{margin:g}"
        elif r["within_margin"]:
            w += f", by less than {margin:g}"
        n = len(decided)
        out[p] = f"{w}, Holm over {n} points" if n > 1 else f"{w} (one point: no correction)"
    return out


def reading_differences(
    rows: list[dict[str, Any]], metric: str, label: str, a: str = "cmi", b: str = "mi"
) -> str:
    """One sentence per dial point: ``at leak=0.1, z_dim=2: cmi - mi on <label> = +0.07
    [0.03, 0.11] (5 seeds; cmi higher)``, from per-seed paired differences."""
    parts = []
    diffs = paired_differences(rows, metric, a, b)
    decided = _decisions(diffs, metric)
    for point, d in diffs.items():
        r = next(r for r in rows if r["point"] == point)
        where = ", ".join(f"{k}={r[k]:g}" for k in DIALS)
        verdict = decided.get(point) or _verdict(d)
        parts.append(
            f"at {where}: {a} - {b} on {label} = {_fmt_interval(d)} ({d['n']} seeds; {verdict})"
        )
    return "; ".join(parts) + "." if parts else f"No paired {a}/{b} runs for {label}."


def reading_probe(rows: list[dict[str, Any]], refs: dict[str, Any] | None = None) -> str:
    """The reading of the g-probe figure: paired cmi - mi per point, the points where cmi's
    interval lies wholly above mi's, and the floor and ceiling."""
    text = "Probe of g from z: " + reading_differences(rows, "probe_acc", "the g-probe")
    if all("probe_acc_knn" in r for r in rows):
        text += " k-NN probe: " + reading_differences(rows, "probe_acc_knn", "the k-NN g-probe")
    wins = separated(rows, "probe_acc")
    losses = separated(rows, "probe_acc", a="mi", b="cmi")
    if wins:
        text += (
            f" cmi's 95 % interval lies wholly above mi's at {', '.join(wins)}: the regime "
            "where penalising I(z;s) helps z keep the global factor."
        )
    else:
        text += (
            " At no dial point does cmi's 95 % interval lie wholly above mi's: no regime where "
            "penalising I(z;s) clearly improves the g-probe was found in this sweep."
        )
    if losses:
        text += f" mi's interval lies wholly above cmi's at {', '.join(losses)}."
    if refs is not None:
        ri = float(np.mean(refs["random_init"]))
        text += (
            f" Floor and ceiling: chance {refs['chance']:.3f}, the untrained DSAE {ri:.3f}, a "
            f"probe on the raw frames {refs['raw_input']:.3f}, on one frame "
            f"{refs['one_frame']:.3f}, on the true factors {refs['true_factors']:.3f}."
        )
    return text


def reading_local(rows: list[dict[str, Any]]) -> str:
    """The reading of the local-information figure: cmi - mi on the probe of l_t from z and on
    the probe of g from s, per point."""
    return (
        "Local information in z: "
        + reading_differences(rows, "local_probe_acc_z", "the l_t-probe from z")
        + " Global information in s: "
        + reading_differences(rows, "g_probe_acc_s", "the g-probe from s")
    )


def reading_plane(rows: list[dict[str, Any]]) -> str:
    """The reading of the information plane: cmi - mi on post-hoc I(z;s) and I(x;z) per point,
    the width of the per-run bootstrap intervals, and the critics at chance."""
    widths = [r["mi_zs_hi"] - r["mi_zs_lo"] for r in rows if "mi_zs_hi" in r]
    text = (
        "Information plane: "
        + reading_differences(rows, "mi_zs_nats", "post-hoc I(z;s) [nats]")
        + " Rate: "
        + reading_differences(rows, "mi_xz_nats", "I(x;z) [nats]")
    )
    if widths:
        text += (
            f" The per-run bootstrap intervals of I(z;s) are {float(np.median(widths)):.2f} "
            "nats wide (median)."
        )
    flags = flagged_critics(rows)
    crit = [r for r in rows if math.isfinite(r.get("critic_acc_zs", math.nan))]
    if crit:
        late = float(np.mean([r["critic_acc_zs"] for r in crit]))
        peak = float(np.mean([r["critic_acc_zs_peak"] for r in crit]))
        text += (
            f" The training critic's accuracy averages {peak:.3f} at its peak and {late:.3f} "
            f"over the last quarter of training ({len(crit)} runs): the model removes what the "
            "critic detects, so the late accuracy falls back towards 0.5. "
            f"Runs whose critic never reached {CRITIC_CHANCE_MARGIN}: {len(flags)} (a critic "
            "that stays at "
            "chance measures nothing, so its penalty cannot act)"
        )
        text += (
            ": " + ", ".join(f"{f['point']} seed {f['seed']}" for f in flags) + "."
            if flags
            else "."
        )
    return text


# ----------------------------------------------------------------------------------------------
# figure inputs


def dial_panels(
    rows: list[dict[str, Any]], centre: dict[str, Any], metric: str
) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """Input of `paperlib.reports.plots_mechanism.fig_dial_sweep`: ``{dial: series(rows, dial, centre, metric)}``
    for every dial that takes more than one value in `rows`."""
    return {
        d: series(rows, d, centre, metric)
        for d in DIALS
        if len({r[d] for r in _on_line(rows, d, centre)}) > 1
    }


def probe_references(
    refs_by_point: dict[str, dict[str, Any]], rows: list[dict[str, Any]], centre: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Reference lines of the g-probe figure per dial: chance (flat: K does not move with a
    dial), and the untrained DSAE, raw-input and one-frame probes at each dial value (the
    untrained floor moves with z's dimension: a wider random z holds more of x)."""
    out: dict[str, dict[str, Any]] = {}
    c = refs_by_point[point_name(centre)]
    for dial in dial_panels(rows, centre, "probe_acc"):
        values = sorted({r[dial] for r in _on_line(rows, dial, centre)})
        names = [point_name({**centre, dial: v}) for v in values]
        out[dial] = {
            "chance (1/K)": c["chance"],
            "untrained DSAE": [float(np.mean(refs_by_point[n]["random_init"])) for n in names],
            "raw frames x_1:T": [refs_by_point[n]["raw_input"] for n in names],
            "one frame x_t": [refs_by_point[n]["one_frame"] for n in names],
        }
    return out


def plane_points(rows: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    """Input of `paperlib.reports.plots_mechanism.fig_information_plane_intervals`: per objective and dial point,
    mean and 95 % t-interval over seeds of post-hoc I(z;s) and of I(x;z), labelled by point."""
    out: dict[str, list[tuple]] = {}
    for point in dict.fromkeys(r["point"] for r in rows):
        for obj in dict.fromkeys(r["objective"] for r in rows):
            rs = [r for r in rows if r["point"] == point and r["objective"] == obj]
            if rs:
                x = t_interval([r["mi_zs_nats"] for r in rs])
                y = t_interval([r["mi_xz_nats"] for r in rs])
                out.setdefault(obj, []).append((*x, *y, point))
    return out


def references_by_point(
    base: Config, points: list[dict[str, Any]], seeds: Sequence[int], split: str = "test"
) -> dict[str, dict[str, Any]]:
    """`references` at every dial point: ``{point name: {...}}``."""
    out = {}
    for p in points:
        cfg = point_config(base, p)
        out[point_name(p)] = references(cfg, load_data(cfg.data), seeds, split=split)
    return out

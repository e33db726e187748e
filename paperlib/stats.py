"""Statistics for comparing objectives over seeds, and bootstrap intervals.

Two tools (issue 13, "Statistics"):

- `paired_difference`: the per-seed differences d_k = a_k - b_k of two objectives trained on
  the same seeds, with a Student-t interval for their mean. Pairing by seed removes the part of
  the spread that the seed (data order, initialisation) gives both objectives alike.
- `t_interval`: (mean, lo, hi) of one sample, mean +- t * sd / sqrt(n) (NaN-tolerant);
- `bootstrap_ci`: a percentile-bootstrap interval of a statistic of one sample, via
  ``scipy.stats.bootstrap`` with a seeded numpy Generator.
- `decide_contrasts`: per contrast "better", "worse", "equivalent" (within a stated margin, by
  two one-sided tests) or "inconclusive", Holm-corrected over a table's contrasts (`holm`);
- `across_seeds`: for every metric that carries per-seed bootstrap bounds (``mi_zs_nats`` with
  ``mi_zs_nats_low`` / ``mi_zs_nats_high``), the t-interval of its per-seed values. The bounds
  are kept per seed and never averaged: the mean of per-seed bootstrap bounds is no interval
  across seeds (it covers the row sampling of one run, not the seed-to-seed spread).

They return plain floats so that they go straight into metrics.json and the tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps


def _as_seed_map(values: Mapping[Any, float] | Sequence[float], seeds, name: str) -> dict:
    """``{seed: value}`` from a mapping, or from a sequence with its seeds (default 0..n-1)."""
    if isinstance(values, Mapping):
        if seeds is not None:
            raise ValueError(f"{name}: pass seeds only with a sequence of values, not a mapping")
        return {k: float(v) for k, v in values.items()}
    vals = [float(v) for v in values]
    keys = list(range(len(vals))) if seeds is None else list(seeds)
    if len(keys) != len(vals):
        raise ValueError(f"{name}: {len(vals)} values but {len(keys)} seeds")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: seeds must be distinct, got {keys}")
    return dict(zip(keys, vals))


def paired_difference(
    a: Mapping[Any, float] | Sequence[float],
    b: Mapping[Any, float] | Sequence[float],
    seeds_a: Sequence[Any] | None = None,
    seeds_b: Sequence[Any] | None = None,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean of the paired per-seed differences a - b with a Student-t interval.

    d_k = a_k - b_k for every seed k that both ran; with n pairs, mean d-bar and sample
    standard deviation s_d (ddof 1), the interval is

        d-bar +- t_{n-1, (1 + level)/2} * s_d / sqrt(n)

    Pairs where either value is NaN (a metric that failed for that run) are dropped before n
    is counted.

    Parameters
    ----------
    a, b : per-seed values, either ``{seed: value}`` mappings or sequences (then paired by
        position, or by `seeds_a` / `seeds_b` when given).
    seeds_a, seeds_b : the seeds of sequences `a` and `b`; default 0..n-1 for both.
    level : confidence level in (0, 1).

    Returns
    -------
    dict with ``mean``, ``low``, ``high`` (floats) and ``n`` (number of pairs, as a float so the
    dict stays float-valued for JSON tables).

    Raises
    ------
    ValueError
        If the two sets of seeds differ, fewer than 2 finite pairs remain, or `level` is not
        in (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    ma, mb = _as_seed_map(a, seeds_a, "a"), _as_seed_map(b, seeds_b, "b")
    if set(ma) != set(mb):
        raise ValueError(
            "paired_difference: a and b must come from the same seeds, got "
            f"{sorted(ma, key=str)} and {sorted(mb, key=str)}"
        )
    # d_k = a_k - b_k over seeds where both are finite
    d = np.array([ma[k] - mb[k] for k in ma if np.isfinite(ma[k]) and np.isfinite(mb[k])])
    n = len(d)
    if n < 2:
        raise ValueError(
            f"paired_difference needs at least 2 seeds with finite values in both, got {n}"
        )
    mean = float(d.mean())
    sem = float(d.std(ddof=1) / np.sqrt(n))
    # half-width = t_{n-1, (1 + level)/2} * s_d / sqrt(n)
    half = float(sps.t.ppf(0.5 * (1.0 + level), df=n - 1)) * sem
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": float(n)}


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): mean +- t_{(1+level)/2, n-1} * sd / sqrt(n) (scipy.stats.t).

    NaN values are dropped; with fewer than two values the bounds are NaN.
    """
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(sps.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN stays NaN).

    With the m finite p-values sorted, p_(1) <= ... <= p_(m),

        p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)),

    and rejecting every hypothesis with p~ < alpha keeps the family-wise error rate at alpha.
    Written here rather than taken from statsmodels (``multipletests(method="holm")``, the same
    numbers): the suite does not otherwise depend on statsmodels, and these are six lines.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def contrast_tests(d: Sequence[float], margin: float) -> dict[str, float]:
    """The two tests behind a decision on paired differences d_k (NaNs dropped).

    - ``p_diff``: the paired t-test of mean d = 0, two-sided: t = d-bar / (s_d / sqrt(n));
    - ``p_equiv``: two one-sided tests (TOST) of |mean d| >= margin; the larger of
      P(T >= (d-bar + margin) / se) and P(T <= (d-bar - margin) / se), T ~ t_{n-1}. It is
      below alpha exactly when the (1 - 2 alpha) t-interval lies inside +-margin.

    Returns ``mean``, ``n``, ``p_diff`` and ``p_equiv`` (NaN p-values below two values).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    v = np.asarray([x for x in d if math.isfinite(x)], dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "n": float(n), "p_diff": math.nan, "p_equiv": math.nan}
    se = float(v.std(ddof=1) / math.sqrt(n))
    t_dist = sps.t(df=n - 1)
    if se == 0.0:  # identical differences: decided by where the mean lies
        p_diff = 0.0 if mean != 0 else 1.0
        p_equiv = 0.0 if abs(mean) < margin else 1.0
    else:
        p_diff = float(2 * t_dist.sf(abs(mean) / se))
        p_equiv = max(
            float(t_dist.sf((mean + margin) / se)), float(t_dist.cdf((mean - margin) / se))
        )
    return {"mean": mean, "n": float(n), "p_diff": p_diff, "p_equiv": p_equiv}


#: the decisions a contrast can get (issue 21): the words the tables print
DECISIONS = ("better", "worse", "equivalent", "inconclusive")


def decide_contrasts(
    contrasts: Mapping[str, tuple[Sequence[float], float, int]], alpha: float = 0.05
) -> dict[str, dict[str, float | str]]:
    """One decision per contrast, Holm-corrected over all of them (one family).

    Parameters
    ----------
    contrasts : name -> (paired differences d_k = a_k - b_k, margin, direction), direction +1
        when a higher value is better, -1 when lower is better.
    alpha : the family-wise error rate.

    Returns
    -------
    name -> `contrast_tests`' fields, ``p_diff_holm``, ``p_equiv_holm``, ``margin`` and
    ``decision``: "better" / "worse" when the Holm-adjusted p_diff < alpha (by the sign of the
    mean and the direction), else "equivalent" when the Holm-adjusted p_equiv < alpha, else
    "inconclusive". A difference can be both significant and inside the margin: it is then
    "better" or "worse" with ``within_margin`` 1.0 (real, but smaller than what matters).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    names = list(contrasts)
    tests = {k: contrast_tests(contrasts[k][0], contrasts[k][1]) for k in names}
    adj_diff = holm([tests[k]["p_diff"] for k in names])
    adj_equiv = holm([tests[k]["p_equiv"] for k in names])
    out: dict[str, dict[str, float | str]] = {}
    for k, pd_, pe in zip(names, adj_diff, adj_equiv):
        _, margin, direction = contrasts[k]
        if direction not in (1, -1):
            raise ValueError(f"{k}: direction must be +1 or -1, got {direction!r}")
        t = tests[k]
        if pd_ < alpha:
            decision = "better" if t["mean"] * direction > 0 else "worse"
        elif pe < alpha:
            decision = "equivalent"
        else:
            decision = "inconclusive"
        out[k] = {
            **t,
            "margin": float(margin),
            "p_diff_holm": pd_,
            "p_equiv_holm": pe,
            "within_margin": float(pe < alpha),
            "decision": decision,
        }
    return out


#: suffixes of a metric's per-seed bootstrap bounds: ``mi_zs_nats_low``, ``mi_zs_nats_high``
BOUND_SUFFIXES = ("_low", "_high")


def bounded_metrics(names: Iterable[str]) -> list[str]:
    """The metrics m of `names` (in order) that come with per-seed bounds m_low and m_high."""
    names = list(names)
    have = set(names)
    return [m for m in names if all(m + sfx in have for sfx in BOUND_SUFFIXES)]


def is_bound(name: str, names: Collection[str]) -> bool:
    """Whether `name` is the per-seed bound m_low or m_high of a metric m of `names`."""
    for sfx in BOUND_SUFFIXES:
        m = name.removesuffix(sfx)
        if m != name and m in bounded_metrics(names):
            return True
    return False


def interval_label(n: int, level: float = 0.95, seed: Any = None) -> str:
    """What an interval of `across_seeds` is, in words for tables and metrics.json."""
    if n >= 2:
        return f"{level * 100:g} % t-interval over {n} seeds"
    return f"per-seed bootstrap over rows, seed {seed}" if seed is not None else "none"


def across_seeds(
    per_seed: Mapping[str, Sequence[float]],
    seeds: Sequence[Any] | None = None,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """The interval over seeds of every metric that carries per-seed bootstrap bounds.

    For a metric m with per-seed values v_1..v_n and per-seed bounds m_low, m_high (a bootstrap
    over one run's rows), the interval is `t_interval` of v_1..v_n:

        mean(v) +- t_{n-1, (1 + level)/2} * sd(v) / sqrt(n)

    never the mean of the per-seed bounds. With one finite seed there is no interval over
    seeds; that seed's own bootstrap bounds are returned instead, labelled as such.

    Parameters
    ----------
    per_seed : ``{metric: [value per seed]}`` (one objective of ``ExperimentResult.metrics``).
    seeds : the seeds in the order of the values (for the one-seed label; default 0..n-1).
    level : confidence level of the t-interval.

    Returns
    -------
    ``{m: {"mean", "low", "high", "n", "interval"}}``: floats (NaN where no value) and the
    label `interval_label` ("95 % t-interval over 3 seeds", "per-seed bootstrap over rows,
    seed 100").
    """
    out: dict[str, dict[str, Any]] = {}
    for m in bounded_metrics(per_seed):
        vals = [float(v) for v in per_seed[m]]
        finite = [i for i, v in enumerate(vals) if math.isfinite(v)]
        mean, low, high = t_interval(vals, level)
        seed = None
        if len(finite) == 1:  # one run: its own bootstrap bounds, labelled per seed
            i = finite[0]
            low, high = (float(per_seed[m + sfx][i]) for sfx in BOUND_SUFFIXES)
            seed = seeds[i] if seeds is not None and i < len(seeds) else i
        out[m] = {
            "mean": mean,
            "low": low,
            "high": high,
            "n": float(len(finite)),
            "interval": interval_label(len(finite), level, seed),
        }
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., Any] = np.mean,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(values)``.

    ``scipy.stats.bootstrap`` (method "percentile") resamples the rows of `values` with
    replacement `n_resamples` times using ``numpy.random.default_rng(seed)``; the interval is
    the (1 - level)/2 and (1 + level)/2 quantiles of the resampled statistic.

    Parameters
    ----------
    values : 1-D sample (NaNs are not allowed).
    statistic : a function of a 1-D array that accepts ``axis=`` (numpy reductions do).
    level : confidence level in (0, 1).
    n_resamples : bootstrap resamples (>= 100).
    seed : seed of the resampling Generator.

    Returns
    -------
    (low, high)
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an int >= 100, got {n_resamples!r}")
    if len(x) < 2:
        raise ValueError(f"bootstrap_ci needs at least 2 values, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError("bootstrap_ci: values hold NaN or inf")
    res = sps.bootstrap(
        (x,),
        statistic,
        confidence_level=level,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_table(
    per_seed: Mapping[str, Mapping[str, Sequence[float]]],
    seeds: Sequence[Any],
    pairs: Sequence[tuple[str, str]] = (("cmi", "mi"), ("cmi", "elbo")),
    level: float = 0.95,
) -> dict[str, dict[str, dict[str, float]]]:
    """Paired differences for every metric that both objectives of a pair report.

    Parameters
    ----------
    per_seed : ``{objective: {metric: [value per seed]}}`` with values in the order of `seeds`
        (the layout of ``ExperimentResult.metrics``).
    seeds : the seeds, shared by every objective.
    pairs : (a, b) objective pairs; a pair whose objectives are not both present is skipped.
    level : confidence level of the t-intervals.

    Returns
    -------
    ``{"a - b": {metric: {"mean", "low", "high", "n"}}}``; metrics with fewer than 2 finite
    pairs are left out (a table cannot show an interval for them), and so are the per-seed
    bootstrap bounds ``<metric>_low`` / ``_high`` (`is_bound`).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in pairs:
        if a not in per_seed or b not in per_seed:
            continue
        rows: dict[str, dict[str, float]] = {}
        for metric, va in per_seed[a].items():
            if is_bound(metric, per_seed[a]):
                continue  # a per-seed bootstrap bound, not an outcome of the run
            vb = per_seed[b].get(metric)
            if vb is None or len(va) != len(seeds) or len(vb) != len(seeds):
                continue
            try:
                rows[metric] = paired_difference(va, vb, seeds, seeds, level=level)
            except ValueError:
                continue  # fewer than 2 finite pairs
        out[f"{a} - {b}"] = rows
    return out


__all__ = [
    "BOUND_SUFFIXES",
    "across_seeds",
    "bootstrap_ci",
    "DECISIONS",
    "bounded_metrics",
    "contrast_tests",
    "decide_contrasts",
    "holm",
    "interval_label",
    "is_bound",
    "paired_difference",
    "paired_table",
    "t_interval",
]

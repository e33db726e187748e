"""paperlib.stats: paired t-intervals and bootstrap intervals against closed forms and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from paperlib import records
from paperlib.stats import (
    across_seeds,
    bootstrap_ci,
    contrast_tests,
    decide_contrasts,
    holm,
    is_bound,
    paired_difference,
    paired_table,
    t_interval,
)


def test_paired_difference_matches_the_t_formula():
    a, b = [0.62, 0.60, 0.65, 0.61], [0.58, 0.59, 0.60, 0.55]
    d = np.subtract(a, b)
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / math.sqrt(4)
    out = paired_difference(a, b)
    assert out["n"] == 4
    assert out["mean"] == pytest.approx(d.mean())
    assert out["low"] == pytest.approx(d.mean() - half)
    assert out["high"] == pytest.approx(d.mean() + half)
    # it equals scipy's one-sample t interval of the differences
    ci = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (out["low"], out["high"]) == pytest.approx((ci.low, ci.high))


def test_pairing_removes_the_shared_seed_effect():
    # a large seed effect common to both objectives, a constant true difference of 0.05:
    # the paired interval is narrow and excludes 0, although the two spreads overlap widely
    seed_effect = np.array([0.0, 0.3, -0.2, 0.1, 0.25])
    a = 0.5 + seed_effect + 0.05 + np.array([0.001, -0.002, 0.0, 0.002, -0.001])
    b = 0.5 + seed_effect
    out = paired_difference(a, b)
    assert 0.0 < out["low"] < 0.05 < out["high"] < 0.06


def test_paired_difference_pairs_by_seed_not_position():
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    b = {2: 3.0, 0: 0.5, 1: 1.0}  # another order: differences 0.5, 1.0, 1.0
    assert paired_difference(a, b)["mean"] == pytest.approx(2.5 / 3)
    same = paired_difference([1.0, 2.0, 4.0], [1.0, 3.0, 0.5], seeds_a=[0, 1, 2], seeds_b=[1, 2, 0])
    assert same["mean"] == pytest.approx(2.5 / 3)


def test_paired_difference_errors_name_the_problem():
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0, float("nan")], [0.0, 1.0])  # NaN pair dropped: n = 1
    with pytest.raises(ValueError, match="level"):
        paired_difference([1.0, 2.0], [0.0, 1.0], level=95)
    with pytest.raises(ValueError, match="2 values but 3 seeds"):
        paired_difference([1.0, 2.0], [0.0, 1.0], seeds_a=[0, 1, 2])


def test_paired_interval_covers_the_truth_at_its_level():
    # coverage over many simulated experiments of 3 seeds: close to 95 %
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        b = rng.normal(0.0, 1.0, 3)
        a = b + 0.2 + rng.normal(0.0, 0.1, 3)
        out = paired_difference(a, b)
        hits += out["low"] <= 0.2 <= out["high"]
    assert 0.93 <= hits / 2000 <= 0.97


def test_bootstrap_ci_is_seeded_and_near_the_normal_interval():
    x = np.random.default_rng(1).normal(2.0, 1.0, 2000)
    low, high = bootstrap_ci(x, seed=3)
    assert (low, high) == bootstrap_ci(x, seed=3)  # deterministic given the seed
    # for a mean of 2000 rows the bootstrap agrees with mean +- 1.96 sd / sqrt(n)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert low == pytest.approx(x.mean() - half, abs=0.3 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.3 * half)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(x, n_resamples=10)


def test_paired_table_skips_missing_objectives_and_metrics():
    per_seed = {
        "elbo": {"probe_acc": [0.5, 0.52, 0.49]},
        "mi": {"probe_acc": [0.6, 0.61, 0.58], "mi_zs_nats": [0.4, 0.5, 0.45]},
        "cmi": {"probe_acc": [0.62, 0.60, 0.61], "mi_zs_nats": [0.2, float("nan"), 0.3]},
    }
    out = paired_table(per_seed, seeds=[0, 1, 2])
    assert set(out) == {"cmi - mi", "cmi - elbo"}
    assert out["cmi - mi"]["mi_zs_nats"]["n"] == 2  # the NaN seed dropped
    assert out["cmi - elbo"]["probe_acc"]["mean"] == pytest.approx(np.mean([0.12, 0.08, 0.12]))
    assert "mi_zs_nats" not in out["cmi - elbo"]
    assert paired_table({"cmi": {}}, seeds=[0, 1]) == {}


# per-seed I(z;s) estimates with their per-seed bootstrap bounds (narrow: row sampling only)
BOUNDED = {
    "mi_zs_nats": [0.80, 0.60, 0.68],
    "mi_zs_nats_low": [0.75, 0.54, 0.63],
    "mi_zs_nats_high": [0.86, 0.66, 0.74],
    "probe_acc": [0.5, 0.6, 0.55],
}


def test_across_seeds_is_the_t_interval_of_the_per_seed_values_not_averaged_bounds():
    out = across_seeds(BOUNDED, seeds=[100, 101, 102])
    assert set(out) == {"mi_zs_nats"}  # only metrics that carry bounds
    iv = out["mi_zs_nats"]
    v = BOUNDED["mi_zs_nats"]
    half = sps.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3)
    assert (iv["mean"], iv["low"], iv["high"]) == pytest.approx(t_interval(v))
    assert (iv["low"], iv["high"]) == pytest.approx((np.mean(v) - half, np.mean(v) + half))
    # the average of the per-seed bounds is a narrower, different thing
    assert iv["low"] < np.mean(BOUNDED["mi_zs_nats_low"]) - 0.1
    assert iv["n"] == 3 and iv["interval"] == "95 % t-interval over 3 seeds"
    # one seed: no interval over seeds; that seed's bootstrap bounds, labelled as such
    one = across_seeds({k: v[1:2] for k, v in BOUNDED.items()}, seeds=[101])["mi_zs_nats"]
    assert (one["low"], one["high"]) == (0.54, 0.66)
    assert one["n"] == 1 and one["interval"] == "per-seed bootstrap over rows, seed 101"


def test_bounds_are_neither_averaged_in_metrics_json_nor_paired(tmp_path):
    path = records.write_metrics(
        tmp_path / "metrics.json", {"mi": BOUNDED, "cmi": BOUNDED}, params={"seeds": [7, 8, 9]}
    )
    data = records.read_metrics(path)["mi"]
    _, low, high = t_interval(BOUNDED["mi_zs_nats"])
    assert (data["mi_zs_nats"]["low"], data["mi_zs_nats"]["high"]) == pytest.approx((low, high))
    assert data["mi_zs_nats"]["interval"] == "95 % t-interval over 3 seeds"
    for bound in ("mi_zs_nats_low", "mi_zs_nats_high"):
        assert data[bound]["mean"] is None and data[bound]["std"] is None  # kept per seed only
        assert data[bound]["per_seed"] == BOUNDED[bound]
    assert set(data["probe_acc"]) == {"mean", "std", "per_seed"}  # other metrics unchanged
    assert is_bound("mi_zs_nats_low", BOUNDED) and not is_bound("mi_zs_nats", BOUNDED)
    assert set(paired_table({"mi": BOUNDED, "cmi": BOUNDED}, seeds=[7, 8, 9])["cmi - mi"]) == {
        "mi_zs_nats",
        "probe_acc",
    }


def test_holm_matches_the_step_down_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, math.nan, 0.02])  # NaN is no test: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_contrast_tests_are_the_t_test_and_tost():
    d = [0.031, 0.012, 0.044, 0.020, 0.027]
    t = contrast_tests(d, margin=0.05)
    assert t["p_diff"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    # TOST at 0.05 rejects exactly when the 90 % t-interval lies inside +-margin
    _, lo, hi = t_interval(d, level=0.90)
    for margin in (0.03, hi - 1e-4, hi + 1e-4, 0.2):
        inside = -margin < lo and hi < margin
        assert (contrast_tests(d, margin)["p_equiv"] < 0.05) == inside, margin
    with pytest.raises(ValueError, match="margin"):
        contrast_tests(d, margin=0.0)


def test_decisions_follow_the_effect_the_direction_and_the_noise():
    rng = np.random.default_rng(0)
    big = list(0.10 + 0.01 * rng.standard_normal(8))
    e = 0.002 * rng.standard_normal(8)
    tight_zero = list(e - e.mean())  # mean 0 exactly, sd 0.002
    noisy = list(0.2 * rng.standard_normal(3))
    out = decide_contrasts(
        {
            "up": (big, 0.03, +1),
            "up_but_lower_is_better": (big, 0.03, -1),
            "same": (tight_zero, 0.03, +1),
            "noisy": (noisy, 0.03, +1),
        }
    )
    assert out["up"]["decision"] == "better" and not out["up"]["within_margin"]
    assert out["up_but_lower_is_better"]["decision"] == "worse"
    assert out["same"]["decision"] == "equivalent"
    assert out["noisy"]["decision"] == "inconclusive"
    # Holm: the adjusted p-values are at least the raw ones
    assert all(r["p_diff_holm"] >= r["p_diff"] for r in out.values())


def test_decisions_keep_the_family_wise_error_at_alpha_under_no_effect():
    rng = np.random.default_rng(1)
    wrong = 0
    families = 1500
    for _ in range(families):
        fam = {k: (list(rng.standard_normal(5)), 0.1, +1) for k in "abcd"}
        out = decide_contrasts(fam, alpha=0.05)
        wrong += any(r["decision"] in ("better", "worse") for r in out.values())
    # at most alpha (Holm is conservative); 3 binomial sd above 0.05 is 0.067
    assert wrong / families < 0.067

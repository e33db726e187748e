"""paperlib.studies.mechanism: the statistics behind notebook 05's claims (intervals, pairing, flags),
the bootstrap I(z;s) against the closed form, and one tiny run of the sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from paperlib import config
from paperlib.estimators.mi import correlated_gaussians, gaussian_mi
from paperlib.studies import mechanism


def _row(objective, seed, probe, leak=0.1, z_dim=2, **more):
    point = mechanism.point_name({"leak": leak, "z_dim": z_dim})
    return {
        "objective": objective,
        "point": point,
        "leak": leak,
        "z_dim": z_dim,
        "seed": seed,
        "probe_acc": probe,
        **more,
    }


def test_t_interval_matches_scipy():
    v = [0.1, 0.3, 0.2, 0.5, 0.4]
    mean, lo, hi = mechanism.t_interval(v)
    ref = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert mean == pytest.approx(0.3)
    assert (lo, hi) == pytest.approx(ref)
    assert math.isnan(mechanism.t_interval([0.2])[1])  # one value: no interval


def test_paired_differences_pair_by_seed_and_detect_a_shift():
    rows = [_row("mi", s, 0.2 + 0.01 * s) for s in range(5)]
    rows += [_row("cmi", s, 0.3 + 0.01 * s + 0.002 * (-1) ** s) for s in reversed(range(5))]
    d = mechanism.paired_differences(rows)["leak0.1_zdim2"]
    assert d["n"] == 5 and d["mean"] == pytest.approx(0.1, abs=0.003)
    assert 0 < d["lo"] < 0.1 < d["hi"]  # paired: the seeds' common spread cancels
    assert mechanism.separated(rows) == ["leak0.1_zdim2"]
    assert mechanism.separated(rows, a="mi", b="cmi") == []
    text = mechanism.reading_probe(rows)
    assert (
        "cmi - mi on the g-probe = +0.100" in text
        and "cmi better (one point: no correction)" in text
    )
    assert "lies wholly above mi's at leak0.1_zdim2" in text


def test_readings_decide_at_the_stated_margin():
    # cmi = mi + 0.01 on every seed, give or take 0.001: real, but under the 0.03 margin
    rows = [_row("mi", s, 0.2 + 0.05 * s) for s in range(5)]
    rows += [_row("cmi", s, 0.21 + 0.05 * s + 0.001 * (-1) ** s) for s in range(5)]
    assert "cmi better, by less than 0.03" in mechanism.reading_probe(rows)
    # seeds that disagree by +-0.2: inconclusive
    rows = [_row("mi", s, 0.5) for s in range(5)]
    rows += [_row("cmi", s, 0.5 + 0.2 * (-1) ** s) for s in range(5)]
    assert "; inconclusive (one point: no correction))" in mechanism.reading_probe(rows)


def test_reading_says_when_no_regime_is_found():
    rows = [
        _row(o, s, 0.5 + 0.05 * ((s * 7 + len(o)) % 3)) for o in ("mi", "cmi") for s in range(5)
    ]
    assert mechanism.separated(rows) == []
    assert "no regime where penalising I(z;s) clearly improves" in mechanism.reading_probe(rows)


def test_dial_points_one_at_a_time_and_errors():
    pts = mechanism.dial_points({"leak": 0.1, "z_dim": 2}, leak=[0.1, 0.9], z_dim=[2, 8])
    assert pts == [{"leak": 0.1, "z_dim": 2}, {"leak": 0.9, "z_dim": 2}, {"leak": 0.1, "z_dim": 8}]
    with pytest.raises(ValueError, match="unknown dial 'beta'"):
        mechanism.dial_points({"leak": 0.1, "z_dim": 2}, beta=[1.0])
    with pytest.raises(ValueError, match="lacks dial"):
        mechanism.dial_points({"leak": 0.1})
    cfg = mechanism.point_config(config.load("smoke", "mechanism"), pts[2])
    assert cfg.data.leak == 0.1 and cfg.model.z_dim == 8


def test_probe_references_draw_each_dial_points_own_floor():
    # the untrained DSAE's probe rises with z's dimension (0.28, 0.49, 0.76 in the quick run):
    # a panel that drew the centre's floor across budgets would put trained points above a
    # floor they are below
    centre = {"leak": 0.1, "z_dim": 2}
    floors = {2: 0.28, 4: 0.49, 8: 0.76}
    rows = [_row(o, s, 0.5, z_dim=z) for z in floors for o in ("mi", "cmi") for s in (0, 1)]
    refs = {
        mechanism.point_name({"leak": 0.1, "z_dim": z}): {
            "chance": 0.125,
            "random_init": [floors[z] - 0.01, floors[z] + 0.01],
            "raw_input": 0.9,
            "one_frame": 0.3,
        }
        for z in floors
    }
    lines = mechanism.probe_references(refs, rows, centre)
    assert list(lines) == ["z_dim"]  # leak takes one value: no panel
    assert lines["z_dim"]["chance (1/K)"] == 0.125
    np.testing.assert_allclose(lines["z_dim"]["untrained DSAE"], list(floors.values()))


def test_critic_accuracy_tells_a_defeated_critic_from_one_at_chance():
    defeated = [{"critic_acc_zs": a} for a in [0.5] * 4 + [0.65] * 6 + [0.5] * 10]
    chance = [{"critic_acc_zs": a} for a in [0.5, 0.52, 0.48] * 7]
    late_d, peak_d = mechanism.critic_accuracy(defeated)
    late_c, peak_c = mechanism.critic_accuracy(chance)
    assert late_d == pytest.approx(0.5) and peak_d == pytest.approx(0.65)
    assert peak_c < mechanism.CRITIC_CHANCE_MARGIN
    assert all(math.isnan(v) for v in mechanism.critic_accuracy([{"loss": 1.0}]))
    rows = [
        _row("cmi", 0, 0.5, critic_acc_zs=late_d, critic_acc_zs_peak=peak_d),
        _row("cmi", 1, 0.5, critic_acc_zs=late_c, critic_acc_zs_peak=peak_c),
        _row("mi", 0, 0.5, critic_acc_zs=math.nan, critic_acc_zs_peak=math.nan),
    ]
    assert [f["seed"] for f in mechanism.flagged_critics(rows)] == [1]


def test_bootstrap_mi_brackets_the_closed_form():
    x, y = correlated_gaussians(2000, d=2, rho=0.8, generator=0)
    est, lo, hi = mechanism.bootstrap_mi(x, y, steps=300, seed=0)
    truth = gaussian_mi(0.8, 2)  # 1.02 nats
    assert lo < est < hi
    assert abs(est - truth) < 0.25, (est, truth)
    x0, y0 = correlated_gaussians(2000, d=2, rho=0.0, generator=1)
    est0, lo0, hi0 = mechanism.bootstrap_mi(x0, y0, steps=300, seed=0)
    assert abs(est0) < 0.1 and lo0 < 0.05
    with pytest.raises(ValueError, match="at least 8"):
        mechanism.bootstrap_mi(x[:4], y[:4], steps=1)


def test_sweep_runs_and_reports_every_metric(tmp_path):
    base = config.load("smoke", "mechanism")
    centre = {"leak": 0.5, "z_dim": 2}
    weights = {"mi": {"alpha": 2.0}, "cmi": {"alpha": 2.0, "beta": 4.0}}
    rows = mechanism.run_sweep(base, [centre], ["mi", "cmi"], [0], weights, run_root=tmp_path)
    assert [r["objective"] for r in rows] == ["mi", "cmi"]
    for key in (
        "probe_acc",
        "local_probe_acc_z",
        "g_probe_acc_s",
        "mi_zs_nats",
        "mi_zs_lo",
        "mi_zs_hi",
        "mi_xz_nats",
        "critic_acc_zs",
        "train_seconds",
    ):
        assert key in rows[1], key
    assert math.isnan(rows[0]["critic_acc_zs"]) and 0.0 <= rows[1]["critic_acc_zs"] <= 1.0
    assert rows[1]["alpha"] == 2.0 and rows[1]["beta"] == 4.0
    metrics = mechanism.rows_to_metrics(rows)
    assert set(metrics) == {"mi_leak0.5_zdim2", "cmi_leak0.5_zdim2"}
    with pytest.raises(ValueError, match="no weights for objective 'elbo'"):
        mechanism.run_sweep(base, [centre], ["elbo"], [0], weights, run_root=tmp_path)


@pytest.mark.parametrize("rounds", [0, 2])
def test_selection_widens_a_choice_on_its_grids_edge(monkeypatch, rounds):
    """A weight chosen on its grid's edge is trained one step outward and chosen again: here
    the validation probe peaks at alpha = 4 (grid {1, 2}) and at beta = 0.5 (grid {2, 8})."""
    trained = []

    def fake_sweep(base, points, objectives, seeds, weights, split, run_root):
        (objective,) = objectives
        w = {"alpha": 0.0, "beta": 0.0, **weights[objective]}
        trained.append((objective, w["alpha"], w["beta"]))
        peak = w["alpha"] / 4 if objective == "mi" else w["beta"] / 0.5
        return [_row(objective, s, -(math.log2(peak) ** 2), split=split, **w) for s in seeds]

    monkeypatch.setattr(mechanism, "run_sweep", fake_sweep)
    sel = mechanism.select_weights(
        None, {"leak": 0.1, "z_dim": 2}, [1.0, 2.0], [2.0, 8.0], [0, 1], widen_rounds=rounds
    )
    evidence = sel["_evidence"]
    if rounds == 0:  # the grid as given: both choices sit on an edge, and the evidence says so
        assert sel["cmi"] == {"alpha": 2.0, "beta": 2.0}
        assert evidence["on_edge"] == {"mi alpha": 4.0, "cmi beta": 0.5}
        assert len(trained) == 4
    else:  # one step outward finds each peak, the next step confirms it
        assert sel["mi"] == {"alpha": 4.0, "beta": 0.0}
        assert sel["cmi"] == {"alpha": 4.0, "beta": 0.5}
        assert evidence["grids"] == {"mi alpha": [1.0, 2.0, 4.0, 8.0],
                                     "cmi beta": [0.125, 0.5, 2.0, 8.0]}  # fmt: skip
        assert evidence["on_edge"] == {}
        # cmi is trained at mi's chosen alpha only
        assert {a for o, a, _ in trained if o == "cmi"} == {4.0}
    assert all(r["seed"] in (0, 1) for r in evidence["rows"])

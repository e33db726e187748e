"""MI estimators against the closed form I = -d/2 log(1 - rho^2) (ground truth, no magic floats).

Sizes are shrunk for CPU speed: <= 1200 estimator steps, hidden 64. The density-ratio target
(within 10 % or 0.05 nats of the truth with 5000 samples; |estimate| <= 0.05 nats when
independent) is checked on a cheap subset (d = 1 and 4 at rho = 0.8, independent at d = 4) with
one split (fit on 64 % of the rows, select the checkpoint on 16 %, report on 20 %);
benchmarks/mi_accuracy.py checks all cells with 5-fold cross-fitting.
"""

import inspect
import math

import numpy as np
import pytest
import torch

from paperlib.estimators import mi
from paperlib.estimators.critics import DensityRatioCritic
from paperlib.estimators.mi import (
    DensityRatio,
    correlated_gaussians,
    estimate_mi,
    estimate_mi_interval,
    gaussian_mi,
    mmd,
    rank_gauss,
    shuffle_rows,
)
from paperlib.gaussian import minibatch_mi_xz

FAST = dict(steps=1200, batch_size=256, hidden=64)
# density ratio: early stopping ends most runs well before 1000 steps
DR_FAST = dict(steps=1000, batch_size=256, hidden=64)


def _within_target(est: float, truth: float) -> bool:
    # target: within 10 % relative or 0.05 nats
    return abs(est - truth) <= max(0.1 * truth, 0.05)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_gaussian_mi_closed_form():
    assert gaussian_mi(0.0, 3) == 0.0
    assert math.isclose(gaussian_mi(0.8, 4), -2.0 * math.log(0.36))
    with pytest.raises(ValueError, match="rho"):
        gaussian_mi(1.0, 1)


@pytest.mark.parametrize("d", [1, 4])
def test_density_ratio_matches_closed_form(d):
    x, y = correlated_gaussians(5000, d, 0.8, generator=1)
    truth = gaussian_mi(0.8, d)
    est = estimate_mi(x, y, "density_ratio", **DR_FAST)
    assert _within_target(est, truth), (est, truth)


def test_density_ratio_independent_is_zero():
    x, y = correlated_gaussians(5000, 4, 0.0, generator=3)  # rho = 0: independent
    assert abs(estimate_mi(x, y, "density_ratio", **DR_FAST)) <= 0.05


@pytest.mark.parametrize("critic", ["bilinear", "distance", "concat"])
def test_density_ratio_critics_and_cross_fitting_run(critic):
    x, y = correlated_gaussians(400, 2, 0.8, generator=8)
    est = estimate_mi(x, y, "density_ratio", steps=60, hidden=16, folds=2, critic=critic)
    assert math.isfinite(est)
    with pytest.raises(ValueError, match="folds"):
        estimate_mi(x, y, "density_ratio", steps=5, folds=0)
    with pytest.raises(ValueError, match="critic"):
        estimate_mi(x, y, "density_ratio", steps=5, critic="nope")


class _TrueLogRatio(torch.nn.Module):
    """The exact log p(x, y) / (p(x) p(y)) of one rho-correlated pair, plus a shift."""

    def __init__(self, rho: float, shift: float):
        super().__init__()
        self.rho, self.shift = rho, shift

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        a, b, rho = xy[:, 0], xy[:, 1], self.rho
        # log r = -1/2 log(1 - rho^2) - (rho^2 a^2 - 2 rho a b + rho^2 b^2) / (2 (1 - rho^2))
        q = (rho**2 * a**2 - 2 * rho * a * b + rho**2 * b**2) / (2 * (1 - rho**2))
        return (-0.5 * math.log(1 - rho**2) - q + self.shift).unsqueeze(-1)


def test_select_loss_is_proper_for_the_log_ratio():
    # the prior-weighted L_k is minimised by T = log r: shifting the true log-ratio raises it
    x, y = correlated_gaussians(4000, 1, 0.8, generator=9)
    est = DensityRatio(1, 1, hidden=8, critic="concat", select_weight=1000.0)
    losses = {}
    for shift in (-1.0, 0.0, 1.0):
        est.critic.net = _TrueLogRatio(0.8, shift)
        losses[shift] = float(est.select_loss(x, y, torch.Generator().manual_seed(0)))
    assert losses[0.0] < min(losses[-1.0], losses[1.0]), losses


def test_infonce_never_above_log_batch():
    x, y = correlated_gaussians(3000, 8, 0.95, generator=2)
    est = estimate_mi(x, y, "infonce", steps=600, batch_size=64, hidden=64)
    assert est <= math.log(64) + 1e-6
    assert est > 0.5 * min(math.log(64), gaussian_mi(0.95, 8))


def test_club_is_above_truth_on_average():
    truth = gaussian_mi(0.8, 4)
    ests = [
        estimate_mi(*correlated_gaussians(3000, 4, 0.8, generator=s), "club", seed=s, **FAST)
        for s in range(2)
    ]
    assert np.mean(ests) >= truth - 0.05, (ests, truth)


def test_invariance_to_elementwise_invertible_maps():
    # the critic itself, on the standardised raw values (the default rank transform would make
    # the two inputs identical)
    x, y = correlated_gaussians(3000, 1, 0.8, generator=4)
    plain = estimate_mi(x, y, "density_ratio", rank_transform=False, **DR_FAST)
    mapped = estimate_mi(x.pow(3), y.exp(), "density_ratio", rank_transform=False, **DR_FAST)
    assert abs(plain - mapped) <= 0.1, (plain, mapped)


def test_numpy_input_and_errors():
    x, y = correlated_gaussians(600, 1, 0.5, generator=5)
    est = estimate_mi(x.numpy(), y.numpy(), "density_ratio", steps=50, hidden=16)
    assert math.isfinite(est)
    with pytest.raises(ValueError, match="unknown MI estimator"):
        estimate_mi(x, y, "nope")
    with pytest.raises(ValueError, match="same number of rows"):
        estimate_mi(x, y[:10])


def test_minibatch_mi_xz_bounded_and_exact_for_known_posterior():
    # q(y|x) = N(rho x, 1 - rho^2) is the true conditional: the estimate is <= log B and close
    # to the truth when the truth is well below log B
    x, y = correlated_gaussians(4096, 2, 0.8, generator=6)
    mean, logvar = 0.8 * x, torch.full_like(x, math.log(1 - 0.64))
    est = float(minibatch_mi_xz(y, mean, logvar))
    assert est <= math.log(4096)
    assert abs(est - gaussian_mi(0.8, 2)) < 0.05
    small = float(minibatch_mi_xz(y[:8], mean[:8], logvar[:8]))
    assert small <= math.log(8) + 1e-6


def test_mmd_zero_for_same_distribution_positive_otherwise():
    gen = torch.Generator().manual_seed(7)
    a, b = torch.randn(500, 2, generator=gen), torch.randn(500, 2, generator=gen)
    assert float(mmd(a, b)) < 0.01
    assert float(mmd(a + 2.0, b)) > 0.2


def test_shuffle_permutes_whole_rows():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(32, 5, generator=gen)
    zs = shuffle_rows(z, gen)
    assert not torch.equal(zs, z)
    for row in zs:  # every shuffled row is an original row, intact
        assert (z == row).all(dim=1).any()


@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_density_ratio_critic_learns_dependence(mode):
    gen = torch.Generator().manual_seed(0)
    critic = DensityRatioCritic(2, 3, hidden=32, mode=mode)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(150):
        z = torch.randn(128, 2, generator=gen)
        # s_t = [z, noise] at every step: s carries z
        s = torch.cat([z.unsqueeze(1).expand(-1, 4, -1), torch.randn(128, 4, 1, generator=gen)], -1)
        loss, _ = critic.loss(z, s, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(critic.mi(z, s, gen).detach()) > 0.5


def test_rank_gauss_on_reference_rows_and_held_out_rows():
    from scipy.stats import norm

    ref = np.array([[3.0, 10.0], [1.0, 10.0], [2.0, 30.0], [5.0, 20.0]])
    g = rank_gauss(ref)
    # no ties: (rank + 0.5) / n; ties (10, 10) share their mean rank 0.5 -> u = 1 / 4
    np.testing.assert_allclose(g[:, 0], norm.ppf((np.array([2, 0, 1, 3]) + 0.5) / 4))
    np.testing.assert_allclose(g[:, 1], norm.ppf(np.array([1.0, 1.0, 3.5, 2.5]) / 4))
    # held-out rows are placed among the reference rows, not ranked among themselves:
    # 2.5 lies between the 2nd and 3rd reference values, 0 and 9 beyond the ends (clipped)
    h = rank_gauss(ref, np.array([[2.5, 15.0], [0.0, 5.0], [9.0, 99.0]]))
    np.testing.assert_allclose(h[:, 0], norm.ppf([2 / 4, 0.5 / 4, 3.5 / 4]))
    np.testing.assert_allclose(h[:, 1], norm.ppf([2 / 4, 0.5 / 4, 3.5 / 4]))
    with pytest.raises(ValueError, match="reference and values"):
        rank_gauss(ref, np.zeros((2, 3)))


def _heavy_tailed(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invertible element-wise maps with heavy tails: x -> (sinh(3x), x^3), y -> (e^y, y^3)."""
    xm = torch.stack([torch.sinh(3.0 * x[:, 0]), x[:, 1].pow(3)], 1)
    ym = torch.stack([y[:, 0].exp(), y[:, 1].pow(3)], 1)
    return xm, ym


def test_rank_transform_keeps_the_estimate_under_heavy_tailed_maps():
    # I(x; y) does not change under invertible element-wise maps; the critic on the raw mapped
    # values loses part of it here, the copula (rank) transform, on by default, keeps it
    x, y = correlated_gaussians(4000, 2, 0.8, generator=11)
    truth = gaussian_mi(0.8, 2)
    xm, ym = _heavy_tailed(x, y)
    ranked = estimate_mi(xm, ym, "density_ratio", **DR_FAST)
    assert abs(ranked - truth) <= 0.15 * truth, (ranked, truth)
    plain = estimate_mi(xm, ym, "density_ratio", rank_transform=False, **DR_FAST)
    assert plain < 0.85 * truth, ("the case no longer tests the transform", plain, truth)


def test_default_estimate_is_right_after_a_heavy_tailed_map():
    # what a user gets from estimate_mi(x, y) without options: x -> sinh(3x) of rho = 0.8
    # Gaussians (I unchanged by the map) is within 10 % of the closed form, as with the rank
    # transform that the evaluation uses (the raw critic reads far too little here)
    x, y = correlated_gaussians(4000, 1, 0.8, generator=21)
    truth = gaussian_mi(0.8, 1)
    est = estimate_mi(torch.sinh(3.0 * x), y, steps=1000, hidden=64)
    assert abs(est - truth) <= 0.1 * truth, (est, truth)


def test_interval_defaults_are_estimate_mis_defaults():
    params = inspect.signature(estimate_mi).parameters
    defaults = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
    defaults.pop("seed"), defaults.pop("folds")  # estimate_mi_interval's own arguments
    assert mi._ESTIMATE_DEFAULTS == defaults
    assert defaults["rank_transform"] is True


def test_checkpoints_are_selected_on_rows_neither_fitted_nor_reported(monkeypatch):
    seen = []
    fit_and_estimate = mi._fit_and_estimate

    def spy(cls, xt, yt, fit_idx, sel_idx, ev_idx, **kw):
        seen.append((set(fit_idx.tolist()), set(sel_idx.tolist()), set(ev_idx.tolist())))
        return fit_and_estimate(cls, xt, yt, fit_idx, sel_idx, ev_idx, **kw)

    monkeypatch.setattr(mi, "_fit_and_estimate", spy)
    x, y = correlated_gaussians(500, 1, 0.5, generator=14)
    estimate_mi_interval(x, y, folds=2, steps=20, hidden=8)  # cross-fitted
    estimate_mi(x, y, steps=20, hidden=8)  # one split
    assert len(seen) == 3
    for fit, sel, ev in seen:
        assert sel and not (sel & fit) and not (sel & ev) and not (fit & ev)
    assert seen[0][2] | seen[1][2] == set(range(500))  # every row reported once
    with pytest.raises(ValueError, match="select_fraction"):
        estimate_mi(x[:12], y[:12], steps=5, hidden=8, select_fraction=0.05)


def test_estimate_mi_interval_cross_fits_and_brackets_its_estimate():
    x, y = correlated_gaussians(2000, 1, 0.8, generator=12)
    out = estimate_mi_interval(x, y, folds=2, steps=300, hidden=32, rank_transform=True)
    assert out["n_rows"] == 2000  # every row held out once
    assert out["low"] < out["nats"] < out["high"]
    assert abs(out["nats"] - gaussian_mi(0.8, 1)) <= 0.15 * gaussian_mi(0.8, 1)
    # the same folds and seeds give estimate_mi's cross-fitted value
    same = estimate_mi(x, y, folds=2, steps=300, hidden=32, rank_transform=True)
    assert out["nats"] == pytest.approx(same, rel=1e-5)
    with pytest.raises(ValueError, match="no per-row estimate"):
        estimate_mi_interval(x, y, "infonce")
    with pytest.raises(ValueError, match="folds"):
        estimate_mi_interval(x, y, folds=1)


@pytest.fixture(scope="module")
def independent_interval():
    """The evaluation's estimator (2-fold cross-fitting, 200 steps of batch 512, width 64, as
    `paperlib.evaluation.evaluate.POSTHOC_ZS`) on independent x, y of 4 dims each: I(x; y) = 0."""
    x, y = correlated_gaussians(2000, 4, 0.0, generator=100)
    return estimate_mi_interval(x, y, folds=2, steps=200, batch_size=512, hidden=64)


def test_cross_fitted_estimate_is_near_zero_when_independent(independent_interval):
    out = independent_interval
    assert out["low"] <= out["nats"] <= out["high"]
    # the density-ratio target for independent variables (module docstring): within 0.05 nats
    assert abs(out["nats"]) <= 0.05 and out["high"] >= -0.05, out


@pytest.mark.xfail(
    strict=True,
    reason="the bootstrap interval covers the held-out rows' sampling noise, not the critic's "
    "fitting noise, which biases the held-out mean of T below 0 (by ~Var(T)/2) at I = 0: "
    "measured high < 0 on 8 of 8 seeds of this case (down to -0.03 nats; -0.015 here), and "
    "on 7 of 8 when checkpoints were still selected on the reported rows",
)
def test_cross_fitted_interval_does_not_read_below_zero_when_independent(independent_interval):
    # issue 20: "none reads below 0 by more than its interval"
    assert independent_interval["high"] >= -1e-3, independent_interval


@pytest.mark.parametrize("rank_transform", [False, True])
def test_a_column_constant_on_the_training_rows_does_not_blow_up_held_out_rows(rank_transform):
    """s_t at an image position can be constant on one fold's rows and not on the other's;
    standardising it by its ~0 training std sent held-out rows to +-1e8 (estimates of -1000s
    of nats). Such a column now keeps scale 1 and the estimate stays near the truth."""
    x, y = correlated_gaussians(2000, 1, 0.8, generator=13)
    rare = torch.zeros(2000, 1)
    rare[5] = 1e-3  # one row: constant 0 on the training rows of the split that holds it out
    y = torch.cat([y, rare], dim=1)
    out = estimate_mi_interval(
        x, y, folds=2, steps=300, hidden=32, rank_transform=rank_transform, seed=1
    )
    assert abs(out["nats"] - gaussian_mi(0.8, 1)) <= 0.2 * gaussian_mi(0.8, 1)

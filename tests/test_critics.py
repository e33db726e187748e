"""SetCritic: the sequence-level I(z; s_1:T) of the cmi penalty, checked against closed forms."""

import math

import pytest
import torch

from paperlib.estimators.critics import SetCritic, position_code


def _sequences(n, d, T, a, generator):
    """z ~ N(0, I_d); s_t = a z + eps_t, eps_t ~ N(0, I_d) iid over t.

    s-bar = a z + eps-bar is sufficient for z, so I(z; s_1:T) = d/2 log(1 + a^2 T), while one
    frame holds only d/2 log(1 + a^2).
    """
    z = torch.randn(n, d, generator=generator)
    s = a * z[:, None, :] + torch.randn(n, T, d, generator=generator)
    return z, s


def _trained_critic(seed, d, T, a, steps=600):
    """A SetCritic (hidden 64) trained on batches of 128 fresh `_sequences`; with its generator."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    critic = SetCritic(d, d, hidden=64)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    for _ in range(steps):
        z, s = _sequences(128, d, T, a, gen)
        loss, _ = critic.loss(z, s, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return critic, gen


def test_the_set_critic_estimates_sequence_level_mi():
    d, T, a = 2, 16, 0.5
    truth = d / 2 * math.log(1 + a * a * T)  # 1.61 nats; one frame: 0.22
    critic, gen = _trained_critic(0, d, T, a)
    z, s = _sequences(4096, d, T, a, gen)
    with torch.no_grad():
        est = float(critic.mi(z, s))
        _, acc = critic.loss(z[:256], s[:256], gen)
    assert est == pytest.approx(truth, rel=0.2)
    assert est > 3 * d / 2 * math.log(1 + a * a)  # far above what one frame could give
    assert acc > 0.7


def test_independent_z_and_s_give_no_information():
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    critic = SetCritic(3, 2, hidden=32)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    for _ in range(200):
        z, s = torch.randn(128, 3, generator=gen), torch.randn(128, 8, 2, generator=gen)
        loss, _ = critic.loss(z, s, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        est = float(critic.mi(torch.randn(4096, 3), torch.randn(4096, 8, 2)))
    assert abs(est) < 0.1


def test_the_penalty_is_differentiable_in_z_and_s_and_shapes_are_checked():
    critic = SetCritic(3, 2, hidden=8)
    z = torch.randn(5, 3, requires_grad=True)
    s = torch.randn(5, 7, 2, requires_grad=True)
    critic.mi(z, s).backward()
    assert z.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    assert position_code(7).shape == (7, 9) and position_code(1).shape == (1, 9)
    with pytest.raises(ValueError, match=r"\(B, T, Ds\)"):
        critic.mi(z, s[:, 0])


def test_the_posthoc_set_estimator_recovers_sequence_level_mi_from_encodings():
    """evaluate.posthoc_mi_zs on s_seq (N, T, Ds): a fresh cross-fitted set critic estimates
    I(z; s_1:T) within 20 % of the closed form, far above what one frame holds."""
    from paperlib.evaluation import evaluate

    gen = torch.Generator().manual_seed(2)
    d, T, a = 2, 16, 0.5
    truth = d / 2 * math.log(1 + a * a * T)  # 1.61 nats
    z, s = _sequences(3000, d, T, a, gen)
    enc = {"z_sample": z.numpy(), "s_seq": s.numpy()}
    got = evaluate.posthoc_mi_zs(enc, seed=0, s_key="s_seq", steps=600, hidden=64)
    assert got["mi_zs_nats"] == pytest.approx(truth, rel=0.2)
    assert got["mi_zs_nats_low"] < got["mi_zs_nats"] < got["mi_zs_nats_high"]
    assert got["mi_zs_nats"] > 3 * d / 2 * math.log(1 + a * a)  # more than one frame holds


def test_the_training_critic_on_held_out_rows_matches_its_training_estimate():
    """evaluate.critic_mi_zs: per-row log-ratios of a trained SetCritic on fresh rows, with a
    bootstrap interval that holds the closed form; rows() is the per-pair term behind mi()."""
    from paperlib.evaluation import evaluate

    d, T, a = 2, 16, 0.5
    truth = d / 2 * math.log(1 + a * a * T)
    critic, gen = _trained_critic(3, d, T, a)
    z, s = _sequences(2000, d, T, a, gen)
    with torch.no_grad():
        assert torch.allclose(critic.rows(z[:64], s[:64]).mean(), critic.mi(z[:64], s[:64]))
    got = evaluate.critic_mi_zs(critic, {"z_sample": z.numpy(), "s_seq": s.numpy()}, seed=0)
    assert got["mi_zs_critic_nats_low"] < got["mi_zs_critic_nats"] < got["mi_zs_critic_nats_high"]
    assert got["mi_zs_critic_nats"] == pytest.approx(truth, rel=0.2)
    assert critic.training  # the critic's mode is restored

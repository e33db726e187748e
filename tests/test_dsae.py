"""DSAE (Li & Mandt 2018): shapes, finite terms, learning, voice conversion, IW bound."""

from __future__ import annotations

import pytest
import torch

from paperlib.config import ModelConfig
from paperlib.gaussian import gaussian_log_prob
from paperlib.models import build_model
from paperlib.models.dsae import DSAE

# Tiny sizes: a few ms per step on one CPU thread, enough structure to learn.
T, N_MELS, N_SPEAKERS = 8, 6, 4
CFG = dict(name="dsae", z_dim=3, s_dim=3, hidden=16)


def _model(posterior: str) -> DSAE:
    torch.manual_seed(0)
    model_cfg = ModelConfig(**CFG, posterior=posterior)
    return build_model(model_cfg, {"x_shape": (T, N_MELS), "n_classes": N_SPEAKERS})


def _speaker_sequences(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames around a per-speaker offset (the global factor), (n, T, N_MELS)."""
    g = torch.Generator().manual_seed(seed)
    offsets = 2.0 * torch.randn(N_SPEAKERS, 1, N_MELS, generator=g)
    y = torch.arange(n) % N_SPEAKERS
    x = offsets[y] + 0.5 * torch.randn(n, T, N_MELS, generator=g)
    return x, y


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("posterior", ["factorized", "full"])
def test_shapes_and_finite_terms(posterior):
    model = _model(posterior)
    x, _ = _speaker_sequences(5)
    out = model(x)
    assert out.z.shape == out.z_mean.shape == out.z_logvar.shape == (5, CFG["z_dim"])
    assert out.s.shape == (5, T, CFG["s_dim"])
    assert out.x_params.shape == x.shape
    for name in ("log_px", "kl_z", "kl_s"):
        value = getattr(out, name)
        assert value.shape == (5,), name
        assert torch.isfinite(value).all(), name
    assert (out.kl_z >= 0).all()
    loss = -out.elbo.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_given_z_is_used_and_checked():
    model = _model("full")
    x, _ = _speaker_sequences(3)
    z = torch.zeros(3, CFG["z_dim"])
    assert torch.equal(model(x, z=z).z, z)
    with pytest.raises(ValueError, match="z must be"):
        model(x, z=torch.zeros(3, CFG["z_dim"] + 1))
    with pytest.raises(ValueError, match="n_mels"):
        model(torch.zeros(3, T, N_MELS + 1))


@pytest.mark.parametrize("posterior", ["factorized", "full"])
def test_elbo_improves(posterior):
    model = _model(posterior)
    x, _ = _speaker_sequences(32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    with torch.no_grad():
        before = model(x).elbo.mean().item()
    for _ in range(30):
        loss = -model(x).elbo.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = model(x).elbo.mean().item()
    # a clear gain in nats per sequence (T * N_MELS = 48 dims), not a numerical wobble
    assert after > before + 10.0, (before, after)


def test_swap_z_decode_and_sample_shapes():
    model = _model("full")
    xc, _ = _speaker_sequences(4, seed=1)
    xs, _ = _speaker_sequences(4, seed=2)
    assert model.swap_z(xc, xs).shape == (4, T, N_MELS)
    # the speaker source may have another length: z is global
    assert model.swap_z(xc, xs[:, :5]).shape == (4, T, N_MELS)
    with pytest.raises(ValueError, match="same batch size"):
        model.swap_z(xc, xs[:2])
    z, _ = model.encode(xc)
    s = torch.zeros(4, T, CFG["s_dim"])
    assert model.decode(z, s).shape == (4, T, N_MELS)
    assert model.sample(z).shape == (4, T, N_MELS)
    assert model.sample(z, n_frames=3).shape == (4, 3, N_MELS)


def test_swap_z_takes_speaker_from_z():
    """With the factorized posterior s ignores z, so swapping z with itself reconstructs."""
    model = _model("factorized").eval()
    x, _ = _speaker_sequences(4)
    with torch.no_grad():
        z, _ = model.encode(x)
        s, _ = model.encode_s(x)
        assert torch.allclose(model.swap_z(x, x), model.decode(z, s))


@pytest.mark.parametrize("posterior", ["factorized", "full"])
def test_iw_bound_above_elbo(posterior):
    model = _model(posterior).eval()
    x, _ = _speaker_sequences(8)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = torch.stack([model(x).elbo for _ in range(16)]).mean(0)  # (B,)
        iw = model.iw_log_px(x, n_samples=64)
    assert iw.shape == (8,)
    assert torch.isfinite(iw).all()
    assert iw.mean() >= elbo.mean()
    with pytest.raises(ValueError, match="n_samples"):
        model.iw_log_px(x, 0)


def test_from_config_errors():
    with pytest.raises(ValueError, match="x_shape"):
        build_model(ModelConfig(**CFG), {"x_shape": (1, 8, 8)})
    with pytest.raises(ValueError, match="posterior"):
        DSAE(n_mels=4, z_dim=2, s_dim=2, hidden=4, posterior="nope")


def test_fixed_decoder_variance_is_not_learned():
    model = DSAE(n_mels=N_MELS, z_dim=2, s_dim=2, hidden=8, decoder_logvar=0.0)
    assert "dec_logvar" not in dict(model.named_parameters())
    assert torch.equal(model.dec_logvar, torch.zeros(N_MELS))


def test_ml_decoder_variance_maximises_the_likelihood_given_the_means():
    """With its running average converged on one batch, sigma_f^2 is that batch's mean squared
    residual, and no other variance gives the same means a higher log p(x|z,s)."""
    torch.manual_seed(0)
    model = DSAE(n_mels=N_MELS, z_dim=2, s_dim=2, hidden=8)
    assert "dec_logvar" not in dict(model.named_parameters())  # fitted in closed form
    x = torch.randn(16, 5, N_MELS) * torch.linspace(0.2, 2.0, N_MELS)
    z = torch.zeros(16, 2)
    model.train()
    for _ in range(300):  # the same means each time: the running average converges to their mse
        model(x, z=z, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x_mean = model(x, z=z, generator=torch.Generator().manual_seed(1)).x_params
    mse = (x - x_mean).pow(2).mean(dim=(0, 1))
    torch.testing.assert_close(model.dec_logvar.exp(), mse, rtol=1e-4, atol=1e-6)

    def log_px(logvar):
        return gaussian_log_prob(x, x_mean, logvar.expand_as(x)).sum()

    best = log_px(model.dec_logvar)
    for shift in (-0.3, -0.05, 0.05, 0.3):
        assert log_px(model.dec_logvar + shift) < best


def test_ml_decoder_variance_moves_only_on_training_steps():
    model = DSAE(n_mels=N_MELS, z_dim=2, s_dim=2, hidden=8)
    x = torch.randn(4, 5, N_MELS) * 3.0
    model.eval()
    model(x)
    with torch.no_grad():
        model.train()(x)  # a monitor's forward: training mode, no gradients
    assert torch.equal(model.dec_logvar, torch.zeros(N_MELS))
    model(x)  # a training step's forward
    assert (model.dec_logvar > 0).all()  # towards the residuals of x with variance ~9


def test_ml_decoder_variance_trains_to_a_higher_elbo_than_the_gradient_fit():
    """The slow path it replaces: Adam moves a variance parameter by about lr a step, so after
    the same steps the gradient-fitted decoder variance is still far above the residuals'."""
    x = torch.randn(32, 6, N_MELS) * 0.1 + torch.linspace(-1, 1, N_MELS)
    elbo = {}
    for fit in ("ml", "gradient"):
        torch.manual_seed(0)
        model = DSAE(n_mels=N_MELS, z_dim=2, s_dim=2, hidden=16, decoder_variance=fit)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(60):
            loss = -model(x).elbo.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            elbo[fit] = model(x, generator=torch.Generator().manual_seed(0)).elbo.mean().item()
    # 47.8 nats apart on these 36 dims when written; half a nat a dim is far beyond noise
    assert elbo["ml"] > elbo["gradient"] + 0.5 * x[0].numel()
    with pytest.raises(ValueError, match="decoder_variance"):
        DSAE(n_mels=4, z_dim=2, s_dim=2, hidden=4, decoder_variance="nope")

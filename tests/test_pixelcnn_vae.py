"""PixelCNN-VAE: causality by gradients, z-free s, output heads, cached sampling, IW bound, learning.

Models are tiny (6x6 or 5x7 images, hidden 8, 2-3 layers) so the whole file runs in seconds on
one CPU thread; float64 where a test compares two computations or looks for exact zeros.
"""

from __future__ import annotations

import math

import pytest
import torch

from paperlib.config import load
from paperlib.models import build_model
from paperlib.models.layers import CachedStackState, GatedMaskedConv2d, receptive_field
from paperlib.models.pixelcnn_vae import PixelCNNVAE, discretized_logistic_mix_log_prob

torch.set_num_threads(1)

OUTPUTS = ("bernoulli", "softmax256", "logistic_mix")


def tiny(x_shape, output="bernoulli", n_layers=3, kernel_size=3, seed=0, double=True):
    """A small random model: hidden 8 keeps it fast, n_mixtures 2 exercises the mixture."""
    torch.manual_seed(seed)
    model = PixelCNNVAE(
        x_shape,
        z_dim=3,
        s_dim=4,
        hidden=8,
        n_layers=n_layers,
        kernel_size=kernel_size,
        output=output,
        n_mixtures=2,
        enc_channels=4,
    )
    return model.double() if double else model


def random_images(n, x_shape, output, seed=0, dtype=torch.float64):
    """Binary images for Bernoulli, multiples of 1/255 for the 8-bit outputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *x_shape), generator=g, dtype=dtype)
    return x.round() if output == "bernoulli" else (x * 255).round() / 255


def expected_field(H, W, i, j, r):
    """(H, W) bool: pixels that (i, j) may see: r rows above over j +- r, and r to its left."""
    rows = torch.arange(H)[:, None]
    cols = torch.arange(W)[None, :]
    above = (rows < i) & (rows >= i - r) & ((cols - j).abs() <= r)
    left = (rows == i) & (cols < j) & (cols >= j - r)
    return above | left


def input_gradients(model, x_shape, what):
    """(H, W, C, H, W): d <random projection of `what` at (i, j)> / d x, for every (i, j).

    One backward pass: image b of a batch of H*W copies handles position b (the decoder treats
    batch items independently). z is fixed, so only the decoder's path from x is measured.
    """
    C, H, W = x_shape
    T = H * W
    x = torch.rand((1, C, H, W), dtype=torch.float64).repeat(T, 1, 1, 1).requires_grad_(True)
    z = torch.randn(1, model.z_dim, dtype=torch.float64).repeat(T, 1)
    out = model(x, z=z)
    if what == "params":
        y = out.x_params.flatten(2)  # (T, P, H*W)
    else:
        y = out.s.transpose(1, 2)  # (T, Ds, H*W)
    proj = torch.randn(y.shape[1], dtype=torch.float64)
    idx = torch.arange(T)
    (grad,) = torch.autograd.grad((y[idx, :, idx] * proj).sum(), x)
    return grad.reshape(H, W, C, H, W)


# --- (a) causality: exactly the receptive field, no blind spot --------------------------------


@pytest.mark.parametrize(
    "x_shape, n_layers, kernel_size, output",
    [
        ((1, 6, 6), 3, 3, "bernoulli"),
        ((3, 6, 6), 3, 3, "logistic_mix"),
        ((3, 6, 6), 2, 3, "softmax256"),
        ((1, 7, 9), 2, 5, "bernoulli"),
    ],
)
@pytest.mark.parametrize("what", ["params", "s"])
def test_causal_and_no_blind_spot(x_shape, n_layers, kernel_size, output, what):
    C, H, W = x_shape
    model = tiny(x_shape, output, n_layers, kernel_size)
    r = model.receptive_field.rows_above
    grad = input_gradients(model, x_shape, what)
    for i in range(H):
        for j in range(W):
            g = grad[i, j]  # (C, H, W)
            field = expected_field(H, W, i, j, r)
            # causal: nothing at or after (i, j) in raster order, in any channel
            after = torch.arange(H * W).reshape(H, W) >= i * W + j
            assert (g[:, after] == 0).all(), f"position {(i, j)} sees the future"
            # exactly the computed receptive field, every channel of every pixel in it
            assert ((g != 0) == field.expand(C, H, W)).all(), f"field wrong at {(i, j)}"
            # the neighbours public code misses: left, up, up-left, up-right
            for di, dj in [(0, -1), (-1, 0), (-1, -1), (-1, 1)]:
                if 0 <= i + di < H and 0 <= j + dj < W:
                    assert (g[:, i + di, j + dj] != 0).all()


def test_receptive_field_formula():
    # quick preset: 5 layers of kernel 3 -> 5 rows above over 11 columns, plus 5 to the left
    assert tuple(receptive_field(5, 3)) == (5, 5, 5, 60)
    assert tuple(receptive_field(2, 5)) == (4, 4, 4, 40)
    with pytest.raises(ValueError):
        GatedMaskedConv2d(1, 4, 4, first=True)  # even kernels have no centre


# --- (b) s does not depend on z ----------------------------------------------------------------


def test_s_is_z_free():
    model = tiny((1, 6, 6))
    x = random_images(4, (1, 6, 6), "bernoulli")
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64)
    out1, out2 = model(x, z=z1), model(x, z=z2)
    assert torch.equal(out1.s, out2.s)
    assert not torch.allclose(out1.x_params, out2.x_params)  # z does reach the output
    (grad_s,) = torch.autograd.grad(out1.s.sum(), z1, allow_unused=True)
    assert grad_s is None or (grad_s == 0).all()
    (grad_p,) = torch.autograd.grad(out1.log_px.sum(), z1)
    assert (grad_p != 0).any()


def test_z_reaches_the_head_position_aware():
    """The spatial z map says different things at different pixels; broadcast cannot."""
    torch.manual_seed(0)
    z = torch.randn(2, 3)
    spatial = PixelCNNVAE((1, 8, 8), z_dim=3, s_dim=4, hidden=6, n_layers=2)
    m = spatial.z_map(z)  # (B, hidden, H, W)
    assert m.shape == (2, 6, 8, 8)
    assert m.flatten(2).std(dim=2).min() > 1e-3  # varies over pixels for every channel
    # and how it varies depends on z: the map is not a fixed positional bias plus a vector
    d = spatial.z_map(z + torch.randn(2, 3)) - m
    assert d.flatten(2).std(dim=2).min() > 1e-4
    flat = PixelCNNVAE((1, 8, 8), z_dim=3, s_dim=4, hidden=6, n_layers=2, z_to_head="broadcast")
    assert flat.z_map(z).shape == (2, 6, 1, 1)
    with pytest.raises(ValueError, match="z_to_head"):
        PixelCNNVAE((1, 8, 8), z_dim=3, s_dim=4, hidden=6, n_layers=2, z_to_head="film")


# --- (c) shapes and finite losses per output head ----------------------------------------------


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("C", [1, 3])
def test_shapes_and_finite_losses(output, C):
    x_shape = (C, 5, 7)
    model = tiny(x_shape, output, n_layers=2, double=False)
    x = random_images(4, x_shape, output, dtype=torch.float32)
    out = model(x)
    B, T = 4, 5 * 7
    assert out.z.shape == out.z_mean.shape == out.z_logvar.shape == (B, 3)
    assert out.s.shape == (B, T, 4)
    assert out.log_px.shape == out.kl_z.shape == out.kl_s.shape == (B,)
    assert out.x_params.shape == (B, model.n_params, 5, 7)
    assert torch.isfinite(out.elbo).all()
    assert (out.log_px <= 1e-6).all()  # probabilities of discrete values
    assert (out.kl_z >= 0).all() and (out.kl_s == 0).all()
    (-out.elbo.mean()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    mean = model.mean_image(out.x_params)
    assert mean.shape == x.shape and (mean >= 0).all() and (mean <= 1).all()


def test_discretized_logistic_mixture_sums_to_one():
    # 256 levels of a 1-channel pixel under random mixtures, incl. very sharp and very wide ones
    torch.manual_seed(0)
    K, n = 3, 5
    params = torch.randn(n, K * 3, 1, 1, dtype=torch.float64)
    params[:, 2 * K :] = torch.linspace(-6, 1, n * K, dtype=torch.float64).reshape(n, K, 1, 1)
    levels = torch.arange(256, dtype=torch.float64) / 255
    x = levels.reshape(256, 1, 1, 1, 1).expand(256, n, 1, 1, 1)
    logp = torch.stack([discretized_logistic_mix_log_prob(x[k], params, K) for k in range(256)])
    total = torch.logsumexp(logp.reshape(256, n), dim=0)
    assert torch.allclose(total, torch.zeros(n, dtype=torch.float64), atol=1e-3)


# --- (d) cached sampling == naive sampling ------------------------------------------------------


@pytest.mark.parametrize("output, C", [("bernoulli", 1), ("softmax256", 3), ("logistic_mix", 3)])
def test_cached_sampling_equals_naive(output, C):
    x_shape = (C, 5, 7)  # not square: catches H / W mix-ups
    model = tiny(x_shape, output, n_layers=3)
    z = torch.randn(3, 3, dtype=torch.float64)
    x_cached = model.sample(z, torch.Generator().manual_seed(7))
    x_naive = model.sample_naive(z, torch.Generator().manual_seed(7))
    assert torch.equal(x_cached, x_naive)
    assert x_cached.shape == (3, *x_shape)
    if output == "bernoulli":
        assert set(x_cached.unique().tolist()) <= {0.0, 1.0}
    else:
        assert torch.equal(x_cached * 255, (x_cached * 255).round())
    # determinism per seed; another seed gives other images
    assert torch.equal(x_cached, model.sample(z, torch.Generator().manual_seed(7)))
    assert not torch.equal(x_cached, model.sample(z, torch.Generator().manual_seed(8)))


def test_cached_stack_matches_full_forward():
    # the cache evaluated at every pixel of a fixed continuous input == the full stack (float32)
    model = tiny((3, 6, 5), "logistic_mix", n_layers=3, double=False)
    x_in = model._stack_input(torch.rand(2, 3, 6, 5))
    with torch.no_grad():
        full = model.stack(x_in)  # (B, hidden, H, W)
        state = CachedStackState(model.stack, 2, 6, 5, x_in)
        state.fill(x_in)
        for i in range(6):
            state.start_row(i)
            for j in range(5):
                torch.testing.assert_close(state.pixel(j), full[:, :, i, j], atol=1e-5, rtol=1e-5)


# --- (e) importance-weighted bound --------------------------------------------------------------


def test_iw_bound_above_elbo_and_below_zero():
    model = tiny((1, 6, 6))
    x = random_images(8, (1, 6, 6), "bernoulli")
    with torch.no_grad():
        torch.manual_seed(1)
        # E_q[ELBO] by Monte Carlo over 512 posterior samples (its noise << the IW-ELBO gap)
        elbo = model(x.repeat(512, 1, 1, 1)).elbo.reshape(512, 8).mean(0)  # (B,)
        iw = model.iw_log_px(x, 64, generator=torch.Generator().manual_seed(2))  # (B,)
        iw1 = model.iw_log_px(x, 1, generator=torch.Generator().manual_seed(2))
    assert iw.shape == (8,)
    assert iw.mean() >= elbo.mean()
    assert (iw <= 0).all()  # a bound on the log-probability of binary images
    # K = 1 is an unbiased ELBO estimate: close to the Monte Carlo ELBO
    assert abs(iw1.mean() - elbo.mean()) < 0.1 * abs(elbo.mean())


# --- (f) learning -------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss():
    # digit-like data: 4 random 8x8 binary prototypes with 5 % of the pixels flipped
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(4, 1, 8, 8, generator=g) < 0.4).float()
    flips = (torch.rand(32, 1, 8, 8, generator=g) < 0.05).float()
    x = (protos[torch.arange(32) % 4] + flips) % 2
    model = tiny((1, 8, 8), n_layers=2, double=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return -model(x).elbo.mean()

    torch.manual_seed(0)
    with torch.no_grad():
        before = loss().item()
    for _ in range(60):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    torch.manual_seed(0)
    with torch.no_grad():
        after = loss().item()
    assert math.isfinite(after) and after < 0.85 * before


# --- registry and presets -----------------------------------------------------------------------


def test_built_from_presets():
    info = {"x_shape": (1, 8, 8), "binarized": True, "n_classes": 10}
    model = build_model(load("smoke", "images").model, info)
    assert isinstance(model, PixelCNNVAE)
    assert model(torch.zeros(2, 1, 8, 8)).s.shape == (2, 64, 8)
    quick = build_model(load("quick", "images").model, {**info, "x_shape": (1, 28, 28)})
    assert tuple(quick.receptive_field) == (5, 5, 5, 60)


def test_channels_last_layout_computes_what_the_contiguous_layout_does():
    """The speed layout (channels-last maps) changes rounding only: same loss and gradients."""
    import copy

    torch.manual_seed(0)
    fast = PixelCNNVAE((1, 10, 10), z_dim=3, s_dim=4, hidden=8, n_layers=3)
    plain = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)
    plain._stack_input = lambda x: torch.cat([2.0 * x - 1.0, torch.ones_like(x[:, :1])], dim=1)
    x = (torch.rand(4, 1, 10, 10) > 0.5).float()
    z = torch.randn(4, 3)
    a, b = fast(x, z=z), plain(x, z=z)
    assert a.s.is_contiguous()
    torch.testing.assert_close(a.log_px, b.log_px, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(a.s, b.s, rtol=1e-5, atol=1e-5)
    a.log_px.sum().backward()
    b.log_px.sum().backward()
    for (name, p), q in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)

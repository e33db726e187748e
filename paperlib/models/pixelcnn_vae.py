"""PixelCNN-VAE: a global z and local features s_t = h(x_<t) from a z-free gated PixelCNN.

DESIGN section 1, "Autoregressive variant". The decoder

    p(x | z) = prod_t p(x_t | s_t, z),     s_t = h(x_<t)

has two parts, so that the local features are a named tensor:

(a) a z-FREE gated masked-convolution context stack (van den Oord et al. 2016; shifted
    convolutions as in Salimans et al. 2017, PixelCNN++), projected by a 1x1 convolution to
    ``s_dim`` channels: s_t at every pixel, raster order t = i * W + j;
(b) 1x1 layers that combine s_t with a map of z (a z-only spatial map, or one vector broadcast
    over pixels; ``z_to_head``) into the
    parameters of p(x_t | s_t, z): Bernoulli logits (binarized images), a 256-way softmax per
    channel, or a discretized logistic mixture (Salimans et al. 2017) for 8-bit images.

This follows the VLAE / PixelVAE construction (Chen et al. 2017, "Variational Lossy
Autoencoder", ICLR; Gulrajani et al. 2017, "PixelVAE", ICLR) of a VAE whose decoder is an
autoregressive model with a limited receptive field - "local" means the `receptive_field` of the
stack (layers.py states the causality scheme). Since s is a deterministic function of x,
I(z; s | x) = 0 and the identity I(x; z | s) = I(x; z) - I(z; s) of the CMI objective is exact.

Colour images: all channels of pixel t are predicted from x_<t (channels are not ordered within
a pixel). softmax256 factorises over the channels of a pixel given (s_t, z); the logistic
mixture shares the mixture component across the channels of a pixel (so the channels of one
pixel are dependent through it), without PixelCNN++'s linear channel coupling.

Sampling (`sample`) pre-draws all uniform noise at the start, one (B, N, H, W) block with N
numbers per pixel, and turns each pixel's numbers into a value by inverse-CDF. The cached and
the naive sampler consume the same noise, so with the same generator seed they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib.gaussian import (
    gaussian_kl_std_normal,
    gaussian_log_prob,
    reparameterize,
)
from paperlib.models import MODELS
from paperlib.models.base import SequentialVAE
from paperlib.models.layers import CachedStackState, GatedPixelCNNStack, ReceptiveField
from paperlib.outputs import VAEOutput

OUTPUTS = ("bernoulli", "softmax256", "logistic_mix")
Z_TO_HEAD = ("spatial", "broadcast")
_LOG_SCALE_MIN = -7.0  # lower clamp of the logistic log-scales (PixelCNN++)


def to_8bit(x: Tensor) -> Tensor:
    """Intensities in [0, 1] -> integer levels 0..255 (long), the classes of the 8-bit outputs."""
    return (x * 255.0).round().clamp(0, 255).long()


def from_8bit(k: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Integer levels 0..255 -> intensities k / 255 in [0, 1] (the data's representation)."""
    return k.to(dtype) / 255.0


def discretized_logistic_mix_log_prob(x: Tensor, params: Tensor, n_mix: int) -> Tensor:
    """log p(x) under a discretized logistic mixture, per pixel, in nats (Salimans et al. 2017).

    p(x) = sum_k pi_k prod_c [sigma((x_c + 1/255 - mu_kc) / s_kc) - sigma((x_c - 1/255 - mu_kc) / s_kc)]
    on x rescaled to [-1, 1] with 256 bins of width 2/255; the edge bins take the whole tail.

    Parameters
    ----------
    x : (B, C, H, W) intensities in [0, 1] (multiples of 1/255).
    params : (B, K * (1 + 2C), H, W): K mixture logits, then K*C means, then K*C log-scales
        (index k * C + c).
    n_mix : K.

    Returns
    -------
    (B, H, W) log-probabilities of the pixels (all channels).
    """
    B, C, H, W = x.shape
    K = n_mix
    logit_pi = params[:, :K]  # (B, K, H, W)
    mu = params[:, K : K + K * C].reshape(B, K, C, H, W)
    log_s = params[:, K + K * C :].reshape(B, K, C, H, W).clamp(min=_LOG_SCALE_MIN)
    y = (2.0 * x - 1.0).unsqueeze(1)  # (B, 1, C, H, W) in [-1, 1]
    centered = y - mu
    inv_s = torch.exp(-log_s)
    plus_in = inv_s * (centered + 1.0 / 255.0)
    min_in = inv_s * (centered - 1.0 / 255.0)
    # log sigma(a) = a - softplus(a); log (1 - sigma(a)) = -softplus(a)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # the x = 0 bin: P(y <= -1 + 1/255)
    log_one_minus_cdf_min = -F.softplus(min_in)  # the x = 255 bin: P(y > 1 - 1/255)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    # where the bin mass underflows: log pdf at the centre + log bin width (2/255)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_s - 2.0 * F.softplus(mid_in)
    log_mid = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid - math.log(127.5),
    )
    log_p_c = torch.where(
        y < -0.999, log_cdf_plus, torch.where(y > 0.999, log_one_minus_cdf_min, log_mid)
    )  # (B, K, C, H, W)
    # log p(x) = logsumexp_k [log pi_k + sum_c log p_k(x_c)]
    return torch.logsumexp(log_p_c.sum(2) + F.log_softmax(logit_pi, dim=1), dim=1)


@MODELS.register("pixelcnn_vae")
class PixelCNNVAE(SequentialVAE):
    """VAE with a Gaussian global z and a gated PixelCNN decoder with z-free local features s.

    Parameters
    ----------
    x_shape : (C, H, W) of the images.
    z_dim : dimension of z.
    s_dim : channels of the local features s_t.
    hidden : channels of the gated layers and of the 1x1 output layers.
    n_layers : gated layers in the context stack.
    kernel_size : odd kernel size (>= 3) of the gated layers.
    output : "bernoulli" | "softmax256" | "logistic_mix" (see module docstring).
    n_mixtures : mixture components of "logistic_mix".
    enc_channels : channels of the first encoder convolution (the second has twice as many).
    z_to_head : "spatial" (z -> a coarse (hidden, H/4, W/4) map, bilinear up to (H, W), ELU, a
        3x3 convolution: what z says can differ per pixel) or "broadcast" (one projection of z
        added at every pixel). Either way z never enters s, so s stays z-free and causal.

    Notes
    -----
    The ``x_params`` of the output are the per-pixel parameters as (B, P, H, W): Bernoulli
    logits (P = C); softmax logits (P = 256 C, index c * 256 + level); or the logistic mixture
    layout of `discretized_logistic_mix_log_prob` (P = K (1 + 2C)). `mean_image` turns them into
    an expected image. With "bernoulli" and non-binary data the log-likelihood is the
    (continuous) Bernoulli cross-entropy.
    """

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        z_dim: int,
        s_dim: int,
        hidden: int,
        n_layers: int,
        kernel_size: int = 3,
        output: str = "bernoulli",
        n_mixtures: int = 5,
        enc_channels: int = 32,
        z_to_head: str = "spatial",
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r} is not accepted; choose one of {list(OUTPUTS)}")
        C, H, W = (int(d) for d in x_shape)
        self.x_shape = (C, H, W)
        self.z_dim, self.s_dim, self.hidden = z_dim, s_dim, hidden
        self.output, self.n_mixtures = output, n_mixtures
        # encoder q(z|x): two stride-2 convolutions, then an MLP to (mean, logvar)
        ec = enc_channels
        h2, w2 = math.ceil(math.ceil(H / 2) / 2), math.ceil(math.ceil(W / 2) / 2)
        self.encoder = nn.Sequential(
            nn.Conv2d(C, ec, 3, stride=2, padding=1),
            nn.ELU(),
            nn.Conv2d(ec, 2 * ec, 3, stride=2, padding=1),
            nn.ELU(),
            nn.Flatten(),
            nn.Linear(2 * ec * h2 * w2, hidden),
            nn.ELU(),
            nn.Linear(hidden, 2 * z_dim),
        )
        # (a) z-free context stack; its input is [2x - 1, ones] (the ones mark the border)
        self.stack = GatedPixelCNNStack(C + 1, hidden, n_layers, kernel_size)
        self.s_proj = nn.Conv2d(hidden, s_dim, 1)
        # (b) 1x1 head on (s_t, z). z reaches pixel (i, j) through a z-only spatial map: a
        # broadcast vector would leave the head unable to tell where it is wherever the stack's
        # receptive field sees no border, so z could not steer strokes there.
        self.head_s = nn.Conv2d(s_dim, hidden, 1)
        if z_to_head not in Z_TO_HEAD:
            raise ValueError(
                f"z_to_head {z_to_head!r} is not accepted; choose one of {list(Z_TO_HEAD)}"
            )
        self.z_to_head = z_to_head
        self._z_grid = (math.ceil(H / 4), math.ceil(W / 4)) if z_to_head == "spatial" else (1, 1)
        self.head_z = nn.Linear(z_dim, hidden * self._z_grid[0] * self._z_grid[1])
        self.head_z_conv = (
            nn.Conv2d(hidden, hidden, 3, padding=1) if z_to_head == "spatial" else None
        )
        self.head_mid = nn.Conv2d(hidden, hidden, 1)
        self.head_out = nn.Conv2d(hidden, self.n_params, 1)
        # channels-last feature maps: oneDNN's convolutions with 8-64 channels run ~1.2x
        # faster on CPU (benchmarks/speed_vs_base.py); the values are the same up to rounding
        self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, model_cfg, data_info: dict) -> PixelCNNVAE:
        """Build from a `ModelConfig` and a dataset's info (``x_shape`` = (C, H, W) wins over the
        dataset, never from the model config)."""
        return cls(
            x_shape=tuple(data_info["x_shape"]),
            z_dim=model_cfg.z_dim,
            s_dim=model_cfg.s_dim,
            hidden=model_cfg.hidden,
            n_layers=model_cfg.n_layers,
            kernel_size=model_cfg.kernel_size,
            output=model_cfg.output,
            n_mixtures=model_cfg.n_mixtures,
            enc_channels=model_cfg.enc_channels,
            z_to_head=model_cfg.z_to_head,
        )

    # --- sizes -----------------------------------------------------------------------------------

    @property
    def n_params(self) -> int:
        """P, the distribution parameters per pixel."""
        C = self.x_shape[0]
        if self.output == "bernoulli":
            return C
        if self.output == "softmax256":
            return 256 * C
        return self.n_mixtures * (1 + 2 * C)

    @property
    def n_noise(self) -> int:
        """Uniform numbers drawn per pixel when sampling (one per channel, plus the mixture
        component for "logistic_mix")."""
        return self.x_shape[0] + (1 if self.output == "logistic_mix" else 0)

    @property
    def receptive_field(self) -> ReceptiveField:
        """Pixels before (i, j) that s at (i, j) sees: rows i - r .. i - 1 over columns
        j - r .. j + r and row i columns j - r .. j - 1, r = n_layers * (kernel_size // 2);
        ``n_pixels`` = r (2r + 1) + r. This is what "local" means for s."""
        return self.stack.receptive_field

    # --- parts -----------------------------------------------------------------------------------

    def _stack_input(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C + 1, H, W): [2x - 1, ones]."""
        stack_in = torch.cat([2.0 * x - 1.0, torch.ones_like(x[:, :1])], dim=1)
        return stack_in.contiguous(memory_format=torch.channels_last)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): (B, C, H, W) -> (z_mean, z_logvar), each (B, Dz)."""
        z_mean, z_logvar = self.encoder(2.0 * x - 1.0).chunk(2, dim=-1)
        return z_mean, z_logvar

    def context(self, x: Tensor) -> Tensor:
        """s = h(x_<t) at every pixel: (B, C, H, W) -> (B, Ds, H, W). Does not involve z."""
        return self.s_proj(self.stack(self._stack_input(x)))

    def decode_params(self, s_map: Tensor, z: Tensor) -> Tensor:
        """Parameters of p(x_t | s_t, z): (B, Ds, H, W), (B, Dz) -> (B, P, H, W)."""
        return self._head(self.head_s(s_map), z)

    def z_map(self, z: Tensor) -> Tensor:
        """What z adds to the head at each pixel: (B, Dz) -> (B, hidden, H, W) (or (B, hidden,
        1, 1) for "broadcast"). A function of z alone, so no pixel of x enters through it."""
        B, (gh, gw) = z.shape[0], self._z_grid
        m = self.head_z(z).view(B, self.hidden, gh, gw)
        if self.head_z_conv is None:
            return m
        _, H, W = self.x_shape
        m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)
        return self.head_z_conv(F.elu(m)).contiguous(memory_format=torch.channels_last)

    def _head(self, s_hidden: Tensor, z: Tensor) -> Tensor:
        """The head after its s projection: (B, hidden, H, W), (B, Dz) -> (B, P, H, W)."""
        # a_ij = elu(W_s s_ij + Z(z)_ij)
        a = F.elu(s_hidden + self.z_map(z))
        return self.head_out(F.elu(self.head_mid(a)))

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | s, z) = sum_t log p(x_t | s_t, z) in nats: (B, C, H, W), (B, P, H, W) -> (B,)."""
        B, C, H, W = x.shape
        if self.output == "bernoulli":
            # log p = x log sigma(l) + (1 - x) log(1 - sigma(l))
            return -F.binary_cross_entropy_with_logits(params, x, reduction="none").sum((1, 2, 3))
        if self.output == "softmax256":
            logp = F.log_softmax(params.reshape(B, C, 256, H, W), dim=2)  # (B, C, 256, H, W)
            return logp.gather(2, to_8bit(x).unsqueeze(2)).sum((1, 2, 3, 4))
        return discretized_logistic_mix_log_prob(x, params, self.n_mixtures).sum((1, 2))

    def mean_image(self, params: Tensor) -> Tensor:
        """E[x_t | s_t, z] per pixel, (B, P, H, W) -> (B, C, H, W) in [0, 1] (for plots)."""
        B, _, H, W = params.shape
        C = self.x_shape[0]
        if self.output == "bernoulli":
            return torch.sigmoid(params)
        if self.output == "softmax256":
            probs = F.softmax(params.reshape(B, C, 256, H, W), dim=2)
            levels = torch.arange(256, device=params.device, dtype=params.dtype) / 255.0
            return (probs * levels[:, None, None]).sum(2)
        K = self.n_mixtures
        pi = F.softmax(params[:, :K], dim=1).unsqueeze(2)  # (B, K, 1, H, W)
        mu = params[:, K : K + K * C].reshape(B, K, C, H, W)
        # the mean of a logistic is its location; clipping to [-1, 1] is ignored here
        return ((pi * mu).sum(1).clamp(-1, 1) + 1.0) / 2.0

    # --- the VAE ---------------------------------------------------------------------------------

    def forward(self, x: Tensor, z: Tensor | None = None) -> VAEOutput:
        """Encode, sample z ~ q(z|x) (unless `z` is given), compute s and the ELBO terms.

        Parameters
        ----------
        x : (B, C, H, W) in [0, 1].
        z : optional (B, Dz); when given it replaces the posterior sample (IW bounds,
            conditional evaluation); kl_z is still KL(q(z|x) || p(z)).
        """
        z_mean, z_logvar = self.encode(x)  # (B, Dz) x 2
        if z is None:
            z = reparameterize(z_mean, z_logvar)
        s_map = self.context(x)  # (B, Ds, H, W)
        params = self.decode_params(s_map, z)  # (B, P, H, W)
        return VAEOutput(
            z=z,
            z_mean=z_mean,
            z_logvar=z_logvar,
            s=s_map.flatten(2).transpose(1, 2),  # (B, T = H W, Ds), raster order
            log_px=self.log_prob(x, params),
            # KL(q(z|x) || N(0, I)), closed form
            kl_z=gaussian_kl_std_normal(z_mean, z_logvar),
            kl_s=x.new_zeros(x.shape[0]),
            x_params=params,
        )

    def iw_log_px(
        self, x: Tensor, n_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Importance-weighted bound (Burda et al. 2016) on log p(x), (B,) in nats.

        log p(x) >= E log 1/K sum_k p(x | z_k) p(z_k) / q(z_k | x),  z_k ~ q(z | x).

        The context stack does not depend on z, so s (and its projection in the head) is
        computed once and reused for all K samples.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        z_mean, z_logvar = self.encode(x)
        s_hidden = self.head_s(self.context(x))  # (B, hidden, H, W), shared by all z_k
        log_w = []
        for _ in range(n_samples):
            z = reparameterize(z_mean, z_logvar, generator)
            log_px = self.log_prob(x, self._head(s_hidden, z))  # (B,)
            # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
            log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
            log_qz = gaussian_log_prob(z, z_mean, z_logvar)
            log_w.append(log_px + log_pz - log_qz)
        # log 1/K sum_k w_k
        return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(n_samples)

    # --- sampling --------------------------------------------------------------------------------

    def _draw_noise(self, B: int, z: Tensor, generator: torch.Generator | None) -> Tensor:
        """All uniform noise of one sampling run, (B, N, H, W), drawn at once."""
        _, H, W = self.x_shape
        device = generator.device if generator is not None else z.device
        u = torch.rand((B, self.n_noise, H, W), generator=generator, device=device)
        return u.to(device=z.device, dtype=z.dtype)

    def _sample_pixel(self, params: Tensor, u: Tensor) -> Tensor:
        """One pixel by inverse-CDF from its uniforms: (B, P), (B, N) -> (B, C) in [0, 1]."""
        B = params.shape[0]
        C = self.x_shape[0]
        if self.output == "bernoulli":
            # x = 1 iff u < sigma(logit)
            return (u < torch.sigmoid(params)).to(params.dtype)
        if self.output == "softmax256":
            cdf = F.softmax(params.reshape(B, C, 256), dim=-1).cumsum(-1)  # (B, C, 256)
            # level = #{k : F(k) < u}
            level = (cdf < u.unsqueeze(-1)).sum(-1).clamp(max=255)
            return from_8bit(level, params.dtype)
        K = self.n_mixtures
        cdf_k = F.softmax(params[:, :K], dim=-1).cumsum(-1)  # (B, K)
        k = (cdf_k < u[:, :1]).sum(-1, keepdim=True).clamp(max=K - 1)  # (B, 1) component
        mu = params[:, K : K + K * C].reshape(B, K, C)
        log_s = params[:, K + K * C :].reshape(B, K, C).clamp(min=_LOG_SCALE_MIN)
        idx = k.unsqueeze(-1).expand(B, 1, C)
        mu, log_s = mu.gather(1, idx)[:, 0], log_s.gather(1, idx)[:, 0]  # (B, C)
        uc = u[:, 1:].clamp(1e-5, 1.0 - 1e-5)
        # logistic inverse CDF: y = mu + s (log u - log(1 - u))
        y = mu + log_s.exp() * (torch.log(uc) - torch.log1p(-uc))
        return from_8bit(to_8bit((y.clamp(-1.0, 1.0) + 1.0) / 2.0), params.dtype)

    @torch.no_grad()
    def sample(
        self, z: Tensor, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """Autoregressive samples x ~ p(x | z), (B, Dz) -> (B, C, H, W) in [0, 1].

        Binary for "bernoulli", multiples of 1/255 otherwise (`to_8bit` gives the levels).
        ``cached=True`` reuses activations (each computed once per image, see
        `paperlib.models.layers.CachedStackState`); ``cached=False`` is `sample_naive`. Both
        consume the same noise, so the same generator seed gives the same images.
        """
        if not cached:
            return self.sample_naive(z, generator)
        C, H, W = self.x_shape
        B = z.shape[0]
        u = self._draw_noise(B, z, generator)  # (B, N, H, W)
        x = z.new_zeros(B, C, H, W)
        state = CachedStackState(self.stack, B, H, W, z)
        state.fill(self._stack_input(x))  # [2x - 1, ones]; the ones mark the image's inside
        ones = z.new_ones(B, 1)
        # s_t and the head as matrices on one pixel; z's projection is computed once
        s_w, s_b = self.s_proj.weight[:, :, 0, 0].t(), self.s_proj.bias
        # Z(z) at every pixel, (H, W, B, hidden) (broadcast: one (B, hidden) for all pixels)
        zh = (self.head_s.bias[:, None, None] + self.z_map(z)).permute(2, 3, 0, 1)
        hs_w = self.head_s.weight[:, :, 0, 0].t()
        hm_w, hm_b = self.head_mid.weight[:, :, 0, 0].t(), self.head_mid.bias
        ho_w, ho_b = self.head_out.weight[:, :, 0, 0].t(), self.head_out.bias
        for i in range(H):
            state.start_row(i)
            for j in range(W):
                s = torch.addmm(s_b, state.pixel(j), s_w)  # (B, Ds)
                # a = elu(W_s s_t + W_z z)
                zh_ij = zh[i, j] if self.head_z_conv is not None else zh[0, 0]  # (B, hidden)
                a = F.elu(torch.addmm(zh_ij, s, hs_w))
                params = torch.addmm(ho_b, F.elu(torch.addmm(hm_b, a, hm_w)), ho_w)  # (B, P)
                xt = self._sample_pixel(params, u[:, :, i, j])  # (B, C)
                x[:, :, i, j] = xt
                state.write(i, j, torch.cat([2.0 * xt - 1.0, ones], dim=1))
        return x

    @torch.no_grad()
    def sample_naive(
        self, z: Tensor, generator: torch.Generator | None = None, n_rows: int | None = None
    ) -> Tensor:
        """Reference sampler: one full forward pass of the decoder per pixel (slow, T passes).

        Same noise and same inverse-CDF as `sample`, so the same generator seed gives the same
        images (up to float rounding at a decision boundary).

        Parameters
        ----------
        z : (B, Dz).
        generator : source of the sampling noise.
        n_rows : sample only the first `n_rows` rows (the rest stay 0); for timing, since every
            step costs one full forward pass. None samples the whole image.
        """
        C, H, W = self.x_shape
        B = z.shape[0]
        u = self._draw_noise(B, z, generator)
        x = z.new_zeros(B, C, H, W)
        for i in range(H if n_rows is None else min(n_rows, H)):
            for j in range(W):
                params = self.decode_params(self.context(x), z)  # (B, P, H, W)
                x[:, :, i, j] = self._sample_pixel(params[:, :, i, j], u[:, :, i, j])
        return x

"""The one output type every model returns, and the base class of the sequential VAEs.

Notation (DESIGN section 1): x = x_1..x_T, a global latent z ~ p(z) = N(0, I) and local features
s_t. For the DSAE s_t is a stochastic latent with its own prior; for the PixelCNN-VAE s_t = h(x_<t)
is the z-free context stack's hidden state. Losses, estimators, regularizers and evaluation only
see `VAEOutput`, so none of them asks which model it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class VAEOutput:
    """What ``model(x)`` returns. B = batch, T = positions (frames or pixels in raster order).

    Attributes
    ----------
    z : (B, Dz) reparameterised sample of q(z|x).
    z_mean, z_logvar : (B, Dz) parameters of the Gaussian q(z|x).
    s : (B, T, Ds) local features: a sample of q(s|x, ...) (DSAE) or h(x_<t) (PixelCNN-VAE).
    log_px : (B,) log p(x | z, s) in nats, summed over positions and dimensions.
    kl_z : (B,) KL(q(z|x) || p(z)) in nats (closed form).
    kl_s : (B,) KL(q(s|...) || p(s)) in nats; zeros for the autoregressive model.
    x_params : decoder distribution parameters (logits or means), for plots; may be None.
    """

    z: Tensor
    z_mean: Tensor
    z_logvar: Tensor
    s: Tensor
    log_px: Tensor
    kl_z: Tensor
    kl_s: Tensor
    x_params: Tensor | None = None

    @property
    def elbo(self) -> Tensor:
        """(B,) ELBO = log p(x|z,s) - KL_z - KL_s, in nats."""
        return self.log_px - self.kl_z - self.kl_s

    def detached(self) -> VAEOutput:
        """A copy whose tensors carry no graph (what critics train on)."""
        return VAEOutput(
            **{k: (v.detach() if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        )


def gaussian_kl_std_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over the last dim, in nats.

    KL = 1/2 * sum(mean^2 + exp(logvar) - logvar - 1)
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0).sum(-1)


def gaussian_kl(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) summed over the last dim, in nats.

    KL = 1/2 * sum(logvar_p - logvar_q + (var_q + (mean_q - mean_p)^2) / var_p - 1)
    """
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1.0
    ).sum(-1)


def gaussian_log_prob(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; mean, exp(logvar)) summed over the last dim, in nats."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean).pow(2) / logvar.exp()).sum(-1)


def reparameterize(
    mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * logvar).exp() * eps


class SequentialVAE(nn.Module):
    """Base class: a sequential VAE with a global z and local features s.

    Subclasses implement `encode` and `forward`, and may implement `iw_log_px` and `sample`.
    """

    z_dim: int
    s_dim: int

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z_mean, z_logvar), each (B, Dz)."""
        raise NotImplementedError

    def forward(self, x: Tensor, z: Tensor | None = None) -> VAEOutput:
        """Encode, sample z (unless given), compute s and the ELBO terms."""
        raise NotImplementedError

    def iw_log_px(self, x: Tensor, n_samples: int) -> Tensor:
        """(B,) importance-weighted lower bound on log p(x) with `n_samples` samples, in nats."""
        raise NotImplementedError(f"{type(self).__name__} has no importance-weighted bound")

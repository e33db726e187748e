"""Diagonal-Gaussian math shared by the models, the estimators and evaluation (all in nats).

The bottom of the package (docs/DESIGN.md, "Architecture"): it imports torch only, so models
(paperlib.models), estimators (paperlib.estimators.mi), training critics (paperlib.estimators.critics) and evaluation
use one copy of each density, KL and sampler without depending on each other.

- `gaussian_log_prob`: log N(x; mean, exp(logvar)), summed over the last dim;
- `gaussian_kl_std_normal`, `gaussian_kl`: closed-form KLs of diagonal Gaussians;
- `reparameterize`: z = mean + exp(logvar / 2) * eps;
- `minibatch_mi_xz`: the minibatch aggregate-posterior estimate of I_q(x; z) for Gaussian q(z|x),
  a differentiable Tensor (the float64 post-hoc version over a whole split is
  `paperlib.evaluation.evaluate.aggregate_mi_xz`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


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


def minibatch_mi_xz(z: Tensor, z_mean: Tensor, z_logvar: Tensor) -> Tensor:
    """Minibatch estimate of I_q(x; z) from Gaussian posteriors; differentiable; <= log B.

    I_q(x; z) ~ 1/B sum_i [log q(z_i|x_i) - log 1/B sum_j q(z_i|x_j)]

    Parameters
    ----------
    z : (B, Dz) samples z_i ~ q(z|x_i).
    z_mean, z_logvar : (B, Dz) parameters of q(z|x_j).
    """
    b = z.shape[0]
    # log q(z_i | x_j) for all pairs                                                 (B, B)
    log_q = gaussian_log_prob(z.unsqueeze(1), z_mean.unsqueeze(0), z_logvar.unsqueeze(0))
    # log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log B                                 (B,)
    log_qz = log_q.logsumexp(dim=1) - math.log(b)
    return (log_q.diagonal() - log_qz).mean()


__all__ = [
    "gaussian_kl",
    "gaussian_kl_std_normal",
    "gaussian_log_prob",
    "minibatch_mi_xz",
    "reparameterize",
]

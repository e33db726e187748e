"""A toy sequential VAE for the linear-Gaussian toy data (paperlib.data.toy).

- q(z | x_1:T) = N(mu, diag sigma^2) from an MLP on the mean over t of x_t (global path);
- q(s_t | x_t) = N(mu_t, diag sigma_t^2) from an MLP per step (factorized local path, which sees
  x_t = A z_true + B s_true_t + noise, so it can carry global information);
- p(x_t | z, s_t) = N(g(z, s_t), diag exp(logvar_x)) with a learned per-dimension variance;
- p(z) = N(0, I), p(s_t) = N(0, I).

With the factorized posterior, z and s are independent given x, so I(z; s | x) = 0 and the CMI
identity I(x; z | s) = I(x; z) - I(z; s) holds exactly (DESIGN section 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from paperlib.gaussian import (
    gaussian_kl_std_normal,
    gaussian_log_prob,
    reparameterize,
)
from paperlib.models import MODELS
from paperlib.models.base import SequentialVAE
from paperlib.outputs import VAEOutput


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.ELU(),
        nn.Linear(hidden, hidden),
        nn.ELU(),
        nn.Linear(hidden, d_out),
    )


@MODELS.register("toy")
class ToyVAE(SequentialVAE):
    """Toy sequential VAE with a global z (B, Dz) and factorized local s (B, T, Ds).

    Parameters
    ----------
    x_dim : D, the size of each x_t.
    z_dim, s_dim : sizes of z and s_t.
    hidden : width of the MLPs.
    """

    def __init__(self, x_dim: int, z_dim: int, s_dim: int, hidden: int):
        super().__init__()
        self.x_dim, self.z_dim, self.s_dim = x_dim, z_dim, s_dim
        self.enc_z = _mlp(x_dim, hidden, 2 * z_dim)
        self.enc_s = _mlp(x_dim, hidden, 2 * s_dim)
        self.dec = _mlp(z_dim + s_dim, hidden, x_dim)
        self.x_logvar = nn.Parameter(torch.zeros(x_dim))

    @classmethod
    def from_config(cls, model_cfg, data_info: dict) -> ToyVAE:
        shape = tuple(data_info["x_shape"])
        if len(shape) != 2:
            raise ValueError(f"toy model needs data_info['x_shape'] = (T, D), got {shape}")
        return cls(shape[1], model_cfg.z_dim, model_cfg.s_dim, model_cfg.hidden)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # q(z | x): MLP on mean_t x_t                                                  (B, Dz) x2
        mean, logvar = self.enc_z(x.mean(dim=1)).chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 8.0)

    def encode_s(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # q(s_t | x_t) per step                                                     (B, T, Ds) x2
        mean, logvar = self.enc_s(x).chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, s: Tensor) -> Tensor:
        """Mean of p(x_t | z, s_t): (B, T, D) from z (B, Dz) and s (B, T, Ds)."""
        z_rep = z.unsqueeze(1).expand(-1, s.shape[1], -1)  # (B, T, Dz)
        return self.dec(torch.cat([z_rep, s], dim=-1))

    def forward(
        self, x: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> VAEOutput:
        z_mean, z_logvar = self.encode(x)
        if z is None:
            z = reparameterize(z_mean, z_logvar, generator)  # (B, Dz)
        s_mean, s_logvar = self.encode_s(x)
        s = reparameterize(s_mean, s_logvar, generator)  # (B, T, Ds)
        x_mean = self.decode(z, s)  # (B, T, D)
        # log p(x | z, s) = sum_t log N(x_t; g(z, s_t), exp(logvar_x))                    (B,)
        log_px = gaussian_log_prob(x, x_mean, self.x_logvar.expand_as(x)).sum(-1)
        # KL(q(z|x) || N(0, I))                                                             (B,)
        kl_z = gaussian_kl_std_normal(z_mean, z_logvar)
        # KL_s = sum_t KL(q(s_t|x_t) || N(0, I))                                           (B,)
        kl_s = gaussian_kl_std_normal(s_mean, s_logvar).sum(-1)
        return VAEOutput(
            z=z,
            z_mean=z_mean,
            z_logvar=z_logvar,
            s=s,
            log_px=log_px,
            kl_z=kl_z,
            kl_s=kl_s,
            x_params=x_mean,
        )

    @torch.no_grad()
    def iw_log_px(
        self, x: Tensor, n_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B,) importance-weighted bound (Burda et al. 2016) with q(z|x) q(s|x) as proposal.

        log p(x) >= log 1/K sum_k p(x, z_k, s_k) / (q(z_k|x) q(s_k|x))
        """
        z_mean, z_logvar = self.encode(x)
        s_mean, s_logvar = self.encode_s(x)
        terms = []
        for _ in range(n_samples):
            z = reparameterize(z_mean, z_logvar, generator)
            s = reparameterize(s_mean, s_logvar, generator)
            log_px = gaussian_log_prob(x, self.decode(z, s), self.x_logvar.expand_as(x)).sum(-1)
            zeros_z, zeros_s = torch.zeros_like(z), torch.zeros_like(s)
            log_prior = gaussian_log_prob(z, zeros_z, zeros_z) + gaussian_log_prob(
                s, zeros_s, zeros_s
            ).sum(-1)
            log_q = gaussian_log_prob(z, z_mean, z_logvar) + gaussian_log_prob(
                s, s_mean, s_logvar
            ).sum(-1)
            terms.append(log_px + log_prior - log_q)
        # log 1/K sum_k w_k                                                                 (B,)
        return torch.stack(terms).logsumexp(0) - math.log(n_samples)

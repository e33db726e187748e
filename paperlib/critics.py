"""Training critics of I_q(z; s_1:T) that see the whole sequence: the `cmi` penalty's instrument.

The reward alpha I_q(x; z) of `mi` and `cmi` is a sequence-level quantity (one z per sequence).
A penalty on I_q(z; s_t) at one position t is on another scale - about I/T per position when the
global information in s builds up over the sequence - and never sees information that only the
whole of s_1:T holds. `SetCritic` estimates I_q(z; s_1:T) itself:

    h(s_1:T) = mean_t phi([s_t, e_t])                      (DeepSets summary; e_t: position code)
    T(z_i, s_j) = f(z_i)^T g(h_j) + a(z_i) + b(h_j)        (all B x B pairs in one matrix product)
    L = mean_i softplus(-T_ii) + mean_{i != j} softplus(T_ij)
    I_q(z; s_1:T) ~ mean_i T_ii                             (nats; logit = log-density ratio)

At the optimum of L, T = log q(z, s) / (q(z) q(s)) (the density-ratio trick; Sugiyama et al.
2012), so the batch mean of T on joint pairs estimates I_q(z; s_1:T), on the same scale as the
reward. Every off-diagonal pair of the batch is a negative (B(B - 1) per step instead of one
shuffle per item), which is what lets the critic learn at batch sizes a CPU affords.

References: Zaheer et al. 2017 (Deep Sets); Akuzawa et al. 2021 (the adversarial I(z; s)
penalty); Poole et al. 2019 (all-pairs critics for variational MI bounds).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: sin / cos frequencies of the position code e_t (plus the linear ramp t / (T - 1))
N_FREQUENCIES = 4


def position_code(T: int, device: torch.device | None = None) -> Tensor:
    """e_t for t = 0..T-1: [t / (T - 1), sin(pi k t / (T - 1)), cos(...)], k = 1..4 -> (T, 9)."""
    u = torch.linspace(0.0, 1.0, T, device=device) if T > 1 else torch.zeros(1, device=device)
    k = torch.arange(1, N_FREQUENCIES + 1, device=device, dtype=u.dtype)
    angle = math.pi * u[:, None] * k  # (T, K)
    return torch.cat([u[:, None], angle.sin(), angle.cos()], dim=1)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
        nn.Linear(hidden, d_out),
    )  # fmt: skip


class SetCritic(nn.Module):
    """All-pairs density-ratio critic of z and the whole sequence s_1:T (module docstring).

    Parameters
    ----------
    z_dim : size of z, (B, Dz).
    s_dim : size of s_t, s of shape (B, T, Ds).
    hidden : width of phi and of the f, g networks.
    embed : size of the bilinear embeddings f(z), g(h).

    The same interface as `paperlib.mi.DensityRatioCritic`: ``mi(z, s)`` (differentiable in z
    and s) and ``loss(z, s, generator) -> (loss, accuracy)``.
    """

    def __init__(self, z_dim: int, s_dim: int, hidden: int = 128, embed: int = 32):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(s_dim + 1 + 2 * N_FREQUENCIES, hidden), nn.ELU())
        # the last output of f and g is the additive term a(z), b(h)
        self.f = _mlp(z_dim, hidden, embed + 1)
        self.g = _mlp(hidden, hidden, embed + 1)

    def summary(self, s: Tensor) -> Tensor:
        """h(s_1:T) = mean_t phi([s_t, e_t]): (B, T, Ds) -> (B, hidden)."""
        if s.dim() != 3:
            raise ValueError(f"s must be (B, T, Ds), got shape {tuple(s.shape)}")
        B, T, _ = s.shape
        e = position_code(T, s.device).to(s.dtype).expand(B, T, -1)  # (B, T, 9)
        return self.phi(torch.cat([s, e], dim=-1)).mean(dim=1)

    def scores(self, z: Tensor, s: Tensor) -> Tensor:
        """T_ij = f(z_i)^T g(h_j) + a(z_i) + b(h_j) for all pairs: (B, B)."""
        fz, gh = self.f(z), self.g(self.summary(s))  # (B, E + 1)
        return fz[:, :-1] @ gh[:, :-1].T + fz[:, -1:] + gh[:, -1]

    def mi(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """I_q(z; s_1:T) ~ mean_i T(z_i, s_i), in nats; differentiable in z and s."""
        fz, gh = self.f(z), self.g(self.summary(s))
        # T_ii = f(z_i) . g(h_i) + a(z_i) + b(h_i)
        return ((fz[:, :-1] * gh[:, :-1]).sum(-1) + fz[:, -1] + gh[:, -1]).mean()

    def loss(self, z: Tensor, s: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(logistic loss over all pairs, balanced accuracy) on a batch; `generator` unused.

        L = mean_i softplus(-T_ii) + mean_{i != j} softplus(T_ij)
        """
        t = self.scores(z, s)  # (B, B)
        b = t.shape[0]
        if b < 2:
            raise ValueError("SetCritic needs a batch of at least 2 sequences")
        diag = t.diagonal()
        pos = F.softplus(-diag).mean()
        # off-diagonal mean without a mask: (sum of all - sum of diagonal) / (B (B - 1))
        sp = F.softplus(t.clamp_min(-30.0))
        neg = (sp.sum() - sp.diagonal().sum()) / (b * (b - 1))
        # balanced accuracy: joint pairs called joint, off-diagonal pairs called shuffled
        neg_right = ((t < 0).float().sum() - (diag < 0).float().sum()) / (b * (b - 1))
        acc = 0.5 * ((diag > 0).float().mean() + neg_right)
        return pos + neg, acc.detach()


__all__ = ["SetCritic", "position_code"]

"""Training critics of the regularizers (paperlib.regularizers): the `cmi` penalty's instruments.

- `SetCritic`: I_q(z; s_1:T) over the whole sequence, all pairs of a batch (the default);
- `DensityRatioCritic`: D(z, s) for a global z (B, Dz) and local features s (B, T, Ds), with the
  "sequence" (GRU summary of s_1:T) and "step" (random s_t per item) pairings of DESIGN section 2;
- `ClubCritic`: the same pairings with a variational Gaussian q(z | s) (CLUB upper bound);
- `PriorRatioCritic`: T(z) telling q(z) from p(z) = N(0, I), so KL(q(z) || p(z)) ~ E_q[T(z)].

They are built from the estimator family's pieces (paperlib.mi: `mlp`, `shuffle_rows`,
`club_bound`); the estimators themselves, used for ground-truth tests and post-hoc evaluation,
stay in paperlib.mi.

`SetCritic` in detail:

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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib.gaussian import gaussian_log_prob
from paperlib.mi import (
    N_FREQUENCIES,
    _as_generator,
    club_bound,
    mlp,
    position_code,
    set_summary,
    shuffle_rows,
)


class SetCritic(nn.Module):
    """All-pairs density-ratio critic of z and the whole sequence s_1:T (module docstring).

    Parameters
    ----------
    z_dim : size of z, (B, Dz).
    s_dim : size of s_t, s of shape (B, T, Ds).
    hidden : width of phi and of the f, g networks.
    embed : size of the bilinear embeddings f(z), g(h).

    The same interface as `DensityRatioCritic`: ``mi(z, s)`` (differentiable in z
    and s) and ``loss(z, s, generator) -> (loss, accuracy)``.
    """

    def __init__(self, z_dim: int, s_dim: int, hidden: int = 128, embed: int = 32):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(s_dim + 1 + 2 * N_FREQUENCIES, hidden), nn.ELU())
        # the last output of f and g is the additive term a(z), b(h)
        self.f = mlp(z_dim, hidden, embed + 1)
        self.g = mlp(hidden, hidden, embed + 1)

    def summary(self, s: Tensor) -> Tensor:
        """h(s_1:T) = mean_t phi([s_t, e_t]): (B, T, Ds) -> (B, hidden)."""
        return set_summary(self.phi, s)

    def scores(self, z: Tensor, s: Tensor) -> Tensor:
        """T_ij = f(z_i)^T g(h_j) + a(z_i) + b(h_j) for all pairs: (B, B)."""
        fz, gh = self.f(z), self.g(self.summary(s))  # (B, E + 1)
        return fz[:, :-1] @ gh[:, :-1].T + fz[:, -1:] + gh[:, -1]

    def rows(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """T(z_i, s_i) of each joint pair, the estimated log density ratio: (B,)."""
        fz, gh = self.f(z), self.g(self.summary(s))
        # T_ii = f(z_i) . g(h_i) + a(z_i) + b(h_i)
        return (fz[:, :-1] * gh[:, :-1]).sum(-1) + fz[:, -1] + gh[:, -1]

    def mi(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """I_q(z; s_1:T) ~ mean_i T(z_i, s_i), in nats; differentiable in z and s."""
        return self.rows(z, s).mean()

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


class PriorRatioCritic(nn.Module):
    """T(z) = log q(z) / p(z), from a logistic classifier of q(z) samples vs p(z) = N(0, I).

    KL(q(z) || p(z)) ~ E_q(z)[T(z)]
    L = E_q softplus(-T) + E_p softplus(T)
    """

    def __init__(self, z_dim: int, hidden: int = 128):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp(z_dim, hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)

    def prior_sample(self, like: Tensor, generator: torch.Generator) -> Tensor:
        return torch.randn(like.shape, generator=generator).to(like.device, like.dtype)

    def loss(self, z_q: Tensor, generator: torch.Generator) -> Tensor:
        z_p = self.prior_sample(z_q, generator)
        # L = E_q softplus(-T(z)) + E_p softplus(T(z))
        return F.softplus(-self(z_q)).mean() + F.softplus(self(z_p)).mean()

    def kl(self, z_q: Tensor) -> Tensor:
        # KL(q(z) || p(z)) ~ mean_i T(z_i)
        return self(z_q).mean()


# ----------------------------------------------------------------------------------------------
# critics of I_q(z; s) for a global z and local features s_1:T


class _LocalSummary(nn.Module):
    """Summarise local features s for pairing with z.

    mode "set": mean_t phi([s_t, e_t]) over s_1:T, e_t a position code (B, H).
    mode "sequence": a GRU over s_1:T, its last hidden state (B, H).
    mode "step": s_t at one position t drawn uniformly per item (B, Ds).
    s of shape (B, Ds) (already pooled) passes through in either mode.
    """

    def __init__(self, s_dim: int, hidden: int, mode: str):
        super().__init__()
        if mode not in ("set", "sequence", "step"):
            raise ValueError(
                f"critic mode {mode!r} is not accepted; choose 'set', 'sequence' or 'step'"
            )
        self.mode = mode
        self.gru = nn.GRU(s_dim, hidden, batch_first=True) if mode == "sequence" else None
        # "set": the DeepSets summary of paperlib.critics, mean_t phi([s_t, e_t])
        self.phi = (
            nn.Sequential(nn.Linear(s_dim + 1 + 2 * N_FREQUENCIES, hidden), nn.ELU())
            if mode == "set"
            else None
        )
        self.out_dim = hidden if mode in ("set", "sequence") else s_dim

    def forward(self, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if s.dim() == 2:  # already one vector per item: a sequence of length 1
            if self.mode == "step":
                return s
            s = s.unsqueeze(1)
        if s.dim() != 3:
            raise ValueError(f"s must be (B, T, Ds) or (B, Ds), got shape {tuple(s.shape)}")
        if self.phi is not None:
            B, T, _ = s.shape
            return set_summary(self.phi, s)  # (B, H)
        if self.gru is not None:
            return self.gru(s)[1][-1]  # (B, H)
        b, t = s.shape[:2]
        gen = generator if generator is not None else _as_generator(0)
        idx = torch.randint(0, t, (b,), generator=gen).to(s.device)
        return s[torch.arange(b, device=s.device), idx]  # (B, Ds)


class DensityRatioCritic(nn.Module):
    """D(z, s): the adversarial density-ratio estimate of I_q(z; s) (DESIGN section 2).

    A logistic classifier of joint pairs (z_i, s_i) vs shuffled pairs (z_pi(i), s_i), pi a random
    permutation of whole z rows. At its optimum logit D = log q(z, s) / (q(z) q(s)), so

        I_q(z; s) ~ 1/B sum_i logit D(z_i, s_i)
        L = E_joint softplus(-logit) + E_shuffled softplus(logit)

    Parameters
    ----------
    z_dim, s_dim : sizes of z (B, Dz) and of s (B, T, Ds).
    hidden : width of the GRU summary and the MLP.
    mode : "sequence" (D sees z and a GRU summary of s_1:T) or "step" (pairs (z, s_t) at a
        position t drawn per item).
    """

    def __init__(self, z_dim: int, s_dim: int, hidden: int = 128, mode: str = "sequence"):
        super().__init__()
        self.summary = _LocalSummary(s_dim, hidden, mode)
        self.net = mlp(z_dim + self.summary.out_dim, hidden, 1)

    def logits(self, z: Tensor, h: Tensor) -> Tensor:
        return self.net(torch.cat([z, h], dim=-1)).squeeze(-1)

    def rows(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """logit D(z_i, s_i) of each joint pair, the estimated log density ratio: (B,)."""
        return self.logits(z, self.summary(s, generator))

    def mi(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """I_q(z; s) ~ mean logit D on joint pairs; differentiable in z and s."""
        return self.rows(z, s, generator).mean()

    def loss(self, z: Tensor, s: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(BCE loss, accuracy) on joint vs whole-row-shuffled z."""
        h = self.summary(s, generator)  # (B, H)
        t_joint = self.logits(z, h)
        t_marg = self.logits(shuffle_rows(z, generator), h)
        loss = F.softplus(-t_joint).mean() + F.softplus(t_marg).mean()
        acc = 0.5 * ((t_joint > 0).float().mean() + (t_marg < 0).float().mean())
        return loss, acc.detach()


class ClubCritic(nn.Module):
    """CLUB estimate of I_q(z; s) with a variational q(z | s) (Cheng et al. 2020).

    I_q(z; s) <= mean_i log q(z_i|s_i) - mean_{i,j} log q(z_j|s_i)
    L = -mean_i log q(z_i | s_i)          (fitted on detached z, s)
    """

    def __init__(self, z_dim: int, s_dim: int, hidden: int = 128, mode: str = "sequence"):
        super().__init__()
        self.summary = _LocalSummary(s_dim, hidden, mode)
        self.net = mlp(self.summary.out_dim, hidden, 2 * z_dim)

    def q_params(self, s: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(self.summary(s, generator)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def mi(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mu, logvar = self.q_params(s, generator)
        return club_bound(z, mu, logvar)

    def loss(self, z: Tensor, s: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        mu, logvar = self.q_params(s, generator)
        nll = -gaussian_log_prob(z, mu, logvar).mean()
        return nll, torch.zeros((), device=z.device)


__all__ = [
    "ClubCritic",
    "DensityRatioCritic",
    "PriorRatioCritic",
    "SetCritic",
    "position_code",
]

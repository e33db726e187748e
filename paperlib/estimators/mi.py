"""Mutual-information estimators, each in nats, each with its equation in the docstring.

DESIGN section 2 ("Estimators as a library"). Every estimator of I(x; y) is a small
``nn.Module`` registered in `ESTIMATORS` with two methods:

- ``loss(x, y, generator)``: the scalar its own optimiser minimises on a minibatch of pairs;
- ``estimate(x, y, generator)``: the MI estimate in nats on a batch of pairs.

`estimate_mi` trains a fresh one on paired rows and evaluates it on held-out rows. The closed form
for d independent pairs of rho-correlated standard Gaussians, ``gaussian_mi(rho, d)``, and a
sampler of such pairs, ``correlated_gaussians``, are what the tests and the benchmark compare with.

The module also provides

- `mmd`: the Gaussian-kernel MMD of InfoVAE between two samples;
- `minibatch_mi_xz` (from paperlib.gaussian): the minibatch aggregate-posterior estimate of
  I_q(x; z) for Gaussian q(z|x);
- `club_bound`, `mlp`, `shuffle_rows`: the pieces the training critics of the regularizers
  (paperlib.estimators.critics) are built from.

References
----------
- Nguyen, Wainwright, Jordan (2010), "Estimating divergence functionals and the likelihood ratio
  by convex risk minimization" (NWJ).
- Belghazi et al. (2018), "Mutual Information Neural Estimation" (MINE), section 3.2.
- van den Oord, Li, Vinyals (2018), "Representation learning with contrastive predictive coding";
  Poole et al. (2019), "On variational bounds of mutual information" (InfoNCE <= log B).
- Cheng et al. (2020), "CLUB: A contrastive log-ratio upper bound of mutual information", eq. 7.
- Zhao, Song, Ermon (2019), "InfoVAE: balancing learning and inference in VAEs" (MMD).
- Sugiyama, Suzuki, Kanamori (2012), "Density ratio estimation in machine learning" (a classifier
  trained with logistic loss on joint vs product-of-marginal pairs gives logit = log ratio).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib.gaussian import gaussian_log_prob, minibatch_mi_xz
from paperlib.registry import Registry

ESTIMATORS: Registry = Registry("MI estimator")


# ----------------------------------------------------------------------------------------------
# closed form and samplers


def gaussian_mi(rho: float, d: int = 1) -> float:
    """I(x; y) in nats for d independent pairs (x_k, y_k) of standard Gaussians with corr rho.

    I = -d/2 * log(1 - rho^2)
    """
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho!r}")
    if d < 1:
        raise ValueError(f"d must be a positive int, got {d!r}")
    return 0.0 - 0.5 * d * math.log(1.0 - rho**2)  # 0.0 - : no "-0.0" at rho = 0


def correlated_gaussians(
    n: int, d: int, rho: float, generator: torch.Generator | int | None = 0
) -> tuple[Tensor, Tensor]:
    """n rows of d rho-correlated standard Gaussian pairs: x, y each (n, d), float32.

    y = rho * x + sqrt(1 - rho^2) * eps,   x, eps ~ N(0, I) independent.
    """
    gen = as_generator(generator)
    x = torch.randn(n, d, generator=gen)
    eps = torch.randn(n, d, generator=gen)
    # y = rho x + sqrt(1 - rho^2) eps                                               (n, d)
    y = rho * x + math.sqrt(1.0 - rho**2) * eps
    return x, y


def shuffle_rows(x: Tensor, generator: torch.Generator) -> Tensor:
    """x with its rows permuted as whole rows (never per dimension): x[pi], pi ~ uniform.

    The permutation is drawn on the CPU generator and moved to x's device.
    """
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return x[perm]


def as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    gen = torch.Generator()
    gen.manual_seed(0 if generator is None else int(generator))
    return gen


def mlp(d_in: int, hidden: int, d_out: int, n_hidden: int = 2) -> nn.Sequential:
    """An MLP d_in -> hidden (x n_hidden, ELU) -> d_out."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(n_hidden):
        layers += [nn.Linear(d, hidden), nn.ELU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


#: sin / cos frequencies of the position code e_t (plus the linear ramp t / (T - 1))
N_FREQUENCIES = 4


def position_code(T: int, device: torch.device | None = None) -> Tensor:
    """e_t for t = 0..T-1: [t / (T - 1), sin(pi k t / (T - 1)), cos(...)], k = 1..4 -> (T, 9)."""
    u = torch.linspace(0.0, 1.0, T, device=device) if T > 1 else torch.zeros(1, device=device)
    k = torch.arange(1, N_FREQUENCIES + 1, device=device, dtype=u.dtype)
    angle = math.pi * u[:, None] * k  # (T, K)
    return torch.cat([u[:, None], angle.sin(), angle.cos()], dim=1)


def set_summary(phi: nn.Module, s: Tensor) -> Tensor:
    """The DeepSets summary h(s_1:T) = mean_t phi([s_t, e_t]): (B, T, Ds) -> (B, H).

    `phi` maps Ds + 9 features (s_t and its position code e_t) to H.
    """
    if s.dim() != 3:
        raise ValueError(f"s must be (B, T, Ds), got shape {tuple(s.shape)}")
    B, T, _ = s.shape
    e = position_code(T, s.device).to(s.dtype).expand(B, T, -1)  # (B, T, 9)
    # h = mean_t phi([s_t, e_t])
    return phi(torch.cat([s, e], dim=-1)).mean(dim=1)


class _SetSummary(nn.Module):
    """Rows y of T * Ds features read as sequences (T, Ds) and summarised by `set_summary`."""

    def __init__(self, y_dim: int, steps: int, hidden: int):
        super().__init__()
        if steps < 1 or y_dim % steps:
            raise ValueError(f"y_steps={steps!r} must divide the {y_dim} features of y")
        self.steps = steps
        self.phi = nn.Sequential(
            nn.Linear(y_dim // steps + 1 + 2 * N_FREQUENCIES, hidden), nn.ELU()
        )

    def forward(self, y: Tensor) -> Tensor:
        return set_summary(self.phi, y.reshape(len(y), self.steps, -1))


# ----------------------------------------------------------------------------------------------
# estimators of I(x; y) from paired samples


class MIEstimator(nn.Module):
    """Base class: ``loss`` to train on a minibatch, ``estimate`` in nats."""

    #: the estimate can never exceed log(batch size) (InfoNCE-type bounds)
    bounded_by_log_batch: bool = False
    #: `estimate_mi` keeps the checkpoint with the lowest held-out `select_loss`
    select_on_val: bool = False

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128):
        super().__init__()
        self.x_dim, self.y_dim, self.hidden = x_dim, y_dim, hidden

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def select_loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """Held-out criterion for checkpoint selection (used when `select_on_val`)."""
        return self.loss(x, y, generator)

    def estimate_rows(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """Per-row terms whose mean is `estimate` (B,), for estimators that have them.

        Bounds with a batch-level term (InfoNCE, NWJ, MINE, CLUB, minibatch) have none; they
        raise, and `estimate_mi_interval` names the estimators that do.
        """
        raise NotImplementedError(f"{type(self).__name__} has no per-row estimate")


class _ConcatCritic(nn.Module):
    """T(x, y) = MLP([x, y]) -> (B,)."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int):
        super().__init__()
        self.net = mlp(x_dim + y_dim, hidden, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, y], dim=-1)).squeeze(-1)


class _SeparableCritic(nn.Module):
    """T(x_i, y_j) = f(x_i)^T g(y_j) for all pairs -> (B, B) (cheap all-pairs scores)."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int, embed: int = 32):
        super().__init__()
        self.f = mlp(x_dim, hidden, embed)
        self.g = mlp(y_dim, hidden, embed)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        # scores[i, j] = f(x_i) . g(y_j)                                              (B, B)
        return self.f(x) @ self.g(y).T


class _AllPairsCritic(nn.Module):
    """All-pairs critic of embeddings f(x), g(y) and additive terms a(x), b(y) -> (B, B).

    bilinear:  T(x_i, y_j) = f(x_i)^T g(y_j) + a(x_i) + b(y_j)
    distance:  T(x_i, y_j) = -|f(x_i) - g(y_j)|^2 + a(x_i) + b(y_j)

    Both are the same function class (expand the square and absorb |f|^2, |g|^2 into a, b). The
    distance form writes a strong dependence (y close to a function of x) as a short distance
    rather than a near-cancellation of three large terms, and trains faster when the log-ratio
    is large; on the Gaussian benchmark the bilinear form was more accurate at small I(x; y)
    and, with checkpoint selection, as accurate at large I, so it is the default.
    """

    def __init__(
        self,
        x_dim: int,
        y_dim: int,
        hidden: int,
        embed: int = 32,
        bilinear: bool = False,
        y_steps: int = 0,
    ):
        super().__init__()
        self.bilinear = bilinear
        # y_steps > 0: y holds sequences (T, Ds) and g sees their set summary (`set_summary`)
        self.summary = _SetSummary(y_dim, y_steps, hidden) if y_steps else nn.Identity()
        # the last output of each MLP is the additive term a(x), b(y)
        self.f = mlp(x_dim, hidden, embed + 1)
        self.g = mlp(hidden if y_steps else y_dim, hidden, embed + 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx, gy = self.f(x), self.g(self.summary(y))  # (B, E + 1)
        ex, ey = fx[:, :-1], gy[:, :-1]
        if self.bilinear:
            # T_ij = f_i . g_j + a_i + b_j                                                  (B, B)
            return ex @ ey.T + fx[:, -1:] + gy[:, -1]
        # |f_i - g_j|^2 = |f_i|^2 + |g_j|^2 - 2 f_i . g_j                                  (B, B)
        d2 = ex.pow(2).sum(-1, keepdim=True) + ey.pow(2).sum(-1) - 2.0 * ex @ ey.T
        # T_ij = -|f_i - g_j|^2 + a_i + b_j                                                (B, B)
        return -d2 + fx[:, -1:] + gy[:, -1]

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        fx, gy = self.f(x), self.g(self.summary(y))
        if self.bilinear:
            # T_ii = f_i . g_i + a_i + b_i                                                   (B,)
            return (fx[:, :-1] * gy[:, :-1]).sum(-1) + fx[:, -1] + gy[:, -1]
        # T_ii = -|f_i - g_i|^2 + a_i + b_i                                                  (B,)
        return -(fx[:, :-1] - gy[:, :-1]).pow(2).sum(-1) + fx[:, -1] + gy[:, -1]


def _softplus_sum_offdiag(scores: Tensor) -> Tensor:
    """sum_{i != j} softplus(scores_ij) of a square matrix, without building a mask.

    Logits below -30 are clamped: softplus(-30) ~ 1e-13, and float32 exp() below about -87
    gives denormals, which are orders of magnitude slower on CPUs.
    """
    sp = F.softplus(scores.clamp_min(-30.0))
    return sp.sum() - sp.diagonal().sum()


@ESTIMATORS.register("density_ratio")
class DensityRatio(MIEstimator):
    """Density-ratio critic trained with the Jensen-Shannon (logistic) loss.

    A classifier D = sigmoid(T(x, y)) tells joint pairs (x_i, y_i) from product-of-marginal pairs
    (x_j, y_i), j != i. With the two classes weighted equally, the optimum of

        L = E_joint[softplus(-T)] + E_marg[softplus(T)]

    is T(x, y) = log p(x, y) / (p(x) p(y)) (Sugiyama et al. 2012), so

        I(x; y) ~ E_p(x,y)[T(x, y)]   (evaluated on held-out joint pairs by `estimate_mi`).

    Each class is averaged separately, so the number of negatives per positive only lowers the
    variance; it does not shift the optimum (with k unweighted negatives per positive the optimum
    would be log r - log k).

    Critics (``critic=``):

    - "bilinear" (default): T = f(x)^T g(y) + a(x) + b(y); one minibatch of B pairs gives
      B(B - 1) negatives (every off-diagonal pair) at the cost of a (B, B) matrix.
    - "distance": T = -|f(x) - g(y)|^2 + a(x) + b(y), the same all-pairs negatives.
    - "concat": T = MLP([x, y]) with `n_negatives` shuffles of the whole x block per positive.
    - "set": the bilinear critic with g applied to the DeepSets summary of a sequence: each row
      of y holds ``y_steps`` steps of ``y_dim / y_steps`` features, read as (T, Ds), and
      g(h), h = mean_t phi([y_t, e_t]) (`set_summary`, the summary of the training critic
      `paperlib.estimators.critics.SetCritic`), so that I(x; y_1:T) of whole sequences is estimated.

    Checkpoint selection (`select_loss`, used by `estimate_mi` on held-out pairs) uses the
    prior-weighted logistic loss with weight k = `select_weight` on the negatives,

        L_k(T) = E_joint[softplus(-(T - log k))] + k E_marg[softplus(T - log k)],

    which, for any k, is minimised by the same T = log r (a proper scoring rule for the ratio).
    The unweighted loss (k = 1) barely changes with T where r >> 1, since softplus(-T) ~ e^-T,
    so it picks an early, under-fitted critic when I(x; y) is large; k ~ e^7 moves the decision
    boundary to log r = log k and keeps the criterion sensitive to calibration there, while for
    small I it still stops before the critic memorises the training pairs (which biases the
    held-out mean of T downwards, by about half the variance of the fitting noise).
    """

    select_on_val = True

    def __init__(
        self,
        x_dim: int,
        y_dim: int,
        hidden: int = 128,
        critic: str = "bilinear",
        n_negatives: int = 4,
        embed: int = 32,
        select_weight: float = 1000.0,
        y_steps: int = 0,
    ):
        super().__init__(x_dim, y_dim, hidden)
        if critic not in ("distance", "bilinear", "concat", "set"):
            raise ValueError(
                f"critic {critic!r} is not accepted; choose 'bilinear', 'distance', 'concat' "
                "or 'set'"
            )
        if (critic == "set") != (y_steps > 0):
            raise ValueError(
                f"critic 'set' goes with y_steps > 0 (steps per row of y), got critic "
                f"{critic!r} and y_steps {y_steps!r}"
            )
        if select_weight <= 0:
            raise ValueError(f"select_weight must be positive, got {select_weight!r}")
        self.critic_kind = critic
        self.critic = (
            _AllPairsCritic(
                x_dim, y_dim, hidden, embed, bilinear=critic != "distance", y_steps=y_steps
            )
            if critic != "concat"
            else _ConcatCritic(x_dim, y_dim, hidden)
        )
        self.n_negatives = n_negatives
        self.select_weight = float(select_weight)

    def _class_losses(
        self, x: Tensor, y: Tensor, generator: torch.Generator, shift: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """(E_joint softplus(-(T - shift)), E_marg softplus(T - shift)) on a batch."""
        if self.critic_kind != "concat":
            scores = self.critic(x, y) - shift  # (B, B)
            b = scores.shape[0]
            pos = F.softplus(-scores.diagonal()).mean()
            # E_marg over all B (B - 1) off-diagonal pairs (x_j, y_i), j != i
            neg = _softplus_sum_offdiag(scores) / (b * (b - 1))
            return pos, neg
        t_joint = self.critic(x, y) - shift  # (B,)
        x_neg = torch.cat([shuffle_rows(x, generator) for _ in range(self.n_negatives)])
        t_marg = self.critic(x_neg, y.repeat(self.n_negatives, 1)) - shift  # (K B,)
        return F.softplus(-t_joint).mean(), F.softplus(t_marg.clamp_min(-30.0)).mean()

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        pos, neg = self._class_losses(x, y, generator)
        # L = E_joint softplus(-T) + E_marg softplus(T)
        return pos + neg

    def select_loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        k = self.select_weight
        pos, neg = self._class_losses(x, y, generator, shift=math.log(k))
        # L_k = E_joint softplus(-(T - log k)) + k E_marg softplus(T - log k)
        return pos + k * neg

    def estimate_rows(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        # T(x_i, y_i), the estimated log density ratio of each joint pair               (B,)
        return self.critic.pair(x, y) if self.critic_kind != "concat" else self.critic(x, y)

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        # I ~ mean_i T(x_i, y_i)
        return self.estimate_rows(x, y, generator).mean()


@ESTIMATORS.register("infonce")
class InfoNCE(MIEstimator):
    """InfoNCE lower bound (van den Oord et al. 2018; Poole et al. 2019, eq. 12).

        I >= I_NCE = 1/B sum_i [T(x_i, y_i) - log 1/B sum_j exp T(x_i, y_j)]  <= log B

    with a separable critic T(x, y) = f(x)^T g(y); the estimate never exceeds log(batch size).
    """

    bounded_by_log_batch = True

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128):
        super().__init__(x_dim, y_dim, hidden)
        self.critic = _SeparableCritic(x_dim, y_dim, hidden)

    def _nce(self, x: Tensor, y: Tensor) -> Tensor:
        scores = self.critic(x, y)  # (B, B)
        b = scores.shape[0]
        # I_NCE = mean_i [T_ii - logsumexp_j T_ij + log B]
        return (scores.diagonal() - scores.logsumexp(dim=1)).mean() + math.log(b)

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return -self._nce(x, y)

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self._nce(x, y)


@ESTIMATORS.register("nwj")
class NWJ(MIEstimator):
    """NWJ lower bound (Nguyen et al. 2010; "f-GAN KL", Poole et al. 2019, eq. 6).

        I >= E_p(x,y)[T(x, y)] - E_p(x)p(y)[exp(T(x, y) - 1)]

    The marginal expectation uses all off-diagonal pairs of a separable critic.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128):
        super().__init__(x_dim, y_dim, hidden)
        self.critic = _SeparableCritic(x_dim, y_dim, hidden)

    def _bound(self, x: Tensor, y: Tensor) -> Tensor:
        scores = self.critic(x, y)  # (B, B)
        b = scores.shape[0]
        off = ~torch.eye(b, dtype=torch.bool, device=scores.device)
        # I_NWJ = mean_i T_ii - mean_{i != j} exp(T_ij - 1)
        return scores.diagonal().mean() - (scores[off] - 1.0).exp().mean()

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return -self._bound(x, y)

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self._bound(x, y)


@ESTIMATORS.register("mine")
class MINE(MIEstimator):
    """MINE: the Donsker-Varadhan bound with a moving-average gradient correction.

        I >= E_p(x,y)[T] - log E_p(x)p(y)[exp T]                      (Belghazi et al. 2018, eq. 10)

    The gradient of the log term is biased on minibatches; MINE replaces its denominator by an
    exponential moving average m of E[exp T] (section 3.2):
        L = -(mean T_joint - mean(exp T_marg) / m),  m <- (1 - ema) m + ema * mean(exp T_marg)
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128, ema: float = 0.01):
        super().__init__(x_dim, y_dim, hidden)
        self.critic = _ConcatCritic(x_dim, y_dim, hidden)
        self.ema = ema
        self.register_buffer("ma_exp", torch.tensor(float("nan")))

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        t_joint = self.critic(x, y)  # (B,)
        t_marg = self.critic(shuffle_rows(x, generator), y)  # (B,)
        exp_marg = t_marg.exp().mean()
        with torch.no_grad():
            if torch.isnan(self.ma_exp):
                self.ma_exp.copy_(exp_marg)
            else:
                # m <- (1 - ema) m + ema mean(exp T_marg)
                self.ma_exp.mul_(1.0 - self.ema).add_(self.ema * exp_marg)
        # L = -(mean T_joint - mean(exp T_marg) / m)
        return -(t_joint.mean() - exp_marg / self.ma_exp.clamp_min(1e-8))

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        t_joint = self.critic(x, y)
        t_marg = self.critic(shuffle_rows(x, generator), y)
        # I_DV = mean T_joint - log mean exp T_marg
        return t_joint.mean() - (t_marg.logsumexp(0) - math.log(t_marg.shape[0]))


@ESTIMATORS.register("club")
class CLUB(MIEstimator):
    """CLUB upper bound (Cheng et al. 2020, eq. 7) with a variational Gaussian q(y | x).

        I(x; y) <= I_CLUB = E_p(x,y)[log q(y|x)] - E_p(x)E_p(y)[log q(y|x)]
                ~ 1/B sum_i log q(y_i|x_i) - 1/B^2 sum_{i,j} log q(y_j|x_i)

    q(y|x) = N(mu(x), diag exp(logvar(x))) is fitted by maximum likelihood on joint pairs.
    The bound holds when q approximates p(y|x) well; otherwise it can fall below the truth.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128):
        super().__init__(x_dim, y_dim, hidden)
        self.net = mlp(x_dim, hidden, 2 * y_dim)

    def q_params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        mu, logvar = self.q_params(x)
        # L = -mean_i log q(y_i | x_i)
        return -gaussian_log_prob(y, mu, logvar).mean()

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        mu, logvar = self.q_params(x)
        return club_bound(y, mu, logvar)


def club_bound(y: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """I_CLUB from q(y|x_i) = N(mu_i, exp(logvar_i)) and y (B, Dy); gradient flows to all.

    I_CLUB = mean_i log q(y_i|x_i) - mean_{i,j} log q(y_j|x_i)
    The (B, B) term is expanded in closed form, so no B^2 x Dy tensor is built.
    """
    var = logvar.exp()  # (B, Dy)
    pos = gaussian_log_prob(y, mu, logvar)  # (B,)
    # mean_j (y_j - mu_i)^2 = mean(y^2) - 2 mu_i mean(y) + mu_i^2                      (B, Dy)
    y_mean, y_sq = y.mean(0, keepdim=True), y.pow(2).mean(0, keepdim=True)
    sq = y_sq - 2.0 * mu * y_mean + mu.pow(2)
    neg = -0.5 * (math.log(2 * math.pi) + logvar + sq / var).sum(-1)  # (B,)
    return (pos - neg).mean()


@ESTIMATORS.register("minibatch")
class MinibatchGaussian(MIEstimator):
    """Minibatch aggregate-posterior estimate for a Gaussian conditional q(y | x).

        I ~ 1/B sum_i [log q(y_i|x_i) - log 1/B sum_j q(y_i|x_j)]  <= log B

    Here q(y|x) is a Gaussian network fitted by maximum likelihood, as in CLUB; inside a VAE the
    posterior q(z|x) is known and `minibatch_mi_xz` is used instead (no training).
    """

    bounded_by_log_batch = True

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128):
        super().__init__(x_dim, y_dim, hidden)
        self.club = CLUB(x_dim, y_dim, hidden)

    def loss(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self.club.loss(x, y, generator)

    def estimate(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        mu, logvar = self.club.q_params(x)
        return minibatch_mi_xz(y, mu, logvar)


# ----------------------------------------------------------------------------------------------
# divergences between q(z) and p(z) = N(0, I) (for I_q(x;z) = E KL(q(z|x)||p) - KL(q(z)||p))


def mmd(a: Tensor, b: Tensor, bandwidth: float | None = None) -> Tensor:
    """Squared MMD with a Gaussian kernel (InfoVAE; Zhao et al. 2019, eq. 8); not in nats.

        MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b),   k(u, v) = exp(-|u - v|^2 / (2 h^2))

    The V-statistic (biased, >= 0). The bandwidth h defaults to sqrt(D), as InfoVAE's code
    uses h^2 = D for a standard-normal prior.
    """
    d = a.shape[-1]
    h2 = float(d) if bandwidth is None else bandwidth**2

    def k(u: Tensor, v: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(u, v).pow(2) / (2.0 * h2))

    return k(a, a).mean() + k(b, b).mean() - 2.0 * k(a, b).mean()


# ----------------------------------------------------------------------------------------------
# the one-call API


def _to_2d(a: Any, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a)
    t = t.detach().float()
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if t.dim() != 2:
        t = t.reshape(t.shape[0], -1)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return t


def rank_gauss(reference: Any, values: Any | None = None) -> np.ndarray:
    """Gaussian-copula transform: each column -> standard-normal quantiles of its ranks.

    For a column with reference (training) values r_1..r_n, a value v maps to

        u(v) = (#{r_k < v} + #{r_k <= v}) / (2 n),  clipped to [1/(2n), 1 - 1/(2n)]
        g(v) = Phi^-1(u(v))

    On the reference values themselves u is (average rank + 0.5) / n, i.e. ``(rank + 0.5) / n``
    with ties sharing their mean rank. Held-out values are placed among the reference values
    (``np.searchsorted``), never ranked among themselves, so an estimator trained on one split
    sees the same map on the other. The map is monotone increasing per column, hence invertible
    on the data up to ties, and I(x; y) is unchanged by it; but heavy tails and skew are gone,
    which is what a critic trained by gradient descent needs (issue 13: after x -> sinh(3x)
    the plain density-ratio estimate lost about a fifth of the information).

    Parameters
    ----------
    reference : (n, d) rows that define the ranks (the estimator's training rows).
    values : (m, d) rows to transform (default: `reference` itself).

    Returns
    -------
    (m, d) float64 array of normal scores.
    """
    from scipy.stats import norm

    ref = np.asarray(reference, dtype=np.float64)
    val = ref if values is None else np.asarray(values, dtype=np.float64)
    if ref.ndim != 2 or val.ndim != 2 or ref.shape[1] != val.shape[1]:
        raise ValueError(
            f"rank_gauss: reference and values must be (n, d) and (m, d), got {ref.shape} and "
            f"{val.shape}"
        )
    n = ref.shape[0]
    if n < 2:
        raise ValueError(f"rank_gauss needs at least 2 reference rows, got {n}")
    out = np.empty_like(val)
    for j in range(ref.shape[1]):
        col = np.sort(ref[:, j])
        below = np.searchsorted(col, val[:, j], side="left")  # #{r < v}
        at_or_below = np.searchsorted(col, val[:, j], side="right")  # #{r <= v}
        # u = (#{r < v} + #{r <= v}) / (2n), kept inside (0, 1)
        u = np.clip((below + at_or_below) / (2.0 * n), 0.5 / n, 1.0 - 0.5 / n)
        out[:, j] = norm.ppf(u)
    return out


def estimate_mi(
    x: Any,
    y: Any,
    method: str = "density_ratio",
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: int = 128,
    seed: int = 0,
    val_fraction: float = 0.2,
    select_fraction: float = 0.2,
    device: str | torch.device | None = None,
    standardize: bool = True,
    rank_transform: bool = True,
    folds: int = 1,
    eval_every: int = 50,
    patience: int = 500,
    **options: Any,
) -> float:
    """Train a fresh estimator of I(x; y) on paired rows and return its estimate in nats.

    The defaults are the settings the evaluation uses (`paperlib.evaluation.evaluate.posthoc_mi_zs`,
    `paperlib.evaluation.evaluate.posthoc_mi`): rank-transformed inputs and checkpoint selection on rows
    held out from both fitting and reporting. The evaluation differs only in ``folds=2`` (every
    row held out once, which its per-row interval needs; see `estimate_mi_interval`) and, for
    speed on thousands of rows, in fewer, larger steps of a narrower critic (``steps=200,
    batch_size=512, hidden=64``, `paperlib.evaluation.evaluate.POSTHOC_ZS`).

    Training: Adam with a cosine-decayed learning rate, lr_t = lr * (1 + cos(pi t / steps)) / 2.
    Estimators with ``select_on_val`` (density_ratio) keep the checkpoint with the lowest
    ``select_loss`` on selection rows, evaluated every `eval_every` steps on up to 1024 of them,
    and stop after `patience` steps without improvement. The selection rows are a
    `select_fraction` part of each split's training rows, held out from fitting; they are never
    the rows the estimate is reported on (selecting on those would pick the checkpoint that
    happens to score them highest).

    Parameters
    ----------
    x, y : (N, ...) paired samples (torch tensors or numpy arrays); trailing dims are flattened.
    method : a name in `ESTIMATORS`: "density_ratio", "infonce", "nwj", "mine", "club",
        "minibatch".
    steps, batch_size, lr, hidden : training of the estimator (at most `steps` Adam steps).
    seed : seeds the split, the initialisation, the minibatches and the shuffles.
    val_fraction : the estimate is evaluated on this held-out fraction of the rows, which the
        estimator never trained on: a critic evaluated on its own training rows overfits and
        reports more information than the variables share. 0 evaluates on the training rows
        (and disables checkpoint selection).
    select_fraction : the part of each split's training rows held out from fitting for
        checkpoint selection (estimators with ``select_on_val``; 0 disables selection). With
        the defaults the critic fits 64 % of the rows, selects on 16 % and reports on 20 %.
    device : where to train (default: the device of x when it is a tensor, else CPU).
    standardize : z-score each column with fitting-row statistics (an invertible affine map,
        which leaves I(x; y) unchanged and helps the optimiser).
    rank_transform : first send each column through `rank_gauss` fitted on the fitting rows
        (a monotone map, so I(x; y) is unchanged): removes heavy tails and skew that a critic
        fits poorly. On by default, as in the evaluation: after x -> sinh(3x) of rho = 0.8
        Gaussians (4000 rows, hidden 64, 1000 steps) the critic on the raw values read 24 % to
        94 % too little over six draws, with the transform 3 % or less on five and 10 % on the
        sixth (tests/test_mi.py). ``False`` gives the estimator the standardised raw values.
    folds : K > 1 replaces the single split by K-fold cross-fitting: K estimators, each trained
        on K - 1 folds (less their selection rows) and evaluated on the remaining one, so every
        row is held out once and the estimate averages over all N rows (K times the cost;
        `val_fraction` is then unused). With N = 5000 this halves the sampling noise of a 20 %
        held-out mean.
    eval_every, patience : checkpoint selection (see above); ignored by other estimators.
    **options : passed to the estimator class (e.g. ``critic``, ``select_weight`` for
        density_ratio).

    Returns
    -------
    float : the estimate in nats. For "infonce" and "minibatch" it is averaged over held-out
        batches of `batch_size` rows and never exceeds log(batch_size).
    """
    values, weights, _ = _cross_fit(
        x,
        y,
        method,
        per_row=False,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        hidden=hidden,
        seed=seed,
        val_fraction=val_fraction,
        select_fraction=select_fraction,
        device=device,
        standardize=standardize,
        rank_transform=rank_transform,
        folds=folds,
        eval_every=eval_every,
        patience=patience,
        options=options,
    )
    # the cross-fitted estimate is the mean over all held-out rows
    return float(np.dot(values, weights) / np.sum(weights))


def estimate_mi_interval(
    x: Any,
    y: Any,
    method: str = "density_ratio",
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    folds: int = 2,
    **kwargs: Any,
) -> dict[str, float]:
    """A cross-fitted MI estimate in nats with a bootstrap interval over held-out rows.

    With K-fold cross-fitting every row i is held out once and gets its own term t_i (for
    density_ratio the critic's log-ratio T(x_i, y_i) from the estimator that did not train on
    it); the estimate is mean_i t_i, and the interval is the percentile bootstrap of that mean
    over rows (`paperlib.stats.bootstrap_ci`). The interval covers the sampling noise of the
    held-out rows given the fitted critics, not the noise of fitting them. Each critic keeps
    the checkpoint that scores best on a `select_fraction` part of its own training folds,
    held out from fitting (early stopping), never on the fold it reports: selecting there
    would favour the checkpoint that happens to read those rows highest, and the interval
    would not cover it.

    Parameters
    ----------
    x, y, method : as in `estimate_mi`; `method` must have per-row terms (``estimate_rows``):
        "density_ratio".
    level, n_resamples : the bootstrap interval.
    seed : seeds the estimator (as in `estimate_mi`) and the bootstrap.
    folds : K >= 2 cross-fitting folds.
    **kwargs : the other options of `estimate_mi`, with its defaults (steps, batch_size,
        hidden, select_fraction, rank_transform...).

    Returns
    -------
    ``{"nats", "low", "high", "n_rows"}``.
    """
    from paperlib.stats import bootstrap_ci  # lazy: stats imports scipy only when needed

    cls = ESTIMATORS.get(method)
    if cls.estimate_rows is MIEstimator.estimate_rows:
        with_rows = sorted(
            k
            for k in ESTIMATORS.names()
            if ESTIMATORS.get(k).estimate_rows is not MIEstimator.estimate_rows
        )
        raise ValueError(
            f"estimate_mi_interval: method {method!r} has no per-row estimate; use one of "
            f"{with_rows}"
        )
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"estimate_mi_interval: folds must be an int >= 2, got {folds!r}")
    _, _, rows = _cross_fit(x, y, method, per_row=True, seed=seed, folds=folds, **_defaults(kwargs))
    low, high = bootstrap_ci(rows, level=level, n_resamples=n_resamples, seed=seed)
    return {"nats": float(rows.mean()), "low": low, "high": high, "n_rows": float(len(rows))}


#: `estimate_mi`'s keyword defaults, for `estimate_mi_interval` (tests/test_mi.py checks that the
#: two agree)
_ESTIMATE_DEFAULTS: dict[str, Any] = dict(
    steps=2000,
    batch_size=256,
    lr=1e-3,
    hidden=128,
    val_fraction=0.2,
    select_fraction=0.2,
    device=None,
    standardize=True,
    rank_transform=True,
    eval_every=50,
    patience=500,
)


def _defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`estimate_mi`'s keyword defaults, updated by `kwargs`; the rest go to the estimator."""
    out = {k: kwargs.pop(k, v) for k, v in _ESTIMATE_DEFAULTS.items()}
    out["options"] = kwargs
    return out


def _cross_fit(
    x: Any,
    y: Any,
    method: str,
    *,
    per_row: bool,
    steps: int,
    batch_size: int,
    lr: float,
    hidden: int,
    seed: int,
    val_fraction: float,
    select_fraction: float,
    device: str | torch.device | None,
    standardize: bool,
    rank_transform: bool,
    folds: int,
    eval_every: int,
    patience: int,
    options: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Split, fit and evaluate: (estimate per split, held-out rows per split, per-row terms).

    Each split has three disjoint sets of rows: the estimator fits on one, selects its
    checkpoint on another (`select_fraction` of the split's training rows, when the estimator
    selects and something is held out) and is evaluated on the third (the held-out fold, or
    the `val_fraction` part of a single split).
    """
    cls = ESTIMATORS.get(method)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if not 0.0 <= select_fraction < 1.0:
        raise ValueError(f"select_fraction must lie in [0, 1), got {select_fraction!r}")
    for name, v in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("hidden", hidden),
        ("folds", folds),
        ("eval_every", eval_every),
        ("patience", patience),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    dev = (
        torch.device(device)
        if device is not None
        else (x.device if isinstance(x, Tensor) else torch.device("cpu"))
    )
    xt, yt = _to_2d(x, "x"), _to_2d(y, "y")
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {len(xt)} and {len(yt)}")
    n = xt.shape[0]
    gen = as_generator(seed)
    perm = torch.randperm(n, generator=gen)
    if folds > 1:
        if n < 2 * folds:
            raise ValueError(f"folds={folds} needs at least {2 * folds} rows, got {n}")
        outer = [
            (torch.cat([perm[j::folds] for j in range(folds) if j != k]), perm[k::folds])
            for k in range(folds)
        ]
    else:
        n_val = int(round(val_fraction * n))
        if val_fraction > 0 and n_val < 2:
            raise ValueError(
                f"val_fraction={val_fraction} leaves fewer than 2 held-out rows of {n}"
            )
        outer = [(perm[n_val:], perm[:n_val] if val_fraction > 0 else perm[n_val:])]
    # checkpoint selection needs rows that are neither fitted nor reported
    select = cls.select_on_val and (val_fraction > 0 or folds > 1) and select_fraction > 0
    splits: list[tuple[Tensor, Tensor | None, Tensor]] = []
    for tr_idx, ev_idx in outer:
        if not select:
            splits.append((tr_idx, None, ev_idx))
            continue
        n_sel = int(round(select_fraction * len(tr_idx)))
        if n_sel < 2 or len(tr_idx) - n_sel < 2:
            raise ValueError(
                f"select_fraction={select_fraction} of {len(tr_idx)} training rows leaves "
                "fewer than 2 rows to select on or to fit"
            )
        inner = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
        splits.append((inner[n_sel:], inner[:n_sel], ev_idx))
    values, weights, rows = [], [], []
    for k, (fit_idx, sel_idx, ev_idx) in enumerate(splits):
        value = _fit_and_estimate(
            cls,
            xt,
            yt,
            fit_idx,
            sel_idx,
            ev_idx,
            per_row=per_row,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            hidden=hidden,
            seed=seed + k,
            gen=gen,
            dev=dev,
            standardize=standardize,
            rank_transform=rank_transform,
            eval_every=eval_every,
            patience=patience,
            options=options,
        )
        if per_row:
            rows.append(value)
            value = float(value.mean())
        values.append(value)
        weights.append(len(ev_idx))
    per_row_terms = np.concatenate(rows) if per_row else None
    return np.asarray(values), np.asarray(weights, dtype=np.float64), per_row_terms


def _scale(rows: Tensor) -> Tensor:
    """Per-column std of the training rows; 1 where a column is (nearly) constant there.

    A column constant on the training rows tells the critic nothing; dividing by its ~0 std
    would send any held-out row whose value differs (s_t of a position that varies only on
    other rows, or a held-out value ranked outside the training ones) to +-1e8.
    """
    sd = rows.std(0)
    return torch.where(sd < 1e-6, torch.ones_like(sd), sd)


def _fit_and_estimate(
    cls: type[MIEstimator],
    xt: Tensor,
    yt: Tensor,
    fit_idx: Tensor,
    sel_idx: Tensor | None,
    ev_idx: Tensor,
    *,
    per_row: bool = False,
    steps: int,
    batch_size: int,
    lr: float,
    hidden: int,
    seed: int,
    gen: torch.Generator,
    dev: torch.device,
    standardize: bool,
    rank_transform: bool = True,
    eval_every: int,
    patience: int,
    options: dict[str, Any],
) -> float | np.ndarray:
    """One split of `estimate_mi`: train on rows fit_idx, keep the checkpoint with the lowest
    ``select_loss`` on rows sel_idx (None: the last one), return the estimate on rows ev_idx
    (with `per_row`, the (len(ev_idx),) array of per-row terms instead)."""
    if rank_transform:
        # normal scores of each column, ranked among the fitting rows only
        xt = torch.as_tensor(
            rank_gauss(xt[fit_idx].cpu().numpy(), xt.cpu().numpy()), dtype=torch.float32
        )
        yt = torch.as_tensor(
            rank_gauss(yt[fit_idx].cpu().numpy(), yt.cpu().numpy()), dtype=torch.float32
        )
    if standardize:
        mx, sx = xt[fit_idx].mean(0), _scale(xt[fit_idx])
        my, sy = yt[fit_idx].mean(0), _scale(yt[fit_idx])
        xt, yt = (xt - mx) / sx, (yt - my) / sy
    xt, yt = xt.to(dev), yt.to(dev)
    x_tr, y_tr = xt[fit_idx.to(dev)], yt[fit_idx.to(dev)]
    x_va, y_va = xt[ev_idx.to(dev)], yt[ev_idx.to(dev)]
    bs = min(batch_size, x_tr.shape[0])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        est = cls(xt.shape[1], yt.shape[1], hidden, **options).to(dev)
    opt = torch.optim.Adam(est.parameters(), lr=lr)
    # lr_t = lr (1 + cos(pi t / steps)) / 2
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / steps))
    )
    select = cls.select_on_val and sel_idx is not None
    if select:
        # a fixed subset of the selection rows (the criterion's cost is quadratic in them)
        sub = sel_idx[torch.randperm(len(sel_idx), generator=gen)[:1024]].to(dev)
        x_sel, y_sel = xt[sub], yt[sub]
    best, best_step, best_state = math.inf, 0, None
    est.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, x_tr.shape[0], (bs,), generator=gen).to(dev)
        loss = est.loss(x_tr[idx], y_tr[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if select and (step % eval_every == 0 or step == steps):
            with torch.no_grad():
                crit = float(est.select_loss(x_sel, y_sel, gen))
            if crit < best:
                best, best_step = crit, step
                best_state = {k: v.detach().clone() for k, v in est.state_dict().items()}
            elif step - best_step >= patience:
                break
    if best_state is not None:
        est.load_state_dict(best_state)
    est.eval()
    with torch.no_grad():
        if per_row:
            return est.estimate_rows(x_va, y_va, gen).double().cpu().numpy()
        if cls.bounded_by_log_batch or cls is NWJ:
            # average over held-out batches of the training batch size (the bound is per batch)
            vb = min(bs, x_va.shape[0])
            order = torch.randperm(x_va.shape[0], generator=gen).to(dev)
            vals = [
                est.estimate(x_va[order[i : i + vb]], y_va[order[i : i + vb]], gen)
                for i in range(0, x_va.shape[0] - vb + 1, vb)
            ]
            value = torch.stack(vals).mean()
        else:
            value = est.estimate(x_va, y_va, gen)
    return float(value)


__all__ = [
    "CLUB",
    "ESTIMATORS",
    "MINE",
    "NWJ",
    "DensityRatio",
    "InfoNCE",
    "MIEstimator",
    "MinibatchGaussian",
    "club_bound",
    "correlated_gaussians",
    "estimate_mi",
    "estimate_mi_interval",
    "gaussian_mi",
    "minibatch_mi_xz",
    "mmd",
    "rank_gauss",
    "shuffle_rows",
]

"""Training critics of the regularizers (paperlib.training.regularizers): the `cmi` penalty's instruments.

- `SetCritic`: I_q(z; s_1:T) over the whole sequence, all pairs of a batch (the default);
- `DensityRatioCritic`: D(z, s) for a global z (B, Dz) and local features s (B, T, Ds), with the
  "sequence" (GRU summary of s_1:T) and "step" (random s_t per item) pairings of DESIGN section 2;
- `ClubCritic`: the same pairings with a variational Gaussian q(z | s) (CLUB upper bound);
- `PriorRatioCritic`: T(z) telling q(z) from p(z) = N(0, I), so KL(q(z) || p(z)) ~ E_q[T(z)].

They are built from the estimator family's pieces (paperlib.estimators.mi: `mlp`, `shuffle_rows`,
`club_bound`); the estimators themselves, used for ground-truth tests and post-hoc evaluation,
stay in paperlib.estimators.mi.

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

from paperlib.estimators.mi import (
    N_FREQUENCIES,
    as_generator,
    club_bound,
    mlp,
    position_code,
    set_summary,
    shuffle_rows,
)
from paperlib.gaussian import gaussian_log_prob


class SetCritic(nn.Module):
    """All-pairs density-ratio critic of z and the whole sequence s_1:T (module docstring).

    Parameters
    ----------
    z_dim : size of z, (B, Dz).
    s_dim : size of s_t, s of shape (B, T, Ds).
    hidden : width of phi and of the f, g networks.
    embed : size of the bilinear embeddings f(z), g(h).
    phi_layers : layers of phi. With one, a feature of s_t that changes sign with t's
        position (information no pooled statistic carries) must be gated by the position
        code through one ELU; two recovered 89 % and 87 % of 1 and 2 planted nats on speech's
        shape where one recovered 75 % and 79 % (3 seeds; docs/DESIGN.md, "Instrument").

    The same interface as `DensityRatioCritic`: ``mi(z, s)`` (differentiable in z
    and s) and ``loss(z, s, generator) -> (loss, accuracy)``.
    """

    def __init__(
        self, z_dim: int, s_dim: int, hidden: int = 128, embed: int = 32, phi_layers: int = 2
    ):
        super().__init__()
        if phi_layers < 1:
            raise ValueError(f"phi_layers must be >= 1, got {phi_layers}")
        width = [s_dim + 1 + 2 * N_FREQUENCIES] + [hidden] * phi_layers
        layers = [m for a, b in zip(width, width[1:]) for m in (nn.Linear(a, b), nn.ELU())]
        self.phi = nn.Sequential(*layers)
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


def coordinate_channels(grid: tuple[int, int], device=None, dtype=None) -> Tensor:
    """(1, 2, H, W): each position's row and column, scaled to [-1, 1] (0 where a side is 1)."""
    H, W = grid

    def ramp(n: int) -> Tensor:
        return (
            torch.linspace(-1.0, 1.0, n, device=device) if n > 1 else torch.zeros(1, device=device)
        )

    i, j = torch.meshgrid(ramp(H), ramp(W), indexing="ij")
    return torch.stack([i, j])[None].to(dtype or torch.float32)


def _patches_at(
    m: Tensor, kernel: tuple[int, int], padding: tuple[int, int], positions: Tensor
) -> Tensor:
    """The (kh, kw) patches of `m` (B, C, H, W) centred at the flat `positions`: (B, C*kh*kw, P').

    Equal to ``F.unfold(m, kernel, padding=padding)[:, :, positions]`` (the same column order),
    but gathers only the chosen patches: unfold copies every patch of the map (110 ms a step at
    batch 128 on images' 14 x 14 grid, one thread, against 8.5 ms here), which was 42 % of an
    images `cmi` run's time, spent in the monitor.
    """
    (kh, kw), (ph, pw) = kernel, padding
    W = m.shape[3]
    # positions first, so each gathered element is a contiguous (B, C) block (2x faster)
    m = F.pad(m, (pw, pw, ph, ph)).permute(2, 3, 0, 1)  # (H + 2ph, W + 2pw, B, C)
    rows = (positions // W)[:, None] + torch.arange(kh, device=m.device)  # (P', kh)
    cols = (positions % W)[:, None] + torch.arange(kw, device=m.device)  # (P', kw)
    patch = m[rows[:, :, None], cols[:, None, :]]  # (P', kh, kw, B, C)
    return patch.permute(3, 4, 1, 2, 0).flatten(1, 3)


class WindowCritic(nn.Module):
    """All-pairs density-ratio critic of z and s seen on its grid: I_q(z; s_window) or I_q(z; s_1:T).

    s (B, T, Ds) is laid out on its grid (H, W) (an image's pixels in raster order; (1, T) for a
    sequence of frames), with each position's coordinates as two more channels, and read by a
    small convolutional net, so the critic sees spatial layout, unlike a mean over positions:

        u_p = conv(s, coords)_p                (receptive field `window` x `window`: (window-1)/2
                                                 3x3 layers; 3-wide along a sequence)
        window target:   T_ij(p) = f(z_i)^T g(u_j,p) + a(z_i) + b(u_j,p)   at every position p
        sequence target: T_ij    = f(z_i)^T g(h_j) + a(z_i) + b(h_j),  h_j = mean_p u_j,p

    L = mean_(i, p) softplus(-T_ii(p)) + mean_(i != j, p) softplus(T_ij(p)), every off-diagonal
    pair of the batch a negative. At the optimum T_ij(p) = log q(z, s_w(p)) / (q(z) q(s_w(p))),
    so mean_(i, p) T_ii(p) estimates the window target

        I_q(z; s_window) = 1/P sum_p I_q(z; s_w(p)),

    what one receptive field of the local path holds about z (docs/DESIGN.md, "What s holds":
    the whole of a PixelCNN's s_1:T holds x, so I(z; s_1:T) ~ I(x; z) there). With
    ``window=0`` the positions are mean-pooled first and the target is I_q(z; s_1:T).

    Parameters
    ----------
    z_dim, s_dim : sizes of z (B, Dz) and s_t (s of shape (B, H * W, Ds)).
    grid : (H, W) of the positions.
    hidden : width of f and g.
    window : odd receptive field of the window target; 0: the sequence target (pooled).
    conv_channels : channels of the convolutions; by default 32 for the window target (kept
        narrow: the critic runs every step) and `hidden` when pooled: a mean of 32 channels is a
        narrower summary than the set critic's mean of `hidden` features, and on a trained
        speech `mi` encoder it read 1.70 nats where the set critic read 3.08 (2.86 with 128
        channels; docs/DESIGN.md, "Instrument").
    embed : size of the bilinear embeddings.
    patch : one layer over the whole window instead of stacked 3x3 layers: an MLP on each
        flattened window patch and its coordinates (the window target's second family in
        paperlib.estimators.instrument).
    train_positions : each training step scores this many positions drawn at random (0: all
        of them; the window target only). The target is a mean over positions, so a random
        subset keeps the loss's expectation and costs a fraction of the step: the head g and
        the all-pairs scores, most of a step at batch 128 on images' 14 x 14 grid, run on P' of
        the P positions (3.5x fewer seconds a step at 32 of 196). Reading, the penalty and
        early stopping (eval mode, or `mi`) use every position.
    """

    def __init__(
        self,
        z_dim: int,
        s_dim: int,
        grid: tuple[int, int],
        hidden: int = 128,
        window: int = 5,
        conv_channels: int | None = None,
        embed: int = 32,
        patch: bool = False,
        train_positions: int = 0,
    ):
        super().__init__()
        if window < 0 or (window and window % 2 == 0):
            raise ValueError(f"window must be 0 (sequence target) or odd, got {window!r}")
        if train_positions < 0 or (train_positions and window == 0):
            raise ValueError(
                f"train_positions must be >= 0 and needs the window target (window > 0), got "
                f"train_positions={train_positions!r} with window={window!r}"
            )
        self.train_positions = int(train_positions)
        self.patch = bool(patch)
        self.grid = (int(grid[0]), int(grid[1]))
        self.window = int(window)
        kh = 3 if self.grid[0] > 1 else 1
        if conv_channels is None:
            conv_channels = hidden if window == 0 else 32
        layers: list[nn.Module] = []
        c = s_dim + 2
        if patch:
            # one layer of the whole window: an MLP on each flattened patch (the other family)
            k = max(window, 3)
            kp = k if self.grid[0] > 1 else 1
            layers += [nn.Conv2d(c, hidden, (kp, k), padding=(kp // 2, k // 2)), nn.ELU()]
            c = hidden
        else:
            # (window - 1) / 2 layers of 3 reach the window; pooled (window 0), two: through one
            # ELU a feature that changes sign with position is hard to form (the set critic's
            # one-layer phi recovered 75 % of a planted nat, DESIGN "Instrument")
            for _ in range((window - 1) // 2 if window else 2):
                layers += [nn.Conv2d(c, conv_channels, (kh, 3), padding=(kh // 2, 1)), nn.ELU()]
                c = conv_channels
        self.conv = nn.Sequential(*layers)
        # g: 1x1 layers at each position (the same MLP as f, as convolutions)
        self.g = nn.Sequential(
            nn.Conv2d(c, hidden, 1), nn.ELU(), nn.Conv2d(hidden, hidden, 1), nn.ELU(),
            nn.Conv2d(hidden, embed + 1, 1),
        )  # fmt: skip
        self.f = mlp(z_dim, hidden, embed + 1)
        self.register_buffer("coords", coordinate_channels(self.grid), persistent=False)

    def features(self, s: Tensor, positions: Tensor | None = None) -> Tensor:
        """g(u_p) at each position (window target) or g(mean_p u_p): (B, E + 1, P) or (B, E + 1, 1).

        `positions` (patch critic only): the flat indices p of the positions to score, (P',)."""
        if s.dim() != 3:
            raise ValueError(f"s must be (B, T, Ds), got shape {tuple(s.shape)}")
        B, T, Ds = s.shape
        H, W = self.grid
        if T != H * W:
            raise ValueError(f"s has {T} positions, but the critic's grid {self.grid} has {H * W}")
        m = s.transpose(1, 2).reshape(B, Ds, H, W)
        m = torch.cat([m, self.coords.to(s.dtype).expand(B, -1, -1, -1)], dim=1)
        if positions is not None and self.patch:
            # the patch layer at the chosen positions only: W_conv [patch_p] + b, then ELU
            conv, act = self.conv[0], self.conv[1]
            cols = _patches_at(m, conv.kernel_size, conv.padding, positions)
            u = act(torch.einsum("ok,bkp->bop", conv.weight.flatten(1), cols) + conv.bias[:, None])
        else:
            u = self.conv(m).flatten(2)  # (B, C, P)
            if self.window == 0:
                u = u.mean(dim=2, keepdim=True)  # h = mean_p u_p
            elif positions is not None:
                u = u[:, :, positions]
        return self.g(u.unsqueeze(-1)).flatten(2)

    def scores(self, z: Tensor, s: Tensor, positions: Tensor | None = None) -> Tensor:
        """T_ij(p) for all pairs and positions (or the given `positions`): (B, B, P)."""
        fz, gs = self.f(z), self.features(s, positions)  # (B, E + 1), (B, E + 1, P)
        # T_ij(p) = f(z_i) . g(u_j,p) + a(z_i) + b(u_j,p)
        return (
            torch.einsum("ie,jep->ijp", fz[:, :-1], gs[:, :-1])
            + fz[:, -1, None, None]
            + gs[:, -1][None]
        )

    def rows(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """mean_p T(z_i, s_i)(p) of each joint pair, the estimated log density ratio: (B,)."""
        fz, gs = self.f(z), self.features(s)
        # T_ii(p) = f(z_i) . g(u_i,p) + a(z_i) + b(u_i,p), averaged over p
        t = (fz[:, :-1, None] * gs[:, :-1]).sum(1) + fz[:, -1:] + gs[:, -1]
        return t.mean(-1)

    def mi(self, z: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """I_q(z; s_window) ~ mean_(i, p) T_ii(p), in nats (I_q(z; s_1:T) with window 0)."""
        return self.rows(z, s).mean()

    def loss(self, z: Tensor, s: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(logistic loss over all pairs and positions, balanced accuracy); `generator` draws the
        positions of a step when `train_positions` is set (training mode only)."""
        positions = None
        n_pos = self.grid[0] * self.grid[1]
        if self.training and 0 < self.train_positions < n_pos:
            positions = torch.randperm(n_pos, generator=generator)[: self.train_positions]
        t = self.scores(z, s, positions)  # (B, B, P)
        b = t.shape[0]
        if b < 2:
            raise ValueError("WindowCritic needs a batch of at least 2 sequences")
        diag = t.diagonal(dim1=0, dim2=1)  # (P, B)
        pos = F.softplus(-diag).mean()
        sp = F.softplus(t.clamp_min(-30.0))
        n_off = b * (b - 1) * t.shape[2]
        neg = (sp.sum() - sp.diagonal(dim1=0, dim2=1).sum()) / n_off
        neg_right = ((t < 0).float().sum() - (diag < 0).float().sum()) / n_off
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
        # "set": the DeepSets summary of paperlib.estimators.critics, mean_t phi([s_t, e_t])
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
        gen = generator if generator is not None else as_generator(0)
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
    "WindowCritic",
    "coordinate_channels",
    "DensityRatioCritic",
    "PriorRatioCritic",
    "SetCritic",
    "position_code",
]

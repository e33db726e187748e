"""The I_q(z; s) instrument: planted ground truth, a second critic family, and the reading of a
trained critic on held-out rows. Used by the qualification (benchmarks/qualify_critics.py,
tests/test_instrument.py), the monitor during training (`CMIObjective.monitor`) and evaluation.

Targets (docs/DESIGN.md, "What s holds"):

- "sequence": I_q(z; s_1:T), s seen whole;
- "window": I_q(z; s_window) = 1/P sum_p I_q(z; s_w(p)), s_w(p) the positions of a
  `window` x `window` patch around p on the grid (clipped at the borders; `window` frames
  along a sequence of frames).

Planted ground truth. z ~ N(0, I_Dz) and

    s_p = c_p A0 z + sigma eps_p,   c_p = +1 on the first half of the positions, -1 on the rest,

with A0 (Ds x Dz) of orthonormal columns on `rank` of z's dimensions. sum_p c_p = 0, so the mean
of s over positions carries nothing of z: a critic must see where each s_p sits. In closed form
(z Gaussian, the noise independent), for a set w of positions

    I(z; s_w) = rank / 2 * log(1 + |w| / sigma^2)           (c_p^2 = 1)

and sigma is solved (bisection) so that the target quantity equals the planted value.

The second family. The training critics (`paperlib.estimators.critics.SetCritic`, `WindowCritic`) see s
through a convolution or a DeepSets summary. The other family is the cross-fitted
`paperlib.estimators.mi.DensityRatio` estimator with MLPs on *flattened* inputs: all of s_1:T for the
sequence target, one window patch with its position for the window target (one random position
per item; the estimate is then E_p I(z; s_w(p)), the window target).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from paperlib.estimators.mi import DensityRatio, rank_gauss

#: the other family's budget, by the penalty's target (`target`): during training (every
#: `monitor_every` steps) and in evaluation (`run_metrics.evaluate_run`). The pooled sequence
#: family is cheap (about 20 ms a step on speech's shape, one thread) and slow to learn: of 0.5
#: planted nats it recovered 25 % at 500 steps and 87 % at 1500. The window family scores 16
#: random pixels a step (`other_critic`), so its steps are cheap; both fit on a pool of
#: `POOL_SAMPLES` posterior samples per item (`fit_and_select`), encoded once.
MONITOR = {"sequence": dict(steps=1000), "window": dict(steps=1200)}
#: evaluation's other family: batches of 128 rows (as the training critics see: the batch and
#: its replay), and for the window target as many steps as the training critic takes (2400 =
#: 4 x 600) at 16 random positions a step (`other_critic`): at 500 steps on every position it
#: read 1.26 nats where the training critic read 1.66 on a frozen `mi` encoder, at 2400 1.88.
#: Evaluation fits it on `POOL_SAMPLES` posterior samples of each item (`fit_and_select`).
EVALUATION = {
    "sequence": dict(steps=1500, batch_size=128),
    "window": dict(steps=2400, batch_size=128),
}
POOL_SAMPLES = 8


def evaluation_budget(critic_pairs: str, posthoc_steps: int) -> dict[str, int]:
    """The other family's budget in evaluation: `EVALUATION` for the target, its steps capped at
    8x the profile's post-hoc critic steps (``eval.posthoc_critic_steps``), so that the smoke
    profile's wiring check trains it 160 steps while quick (300 -> 2400) and paper reach the
    qualified budget."""
    budget = dict(EVALUATION[target(critic_pairs)])
    budget["steps"] = min(budget["steps"], 8 * posthoc_steps)
    return budget


#: principal components of the flattened source that the other family reads
COMPONENTS = 32


# ----------------------------------------------------------------------------------------------
# windows on a grid


def window_sizes(grid: tuple[int, int], window: int) -> np.ndarray:
    """|w(p)| for every position p (raster order): the in-bounds positions of its window."""
    H, W = grid
    half = window // 2
    rows = np.arange(H)
    cols = np.arange(W)
    n_r = (np.minimum(rows + half, H - 1) - np.maximum(rows - half, 0) + 1) if H > 1 else np.ones(1)
    n_c = np.minimum(cols + half, W - 1) - np.maximum(cols - half, 0) + 1
    return (n_r[:, None] * n_c[None, :]).reshape(-1)


def window_patches(
    s: np.ndarray | Tensor, grid: tuple[int, int], window: int, seed: int = 0
) -> np.ndarray:
    """One window per item, at a random position: (N, window_h * window * Ds + 2).

    The patch around p (zeros outside the grid, as the critic's padded convolution sees it),
    flattened, then p's row and column in [-1, 1].
    """
    s = s.detach().cpu().numpy() if isinstance(s, Tensor) else np.asarray(s)
    N, T, Ds = s.shape
    H, W = grid
    if T != H * W:
        raise ValueError(f"s has {T} positions, the grid {grid} has {H * W}")
    half = window // 2
    wh = window if H > 1 else 1
    hh = half if H > 1 else 0
    padded = np.zeros((N, H + 2 * hh, W + 2 * half, Ds), dtype=np.float32)
    padded[:, hh : hh + H, half : half + W] = s.reshape(N, H, W, Ds)
    rng = np.random.default_rng(seed)
    p = rng.integers(0, T, N)
    i, j = np.divmod(p, W)
    di, dj = np.meshgrid(np.arange(wh), np.arange(window), indexing="ij")
    patch = padded[np.arange(N)[:, None, None], i[:, None, None] + di, j[:, None, None] + dj]
    coords = np.stack([_unit(i, H), _unit(j, W)], axis=1)
    return np.concatenate([patch.reshape(N, -1), coords], axis=1).astype(np.float32)


def _unit(k: np.ndarray, n: int) -> np.ndarray:
    return 2.0 * k / (n - 1) - 1.0 if n > 1 else np.zeros_like(k, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# planted ground truth


def planted_mi(
    sigma2: float, rank: int, grid: tuple[int, int], target: str, window: int = 5
) -> float:
    """Closed-form target quantity of `planted` data with noise variance sigma2 (nats)."""
    T = grid[0] * grid[1]
    if target == "sequence":
        sizes = np.array([T])
    elif target == "window":
        sizes = window_sizes(grid, window)
    else:
        raise ValueError(f"target must be 'sequence' or 'window', got {target!r}")
    # I(z; s_w) = rank / 2 log(1 + |w| / sigma^2), averaged over windows
    return float(np.mean(rank / 2.0 * np.log1p(sizes / sigma2)))


class Planted:
    """A source of planted (z, s) with a closed-form target value (module docstring).

    ``Planted(z_dim, s_dim, grid, nats, target, window, rank, seed).sample(n, rng)`` draws n
    fresh rows; ``.true`` is the target quantity in nats. ``nats=0`` plants nothing
    (independent s of the same marginal scale). The structure (A0, sigma) is fixed by `seed`.
    """

    def __init__(
        self,
        z_dim: int,
        s_dim: int,
        grid: tuple[int, int],
        nats: float,
        target: str = "sequence",
        window: int = 5,
        rank: int = 4,
        seed: int = 0,
    ):
        self.z_dim, self.s_dim, self.grid = z_dim, s_dim, grid
        self.rank = min(rank, z_dim, s_dim)
        T = grid[0] * grid[1]
        rng = np.random.default_rng(seed)
        self.c = np.where(np.arange(T) < T // 2, 1.0, -1.0)  # sum_p c_p = 0 for even T
        q, _ = np.linalg.qr(rng.standard_normal((s_dim, s_dim)))
        self.a0 = q[:, : self.rank]  # (Ds, r) orthonormal columns on z's first `rank` dims
        if nats <= 0:
            self.sigma2, self.true = None, 0.0
            return
        lo, hi = 1e-6, 1e8  # bisection on log sigma^2: the MI falls as the noise grows
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            above = planted_mi(mid, self.rank, grid, target, window) > nats
            lo, hi = (mid, hi) if above else (lo, mid)
        self.sigma2 = math.sqrt(lo * hi)
        self.true = planted_mi(self.sigma2, self.rank, grid, target, window)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(z (n, Dz), s (n, T, Ds)) drawn fresh."""
        T = len(self.c)
        z = rng.standard_normal((n, self.z_dim))
        noise = rng.standard_normal((n, T, self.s_dim))
        if self.sigma2 is None:
            return z.astype(np.float32), noise.astype(np.float32)
        # s_p = c_p A0 z_{1:r} + sigma eps_p
        signal = np.einsum("p,nr,dr->npd", self.c, z[:, : self.rank], self.a0)
        s = signal + math.sqrt(self.sigma2) * noise
        return z.astype(np.float32), s.astype(np.float32)


def planted(
    n: int, *args: Any, seed: int = 0, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    """n rows of ``Planted(*args, seed=seed, **kwargs)`` data: (z (n, Dz), s (n, T, Ds), true
    nats)."""
    source = Planted(*args, seed=seed, **kwargs)
    z, s = source.sample(n, np.random.default_rng(seed + 1))
    return z, s, source.true


# ----------------------------------------------------------------------------------------------
# readings


def other_family(
    z: np.ndarray | Tensor,
    s: np.ndarray | Tensor,
    target: str,
    grid: tuple[int, int],
    window: int = 5,
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """The other family's cross-fitted estimate of the target: {"nats", "low", "high", ...}.

    z (N, Dz) and s (N, T, Ds), one row per item, or (N, K, Dz) and (N, K, T, Ds): K posterior
    samples of each item (more rows for the critic, as a run's critic sees a new sample at
    every visit; folds still split items). Rows for the critic (`grouped_density_ratio`):

    - "sequence": the leading principal components of flattened s_1:T (`project`);
    - "window": each window patch's leading components and its position, at `positions`
      positions spread over the grid, z repeated (the estimate is E_p I(z; s_w(p))).

    `options` go to `grouped_density_ratio` (steps, hidden, positions, ...).
    """
    z = z.detach().cpu().numpy() if isinstance(z, Tensor) else np.asarray(z)
    s = s.detach().cpu().numpy() if isinstance(s, Tensor) else np.asarray(s)
    if z.ndim == 2:
        z, s = z[:, None], s[:, None]
    N, K, T, Ds = s.shape
    positions = int(options.pop("positions", 49))
    if target == "sequence":
        y = project(s.reshape(N * K, T * Ds), COMPONENTS, seed).reshape(N, K, -1)
        return grouped_density_ratio(z, y, seed=seed, **options)
    if target != "window":
        raise ValueError(f"target must be 'sequence' or 'window', got {target!r}")
    pos = np.linspace(0, T - 1, min(positions, T)).round().astype(int)
    patches = _all_patches(s.reshape(N * K, T, Ds), grid, window, pos)  # (N K, P, D + 2)
    P = len(pos)
    flat = patches.reshape(N * K * P, -1)
    # each patch's leading components, its coordinates kept as they are
    reduced = project(flat[:, :-2], COMPONENTS, seed)
    y = np.concatenate([reduced, flat[:, -2:]], axis=1).reshape(N, K * P, -1)
    zr = np.repeat(z, P, axis=1)  # (N, K P, Dz): z of sample k beside each of its windows
    return grouped_density_ratio(zr, y, seed=seed, **options)


def project(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The top-`k` principal components of the rows y (all of them when y has <= k columns).

    Fitted on every row without z, so it leaks nothing of z into held-out folds. A critic on
    thousands of flattened features over-fits a few thousand rows (a flattened 5x5x32 window
    read -3.6 nats where 0.57 was there); the planted signal, like any signal stronger than the
    noise along its directions, lives in the leading components.
    """
    from sklearn.decomposition import PCA

    if y.shape[1] <= k:
        return y.astype(np.float32)
    return PCA(n_components=k, random_state=seed).fit_transform(y).astype(np.float32)


def _all_patches(s: np.ndarray, grid: tuple[int, int], window: int, pos: np.ndarray) -> np.ndarray:
    """(N, P, patch + 2): the window patch and coordinates of each item at positions `pos`."""
    N, T, Ds = s.shape
    H, W = grid
    if T != H * W:
        raise ValueError(f"s has {T} positions, the grid {grid} has {H * W}")
    half = window // 2
    wh, hh = (window, half) if H > 1 else (1, 0)
    padded = np.zeros((N, H + 2 * hh, W + 2 * half, Ds), dtype=np.float32)
    padded[:, hh : hh + H, half : half + W] = s.reshape(N, H, W, Ds)
    i, j = np.divmod(pos, W)
    di, dj = np.meshgrid(np.arange(wh), np.arange(window), indexing="ij")
    patch = padded[:, i[:, None, None] + di, j[:, None, None] + dj]  # (N, P, wh, w, Ds)
    coords = np.broadcast_to(np.stack([_unit(i, H), _unit(j, W)], 1), (N, len(pos), 2))
    return np.concatenate([patch.reshape(N, len(pos), -1), coords], axis=2).astype(np.float32)


def grouped_density_ratio(
    z: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 2,
    steps: int = 1500,
    batch_size: int = 512,
    hidden: int = 128,
    lr: float = 1e-3,
    eval_every: int = 100,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """I(z; y) by a density-ratio MLP critic on rows grouped by item: z, y of shape (N, K, .).

    `paperlib.estimators.mi.DensityRatio` (bilinear all-pairs critic, MLPs on the flattened inputs),
    trained on the rows of every item outside the fold, early-stopped on a fifth of those items
    (held out of the fit), and read on the fold's items: each item's term is the mean log-ratio
    over its K rows. Folds split items, never the rows of one item. Inputs are rank-transformed
    per column (`paperlib.estimators.mi.rank_gauss`, fitted on the fold's training rows: a monotone map,
    I unchanged). The interval is a percentile bootstrap over items of their terms (the noise of
    the held-out rows, not of fitting the critic).
    """
    from paperlib.stats import bootstrap_ci

    N, K = y.shape[:2]
    if N < 2 * folds:
        raise ValueError(f"folds={folds} needs at least {2 * folds} items, got {N}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(N)
    item_terms = np.zeros(N)
    gen = torch.Generator().manual_seed(seed)
    for k in range(folds):
        held = order[k::folds]
        train = np.setdiff1d(order, held)
        n_stop = max(len(train) // 5, 2)
        stop, fit = train[:n_stop], train[n_stop:]
        zf = z[fit].reshape(-1, z.shape[2])
        yf = y[fit].reshape(-1, y.shape[2])

        def rows(items: np.ndarray, zf=zf, yf=yf) -> tuple[Tensor, Tensor]:
            a = rank_gauss(zf, z[items].reshape(-1, z.shape[2]))
            b = rank_gauss(yf, y[items].reshape(-1, y.shape[2]))
            return torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)

        x_fit, y_fit = rows(fit)
        x_stop, y_stop = rows(stop)
        with torch.random.fork_rng():
            torch.manual_seed(seed + k)
            est = DensityRatio(z.shape[2], y.shape[2], hidden, critic="bilinear")
        opt = torch.optim.Adam(est.parameters(), lr=lr)
        sel = torch.randperm(len(x_stop), generator=gen)[:2048]
        best, best_state = math.inf, None
        bs = min(batch_size, len(x_fit))
        for step in range(1, steps + 1):
            idx = torch.randint(0, len(x_fit), (bs,), generator=gen)
            loss = est.loss(x_fit[idx], y_fit[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % eval_every == 0 or step == steps:
                with torch.no_grad():
                    crit = float(est.select_loss(x_stop[sel], y_stop[sel], gen))
                if crit < best:
                    best = crit
                    best_state = {n: v.detach().clone() for n, v in est.state_dict().items()}
        est.load_state_dict(best_state)
        est.eval()
        x_h, y_h = rows(held)
        with torch.no_grad():
            t = torch.cat(
                [est.estimate_rows(a, b, gen) for a, b in zip(x_h.split(4096), y_h.split(4096))]
            )
        item_terms[held] = t.double().numpy().reshape(len(held), K).mean(1)
    low, high = bootstrap_ci(item_terms, level=level, seed=seed)
    return {"nats": float(item_terms.mean()), "low": low, "high": high, "n_rows": float(N)}


def target(critic_pairs: str) -> str:
    """The quantity a critic of `critic_pairs` estimates: "window" (I(z; s_window)) or
    "sequence" (I(z; s_1:T), also for the per-position pairs of "step")."""
    return "window" if critic_pairs == "window" else "sequence"


def other_critic(
    critic_pairs: str, z_dim: int, s_dim: int, grid: tuple[int, int], hidden: int = 128,
    window: int = 5,
) -> nn.Module:  # fmt: skip
    """A critic of the other family than the training critic `critic_pairs`, for one target.

    - training "set" (DeepSets: mean over positions of per-position features) -> a 1-D / 2-D
      convolution over neighbouring positions, mean-pooled (`WindowCritic(window=0)`);
    - "conv" -> the DeepSets `SetCritic`;
    - "window" (stacked 3x3 convolutions per window) -> an MLP on each flattened window patch
      and its position (`WindowCritic(patch=True)`);
    - "sequence" / "step" -> `SetCritic`.
    """
    from paperlib.estimators.critics import SetCritic, WindowCritic

    if critic_pairs == "set":
        return WindowCritic(z_dim, s_dim, grid, hidden, window=0)
    if critic_pairs == "window":
        # 16 random positions a step: 2400 steps then cost what 200 of all 196 pixels did
        return WindowCritic(
            z_dim, s_dim, grid, hidden, window=window, patch=True, train_positions=16
        )
    return SetCritic(z_dim, s_dim, hidden)


def other_reading(
    critic_pairs: str,
    grid: tuple[int, int],
    sample: Callable[[int, torch.Generator], tuple[Tensor, Tensor]],
    z_out: Tensor,
    s_out: Tensor,
    *,
    seed: int = 0,
    **fit: Any,
) -> dict[str, float]:
    """The other family's reading of the target: `fit_other` on rows from `sample` (`fit`:
    its window, steps, batch_size, lr, hidden and select), then `read_other` on held-out rows
    (z_out, s_out).

    `hidden` is the width of the other critic; evaluation, the monitor and the qualification
    pass the training critic's (``objective.critic_hidden``: 128 in the quick profile, where
    the instrument was qualified; 16 in smoke, where a 128-wide convolution was 40 of an
    images run's 50 evaluation seconds; 256 in the paper profile).
    """
    z_out, s_out = torch.as_tensor(z_out).float(), torch.as_tensor(s_out).float()
    critic = fit_other(critic_pairs, grid, sample, z_out.shape[1], s_out.shape[2], seed=seed, **fit)
    return read_other(critic, z_out, s_out, seed=seed)


def fit_other(
    critic_pairs: str,
    grid: tuple[int, int],
    sample: Callable[[int, torch.Generator], tuple[Tensor, Tensor]],
    z_dim: int,
    s_dim: int,
    *,
    window: int = 5,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 1e-3,
    hidden: int = 128,
    seed: int = 0,
    select: tuple[Tensor, Tensor] | None = None,
) -> nn.Module:
    """A fresh `other_critic`, trained on rows from `sample` as a training critic is
    (`fit_critic`). With `select` (rows of items neither fitted nor read), it stops early on
    them: the weights of its lowest held-out loss are the ones kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = other_critic(critic_pairs, z_dim, s_dim, grid, hidden, window)
    fit_critic(critic, sample, steps=steps, batch_size=batch_size, lr=lr, seed=seed, select=select)
    return critic.eval()


def read_other(critic: nn.Module, z_out: Tensor, s_out: Tensor, seed: int = 0) -> dict[str, float]:
    """A fitted other-family critic read on held-out rows (z_out, s_out): ``nats`` (mean
    log-ratio on the joint pairs, with ``low`` / ``high``: a bootstrap over the rows) and
    ``nwj`` (`critic_bound`, a lower bound)."""
    from paperlib.stats import bootstrap_ci

    z_out, s_out = torch.as_tensor(z_out).float(), torch.as_tensor(s_out).float()
    critic.eval()
    with torch.no_grad():
        rows = torch.cat([critic.rows(a, b) for a, b in zip(z_out.split(256), s_out.split(256))])
    rows = rows.double().numpy()
    low, high = bootstrap_ci(rows, seed=seed)
    return {
        "nats": float(rows.mean()),
        "low": low,
        "high": high,
        "nwj": critic_bound(critic, z_out, s_out),
    }


def critic_reading(critic: nn.Module, z: Tensor, s: Tensor, batch: int = 256) -> float:
    """The critic's estimate mean_i rows(z_i, s_i) on the given (held-out) rows, in nats."""
    was = critic.training
    critic.eval()
    with torch.no_grad():
        vals = [critic.rows(zc, sc) for zc, sc in zip(z.split(batch), s.split(batch))]
    critic.train(was)
    return float(torch.cat(vals).mean())


def critic_bound(critic: nn.Module, z: Tensor, s: Tensor, batch: int = 256) -> float:
    """The NWJ lower bound of I(z; s) from the critic's scores on held-out rows, in nats.

        I >= E_joint[T] - E_marg[exp(T - 1)]          (Nguyen, Wainwright & Jordan 2010)

    with the off-diagonal pairs of each batch as the product of marginals (all positions of a
    window critic averaged). A true lower bound for any T: where it reaches the plain reading
    mean_i T_ii, the critic is calibrated (T ~ log-ratio), and a reading far above it is an
    over-confident critic, not information.
    """
    was = critic.training
    critic.eval()
    vals = []
    with torch.no_grad():
        for zc, sc in zip(z.split(batch), s.split(batch)):
            if len(zc) < 2:
                continue
            t = critic.scores(zc, sc)  # (B, B) or (B, B, P)
            if t.dim() == 2:
                t = t.unsqueeze(-1)
            b = t.shape[0]
            diag = t.diagonal(dim1=0, dim2=1)  # (P, B)
            e = torch.exp((t - 1.0).clamp(max=30.0))
            off = (e.sum() - e.diagonal(dim1=0, dim2=1).sum()) / (b * (b - 1) * t.shape[2])
            vals.append(float(diag.mean() - off))
    critic.train(was)
    return float(np.mean(vals))


def fit_critic(
    critic: nn.Module,
    sample: Callable[[int, torch.Generator], tuple[Tensor, Tensor]],
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
    select: tuple[Tensor, Tensor] | None = None,
    select_every: int = 50,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """Train a training critic as `cmi` trains it: Adam at its own learning rate, `steps`
    minibatches of `batch_size` joint rows from ``sample(batch_size, generator)``, its own
    all-pairs loss. Returns the balanced accuracy of each step.

    `sample` draws rows as the run would see them: fresh posterior samples of a frozen encoder
    on training items (`encoder_sampler`), fresh planted rows (`planted_sampler`), or rows of a
    fixed set (`rows_sampler`).

    With `select` (z, s) rows of items the critic never trains on, every `select_every` steps
    (at least 20 times in all) its loss there is measured and the critic ends with the weights
    of the lowest (early stopping): a critic fitted on a few hundred items otherwise learns the items, not the
    dependence, and reads far below 0 on new ones. Without it the critic ends as trained, as
    a run's training critic does.
    """
    gen = torch.Generator().manual_seed(seed)
    # a fresh Adam at `lr`, or the critic's own `optimizer` with its state (a run's burst)
    opt = optimizer if optimizer is not None else torch.optim.Adam(critic.parameters(), lr=lr)
    accs = []
    best, best_state = math.inf, None
    # at least 20 times over the budget: a small set can be learnt within 50 steps
    every = max(1, min(select_every, steps // 20))
    critic.train()
    for step in range(1, steps + 1):
        z, s = sample(batch_size, gen)
        loss, acc = critic.loss(z, s, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accs.append(float(acc))
        if select is not None and (step % every == 0 or step == steps):
            held = select_loss(critic, *select, batch_size)
            if held < best:
                best = held
                best_state = {k: v.detach().clone() for k, v in critic.state_dict().items()}
    if best_state is not None:
        critic.load_state_dict(best_state)
    return accs


def select_loss(critic: nn.Module, z: Tensor, s: Tensor, batch_size: int) -> float:
    """The critic's all-pairs loss on held-out rows, in consecutive batches of `batch_size`
    (the size it trains at: the loss of all pairs depends on it), averaged."""
    was = critic.training
    critic.eval()
    losses = []
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for zc, sc in zip(z.split(batch_size), s.split(batch_size)):
            if len(zc) >= 2:
                losses.append(float(critic.loss(zc, sc, gen)[0]))
    critic.train(was)
    return float(np.mean(losses)) if losses else math.inf


def rows_sampler(z: Tensor, s: Tensor) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
    """Minibatches of a fixed set of rows (drawn with replacement)."""

    def sample(b: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(z), (min(b, len(z)),), generator=gen)
        return z[idx], s[idx]

    return sample


def planted_sampler(source: Planted) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
    """Fresh rows of a `Planted` source at every step (seeded from the step's generator)."""

    def sample(b: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        z, s = source.sample(b, rng)
        return torch.from_numpy(z), torch.from_numpy(s)

    return sample


def encoder_sampler(
    model: nn.Module, x: Tensor
) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
    """Fresh (z, s) of a frozen model on minibatches of its training items `x`: what the
    critic sees during training (a new posterior sample of each item at every visit)."""

    def sample(b: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(x), (min(b, len(x)),), generator=gen)
        with torch.no_grad():
            out = model(x[idx])
        return out.z.float(), out.s.float()

    return sample


def encode(model: nn.Module, x: Tensor, chunk: int = 256) -> tuple[Tensor, Tensor]:
    """One posterior sample (z, s) of each item of `x` from a frozen model, in chunks."""
    with torch.no_grad():
        outs = [model(c) for c in x.split(chunk)]
    return torch.cat([o.z for o in outs]).float(), torch.cat([o.s for o in outs]).float()


def fit_and_select(
    model: nn.Module, x: Tensor, select_fraction: float = 0.2, samples: int = 0
) -> tuple[Callable[[int, torch.Generator], tuple[Tensor, Tensor]], tuple[Tensor, Tensor]]:
    """Split the items `x` for a fresh critic: a sampler on the first items, and one encoding of
    the last `select_fraction` of them, which stops it early (`fit_critic`).

    The sampler draws fresh posterior samples at every step (`encoder_sampler`), or with
    ``samples`` > 0 rows of a pool of that many posterior samples of each item, encoded once
    (`rows_sampler`): an image model's forward pass costs more than the critic's step, so a
    2400-step critic on fresh samples took 28 minutes where the pool takes a few."""
    cut = len(x) - max(int(len(x) * select_fraction), 2)
    if samples > 0:
        pool = [encode(model, x[:cut]) for _ in range(samples)]
        sample = rows_sampler(torch.cat([z for z, _ in pool]), torch.cat([s for _, s in pool]))
    else:
        sample = encoder_sampler(model, x[:cut])
    return sample, encode(model, x[cut:])


def agreement(a: float, b: float, floor: float = 0.05) -> float:
    """max(a, b) / min(a, b) of two readings in nats, each first raised to `floor`: below a
    twentieth of a nat two readings agree whatever their ratio."""
    lo, hi = sorted((max(a, floor), max(b, floor)))
    return float(hi / lo)


__all__ = [
    "Planted",
    "encode",
    "encoder_sampler",
    "fit_and_select",
    "planted_sampler",
    "rows_sampler",
    "agreement",
    "critic_bound",
    "critic_reading",
    "evaluation_budget",
    "POOL_SAMPLES",
    "fit_critic",
    "select_loss",
    "other_critic",
    "target",
    "other_family",
    "other_reading",
    "fit_other",
    "read_other",
    "project",
    "planted",
    "planted_mi",
    "grouped_density_ratio",
    "window_patches",
    "window_sizes",
]

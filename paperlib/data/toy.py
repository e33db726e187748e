"""Toy linear-Gaussian sequences with known ground truth (for tests and the walkthrough).

Each sequence has a global factor z_true ~ N(0, I_G) shared by all T steps and local factors
s_true_t ~ N(0, I_L) drawn independently per step:

    x_t = A z_true + B s_true_t + sigma * eps_t,   eps_t ~ N(0, I_D),   t = 1..T

so every x_t carries the global factor, and a local path q(s_t | x_t) can pick it up (the regime
of DESIGN section 1). The mixing matrices, noise level and the closed-form I(x; z_true) are in
``info["true"]``. Labels: ``y`` is the quantile bin (4 bins) of the first global factor;
``y_local`` the per-step quantile bin of the first local factor.
"""

from __future__ import annotations

import numpy as np
import torch

from paperlib.data import DATASETS, DataBundle, TensorDictDataset

#: sizes of the toy corpus (kept small: a test trains on it in seconds)
N_TRAIN, N_VAL, N_TEST = 4096, 1024, 1024
T_STEPS, X_DIM, G_DIM, L_DIM = 8, 6, 2, 2
NOISE_STD = 0.1
N_BINS = 4


def true_mi_x_ztrue(a: np.ndarray, b: np.ndarray, noise_std: float, t: int) -> float:
    """Closed-form I(x_1:T; z_true) in nats for the linear-Gaussian toy model.

    x = (1_T kron A) z + (I_T kron B) s + sigma eps;
    I = 1/2 log det Sigma_x - 1/2 log det Sigma_{x|z},
    Sigma_{x|z} = I_T kron (B B^T + sigma^2 I),  Sigma_x = Sigma_{x|z} + (1_T 1_T^T) kron (A A^T).
    """
    d = a.shape[0]
    cov_given_z = np.kron(np.eye(t), b @ b.T + noise_std**2 * np.eye(d))
    cov_x = cov_given_z + np.kron(np.ones((t, t)), a @ a.T)
    return float(0.5 * (np.linalg.slogdet(cov_x)[1] - np.linalg.slogdet(cov_given_z)[1]))


def _bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.digitize(values, edges).astype(np.int64)


@DATASETS.register("toy")
def load_toy(data_cfg) -> DataBundle:
    """The toy corpus, deterministic from ``data_cfg.seed``; ``max_items`` caps the train split."""
    rng = np.random.default_rng(data_cfg.seed)
    # mixing matrices with unit-norm columns, so both factors carry comparable variance
    a = rng.standard_normal((X_DIM, G_DIM))
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    b = rng.standard_normal((X_DIM, L_DIM))
    b /= np.linalg.norm(b, axis=0, keepdims=True)
    n = N_TRAIN + N_VAL + N_TEST
    z_true = rng.standard_normal((n, G_DIM))  # (N, G)
    s_true = rng.standard_normal((n, T_STEPS, L_DIM))  # (N, T, L)
    eps = rng.standard_normal((n, T_STEPS, X_DIM))  # (N, T, D)
    # x_t = A z_true + B s_true_t + sigma eps_t                                       (N, T, D)
    x = (z_true @ a.T)[:, None, :] + s_true @ b.T + NOISE_STD * eps
    # quantile bins of N(0, 1): equal-mass classes
    edges = np.array([-0.6744897501960817, 0.0, 0.6744897501960817])
    y = _bins(z_true[:, 0], edges)
    y_local = _bins(s_true[..., 0], edges)

    def split(lo: int, hi: int) -> TensorDictDataset:
        return TensorDictDataset(
            x=torch.from_numpy(x[lo:hi]).float(),
            y=torch.from_numpy(y[lo:hi]),
            y_local=torch.from_numpy(y_local[lo:hi]),
            z_true=torch.from_numpy(z_true[lo:hi]).float(),
        )

    n_train = N_TRAIN if data_cfg.max_items == 0 else min(N_TRAIN, data_cfg.max_items)
    info = {
        "kind": "toy",
        "x_shape": (T_STEPS, X_DIM),
        "n_classes": N_BINS,
        "n_local_classes": N_BINS,
        "true": {
            "A": a.tolist(),
            "B": b.tolist(),
            "noise_std": NOISE_STD,
            "z_dim": G_DIM,
            "s_dim": L_DIM,
            "mi_x_ztrue_nats": true_mi_x_ztrue(a, b, NOISE_STD, T_STEPS),
        },
    }
    return DataBundle(
        train=split(0, n_train),
        val=split(N_TRAIN, N_TRAIN + N_VAL),
        test=split(N_TRAIN + N_VAL, n),
        heldout=None,
        info=info,
    )

"""Sequences with known global and local factors, and a dial on what one frame reveals (notebook 05).

Each sequence x = x_1..x_T has a global factor g in {0..K-1}, constant over the sequence, and
local factors l_t in {0..L-1}, a sticky Markov chain (the local path has dynamics to model).
Every frame is a fixed random nonlinear map of the two parts plus noise::

    u_t = sqrt(leak) * e_g + sqrt(1 - leak) * eta_t        (g-part of frame t)
    x_t = W_2 tanh(W_1 [u_t, e_{l_t}] + b_1) + sigma * eps_t

with class codes e_g ~ N(0, I_dg), e_l ~ N(0, I_dl), eps_t ~ N(0, I_D), and eta_t ~ N(0, I_dg)
*centred over the sequence* (sum_t eta_t = 0, rescaled to unit variance per frame). So

- the sequence always determines g: mean_t u_t = sqrt(leak) * e_g exactly, whatever ``leak``;
- one frame alone shows g through noise of variance (1 - leak) / leak relative to the signal:
  ``leak`` (the first dial of notebook 05) sets how much of g a local path q(s_t | x_t) can
  recover, from nearly nothing (leak -> 0) to all of it (leak = 1).

The map (codes, W_1, b_1, W_2) and every random draw depend only on ``data_cfg.seed``; ``leak``
only rescales eta and e_g, so corpora at different leaks share g, l, eta and eps item by item (a
paired comparison across the dial). Frames are standardised per feature with training-split
statistics. Generation takes well under a second at the quick sizes.

Items: ``x`` (T, D) float, ``y`` = g, ``y_local`` = l_1..l_T (T,), ``u`` (T, dg) the true g-part
of each frame (the "true factors" a probe can be run on).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from paperlib.data import DATASETS, DataBundle, TensorDictDataset

#: sizes of the codes of g and l, the hidden width of the map, the observation noise and the
#: probability that l_t keeps its value (sticky local dynamics)
G_CODE_DIM, L_CODE_DIM, MAP_HIDDEN = 4, 4, 32
NOISE_STD = 0.1
STAY_PROB = 0.8


def centred_noise(rng: np.random.Generator, n: int, t: int, d: int) -> np.ndarray:
    """(n, t, d) Gaussian noise with sum over t exactly 0 and unit variance per entry.

    eta_t = sqrt(T / (T - 1)) * (w_t - mean_s w_s),  w_t ~ N(0, I): the centring removes one of
    T degrees of freedom, the factor restores Var(eta_t) = 1.
    """
    if t < 2:
        raise ValueError(f"centred_noise: needs at least 2 frames, got n_frames={t}")
    w = rng.standard_normal((n, t, d))
    return (w - w.mean(axis=1, keepdims=True)) * math.sqrt(t / (t - 1))


def markov_chain(
    rng: np.random.Generator, n: int, t: int, n_states: int, stay: float = STAY_PROB
) -> np.ndarray:
    """(n, t) int64 sticky chains: l_1 uniform; l_t = l_{t-1} with prob `stay`, else another
    state uniformly."""
    states = np.empty((n, t), dtype=np.int64)
    states[:, 0] = rng.integers(n_states, size=n)
    move = rng.random((n, t)) >= stay  # (n, t): leave the current state at t
    jump = rng.integers(1, n_states, size=(n, t))  # offset to a *different* state
    for k in range(1, t):
        states[:, k] = np.where(
            move[:, k], (states[:, k - 1] + jump[:, k]) % n_states, states[:, k - 1]
        )
    return states


def generate(
    n: int,
    n_frames: int,
    x_dim: int,
    n_global: int,
    n_local: int,
    leak: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Draw `n` sequences; returns numpy arrays ``x`` (n, T, D) (not standardised), ``g`` (n,),
    ``l`` (n, T), ``u`` (n, T, dg).

    Parameters
    ----------
    n, n_frames, x_dim : number of sequences, T and D (features per frame).
    n_global, n_local : K classes of g and L classes of l_t.
    leak : in (0, 1]; the share of g's signal in each frame (see the module docstring).
    seed : fixes the map and every draw; `leak` changes neither.
    """
    if not 0.0 < leak <= 1.0:
        raise ValueError(f"factors: leak must lie in (0, 1], got {leak!r}")
    for name, v in (("n", n), ("x_dim", x_dim), ("n_global", n_global), ("n_local", n_local)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"factors: {name} must be a positive int, got {v!r}")
    rng = np.random.default_rng(seed)
    # the fixed map: class codes and a random two-layer network (draw order fixed: the map
    # does not depend on n or leak)
    e_g = rng.standard_normal((n_global, G_CODE_DIM))  # (K, dg)
    e_l = rng.standard_normal((n_local, L_CODE_DIM))  # (L, dl)
    d_in = G_CODE_DIM + L_CODE_DIM
    w1 = rng.standard_normal((d_in, MAP_HIDDEN)) / math.sqrt(d_in)
    b1 = 0.1 * rng.standard_normal(MAP_HIDDEN)
    w2 = rng.standard_normal((MAP_HIDDEN, x_dim)) / math.sqrt(MAP_HIDDEN)
    # the factors and the noise
    g = rng.integers(n_global, size=n)  # (n,)
    l_t = markov_chain(rng, n, n_frames, n_local)  # (n, T)
    eta = centred_noise(rng, n, n_frames, G_CODE_DIM)  # (n, T, dg), sum_t eta_t = 0
    eps = rng.standard_normal((n, n_frames, x_dim))  # (n, T, D)
    # u_t = sqrt(leak) e_g + sqrt(1 - leak) eta_t                                  (n, T, dg)
    u = math.sqrt(leak) * e_g[g][:, None, :] + math.sqrt(1.0 - leak) * eta
    h = np.concatenate([u, e_l[l_t]], axis=-1)  # (n, T, dg + dl)
    # x_t = W_2 tanh(W_1 h_t + b_1) + sigma eps_t                                     (n, T, D)
    x = np.tanh(h @ w1 + b1) @ w2 + NOISE_STD * eps
    return {"x": x, "g": g, "l": l_t, "u": u}


@DATASETS.register("factors")
def load_factors(data_cfg) -> DataBundle:
    """The known-factor corpus of `data_cfg`, split into train / val / test.

    Uses ``n_sequences``, ``n_frames`` (T), ``n_mels`` (D, features per frame: the DSAE's input
    width), ``n_global`` (K), ``n_local`` (L), ``leak``, ``seed``, ``val_fraction``,
    ``test_fraction`` and ``max_items`` (a cap on the training split).
    """
    n = data_cfg.n_sequences
    n_val = int(round(data_cfg.val_fraction * n))
    n_test = int(round(data_cfg.test_fraction * n))
    n_train_all = n - n_val - n_test
    if min(n_train_all, n_val, n_test) < 2:
        raise ValueError(
            f"factors: n_sequences={n} with val_fraction={data_cfg.val_fraction} and "
            f"test_fraction={data_cfg.test_fraction} leaves a split with fewer than 2 sequences; "
            "raise data.n_sequences"
        )
    d = generate(
        n,
        data_cfg.n_frames,
        data_cfg.n_mels,
        data_cfg.n_global,
        data_cfg.n_local,
        data_cfg.leak,
        data_cfg.seed,
    )
    x = d["x"]
    flat = x[:n_train_all].reshape(-1, x.shape[-1])
    x = (x - flat.mean(0)) / flat.std(0)  # standardise with training statistics

    def split(lo: int, hi: int) -> TensorDictDataset:
        return TensorDictDataset(
            x=torch.from_numpy(x[lo:hi]).float(),
            y=torch.from_numpy(d["g"][lo:hi]),
            y_local=torch.from_numpy(d["l"][lo:hi]),
            u=torch.from_numpy(d["u"][lo:hi]).float(),
        )

    n_train = n_train_all if data_cfg.max_items == 0 else min(n_train_all, data_cfg.max_items)
    leak = data_cfg.leak
    info = {
        "kind": "factors",
        "x_shape": (data_cfg.n_frames, data_cfg.n_mels),
        "n_classes": data_cfg.n_global,
        "n_local_classes": data_cfg.n_local,
        "true": {
            "leak": leak,
            # per-frame signal-to-noise ratio of g in u_t, and that of the sequence mean
            # (infinite: mean_t u_t = sqrt(leak) e_g exactly)
            "frame_snr_g": leak / (1.0 - leak) if leak < 1.0 else math.inf,
            "noise_std": NOISE_STD,
            "stay_prob": STAY_PROB,
        },
    }
    return DataBundle(
        train=split(0, n_train),
        val=split(n_train_all, n_train_all + n_val),
        test=split(n_train_all + n_val, n),
        heldout=None,
        info=info,
    )

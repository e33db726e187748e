"""The known-factor sequences of notebook 05: factors recoverable as designed, the leak dial,
determinism, and the config's errors. Sizes are small (a few hundred sequences) so the whole file
runs in seconds on one core."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paperlib.config import load
from paperlib.data import load_data
from paperlib.data.factors import STAY_PROB, centred_noise, generate, markov_chain
from paperlib.evaluation.evaluate import linear_probe

# 8 classes of g, 4 of l_t, T = 16: the quick preset's sizes; 1200 sequences give ~150 per class
K, L, T, D, N = 8, 4, 16, 16, 1200


def _probe(feats: np.ndarray, y: np.ndarray) -> float:
    cut = int(0.75 * len(y))
    return linear_probe(feats[:cut], y[:cut], feats[cut:], y[cut:])


def test_centred_noise_sums_to_zero_with_unit_variance():
    eta = centred_noise(np.random.default_rng(0), 4000, 8, 3)
    np.testing.assert_allclose(eta.sum(axis=1), 0.0, atol=1e-9)
    assert abs(eta.var() - 1.0) < 0.03
    with pytest.raises(ValueError, match="at least 2 frames"):
        centred_noise(np.random.default_rng(0), 4, 1, 3)


def test_markov_chain_is_sticky_and_uses_every_state():
    chain = markov_chain(np.random.default_rng(0), 2000, 16, L)
    stays = np.mean(chain[:, 1:] == chain[:, :-1])
    assert abs(stays - STAY_PROB) < 0.02
    assert set(np.unique(chain)) == set(range(L))


def test_sequence_mean_of_the_g_part_is_exactly_the_class_code():
    # sum_t eta_t = 0, so mean_t u_t = sqrt(leak) e_g for every item, at any leak
    for leak in (0.05, 0.5):
        d = generate(300, T, D, K, L, leak, seed=3)
        pooled = d["u"].mean(axis=1) / math.sqrt(leak)  # (n, dg)
        for g in range(K):
            rows = pooled[d["g"] == g]
            np.testing.assert_allclose(rows, np.broadcast_to(rows[0], rows.shape), atol=1e-9)


def test_leak_changes_only_what_one_frame_shows():
    lo, hi = generate(N, T, D, K, L, 0.05, seed=0), generate(N, T, D, K, L, 0.9, seed=0)
    # the same factors item by item: a paired comparison across the dial
    np.testing.assert_array_equal(lo["g"], hi["g"])
    np.testing.assert_array_equal(lo["l"], hi["l"])
    frame = {k: _probe(d["x"][:, 5], d["g"]) for k, d in (("lo", lo), ("hi", hi))}
    assert frame["lo"] < 0.35  # chance is 1/8; one frame shows little of g at leak 0.05
    assert frame["hi"] > 0.8  # and nearly all of it at leak 0.9
    for d in (lo, hi):
        # the ceiling: g is a function of the true factors of the sequence at every leak
        assert _probe(d["u"].mean(axis=1), d["g"]) > 0.99
        # the local factor is readable from its own frame
        assert _probe(d["x"][:, 5], d["l"][:, 5]) > 0.9


def test_generation_is_deterministic_and_seeded():
    a, b = generate(50, T, D, K, L, 0.3, seed=7), generate(50, T, D, K, L, 0.3, seed=7)
    c = generate(50, T, D, K, L, 0.3, seed=8)
    for key in ("x", "g", "l", "u"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["x"], c["x"])


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="leak must lie in"):
        generate(10, T, D, K, L, 0.0, seed=0)
    with pytest.raises(ValueError, match="n_global"):
        generate(10, T, D, 0, L, 0.5, seed=0)


def test_registered_dataset_splits_shapes_and_standardisation():
    cfg = load("smoke", "mechanism").data
    bundle = load_data(cfg)
    n_val = round(cfg.val_fraction * cfg.n_sequences)
    assert len(bundle.val) == n_val and len(bundle.test) == n_val
    assert len(bundle.train) + 2 * n_val == cfg.n_sequences
    item = bundle.train[0]
    assert item["x"].shape == (cfg.n_frames, cfg.n_mels)
    assert item["y_local"].shape == (cfg.n_frames,)
    assert bundle.info["x_shape"] == (cfg.n_frames, cfg.n_mels)
    assert bundle.info["n_classes"] == cfg.n_global
    x = bundle.train.tensors["x"].reshape(-1, cfg.n_mels)
    np.testing.assert_allclose(x.mean(0).numpy(), 0.0, atol=1e-4)  # training statistics
    np.testing.assert_allclose(x.std(0).numpy(), 1.0, atol=1e-2)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"data\.leak"):
        load("smoke", "mechanism", data__leak=0.0)
    with pytest.raises(ValueError, match=r"data\.n_global"):
        load("smoke", "mechanism", data__n_global=1)
    tiny = load("smoke", "mechanism", data__n_sequences=8, data__val_fraction=0.1).data
    with pytest.raises(ValueError, match="n_sequences"):
        load_data(tiny)

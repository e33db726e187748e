"""Evaluation (DESIGN section 4): probes, EER, mutual information, rate-distortion, NLL, generation.

Voice conversion (swapping z between speakers, with its speaker and phone classifiers) is in
paperlib.evaluation.conversion.

Model-agnostic: everything here only calls ``model(x) -> VAEOutput`` and ``model.encode(x)``
(plus ``model.iw_log_px``, ``model.swap_z`` / ``model.decode`` or ``model.sample`` where a
metric needs them) and reads batch dicts ``{"x", "y", ("y_local")}``. Every function returns
plain floats or numpy arrays, so results go straight into metrics.json.

Typical use::

    enc_tr = encode_dataset(model, loaders["train"], max_items=2000)
    enc_te = encode_dataset(model, loaders["test"], max_items=2000)
    probe_metrics(enc_tr, enc_te)            # probe_acc, probe_acc_sample, probe_acc_knn, kl_z_nats
    disentanglement_matrix(enc_tr, enc_te)   # {z, s} x {speaker, phone}
    eer(encode_dataset(model, loaders["heldout"])["z_mean"], ...)
    posthoc_mi(enc_te, steps=600, seed=0)    # mi_xz_nats, mi_zs_nats
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

# Logistic-regression probe: L2 strength C = 1 on standardised features (scikit-learn's default,
# a mild prior that keeps probes comparable across feature sizes) and enough lbfgs iterations to
# converge on a few thousand items.
PROBE_C = 1.0
PROBE_MAX_ITER = 500


# ----------------------------------------------------------------------------------------------
# helpers


def model_device(model: torch.nn.Module, device: torch.device | str | None) -> torch.device:
    """The device to run on: `device` if given, else where the model's parameters live."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _iter_items(loader: Iterable, max_items: int | None) -> Iterable[dict[str, Tensor]]:
    """Yield the loader's batches, the last one cut so that at most `max_items` come out."""
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be a positive int or None, got {max_items!r}")
    seen = 0
    for batch in loader:
        if not isinstance(batch, dict) or "x" not in batch:
            raise ValueError("loader must yield dicts with at least an 'x' entry (paperlib.data)")
        n = len(batch["x"])
        if max_items is not None and seen + n > max_items:
            n = max_items - seen
            batch = {k: v[:n] for k, v in batch.items()}
        if n <= 0:
            break
        seen += n
        yield batch
        if max_items is not None and seen >= max_items:
            break


def to_numpy(t: Tensor) -> np.ndarray:
    """`t` as a numpy array (detached, on the CPU)."""
    return t.detach().cpu().numpy()


def fit_logistic(features: np.ndarray, y: np.ndarray, seed: int) -> Pipeline:
    """StandardScaler + LogisticRegression(C=PROBE_C), fitted on (features, y)."""
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER, random_state=seed),
    )
    return clf.fit(features, y)


def _chance_accuracy(train_y: np.ndarray, test_y: np.ndarray) -> float:
    """Accuracy on the test labels of always predicting the most frequent training label."""
    values, counts = np.unique(train_y, return_counts=True)
    return float(np.mean(test_y == values[np.argmax(counts)]))


# ----------------------------------------------------------------------------------------------
# encoding a split


@torch.no_grad()
def encode_dataset(
    model: torch.nn.Module,
    loader: Iterable,
    max_items: int | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    sequences: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``model(x)`` over a split and collect per-item posterior statistics.

    Parameters
    ----------
    model : a SequentialVAE (any model returning `VAEOutput`).
    loader : iterable of batch dicts ``{"x", "y", ("y_local" (B, T))}``.
    max_items : cap on items encoded (None: the whole split).
    device : where to run; default the model's device.
    generator : CPU torch.Generator choosing the random frame per item; default seeded with 0.
        The model's own sampling (z_sample, s) uses torch's global RNG: seed it for repeatability.
    sequences : also keep the whole sampled sequence ``s_seq`` (N, T, Ds).

    Returns
    -------
    dict of numpy arrays, N items:
        ``z_mean``, ``z_logvar``, ``z_sample`` (N, Dz); ``s_pooled`` (N, Ds) = mean over T of the
        sampled s; ``s_frames`` (N, Ds) = s at one random position per item, ``frame_index``
        (N,) that position; with `sequences`, ``s_seq`` (N, T, Ds); ``y`` (N,); ``y_local_at_frame`` (N,) when batches carry
        ``y_local``; ``kl_z``, ``kl_s``, ``log_px``, ``elbo`` (N,) in nats.
    """
    was_training = model.training
    model.eval()
    dev = model_device(model, device)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    parts: dict[str, list[np.ndarray]] = {}
    try:
        for batch in _iter_items(loader, max_items):
            x = batch["x"].to(dev)
            out = model(x)
            B, T = out.s.shape[0], out.s.shape[1]
            t_idx = torch.randint(T, (B,), generator=generator)  # (B,) on CPU
            rows = torch.arange(B)
            got = {
                "z_mean": out.z_mean,
                "z_logvar": out.z_logvar,
                "z_sample": out.z,
                "s_pooled": out.s.mean(dim=1),  # (B, Ds)
                "s_frames": out.s[rows.to(out.s.device), t_idx.to(out.s.device)],  # (B, Ds)
                "frame_index": t_idx,
                "kl_z": out.kl_z,
                "kl_s": out.kl_s,
                "log_px": out.log_px,
                "elbo": out.elbo,
            }
            if sequences:
                got["s_seq"] = out.s  # (B, T, Ds)
            if "y" in batch:
                got["y"] = batch["y"]
            if "y_local" in batch:
                got["y_local_at_frame"] = batch["y_local"][rows, t_idx]
            for key, value in got.items():
                parts.setdefault(key, []).append(to_numpy(value))
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("encode_dataset: the loader yielded no items")
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# probes and verification


def linear_probe(
    train_feats: np.ndarray,
    train_y: np.ndarray,
    test_feats: np.ndarray,
    test_y: np.ndarray,
    seed: int = 0,
) -> float:
    """Held-out accuracy of a linear probe (standardised features + logistic regression).

    Alain & Bengio, "Understanding intermediate layers using linear classifier probes", 2016.
    ``StandardScaler`` then ``LogisticRegression(C=PROBE_C)`` (multinomial, lbfgs), fitted on
    the training features and scored on the test features.
    """
    train_feats, test_feats = np.asarray(train_feats), np.asarray(test_feats)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if train_feats.ndim != 2 or test_feats.ndim != 2:
        raise ValueError(
            f"linear_probe: features must be 2-D (N, D), got train {train_feats.shape} and "
            f"test {test_feats.shape}"
        )
    if len(train_feats) != len(train_y) or len(test_feats) != len(test_y):
        raise ValueError("linear_probe: features and labels must have the same number of rows")
    if len(np.unique(train_y)) < 2:
        raise ValueError("linear_probe: train_y needs at least two classes")
    return float(fit_logistic(train_feats, train_y, seed).score(test_feats, test_y))


#: the neighbour counts the k-NN probe chooses from, by cross-validation on the training split
KNN_K = (1, 3, 5, 9, 15, 25)


def knn_probe(
    train_feats: np.ndarray,
    train_y: np.ndarray,
    test_feats: np.ndarray,
    test_y: np.ndarray,
    seed: int = 0,
) -> tuple[float, int]:
    """(held-out accuracy, k) of a k-nearest-neighbour probe: the non-linear read-out beside
    `linear_probe`, which a 2-D z holding 8 classes on a curve would defeat.

    ``StandardScaler`` then ``KNeighborsClassifier(k)``, k from `KNN_K` chosen by 5-fold
    stratified cross-validation on the *training* features only (the test split never
    chooses anything), refitted on all of them and scored on the test features.
    """
    train_feats, test_feats = np.asarray(train_feats), np.asarray(test_feats)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if train_feats.ndim != 2 or test_feats.ndim != 2:
        raise ValueError(
            f"knn_probe: features must be 2-D (N, D), got train {train_feats.shape} and "
            f"test {test_feats.shape}"
        )
    _, counts = np.unique(train_y, return_counts=True)
    if len(counts) < 2:
        raise ValueError("knn_probe: train_y needs at least two classes")
    folds = int(min(5, counts.min()))
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier())
    k = 1  # a class with one training item: no stratified folds, the smallest k
    if folds >= 2:
        # k at most the rows a cross-validation fit sees
        ks = [k for k in KNN_K if k <= len(train_y) * (folds - 1) // folds] or [1]
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        search = GridSearchCV(pipe, {"kneighborsclassifier__n_neighbors": ks}, cv=cv)
        search.fit(train_feats, train_y)
        k = int(search.best_params_["kneighborsclassifier__n_neighbors"])
    pipe.set_params(kneighborsclassifier__n_neighbors=k).fit(train_feats, train_y)
    return float(pipe.score(test_feats, test_y)), k


def probe_metrics(
    enc_train: dict[str, np.ndarray], enc_test: dict[str, np.ndarray], seed: int = 0
) -> dict[str, float]:
    """The headline z-probe metrics of DESIGN section 6.

    Returns ``probe_acc`` (posterior means of z -> y), ``probe_acc_sample`` (one posterior sample
    of z -> y: what z actually transmits under collapse), ``probe_acc_knn`` (posterior means,
    the k-NN probe: what a non-linear read-out sees), ``probe_chance`` and ``kl_z_nats``
    (mean KL(q(z|x)||p(z)) on the test set, always reported beside a probe).
    """
    return {
        "probe_acc": linear_probe(
            enc_train["z_mean"], enc_train["y"], enc_test["z_mean"], enc_test["y"], seed
        ),
        "probe_acc_sample": linear_probe(
            enc_train["z_sample"], enc_train["y"], enc_test["z_sample"], enc_test["y"], seed
        ),
        "probe_acc_knn": knn_probe(
            enc_train["z_mean"], enc_train["y"], enc_test["z_mean"], enc_test["y"], seed
        )[0],
        "probe_chance": _chance_accuracy(enc_train["y"], enc_test["y"]),
        "kl_z_nats": float(np.mean(enc_test["kl_z"])),
    }


def eer(
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_pairs: int | None = 2_000_000,
    seed: int = 0,
    center: bool = True,
) -> float:
    """Speaker-verification equal error rate from all-pairs cosine similarity.

    Every unordered pair (i < j) is a trial, a target trial when labels match. Scores are cosine
    similarities; ``sklearn.metrics.roc_curve`` gives FPR and FNR = 1 - TPR over thresholds, and
    the EER is where the two curves cross, linearly interpolated between neighbouring points.
    0 = perfect verification, 0.5 = chance.

    Centring (the default) subtracts the mean embedding of the evaluated set first. Cosine
    similarity measures angles from the origin: when every embedding shares a common offset
    (a posterior mean that kept its initial bias, the average log-mel level), all vectors point
    roughly the same way, every pair scores near 1, and the angle between two speakers depends
    on where they sit relative to the offset more than on how far apart they are (in the test,
    an offset comparable to the speakers' spread doubles the EER). Scoring the deviations from
    the mean, as i-vector / x-vector back-ends do before cosine or PLDA scoring, removes the
    offset without looking at any label, and makes the EER invariant to it.

    Parameters
    ----------
    embeddings : (N, D) one vector per utterance (e.g. posterior means of z).
    labels : (N,) speaker per utterance.
    max_pairs : above this many pairs a uniform random subset of pairs is scored (None: all).
    seed : seed of that subset.
    center : subtract the mean embedding of the set before the cosine scores.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(
            f"eer: embeddings must be (N, D) with N = len(labels), got {emb.shape} and "
            f"{labels.shape}"
        )
    if center:
        # e_i <- e_i - 1/N sum_j e_j
        emb = emb - emb.mean(axis=0, keepdims=True)
    # cos(e_i, e_j) = <e_i, e_j> / (|e_i| |e_j|)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(emb), k=1)
    if max_pairs is not None and len(i) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(i), size=max_pairs, replace=False)
        i, j = i[keep], j[keep]
    scores = np.einsum("nd,nd->n", unit[i], unit[j])
    target = labels[i] == labels[j]
    if target.all() or not target.any():
        raise ValueError("eer: needs both same-speaker and different-speaker pairs")
    fpr, tpr, _ = roc_curve(target, scores)
    fnr = 1.0 - tpr
    # fnr - fpr falls from 1 to -1 along the thresholds; find the first k where it is <= 0
    diff = fnr - fpr
    k = int(np.argmax(diff <= 0))
    if diff[k] == 0 or k == 0:
        return float(fpr[k])
    # interpolate the crossing between points k-1 and k: diff(t) = 0
    t = diff[k - 1] / (diff[k - 1] - diff[k])
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def disentanglement_matrix(
    enc_train: dict[str, np.ndarray], enc_test: dict[str, np.ndarray], seed: int = 0
) -> dict[str, float]:
    """Probe accuracy of {z, s} for {speaker, phone at a frame} (synthetic speech).

    - speaker (global label y) from z (posterior mean) and from s pooled over time;
    - phone at a random frame (``y_local_at_frame``) from z and from s at that frame.

    Ideal disentanglement: z knows the speaker and not the phone; s the reverse. Returns
    ``speaker_probe_acc_z``, ``speaker_probe_acc_s``, ``speaker_chance`` and, when the encoded
    sets carry phone labels, ``phone_probe_acc_z``, ``phone_probe_acc_s``, ``phone_chance``
    (chance = accuracy of always predicting the most frequent training label).
    """
    out = {
        "speaker_probe_acc_z": linear_probe(
            enc_train["z_mean"], enc_train["y"], enc_test["z_mean"], enc_test["y"], seed
        ),
        "speaker_probe_acc_s": linear_probe(
            enc_train["s_pooled"], enc_train["y"], enc_test["s_pooled"], enc_test["y"], seed
        ),
        "speaker_chance": _chance_accuracy(enc_train["y"], enc_test["y"]),
    }
    if "y_local_at_frame" in enc_train and "y_local_at_frame" in enc_test:
        ytr, yte = enc_train["y_local_at_frame"], enc_test["y_local_at_frame"]
        out["phone_probe_acc_z"] = linear_probe(
            enc_train["z_mean"], ytr, enc_test["z_mean"], yte, seed
        )
        out["phone_probe_acc_s"] = linear_probe(
            enc_train["s_frames"], ytr, enc_test["s_frames"], yte, seed
        )
        out["phone_chance"] = _chance_accuracy(ytr, yte)
    return out


# ----------------------------------------------------------------------------------------------
# information


def aggregate_mi_xz(
    z: np.ndarray | Tensor,
    z_mean: np.ndarray | Tensor,
    z_logvar: np.ndarray | Tensor,
    chunk: int = 256,
) -> float:
    """Minibatch aggregate-posterior estimate of I_q(x; z) over an encoded set, in nats.

    With the aggregate posterior q(z) approximated by the mixture of the N posteriors,
    (Hoffman & Johnson 2016, "ELBO surgery"; Chen et al. 2018, beta-TCVAE, section 3)::

        I_q(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)]
                  ~ 1/N sum_i [log q(z_i | x_i) - log 1/N sum_j q(z_i | x_j)],  z_i ~ q(z|x_i)

    exact in N (no subsampling; rows are processed in chunks), computed in float64. It lies in
    [0, log N]: ~log N when the posteriors do not overlap, 0 when they are all equal.

    Parameters
    ----------
    z : (N, D) one sample of q(z | x_i) per item; z_mean, z_logvar : (N, D) its parameters.
    chunk : rows of the (N, N) log-density matrix computed at a time.
    """
    z_t = torch.as_tensor(np.asarray(z) if not isinstance(z, Tensor) else z).double()
    mu = torch.as_tensor(np.asarray(z_mean) if not isinstance(z_mean, Tensor) else z_mean)
    lv = torch.as_tensor(np.asarray(z_logvar) if not isinstance(z_logvar, Tensor) else z_logvar)
    mu, lv = mu.double().to(z_t.device), lv.double().to(z_t.device)
    if z_t.dim() != 2 or z_t.shape != mu.shape or mu.shape != lv.shape:
        raise ValueError(
            "aggregate_mi_xz: z, z_mean and z_logvar must all be (N, D), got "
            f"{tuple(z_t.shape)}, {tuple(mu.shape)}, {tuple(lv.shape)}"
        )
    n = z_t.shape[0]
    inv_var = (-lv).exp()  # (N, D)
    log_norm = -0.5 * (math.log(2 * math.pi) + lv).sum(-1)  # (N,)
    total = 0.0
    for a in range(0, n, chunk):
        zc = z_t[a : a + chunk]  # (c, D)
        # log q(z_i | x_j) = log_norm_j - 1/2 sum_d (z_id - mu_jd)^2 / var_jd     -> (c, N)
        sq = ((zc[:, None, :] - mu[None, :, :]).pow(2) * inv_var[None, :, :]).sum(-1)
        log_q = log_norm[None, :] - 0.5 * sq
        own = log_q[torch.arange(len(zc)), torch.arange(a, a + len(zc))]  # log q(z_i | x_i)
        # log q(z_i) ~ log 1/N sum_j q(z_i | x_j)
        log_agg = log_q.logsumexp(dim=1) - math.log(n)
        total += float((own - log_agg).sum())
    return total / n


def posthoc_mi(
    enc: dict[str, np.ndarray],
    steps: int,
    seed: int = 0,
    s_key: str = "s_pooled",
    method: str = "density_ratio",
    **options: Any,
) -> dict[str, float]:
    """I_q(x; z) and I_q(z; s) of an encoded set, with estimators trained after the fact.

    - ``mi_xz_nats``: `aggregate_mi_xz` on (z_sample, z_mean, z_logvar) (bounded by log N,
      reported as ``mi_xz_bound_nats``).
    - ``mi_zs_nats``: ``paperlib.estimators.mi.estimate_mi(z_sample, enc[s_key], method, steps, seed)``, a
      freshly trained critic (not the one used in training), on z samples paired with the
      item's pooled s (or s at a random frame with ``s_key="s_frames"``). ``options`` go to
      `estimate_mi` (e.g. ``batch_size``, ``hidden``, ``val_fraction``: it evaluates on held-out
      rows, so very small sets need ``val_fraction=0``). Its defaults hold: the rank (copula)
      transform of the inputs (`paperlib.estimators.mi.rank_gauss`) and checkpoint selection on rows held
      out from both fitting and the estimate.

    For the reported I(z; s), with an interval and on every training encoding, use
    `posthoc_mi_zs`.
    """
    from paperlib.estimators.mi import estimate_mi  # lazy: a sibling module

    if s_key not in enc:
        raise ValueError(f"posthoc_mi: s_key {s_key!r} not in the encoded set {sorted(enc)}")
    mi_zs = estimate_mi(
        torch.as_tensor(enc["z_sample"], dtype=torch.float32),
        torch.as_tensor(enc[s_key], dtype=torch.float32),
        method=method,
        steps=steps,
        seed=seed,
        **options,
    )
    return {
        "mi_xz_nats": aggregate_mi_xz(enc["z_sample"], enc["z_mean"], enc["z_logvar"]),
        "mi_xz_bound_nats": math.log(len(enc["z_sample"])),
        "mi_zs_nats": float(mi_zs),
    }


# Post-hoc I(z; s) on all training encodings: 2-fold cross-fitting (every row held out once,
# which the per-row interval needs), each critic at most 200 Adam steps on batches of 512 rows
# with hidden width 64. The rest are `estimate_mi`'s defaults (rank transform, checkpoint
# selection on a held-out part of each training fold); steps, batch size and width differ from
# them only for speed: on ~2000 rows of (16 + 16) or (16 + 32) dims this is a few seconds on
# one CPU thread, and checkpoint selection stops it earlier when it stops improving.
POSTHOC_ZS = dict(folds=2, steps=200, batch_size=512, hidden=64)


def posthoc_mi_zs(
    enc: dict[str, np.ndarray],
    seed: int = 0,
    s_key: str = "s_pooled",
    level: float = 0.95,
    max_rows: int | None = None,
    **options: Any,
) -> dict[str, float]:
    """Sequence-level I_q(z; s) of an encoded set with a bootstrap interval, in nats.

    ``paperlib.estimators.mi.estimate_mi_interval`` on (z_sample, enc[s_key]): a density-ratio critic
    (on a sequence ``s_seq`` (N, T, Ds), the set critic: the training critic's summary
    mean_t phi([s_t, e_t]), so that both estimate I(z; s_1:T)),
    rank-transformed inputs (`paperlib.estimators.mi.rank_gauss`), K-fold cross-fitting so that every row
    is held out once, each fold's critic stopped early on a held-out part of its own training
    folds, and a percentile bootstrap over the held-out per-row log-ratios. The interval is this
    run's (rows given the fitted critics); over seeds, use the t-interval of the per-seed
    estimates (`paperlib.stats.across_seeds`). Meant for the whole training split's encodings
    (thousands of rows), not a small test set.

    Parameters
    ----------
    enc : output of `encode_dataset` (needs ``z_sample`` and `s_key`).
    seed : seeds the folds, the critic and the bootstrap.
    s_key : ``"s_seq"`` (the whole sequence s_1:T, from ``encode_dataset(..., sequences=True)``),
        ``"s_pooled"`` (s averaged over the sequence: a lower bound on I(z; s_1:T), since the
        mean is a function of s_1:T) or ``"s_frames"`` (s_t at one random t).
    level : confidence level of the interval.
    max_rows : use at most this many rows (the first ones; None: all).
    **options : override `POSTHOC_ZS` (folds, steps, batch_size, hidden) or pass other
        `estimate_mi` options.

    Returns
    -------
    ``mi_zs_nats``, ``mi_zs_nats_low``, ``mi_zs_nats_high``, ``mi_zs_rows``.
    """
    from paperlib.estimators.mi import estimate_mi_interval  # lazy: a sibling module

    for key in ("z_sample", s_key):
        if key not in enc:
            raise ValueError(f"posthoc_mi_zs: {key!r} is not in the encoded set {sorted(enc)}")
    z, s = enc["z_sample"], enc[s_key]
    if max_rows is not None:
        z, s = z[:max_rows], s[:max_rows]
    kwargs = {**POSTHOC_ZS, **options}
    if s.ndim == 3:  # (N, T, Ds) -> rows of T * Ds features for the set critic
        kwargs.update(critic="set", y_steps=s.shape[1])
        s = s.reshape(len(s), -1)
    out = estimate_mi_interval(
        torch.as_tensor(z, dtype=torch.float32),
        torch.as_tensor(s, dtype=torch.float32),
        "density_ratio",
        level=level,
        seed=seed,
        **kwargs,
    )
    return {
        "mi_zs_nats": out["nats"],
        "mi_zs_nats_low": out["low"],
        "mi_zs_nats_high": out["high"],
        "mi_zs_rows": out["n_rows"],
    }


@torch.no_grad()
def critic_mi_zs(
    critic: torch.nn.Module,
    enc: dict[str, np.ndarray],
    seed: int = 0,
    level: float = 0.95,
    batch_size: int = 256,
) -> dict[str, float]:
    """The training critic's own I_q(z; s_1:T) on encoded rows it never trained on, in nats.

    The mean over rows of the critic's log-ratio T(z_i, s_i) (``critic.rows``) on ``z_sample``
    and the whole sequence ``s_seq`` of an encoded split (``encode_dataset(...,
    sequences=True)``), with a percentile bootstrap interval over rows. On a held-out split this
    checks the estimate the penalty trained on (``mi_zs_train_final``) against rows the critic
    never saw: a critic that memorised its batches scores lower here.

    Returns ``mi_zs_critic_nats`` with ``_low`` / ``_high``; an empty dict when the critic has
    no per-row log-ratio.
    """
    from paperlib.stats import bootstrap_ci  # lazy: scipy only when needed

    if not hasattr(critic, "rows"):
        return {}
    for key in ("z_sample", "s_seq"):
        if key not in enc:
            raise ValueError(f"critic_mi_zs: {key!r} is not in the encoded set {sorted(enc)}")
    was_training = critic.training
    critic.eval()
    dev = next(critic.parameters()).device
    z = torch.as_tensor(enc["z_sample"], dtype=torch.float32)
    s = torch.as_tensor(enc["s_seq"], dtype=torch.float32)
    try:
        terms = np.concatenate(
            [
                to_numpy(critic.rows(z[a : a + batch_size].to(dev), s[a : a + batch_size].to(dev)))
                for a in range(0, len(z), batch_size)
            ]
        )
    finally:
        critic.train(was_training)
    low, high = bootstrap_ci(terms, level=level, seed=seed)
    return {
        "mi_zs_critic_nats": float(terms.mean()),
        "mi_zs_critic_nats_low": low,
        "mi_zs_critic_nats_high": high,
    }


def describe_regime(metrics: Mapping[str, float], objective: str = "mi") -> str:
    """One plain sentence on whether z and s share information under `objective`.

    The adversarial term of `cmi` can only remove information that z and s share, so this is
    the question to ask of the `mi` model before comparing cmi with it (issue 13, "The regime").
    z and s are said to share information when the lower end of the post-hoc interval of
    I(z; s) (`posthoc_mi_zs`) lies above 0; without an interval, when the estimate does.

    Parameters
    ----------
    metrics : one run's metrics or ``ExperimentResult.means()[objective]``: needs
        ``mi_zs_nats`` and uses, when present, ``mi_zs_nats_low`` / ``mi_zs_nats_high`` (one
        run's bootstrap interval over rows or, with ``mi_zs_nats_seeds`` >= 2 as `means`
        gives it, the t-interval over seeds), ``speaker_probe_acc_s`` with ``speaker_chance``
        (speaker from s), and ``phone_probe_acc_z`` with ``phone_chance`` (phone from z).
    objective : its name, for the sentence.

    Returns
    -------
    e.g. "under mi, z and s share 0.69 [0.44, 0.95] nats (95 % t-interval over 3 seeds); s
    predicts the speaker at 0.11 (chance 0.016): cmi has something to remove".
    """
    if "mi_zs_nats" not in metrics:
        raise ValueError(
            f"describe_regime: metrics need 'mi_zs_nats' (from posthoc_mi_zs), got {sorted(metrics)}"
        )
    mi = float(metrics["mi_zs_nats"])
    low, high = metrics.get("mi_zs_nats_low"), metrics.get("mi_zs_nats_high")
    if low is not None and high is not None:
        n = metrics.get("mi_zs_nats_seeds", 1.0)
        what = (
            f"95 % t-interval over {int(n)} seeds"
            if n >= 2
            else "bootstrap interval over one run's rows"
        )
        amount = f"{mi:.2f} [{float(low):.2f}, {float(high):.2f}] nats ({what})"
        shares = float(low) > 0.0
    else:
        amount = f"{mi:.2f} nats (no interval)"
        shares = mi > 0.0
    clauses = []
    if "speaker_probe_acc_s" in metrics and "speaker_chance" in metrics:
        clauses.append(
            f"s predicts the speaker at {metrics['speaker_probe_acc_s']:.2f} "
            f"(chance {metrics['speaker_chance']:.3f})"
        )
    if "phone_probe_acc_z" in metrics and "phone_chance" in metrics:
        clauses.append(
            f"z predicts the phone at {metrics['phone_probe_acc_z']:.2f} "
            f"(chance {metrics['phone_chance']:.3f})"
        )
    head = f"under {objective}, z and s " + (
        f"share {amount}" if shares else f"share nothing measurable: {amount}"
    )
    verdict = "cmi has something to remove" if shares else "cmi has nothing to remove"
    return "; ".join([head, *clauses]) + f": {verdict}"


def rate_distortion(enc: dict[str, np.ndarray]) -> dict[str, float]:
    """Rate = mean KL(q(z|x)||p(z)) and distortion = -mean log p(x|z,s), both in nats per item."""
    return {
        "rate_nats": float(np.mean(enc["kl_z"])),
        "distortion_nats": float(-np.mean(enc["log_px"])),
    }


@torch.no_grad()
def nll_nats(
    model: torch.nn.Module,
    loader: Iterable,
    n_samples: int,
    max_items: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Mean negative importance-weighted bound, -log p(x) <= -iw_log_px, in nats per item."""
    total, count = _iw_sum(model, loader, n_samples, max_items, device)
    return -total / count


@torch.no_grad()
def nll_bits_per_dim(
    model: torch.nn.Module,
    loader: Iterable,
    n_samples: int,
    max_items: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Negative IW bound in bits per dimension: -iw_log_px / (n_dims * ln 2), averaged."""
    total, count, n_dims = _iw_sum(model, loader, n_samples, max_items, device, with_dims=True)
    # bits/dim = nats / (D ln 2)
    return -total / count / (n_dims * math.log(2))


def _iw_sum(model, loader, n_samples, max_items, device, with_dims=False):
    was_training = model.training
    model.eval()
    dev = model_device(model, device)
    total, count, n_dims = 0.0, 0, None
    try:
        for batch in _iter_items(loader, max_items):
            x = batch["x"].to(dev)
            n_dims = int(np.prod(x.shape[1:]))
            total += float(model.iw_log_px(x, n_samples).sum())
            count += len(x)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the loader yielded no items")
    return (total, count, n_dims) if with_dims else (total, count)


# ----------------------------------------------------------------------------------------------
# classifiers of real data (class consistency below; voice conversion in paperlib.evaluation.conversion)


def feature_rows(x: np.ndarray | Tensor, level: str, context: int = 0) -> np.ndarray:
    """Feature rows: (N, F) utterance means, (N*T, F*(2c+1)) frames, or (N, C*H*W) images."""
    x = to_numpy(x) if isinstance(x, Tensor) else np.asarray(x)
    if level == "utterance":
        return x.mean(axis=1)  # (N, F): the utterance-mean frame
    if level == "frame":
        T = x.shape[1]
        padded = np.pad(x, ((0, 0), (context, context), (0, 0)), mode="edge")  # (N, T+2c, F)
        # frame t with its neighbours t-c..t+c side by side
        stacked = np.concatenate([padded[:, k : k + T] for k in range(2 * context + 1)], -1)
        return stacked.reshape(-1, stacked.shape[-1])  # (N*T, F*(2c+1))
    if level == "image":
        return x.reshape(len(x), -1)  # (N, C*H*W)
    raise ValueError(f"feature level {level!r} is not accepted; use utterance, frame or image")


@dataclass
class FeatureClassifier:
    """A fitted scikit-learn pipeline plus the feature map it was trained on.

    ``level``: "utterance" (mean frame of each (T, F) utterance -> one label per utterance),
    "frame" (each frame with ``context`` neighbours each side, edge-padded -> a label per frame),
    or "image" (flattened pixels).
    """

    pipeline: Pipeline
    level: str
    context: int = 0

    def features(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Feature rows for `x` (see `feature_rows`)."""
        return feature_rows(x, self.level, self.context)

    def predict(self, x: np.ndarray | Tensor) -> np.ndarray:
        return self.pipeline.predict(self.features(x))

    def score(self, x: np.ndarray | Tensor, y: np.ndarray | Tensor) -> float:
        y = to_numpy(y) if isinstance(y, Tensor) else np.asarray(y)
        return float(np.mean(self.predict(x) == y.reshape(-1)))


def collect_arrays(loader: Iterable, max_items: int | None, keys: tuple[str, ...]) -> dict:
    """``{key: array}``: the entries `keys` of the loader's first `max_items` items, stacked."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for batch in _iter_items(loader, max_items):
        for k in keys:
            if k not in batch:
                raise ValueError(f"batches need a {k!r} entry for this metric")
            parts[k].append(to_numpy(batch[k]))
    if not parts[keys[0]]:
        raise ValueError("the loader yielded no items")
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# image generation: class consistency


def train_image_classifier(
    loader: Iterable, max_items: int | None = 5000, seed: int = 0
) -> FeatureClassifier:
    """Classifier of real images: logistic regression on flattened pixels (standardised)."""
    data = collect_arrays(loader, max_items, ("x", "y"))
    pipeline = fit_logistic(feature_rows(data["x"], "image"), data["y"], seed)
    return FeatureClassifier(pipeline=pipeline, level="image")


@torch.no_grad()
def class_consistency(
    model: torch.nn.Module,
    loader: Iterable,
    classifier: FeatureClassifier,
    n_per_item: int = 1,
    generator: torch.Generator | None = None,
    max_items: int | None = 500,
    device: torch.device | str | None = None,
    z_source: str = "own",
    seed: int = 0,
) -> float:
    """Accuracy of `classifier` on samples generated from test images' z, w.r.t. their labels.

    For each image x with label y: z = mean of q(z|x), then `n_per_item` samples
    ``model.sample(z, generator=generator)`` (the generator must live on the model's device);
    the score is the fraction of samples classified as y. A decoder that ignores z scores at
    chance; one that keeps the class in z scores near the classifier's own accuracy.

    ``z_source="shuffled"`` gives the floor: each item's samples come from the z of another
    item of the same batch (a random cyclic derangement, seeded by `seed`) but are scored
    against the item's own label, so z can only match by the other item's class agreeing.
    The ceiling is the classifier's accuracy on the real images (``classifier.score``).
    """
    if not hasattr(model, "sample"):
        raise TypeError(f"{type(model).__name__} has no sample(z, generator=...)")
    if n_per_item < 1:
        raise ValueError(f"class_consistency: n_per_item must be >= 1, got {n_per_item!r}")
    if z_source not in ("own", "shuffled"):
        raise ValueError(
            f"class_consistency: z_source {z_source!r} is not accepted; use 'own' or 'shuffled'"
        )
    perm_gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    dev = model_device(model, device)
    hits, total = 0, 0
    try:
        for batch in _iter_items(loader, max_items):
            z_mean, _ = model.encode(batch["x"].to(dev))  # (B, Dz)
            if z_source == "shuffled" and len(z_mean) > 1:
                # item p_k takes the z of item p_(k+1): a derangement, nobody keeps its own z
                p = torch.randperm(len(z_mean), generator=perm_gen)
                src = torch.empty_like(p)
                src[p] = p.roll(-1)
                z_mean = z_mean[src.to(z_mean.device)]
            y = to_numpy(batch["y"])
            for _ in range(n_per_item):
                samples = model.sample(z_mean, generator=generator)  # (B, C, H, W)
                hits += int(np.sum(classifier.predict(samples) == y))
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("class_consistency: the loader yielded no items")
    return hits / total


__all__ = [
    "KNN_K",
    "FeatureClassifier",
    "aggregate_mi_xz",
    "class_consistency",
    "describe_regime",
    "disentanglement_matrix",
    "knn_probe",
    "encode_dataset",
    "eer",
    "linear_probe",
    "nll_bits_per_dim",
    "nll_nats",
    "posthoc_mi",
    "posthoc_mi_zs",
    "probe_metrics",
    "rate_distortion",
    "train_image_classifier",
]


def sample_grid(
    model: torch.nn.Module,
    loader: Iterable,
    n_samples: int = 8,
    n_prior_rows: int = 2,
    seed: int = 0,
    max_items: int | None = 1000,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Images for `paperlib.reports.plots_generation.fig_sample_grid`: one row per z, columns are samples.

    One row per class: z is the posterior mean of the first test image of that class, shown in
    the first column, followed by `n_samples` autoregressive samples ``model.sample(z)``. Then
    `n_prior_rows` rows with z ~ p(z) (first column blank).

    Returns
    -------
    (images (rows, 1 + n_samples, C, H, W) in [0, 1], row labels)
    """
    dev = model_device(model, device)
    data = collect_arrays(loader, max_items, ("x", "y"))
    x, y = torch.as_tensor(data["x"]), np.asarray(data["y"])
    classes = np.unique(y)
    first = torch.as_tensor([int(np.flatnonzero(y == c)[0]) for c in classes])
    gen = torch.Generator(device=dev).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z_mean, _ = model.encode(x[first].to(dev))  # (K, Dz)
            z_prior = torch.randn(n_prior_rows, z_mean.shape[1], generator=gen, device=dev)
            z = torch.cat([z_mean, z_prior])  # (R, Dz)
            # each z repeated n_samples times -> one batched sampling call
            samples = model.sample(z.repeat_interleave(n_samples, 0), generator=gen)
    finally:
        model.train(was_training)
    R = z.shape[0]
    samples = samples.reshape(R, n_samples, *samples.shape[1:]).cpu().numpy()
    sources = np.concatenate([x[first].numpy(), np.zeros((n_prior_rows, *x.shape[1:]))])
    images = np.concatenate([sources[:, None], samples], axis=1)
    labels = [f"class {c}" for c in classes] + [f"prior {i + 1}" for i in range(n_prior_rows)]
    return images.astype(np.float32), labels

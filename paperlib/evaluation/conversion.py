"""Voice conversion (DESIGN section 4): swap z between utterances of different speakers.

`voice_conversion` scores converted frames with a speaker classifier (`train_speaker_classifier`)
and a phone classifier (`train_phone_classifier`), both trained on real utterances; the shared
feature-classifier machinery (`FeatureClassifier`) is paperlib.evaluation.evaluate's, which also uses it for
the class consistency of generated images. `voice_conversion_examples` gives the arrays of
`paperlib.reports.plots_generation.fig_voice_conversion`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from paperlib.evaluation.evaluate import (
    FeatureClassifier,
    collect_arrays,
    feature_rows,
    fit_logistic,
    model_device,
    to_numpy,
)


def train_speaker_classifier(
    loader: Iterable, max_items: int | None = 2000, seed: int = 0
) -> FeatureClassifier:
    """Speaker classifier on real utterances: logistic regression on the utterance-mean frame."""
    data = collect_arrays(loader, max_items, ("x", "y"))
    pipeline = fit_logistic(feature_rows(data["x"], "utterance"), data["y"], seed)
    return FeatureClassifier(pipeline=pipeline, level="utterance")


def train_phone_classifier(
    loader: Iterable,
    max_items: int | None = 2000,
    context: int = 1,
    max_frames: int = 20000,
    seed: int = 0,
) -> FeatureClassifier:
    """Phone classifier on real frames (each with `context` neighbours each side), trained on at
    most `max_frames` frames drawn at random (seeded) from the loader's utterances.

    A shrinkage LDA (scikit-learn) on standardised features: linear, like the probes, and fast.
    """
    data = collect_arrays(loader, max_items, ("x", "y_local"))
    feats, y = feature_rows(data["x"], "frame", context), data["y_local"].reshape(-1)
    if len(y) > max_frames:
        keep = np.random.default_rng(seed).choice(len(y), size=max_frames, replace=False)
        feats, y = feats[keep], y[keep]
    # Linear discriminant analysis (shrinkage LDA): a linear classifier fitted in closed form,
    # ~100x faster than an iterative logistic regression on this many frames
    pipeline = make_pipeline(
        StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    ).fit(feats, y)
    return FeatureClassifier(pipeline=pipeline, level="frame", context=context)


def _convert(model, x_content: Tensor, x_speaker: Tensor) -> Tensor:
    """Frames with the content of `x_content` and the speaker (z) of `x_speaker`."""
    if hasattr(model, "swap_z"):
        return model.swap_z(x_content, x_speaker)
    if hasattr(model, "decode"):
        z_speaker, _ = model.encode(x_speaker)
        return model.decode(z_speaker, model(x_content).s)
    raise TypeError(f"{type(model).__name__} has neither swap_z nor decode: no voice conversion")


def _conversion_pairs(y: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n_pairs` (content, speaker) index pairs with different speakers, drawn at random."""
    rng = np.random.default_rng(seed)
    if len(np.unique(y)) < 2:
        raise ValueError("voice conversion needs utterances of at least two speakers")
    content = rng.integers(len(y), size=n_pairs)
    speaker = np.empty_like(content)
    for k, c in enumerate(content):
        others = np.flatnonzero(y != y[c])
        speaker[k] = rng.choice(others)
    return content, speaker


@torch.no_grad()
def voice_conversion(
    model: torch.nn.Module,
    loader: Iterable,
    speaker_clf: FeatureClassifier,
    phone_clf: FeatureClassifier,
    n_pairs: int = 200,
    seed: int = 0,
    max_items: int | None = 2000,
    device: torch.device | str | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Swap z between utterances of different speakers and score the converted frames.

    For random pairs (content source c, speaker source k) with different speakers, frames are
    ``model.swap_z(x_c, x_k)`` (or ``decode(z_k, s_c)``). Returns

    - ``vc_speaker_acc``: the speaker classifier names the z-source speaker y_k (higher is better);
    - ``vc_speaker_leak``: it names the content source's speaker y_c (lower is better);
    - ``vc_phone_acc``: the phone classifier on converted frames matches the content source's
      frame phones y_local_c (content kept);
    - references: ``real_speaker_acc`` / ``real_phone_acc`` (classifiers on the real content
      utterances) and ``recon_speaker_acc`` / ``recon_phone_acc`` (on swap_z(x_c, x_c)).
    """
    if n_pairs < 1:
        raise ValueError(f"voice_conversion: n_pairs must be >= 1, got {n_pairs!r}")
    data = collect_arrays(loader, max_items, ("x", "y", "y_local"))
    content, speaker = _conversion_pairs(data["y"], n_pairs, seed)
    was_training = model.training
    model.eval()
    dev = model_device(model, device)
    conv, recon = [], []
    try:
        for a in range(0, n_pairs, batch_size):
            xc = torch.as_tensor(data["x"][content[a : a + batch_size]], device=dev)
            xk = torch.as_tensor(data["x"][speaker[a : a + batch_size]], device=dev)
            conv.append(to_numpy(_convert(model, xc, xk)))
            recon.append(to_numpy(_convert(model, xc, xc)))
    finally:
        model.train(was_training)
    conv_x, recon_x = np.concatenate(conv), np.concatenate(recon)
    x_c, y_c, y_k = data["x"][content], data["y"][content], data["y"][speaker]
    phones_c = data["y_local"][content]
    pred_spk = speaker_clf.predict(conv_x)
    return {
        "vc_speaker_acc": float(np.mean(pred_spk == y_k)),
        "vc_speaker_leak": float(np.mean(pred_spk == y_c)),
        "vc_phone_acc": phone_clf.score(conv_x, phones_c),
        "real_speaker_acc": speaker_clf.score(x_c, y_c),
        "real_phone_acc": phone_clf.score(x_c, phones_c),
        "recon_speaker_acc": speaker_clf.score(recon_x, y_c),
        "recon_phone_acc": phone_clf.score(recon_x, phones_c),
    }


@torch.no_grad()
def voice_conversion_examples(
    model: torch.nn.Module,
    loader: Iterable,
    n_examples: int = 3,
    seed: int = 0,
    max_items: int | None = 500,
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray]:
    """Arrays for `paperlib.reports.plots_generation.fig_voice_conversion`: ``content``, ``speaker``, ``converted``
    (n, T, F) and the speakers ``content_speaker``, ``speaker_speaker`` (n,)."""
    data = collect_arrays(loader, max_items, ("x", "y"))
    content, speaker = _conversion_pairs(data["y"], n_examples, seed)
    was_training = model.training
    model.eval()
    dev = model_device(model, device)
    try:
        xc = torch.as_tensor(data["x"][content], device=dev)
        xk = torch.as_tensor(data["x"][speaker], device=dev)
        converted = to_numpy(_convert(model, xc, xk))
    finally:
        model.train(was_training)
    return {
        "content": data["x"][content],
        "speaker": data["x"][speaker],
        "converted": converted,
        "content_speaker": data["y"][content],
        "speaker_speaker": data["y"][speaker],
    }


__all__ = [
    "train_phone_classifier",
    "train_speaker_classifier",
    "voice_conversion",
    "voice_conversion_examples",
]

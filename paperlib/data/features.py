"""Log-mel features: the one feature function for synthetic and real speech, and its inverse.

Frames follow ``librosa.stft(center=False)``: frame t covers samples ``[t*hop, t*hop + n_fft)``,
weighted by a periodic Hann window of ``win`` samples centred in the ``n_fft`` frame (librosa's
``pad_center``). Its power spectrum goes through librosa's (Slaney) mel filterbank, then a log
with a floor. The STFT is computed with numpy (so a whole batch of utterances is one call and
no per-call librosa set-up is paid); it is numerically the same as ``librosa.stft(center=False)``
with these window settings, which `invert_logmel` relies on for Griffin-Lim.

Normalisation stats (mean and std per mel bin, computed on the training split) travel in
``info["feature"]`` so that models' outputs can be turned back into log-mel and audio.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

DEFAULT_HOP_MS = 10.0
DEFAULT_WIN_MS = 25.0
# Power floor before the log: -100 dB relative to a full-scale (|x| <= 1) sinusoid's power.
DEFAULT_FLOOR = 1e-10


def frame_params(sample_rate: int, hop_ms: float = DEFAULT_HOP_MS, win_ms: float = DEFAULT_WIN_MS):
    """Hop, window and FFT sizes in samples.

    Returns
    -------
    (hop, win, n_fft) : ints; n_fft is the next power of two >= win.
    """
    hop = int(round(sample_rate * hop_ms / 1000.0))
    win = int(round(sample_rate * win_ms / 1000.0))
    if hop < 1 or win < 2:
        raise ValueError(
            f"hop_ms={hop_ms} / win_ms={win_ms} at sample_rate={sample_rate} give hop={hop}, "
            f"win={win} samples; need hop >= 1 and win >= 2"
        )
    n_fft = 1 << int(np.ceil(np.log2(win)))
    return hop, win, n_fft


def n_samples_for(
    n_frames: int, sample_rate: int, hop_ms: float = DEFAULT_HOP_MS, win_ms: float = DEFAULT_WIN_MS
) -> int:
    """Samples a waveform needs to yield exactly ``n_frames`` frames: (n_frames - 1) * hop + n_fft."""
    hop, _, n_fft = frame_params(sample_rate, hop_ms, win_ms)
    return (n_frames - 1) * hop + n_fft


def n_frames_for(
    n_samples: int, sample_rate: int, hop_ms: float = DEFAULT_HOP_MS, win_ms: float = DEFAULT_WIN_MS
) -> int:
    """Frames that `logmel` returns for a waveform of ``n_samples`` samples (0 if too short)."""
    hop, _, n_fft = frame_params(sample_rate, hop_ms, win_ms)
    return 0 if n_samples < n_fft else 1 + (n_samples - n_fft) // hop


@functools.lru_cache(maxsize=16)
def _window(win: int, n_fft: int) -> np.ndarray:
    # periodic Hann (scipy.signal.get_window("hann", win, fftbins=True)), centred in n_fft
    n = np.arange(win)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win)
    out = np.zeros(n_fft)
    lpad = (n_fft - win) // 2
    out[lpad : lpad + win] = w
    return out


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """librosa's Slaney-normalised mel filterbank, (n_mels, n_fft // 2 + 1) float64 (cached)."""
    import librosa

    return librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64
    )


def logmel(
    wave: np.ndarray,
    sample_rate: int,
    n_mels: int,
    hop_ms: float = DEFAULT_HOP_MS,
    win_ms: float = DEFAULT_WIN_MS,
    fmin: float = 0.0,
    fmax: float | None = None,
    floor: float = DEFAULT_FLOOR,
) -> np.ndarray:
    """Log power mel spectrogram.

    Parameters
    ----------
    wave : (..., L) float waveform(s) in [-1, 1]; leading dimensions are a batch.
    sample_rate : Hz.
    n_mels : number of mel bands between ``fmin`` and ``fmax`` (default sample_rate / 2).
    hop_ms, win_ms : frame hop and Hann window length in milliseconds.
    floor : power floor before the log.

    Returns
    -------
    (..., T, n_mels) float32, T = 1 + (L - n_fft) // hop (see `n_frames_for`).
    """
    wave = np.asarray(wave, dtype=np.float64)
    hop, win, n_fft = frame_params(sample_rate, hop_ms, win_ms)
    if wave.shape[-1] < n_fft:
        raise ValueError(
            f"waveform of {wave.shape[-1]} samples is shorter than one frame ({n_fft} samples "
            f"at sample_rate={sample_rate}, win_ms={win_ms})"
        )
    # frames: (..., T, n_fft) strided views, one every hop samples
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft, axis=-1)[..., ::hop, :]
    # |STFT|^2: (..., T, n_fft // 2 + 1)
    spec = np.fft.rfft(frames * _window(win, n_fft), axis=-1)
    power = spec.real**2 + spec.imag**2
    # mel power: (..., T, n_mels) = power @ M^T
    # (one 2-D matrix product: numpy's stacked matmul with a transposed operand is far slower)
    fb_t = np.ascontiguousarray(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T)
    mel = (power.reshape(-1, power.shape[-1]) @ fb_t).reshape(*power.shape[:-1], n_mels)
    # log with a floor: log(max(P_mel, floor))
    return np.log(np.maximum(mel, floor)).astype(np.float32)


def invert_logmel(
    features: np.ndarray,
    sample_rate: int,
    n_mels: int | None = None,
    hop_ms: float = DEFAULT_HOP_MS,
    win_ms: float = DEFAULT_WIN_MS,
    fmin: float = 0.0,
    fmax: float | None = None,
    n_iter: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Approximate waveform of log-mel frames by mel-to-STFT NNLS and Griffin-Lim (librosa).

    Parameters
    ----------
    features : (T, n_mels) log power mel frames as returned by `logmel` (not normalised; use
        `denormalize` first for model outputs).
    sample_rate, n_mels, hop_ms, win_ms, fmin, fmax : the settings used by `logmel`.
    n_iter : Griffin-Lim iterations.
    seed : seed of Griffin-Lim's random initial phase.

    Returns
    -------
    (L,) float32 waveform, L = (T - 1) * hop + n_fft, for an audio player.
    """
    import librosa

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (T, n_mels), got shape {features.shape}")
    if n_mels is not None and features.shape[1] != n_mels:
        raise ValueError(f"features have {features.shape[1]} mel bins, n_mels={n_mels}")
    hop, win, n_fft = frame_params(sample_rate, hop_ms, win_ms)
    mel_power = np.exp(features).T  # (n_mels, T)
    # NNLS: the non-negative STFT magnitude whose mel projection best matches the mel power
    magnitude = librosa.feature.inverse.mel_to_stft(
        mel_power, sr=sample_rate, n_fft=n_fft, power=2.0, fmin=fmin, fmax=fmax
    )  # (n_fft // 2 + 1, T)
    wave = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=hop,
        win_length=win,
        n_fft=n_fft,
        window="hann",
        center=False,
        random_state=np.random.default_rng(seed),
    )
    # The first and last (n_fft - win) / 2 samples lie outside every frame's window, and the
    # overlap-add normalisation divides by the window sum-square, ~0 there: fade those edges by
    # min(1, wss / median(wss)) instead of letting them blow up.
    wss = librosa.filters.window_sumsquare(
        window="hann", n_frames=features.shape[0], hop_length=hop, win_length=win, n_fft=n_fft
    )[: len(wave)]
    wave = wave * np.minimum(1.0, wss / np.median(wss))
    return wave.astype(np.float32)


def feature_stats(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per mel bin over all items and frames.

    Parameters
    ----------
    x : (N, T, n_mels) log-mel frames (the training split only).

    Returns
    -------
    mean, std : (n_mels,) float32; std is clipped below at ``eps``.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), eps).astype(np.float32)


def normalize(x: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    """(x - mean) / std per mel bin (last axis); float32."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)


def denormalize(x: Any, mean: Any, std: Any) -> np.ndarray:
    """Inverse of `normalize`: x * std + mean per mel bin; accepts numpy arrays or tensors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    return (np.asarray(x, dtype=np.float32) * std + mean).astype(np.float32)


def feature_info(
    sample_rate: int,
    n_mels: int,
    mean: np.ndarray,
    std: np.ndarray,
    hop_ms: float = DEFAULT_HOP_MS,
    win_ms: float = DEFAULT_WIN_MS,
    fmin: float = 0.0,
    fmax: float | None = None,
    floor: float = DEFAULT_FLOOR,
) -> dict[str, Any]:
    """The ``info["feature"]`` dict: everything needed to recompute or invert the features."""
    hop, win, n_fft = frame_params(sample_rate, hop_ms, win_ms)
    return {
        "type": "logmel",
        "sample_rate": int(sample_rate),
        "n_mels": int(n_mels),
        "hop_ms": float(hop_ms),
        "win_ms": float(win_ms),
        "hop": hop,
        "win": win,
        "n_fft": n_fft,
        "fmin": float(fmin),
        "fmax": float(fmax) if fmax is not None else sample_rate / 2.0,
        "floor": float(floor),
        "normalized": True,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
    }


def features_to_audio(
    x_normalized: Any, feature: dict[str, Any], n_iter: int = 32, seed: int = 0
) -> np.ndarray:
    """Normalised frames (T, n_mels) of a dataset -> waveform, using ``info["feature"]``."""
    raw = denormalize(x_normalized, feature["mean"], feature["std"])
    return invert_logmel(
        raw,
        feature["sample_rate"],
        feature["n_mels"],
        hop_ms=feature["hop_ms"],
        win_ms=feature["win_ms"],
        fmin=feature["fmin"],
        fmax=feature["fmax"],
        n_iter=n_iter,
        seed=seed,
    )

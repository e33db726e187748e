"""Synthetic multi-speaker speech by source-filter synthesis (DESIGN section 3).

A Klatt-style cascade formant synthesiser written with numpy / scipy:

- **Speaker** (global factor, `SpeakerParams`): sex, fundamental frequency f0 (85-155 Hz male,
  165-255 Hz female), vocal-tract length factor ``vtl`` that scales every formant (0.80-1.02 male,
  0.98-1.20 female: a shorter tract has higher formants, F_k proportional to 1 / length),
  glottal spectral tilt (a double pole at ``tilt``), breathiness (aspiration noise mixed into the
  voicing), a bandwidth scale, speaker-specific F4/F5, small idiolectal offsets of each phone's
  F1-F3 targets, jitter, shimmer and speaking rate.
- **Utterance** (local factors): a random phone sequence from `PHONES` (vowels with F1-F3
  targets of adult speakers after Peterson & Barney 1952, nasals, fricatives as resonator-shaped
  noise, /h/ as aspiration, silence) with random durations; formant tracks interpolate between
  the targets with a zero-phase exponential smoother (coarticulation), and f0 follows an
  intonation contour (declination plus pitch accents) with per-2-ms jitter.
- **Rendering**: a glottal pulse train (phase accumulator) through the tilt filter and lip
  radiation, plus noise sources, drives five cascaded time-varying second-order resonators;
  frication goes through a parallel resonator. Coefficients change every 2 ms. The recursion
  is vectorised over a chunk of utterances (one numpy step per sample for the whole chunk).
  Then `paperlib.data.features.logmel` (the same function as for real speech) makes frames.

Labels: ``y`` = speaker id (training speakers 0..n_speakers-1; held-out speakers get ids
n_speakers.. so that verification can tell them apart), ``y_local`` = phone id at each frame's
centre. Splits: each training speaker's utterances are split into train / val / test by
``val_fraction`` / ``test_fraction``; ``heldout`` holds ``n_heldout_speakers`` extra speakers.

Everything is deterministic from ``data_cfg.seed``: speaker k and utterance (k, u) each draw from
their own generator (``np.random.default_rng([seed, stream, k, u])``), so a speaker does not change
when the corpus grows, and `render_waveforms` re-renders any utterance on its own.

The corpus is cached under ``data_cfg.cache_dir`` as ``synthetic_speech-<hash>.npz`` (hash of every
generating parameter plus `VERSION`) with a sidecar ``.json`` holding its sha256; a corrupted
or truncated cache is detected, reported with a warning naming the file, and regenerated.
Waveforms are not cached (they are ~40x bigger than the features); get them with
`render_waveforms(data_cfg, split, indices)` or `synthesize_utterance`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlib.data import DATASETS, DataBundle, TensorDictDataset
from paperlib.data.cache import cache_file, load_or_build
from paperlib.data.features import (
    DEFAULT_HOP_MS,
    DEFAULT_WIN_MS,
    feature_info,
    feature_stats,
    frame_params,
    logmel,
    n_samples_for,
    normalize,
)

# Bump when the synthesiser changes so that old caches are not reused.
VERSION = 1

# Split codes stored in the cache.
SPLITS = ("train", "val", "test", "heldout")

# Phone inventory: name, class, F1-F3 targets (Hz, adult male; scaled by the speaker's vtl),
# voicing / aspiration / frication amplitudes, frication centre and bandwidth (Hz),
# duration range (ms).
# fmt: off
_PHONE_TABLE = [
    # name  class        F1    F2    F3    AV   AH    AF    Fc     Bc    dur_lo dur_hi
    ("sil", "silence",   500, 1500, 2500, 0.0, 0.0,  0.0,  0,     0,    40,  120),
    ("iy",  "vowel",     270, 2290, 3010, 1.0, 0.0,  0.0,  0,     0,    70,  170),
    ("ih",  "vowel",     390, 1990, 2550, 1.0, 0.0,  0.0,  0,     0,    60,  140),
    ("eh",  "vowel",     530, 1840, 2480, 1.0, 0.0,  0.0,  0,     0,    60,  150),
    ("ae",  "vowel",     660, 1720, 2410, 1.0, 0.0,  0.0,  0,     0,    80,  180),
    ("aa",  "vowel",     730, 1090, 2440, 1.0, 0.0,  0.0,  0,     0,    80,  180),
    ("ao",  "vowel",     570,  840, 2410, 1.0, 0.0,  0.0,  0,     0,    80,  180),
    ("uh",  "vowel",     440, 1020, 2240, 1.0, 0.0,  0.0,  0,     0,    60,  140),
    ("uw",  "vowel",     300,  870, 2240, 1.0, 0.0,  0.0,  0,     0,    70,  170),
    ("ah",  "vowel",     640, 1190, 2390, 1.0, 0.0,  0.0,  0,     0,    60,  150),
    ("er",  "vowel",     490, 1350, 1690, 1.0, 0.0,  0.0,  0,     0,    70,  170),
    ("m",   "nasal",     250, 1100, 2200, 0.35, 0.0, 0.0,  0,     0,    50,  100),
    ("n",   "nasal",     250, 1700, 2600, 0.35, 0.0, 0.0,  0,     0,    50,  100),
    ("s",   "fricative", 320, 1700, 2600, 0.0, 0.0,  0.35, 5500,  2000, 70,  150),
    ("sh",  "fricative", 300, 1900, 2500, 0.0, 0.0,  0.45, 3000,  1200, 70,  150),
    ("f",   "fricative", 350, 1100, 2300, 0.0, 0.0,  0.12, 5000,  5000, 60,  130),
    ("h",   "aspirate",  500, 1500, 2500, 0.0, 0.5,  0.0,  0,     0,    50,  100),
]
# fmt: on
PHONES: tuple[str, ...] = tuple(row[0] for row in _PHONE_TABLE)
PHONE_CLASS: tuple[str, ...] = tuple(row[1] for row in _PHONE_TABLE)
_FORMANT_TARGETS = np.array([row[2:5] for row in _PHONE_TABLE], dtype=np.float64)  # (P, 3)
_AMPS = np.array([row[5:8] for row in _PHONE_TABLE], dtype=np.float64)  # (P, 3) AV AH AF
_FRIC = np.array([row[8:10] for row in _PHONE_TABLE], dtype=np.float64)  # (P, 2) Fc Bc
_DUR_MS = np.array([row[10:12] for row in _PHONE_TABLE], dtype=np.float64)  # (P, 2)
_VOWELS = np.array([i for i, c in enumerate(PHONE_CLASS) if c == "vowel"])
_CONSONANTS = np.array(
    [i for i, c in enumerate(PHONE_CLASS) if c in ("nasal", "fricative", "aspirate")]
)
_SIL = PHONES.index("sil")
_H = PHONES.index("h")

# Base formant bandwidths B1..B5 (Hz), multiplied by the speaker's bandwidth scale.
_BASE_BW = np.array([60.0, 90.0, 150.0, 250.0, 350.0])
# Coefficient update interval and coarticulation / amplitude smoothing time constants.
_BLOCK_MS = 2.0
_TAU_FORMANT_MS = 18.0
_TAU_AMP_MS = 6.0
_TAU_F0_MS = 30.0
# RMS of a rendered utterance before its random +-3 dB gain, and the recording noise floor.
_TARGET_RMS = 0.05
_NOISE_FLOOR = 1e-4
# Utterances rendered together in one vectorised chunk (peak memory ~ chunk x samples x 8 bytes
# x 20: ~0.9 GB for 512 utterances of 0.66 s; 512 was faster than 1024 on 2 cores).
_CHUNK = 512


# ----------------------------------------------------------------------------------------------
# speakers and utterances


@dataclass(frozen=True)
class SpeakerParams:
    """One synthetic speaker: the global factors of every utterance it speaks."""

    sex: int  # 0 male, 1 female
    f0_hz: float  # mean fundamental frequency
    vtl: float  # vocal-tract length factor: all formants are multiplied by it
    tilt: float  # pole of the glottal double-pole lowpass (closer to 1: steeper tilt)
    breathiness: float  # aspiration noise std relative to the unit-RMS voicing source
    bw_scale: float  # formant bandwidth multiplier
    f4_hz: float
    f5_hz: float
    jitter: float  # relative std of f0 per 2 ms block
    shimmer: float  # relative std of pulse amplitude per 2 ms block
    rate: float  # duration multiplier (speaking rate; > 1 is slower)
    idiolect: tuple[tuple[float, float, float], ...]  # (P, 3) multipliers of F1-F3 targets


def sample_speaker(seed: int, index: int) -> SpeakerParams:
    """Draw speaker ``index`` of the corpus with seed ``seed`` (independent of corpus size)."""
    rng = np.random.default_rng([seed, 1, index])
    sex = int(rng.random() < 0.5)
    # f0 log-uniform over adult ranges; vtl correlated with sex (female tracts ~15 % shorter)
    f0_lo, f0_hi = (165.0, 255.0) if sex else (85.0, 155.0)
    vtl_lo, vtl_hi = (0.98, 1.20) if sex else (0.80, 1.02)
    f0 = float(np.exp(rng.uniform(np.log(f0_lo), np.log(f0_hi))))
    vtl = float(rng.uniform(vtl_lo, vtl_hi))
    idiolect = np.exp(rng.normal(0.0, 0.04, size=(len(PHONES), 3)))
    return SpeakerParams(
        sex=sex,
        f0_hz=f0,
        vtl=vtl,
        tilt=float(rng.uniform(0.88, 0.985)),
        breathiness=float(rng.uniform(0.03, 0.4)),
        bw_scale=float(rng.uniform(0.7, 1.6)),
        f4_hz=float(3500.0 * vtl * np.exp(rng.normal(0.0, 0.04))),
        f5_hz=float(4500.0 * vtl * np.exp(rng.normal(0.0, 0.04))),
        jitter=float(rng.uniform(0.005, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.08)),
        rate=float(rng.uniform(0.85, 1.15)),
        idiolect=tuple(tuple(float(v) for v in row) for row in idiolect),
    )


@dataclass(frozen=True)
class UtteranceSpec:
    """What to say and how: phone segments, intonation and gain; rendered by `_render`."""

    speaker: int  # index into the speaker list given to the renderer
    phones: tuple[int, ...]  # phone ids of the segments
    starts: tuple[int, ...]  # segment start samples (the first may be negative)
    decl: tuple[float, float]  # log-f0 offset at the start and at the end (declination)
    accents: tuple[tuple[float, float, float], ...]  # (time s, height log-f0, width s)
    gain: float  # linear gain of the recording
    noise_seed: tuple[int, ...]  # seed entropy of the noise sources


def _sample_phones(
    rng: np.random.Generator, n_samples: int, sample_rate: int, rate: float
) -> tuple[list[int], list[int]]:
    """Random phone sequence covering ``n_samples``: mostly CV-like alternation, no repeats."""
    t = -int(rng.uniform(0.0, 0.05) * sample_rate)  # start mid-phone, not at a boundary
    phones: list[int] = []
    starts: list[int] = []
    prev = -1
    while t < n_samples:
        if prev >= 0 and PHONE_CLASS[prev] == "vowel":
            # after a vowel: consonant (70 %), silence (15 %) or another vowel
            r = rng.random()
            pool = _CONSONANTS if r < 0.7 else (np.array([_SIL]) if r < 0.85 else _VOWELS)
        else:
            pool = _VOWELS if rng.random() < 0.85 or prev == _SIL else _CONSONANTS
        p = int(rng.choice(pool[pool != prev])) if np.any(pool != prev) else int(pool[0])
        lo, hi = _DUR_MS[p]
        dur = int(rng.uniform(lo, hi) * rate * sample_rate / 1000.0)
        phones.append(p)
        starts.append(t)
        t += max(dur, 1)
        prev = p
    return phones, starts


def sample_utterance(
    seed: int,
    speaker_index: int,
    utt_index: int,
    speaker: SpeakerParams,
    n_samples: int,
    sample_rate: int,
    local_speaker: int,
) -> UtteranceSpec:
    """Draw utterance ``utt_index`` of speaker ``speaker_index`` (its own generator)."""
    rng = np.random.default_rng([seed, 2, speaker_index, utt_index])
    phones, starts = _sample_phones(rng, n_samples, sample_rate, speaker.rate)
    dur_s = n_samples / sample_rate
    n_acc = int(rng.integers(1, 3))
    accents = tuple(
        (
            float(rng.uniform(0, dur_s)),
            float(rng.normal(0.08, 0.04)),
            float(rng.uniform(0.05, 0.12)),
        )
        for _ in range(n_acc)
    )
    return UtteranceSpec(
        speaker=local_speaker,
        phones=tuple(phones),
        starts=tuple(starts),
        decl=(float(rng.uniform(0.03, 0.12)), -float(rng.uniform(0.03, 0.12))),
        accents=accents,
        gain=float(np.exp(rng.uniform(-0.35, 0.35))),
        noise_seed=(seed, 4, speaker_index, utt_index),
    )


# ----------------------------------------------------------------------------------------------
# rendering


def _smooth(x: np.ndarray, a: float) -> np.ndarray:
    """Zero-phase one-pole smoothing along axis 1 (forward then backward pass).

    y[i] = a * y[i-1] + (1 - a) * x[i], then the same backwards; x: (N, B, ...) -> same shape.
    """
    y = np.array(x, dtype=np.float64, copy=True)
    for i in range(1, y.shape[1]):
        y[:, i] = a * y[:, i - 1] + (1.0 - a) * y[:, i]
    for i in range(y.shape[1] - 2, -1, -1):
        y[:, i] = a * y[:, i + 1] + (1.0 - a) * y[:, i]
    return y


def _segment_targets(spec: UtteranceSpec, spk: SpeakerParams) -> np.ndarray:
    """F1..F5 targets per segment (S, 5): silence and /h/ borrow their neighbours' vowel shape."""
    p = np.array(spec.phones)
    f123 = _FORMANT_TARGETS[p] * np.array(spk.idiolect)[p] * spk.vtl  # (S, 3)
    for i, ph in enumerate(p):
        if ph == _H and i + 1 < len(p):  # aspiration takes the following phone's articulation
            f123[i] = f123[i + 1]
    for i, ph in enumerate(p):
        if ph == _SIL:  # the tract holds its previous shape through a pause
            j = i - 1 if i > 0 else min(i + 1, len(p) - 1)
            f123[i] = f123[j]
    f45 = np.broadcast_to([spk.f4_hz, spk.f5_hz], (len(p), 2))
    return np.concatenate([f123, f45], axis=1)


def _resonator(freq: np.ndarray, bw: np.ndarray, sample_rate: int, peak_norm: bool = False):
    """Second-order resonator y[n] = A x[n] + B y[n-1] + C y[n-2] (Klatt 1980).

    r = exp(-pi * bw / fs), theta = 2 pi f / fs; B = 2 r cos(theta), C = -r^2.
    A = 1 - B - C gives unit gain at DC (cascade branch, so formant levels follow from the
    cascade); with ``peak_norm`` A = (1 - r) sqrt(1 - 2 r cos(2 theta) + r^2) gives about unit
    gain at the resonance (parallel frication branch).
    """
    r = np.exp(-np.pi * bw / sample_rate)
    theta = 2.0 * np.pi * freq / sample_rate
    b = 2.0 * r * np.cos(theta)
    c = -(r**2)
    if peak_norm:
        a = (1.0 - r) * np.sqrt(np.maximum(1.0 - 2.0 * r * np.cos(2.0 * theta) + r**2, 1e-12))
    else:
        a = 1.0 - b - c
    return a, b, c


def _render(
    specs: list[UtteranceSpec], speakers: list[SpeakerParams], n_samples: int, sample_rate: int
) -> np.ndarray:
    """Render utterances to waveforms (N, n_samples) float32, in vectorised chunks."""
    out = np.empty((len(specs), n_samples), dtype=np.float32)
    for lo in range(0, len(specs), _CHUNK):
        chunk = specs[lo : lo + _CHUNK]
        out[lo : lo + len(chunk)] = _render_chunk(chunk, speakers, n_samples, sample_rate)
    return out


def _render_chunk(
    specs: list[UtteranceSpec], speakers: list[SpeakerParams], n_samples: int, sample_rate: int
) -> np.ndarray:
    from scipy.signal import lfilter

    n = len(specs)
    fs = float(sample_rate)
    block = max(1, int(round(sample_rate * _BLOCK_MS / 1000.0)))
    n_blocks = -(-n_samples // block)
    t_block = (np.arange(n_blocks) + 0.5) * block  # block centres, samples
    spk = [speakers[s.speaker] for s in specs]

    # --- per-block control tracks: (N, n_blocks, ...) ----------------------------------------
    log_f = np.empty((n, n_blocks, 5))  # log formant frequencies F1..F5
    amps = np.empty((n, n_blocks, 3))  # AV, AH, AF
    fric = np.empty((n, n_blocks, 2))  # frication centre and bandwidth
    log_f0 = np.empty((n, n_blocks))
    for i, (spec, sp) in enumerate(zip(specs, spk)):
        seg = np.searchsorted(np.array(spec.starts), t_block, side="right") - 1  # (n_blocks,)
        seg = np.clip(seg, 0, len(spec.phones) - 1)
        ph = np.array(spec.phones)[seg]
        log_f[i] = np.log(_segment_targets(spec, sp))[seg]
        amps[i] = _AMPS[ph]
        fc = _FRIC[ph, 0] * np.sqrt(sp.vtl)  # front-cavity resonance shifts with tract size
        fric[i] = np.stack(
            [np.where(fc > 0, fc, 4000.0), np.where(fc > 0, _FRIC[ph, 1], 4000.0)], 1
        )
        # intonation: log f0 = log f0_spk + linear declination + Gaussian pitch accents
        ts = t_block / fs
        contour = spec.decl[0] + (spec.decl[1] - spec.decl[0]) * ts / (n_samples / fs)
        for t0, h, w in spec.accents:
            contour = contour + h * np.exp(-0.5 * ((ts - t0) / w) ** 2)
        log_f0[i] = np.log(sp.f0_hz) + contour
    # coarticulation: smooth the step-wise targets with zero-phase exponential smoothing
    a_f = np.exp(-_BLOCK_MS / _TAU_FORMANT_MS)
    a_a = np.exp(-_BLOCK_MS / _TAU_AMP_MS)
    formants = np.exp(_smooth(log_f, a_f))  # (N, B, 5)
    amps = _smooth(amps, a_a)
    fric = _smooth(fric, a_a)
    log_f0 = _smooth(log_f0[..., None], np.exp(-_BLOCK_MS / _TAU_F0_MS))[..., 0]
    # keep formants below Nyquist and in increasing order (a resonator above fs/2 aliases)
    formants = np.minimum(formants, 0.45 * fs)

    bw = np.array([sp.bw_scale for sp in spk])[:, None, None] * _BASE_BW  # (N, 1, 5)
    a_c, b_c, c_c = _resonator(formants, np.broadcast_to(bw, formants.shape), sample_rate)
    a_fr, b_fr, c_fr = _resonator(fric[..., 0], fric[..., 1], sample_rate, peak_norm=True)
    # coefficient arrays laid out (B, K, N) so that one block's coefficients are contiguous
    coef_a = np.concatenate([a_c, a_fr[..., None]], -1).transpose(1, 2, 0).copy()
    coef_b = np.concatenate([b_c, b_fr[..., None]], -1).transpose(1, 2, 0).copy()
    coef_c = np.concatenate([c_c, c_fr[..., None]], -1).transpose(1, 2, 0).copy()

    # --- sources: (N, L) ----------------------------------------------------------------------
    rngs = [np.random.default_rng(list(s.noise_seed)) for s in specs]
    noise = np.stack([r.standard_normal((3, n_samples)) for r in rngs], 1)  # (3, N, L)
    jit = np.stack([r.standard_normal((2, n_blocks)) for r in rngs], 1)  # (2, N, B)
    jitter = np.array([sp.jitter for sp in spk])[:, None]
    shimmer = np.array([sp.shimmer for sp in spk])[:, None]
    # f0 per block with jitter, held over the block's samples
    f0 = np.exp(log_f0) * (1.0 + jitter * jit[0])  # (N, B)
    f0_s = np.repeat(f0, block, axis=1)[:, :n_samples]
    # phase accumulator: a glottal pulse whenever the phase passes an integer
    phase = np.cumsum(f0_s / fs, axis=1)
    pulses = np.diff(np.floor(phase), axis=1, prepend=0.0) > 0  # (N, L) bool
    pulse_amp = np.repeat(1.0 + shimmer * jit[1], block, axis=1)[:, :n_samples]
    glottal = pulses * pulse_amp
    av = np.repeat(amps[..., 0], block, axis=1)[:, :n_samples]
    ah = np.repeat(amps[..., 1], block, axis=1)[:, :n_samples]
    af = np.repeat(amps[..., 2], block, axis=1)[:, :n_samples]
    voiced = np.empty_like(glottal)
    for i, sp in enumerate(spk):
        # glottal flow 1 / (1 - tilt z^-1)^2 times lip radiation (1 - z^-1)
        voiced[i] = lfilter([1.0, -1.0], [1.0, -2.0 * sp.tilt, sp.tilt**2], glottal[i])
        # unit RMS over the voiced stretch so that tilt and f0 do not set the loudness
        mask = av[i] > 0.5
        rms = np.sqrt(np.mean(voiced[i][mask] ** 2)) if mask.any() else 1.0
        voiced[i] /= max(rms, 1e-8)
    breath = np.array([sp.breathiness for sp in spk])[:, None]
    # cascade excitation: voicing (with breath noise) + aspiration; frication excites its own branch
    u_casc = (av * (voiced + breath * noise[0]) + ah * noise[1]).T.copy()  # (L, N)
    u_fric = (af * noise[2]).T.copy()  # (L, N)

    # --- time-varying resonators, one vectorised step per sample -------------------------------
    # All six resonators update together: stage k (k = 1..4) takes stage k-1's output of the
    # previous sample, i.e. the cascade F1 -> F5 with a one-sample delay per stage (4 samples,
    # 0.25 ms in all), which turns 5 sequential updates into one (6, N) update per sample.
    y1 = np.zeros((6, n))
    y2 = np.zeros((6, n))
    xin = np.zeros((6, n))
    out = np.empty((n_samples, n))
    for t in range(n_samples):
        b = t // block
        xin[0] = u_casc[t]
        xin[1:5] = y1[0:4]
        xin[5] = u_fric[t]
        # y[n] = A x[n] + B y[n-1] + C y[n-2] for every stage and utterance at once
        y = coef_a[b] * xin
        y += coef_b[b] * y1
        y += coef_c[b] * y2
        y2 = y1
        y1 = y
        out[t] = y[4] + y[5]  # cascade output (F5 stage) + parallel frication branch
    wave = out.T  # (N, L)
    # recording level: RMS normalised, +-3 dB utterance gain, then a white noise floor
    rms = np.sqrt(np.mean(wave**2, axis=1, keepdims=True))
    gains = np.array([s.gain for s in specs])[:, None]
    wave = wave / np.maximum(rms, 1e-8) * _TARGET_RMS * gains
    wave = wave + _NOISE_FLOOR * np.stack([r.standard_normal(n_samples) for r in rngs])
    return wave.astype(np.float32)


def frame_phones(spec: UtteranceSpec, n_frames: int, sample_rate: int) -> np.ndarray:
    """Phone id at each frame's centre sample (t * hop + n_fft / 2): (n_frames,) int64."""
    hop, _, n_fft = frame_params(sample_rate, DEFAULT_HOP_MS, DEFAULT_WIN_MS)
    centres = np.arange(n_frames) * hop + n_fft // 2
    seg = np.searchsorted(np.array(spec.starts), centres, side="right") - 1
    return np.array(spec.phones)[np.clip(seg, 0, len(spec.phones) - 1)].astype(np.int64)


def synthesize_utterance(
    speaker: SpeakerParams,
    phones: list[str],
    durations_ms: list[float],
    sample_rate: int = 16000,
    seed: int = 0,
    f0_decl: tuple[float, float] = (0.08, -0.08),
) -> np.ndarray:
    """Render one utterance of chosen phones (e.g. for a notebook's audio player).

    Parameters
    ----------
    speaker : from `sample_speaker` (or ``corpus_speakers``).
    phones : names from `PHONES`, e.g. ``["sil", "s", "iy", "m", "aa"]``.
    durations_ms : one duration per phone.
    seed : seed of the noise sources and jitter.
    f0_decl : log-f0 offsets at the start and the end (declination).

    Returns
    -------
    (L,) float32 waveform at ``sample_rate``, L = sum of durations.
    """
    unknown = [p for p in phones if p not in PHONES]
    if unknown:
        raise ValueError(f"unknown phone(s) {unknown}; accepted: {list(PHONES)}")
    if len(phones) != len(durations_ms) or not phones:
        raise ValueError(
            f"phones ({len(phones)}) and durations_ms ({len(durations_ms)}) must be non-empty "
            "and of equal length"
        )
    lengths = [max(1, int(d * sample_rate / 1000.0)) for d in durations_ms]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    spec = UtteranceSpec(
        speaker=0,
        phones=tuple(PHONES.index(p) for p in phones),
        starts=tuple(int(s) for s in starts),
        decl=f0_decl,
        accents=(),
        gain=1.0,
        noise_seed=(seed, 5),
    )
    return _render([spec], [speaker], int(sum(lengths)), sample_rate)[0]


# ----------------------------------------------------------------------------------------------
# corpus plan: speakers, utterances and splits (cheap; no rendering)


def _generating_params(data_cfg) -> dict[str, Any]:
    return {
        "version": VERSION,
        "seed": data_cfg.seed,
        "n_speakers": data_cfg.n_speakers,
        "n_heldout_speakers": data_cfg.n_heldout_speakers,
        "utts_per_speaker": data_cfg.utts_per_speaker,
        "n_frames": data_cfg.n_frames,
        "n_mels": data_cfg.n_mels,
        "sample_rate": data_cfg.sample_rate,
        "val_fraction": data_cfg.val_fraction,
        "test_fraction": data_cfg.test_fraction,
        "hop_ms": DEFAULT_HOP_MS,
        "win_ms": DEFAULT_WIN_MS,
    }


def _split_counts(n_utts: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val = int(round(val_fraction * n_utts))
    n_test = int(round(test_fraction * n_utts))
    n_train = n_utts - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"utts_per_speaker={n_utts} with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction} leaves no training utterance; raise utts_per_speaker"
        )
    return n_train, n_val, n_test


def corpus_speakers(data_cfg) -> list[SpeakerParams]:
    """All speakers of the corpus: training ids 0..n_speakers-1, then the held-out ones."""
    total = data_cfg.n_speakers + data_cfg.n_heldout_speakers
    return [sample_speaker(data_cfg.seed, k) for k in range(total)]


def corpus_plan(data_cfg) -> dict[str, np.ndarray]:
    """Which (speaker, utterance) pairs form each split, without rendering anything.

    Returns
    -------
    dict with ``speaker`` (N,), ``utt`` (N,) and ``split`` (N,) codes into `SPLITS`, in the
    order the corpus stores them (speaker-major).
    """
    n_train, n_val, _ = _split_counts(
        data_cfg.utts_per_speaker, data_cfg.val_fraction, data_cfg.test_fraction
    )
    speaker, utt, split = [], [], []
    for k in range(data_cfg.n_speakers + data_cfg.n_heldout_speakers):
        codes = np.full(data_cfg.utts_per_speaker, 3, dtype=np.int8)
        if k < data_cfg.n_speakers:
            perm = np.random.default_rng([data_cfg.seed, 3, k]).permutation(
                data_cfg.utts_per_speaker
            )
            codes[perm[:n_train]] = 0
            codes[perm[n_train : n_train + n_val]] = 1
            codes[perm[n_train + n_val :]] = 2
        speaker.append(np.full(data_cfg.utts_per_speaker, k))
        utt.append(np.arange(data_cfg.utts_per_speaker))
        split.append(codes)
    return {
        "speaker": np.concatenate(speaker).astype(np.int64),
        "utt": np.concatenate(utt).astype(np.int64),
        "split": np.concatenate(split).astype(np.int8),
    }


def _specs_for(data_cfg, speakers: list[SpeakerParams], spk_idx, utt_idx) -> list[UtteranceSpec]:
    n_samples = n_samples_for(data_cfg.n_frames, data_cfg.sample_rate)
    return [
        sample_utterance(
            data_cfg.seed, int(k), int(u), speakers[int(k)], n_samples, data_cfg.sample_rate, int(k)
        )
        for k, u in zip(spk_idx, utt_idx)
    ]


def render_waveforms(data_cfg, split: str, indices) -> np.ndarray:
    """Re-render the waveforms of items ``indices`` of ``split`` (same order as the bundle).

    The bundle's items of a split follow `corpus_plan` order, so item i of ``bundle.test`` is
    ``render_waveforms(cfg, "test", [i])[0]``; its features equal ``logmel`` of that waveform
    (up to float rounding). Note: ``max_items`` subsets only the train split.

    Returns
    -------
    (len(indices), L) float32 at ``data_cfg.sample_rate``, L = (n_frames - 1) * hop + n_fft.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not accepted; choose one of {list(SPLITS)}")
    plan = corpus_plan(data_cfg)
    rows = np.flatnonzero(plan["split"] == SPLITS.index(split))
    if split == "train" and data_cfg.max_items:
        rows = rows[_train_subset(data_cfg, len(rows))]
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= len(rows)):
        raise ValueError(f"indices must be in [0, {len(rows)}) for split {split!r}")
    rows = rows[indices]
    speakers = corpus_speakers(data_cfg)
    specs = _specs_for(data_cfg, speakers, plan["speaker"][rows], plan["utt"][rows])
    n_samples = n_samples_for(data_cfg.n_frames, data_cfg.sample_rate)
    return _render(specs, speakers, n_samples, data_cfg.sample_rate)


def _train_subset(data_cfg, n_train: int) -> np.ndarray:
    """Sorted indices of the ``max_items`` training items kept (seeded), or all."""
    if not data_cfg.max_items or data_cfg.max_items >= n_train:
        return np.arange(n_train)
    perm = np.random.default_rng([data_cfg.seed, 6]).permutation(n_train)
    return np.sort(perm[: data_cfg.max_items])


# ----------------------------------------------------------------------------------------------
# generation and cache


def generate_corpus(data_cfg) -> dict[str, np.ndarray]:
    """Render the whole corpus and compute raw (unnormalised) log-mel features.

    Returns
    -------
    dict of arrays: ``x`` (N, n_frames, n_mels) float32 log-mel, ``y`` (N,) speaker,
    ``y_local`` (N, n_frames) phone, ``utt`` (N,), ``split`` (N,), and per speaker
    ``spk_<attribute>`` arrays (n_speakers + n_heldout_speakers,).
    """
    plan = corpus_plan(data_cfg)
    speakers = corpus_speakers(data_cfg)
    specs = _specs_for(data_cfg, speakers, plan["speaker"], plan["utt"])
    n_samples = n_samples_for(data_cfg.n_frames, data_cfg.sample_rate)
    x = np.empty((len(specs), data_cfg.n_frames, data_cfg.n_mels), dtype=np.float32)
    for lo in range(0, len(specs), _CHUNK):
        chunk = specs[lo : lo + _CHUNK]
        wave = _render_chunk(chunk, speakers, n_samples, data_cfg.sample_rate)
        x[lo : lo + len(chunk)] = logmel(wave, data_cfg.sample_rate, data_cfg.n_mels)
    y_local = np.stack([frame_phones(s, data_cfg.n_frames, data_cfg.sample_rate) for s in specs])
    arrays = {
        "x": x,
        "y": plan["speaker"],
        "y_local": y_local.astype(np.int16),
        "utt": plan["utt"],
        "split": plan["split"],
    }
    for name in ("sex", "f0_hz", "vtl", "tilt", "breathiness", "bw_scale", "jitter", "rate"):
        arrays[f"spk_{name}"] = np.array([getattr(sp, name) for sp in speakers])
    return arrays


def cache_path(data_cfg) -> Path:
    """``cache_dir/synthetic_speech-<sha256 of the generating parameters, 16 hex>.npz``."""
    return cache_file(data_cfg.cache_dir, "synthetic_speech", _generating_params(data_cfg))


def load_corpus(data_cfg) -> tuple[dict[str, np.ndarray], str]:
    """Arrays of the corpus from the cache, or generated (and cached).

    Returns
    -------
    (arrays, source) with source ``"cache"`` or ``"generated"``.
    """
    params = _generating_params(data_cfg)
    return load_or_build(cache_path(data_cfg), params, lambda: generate_corpus(data_cfg))


@DATASETS.register("synthetic_speech")
def synthetic_speech(data_cfg) -> DataBundle:
    """The synthetic multi-speaker corpus as a DataBundle (generated once, then cached).

    ``x`` is (n_frames, n_mels) log-mel normalised by train-split mean/std per mel bin
    (``info["feature"]`` has the stats); ``y`` the speaker id; ``y_local`` the phone per frame.
    """
    t0 = time.perf_counter()
    arrays, source = load_corpus(data_cfg)
    plan_split = arrays["split"]
    rows = {name: np.flatnonzero(plan_split == code) for code, name in enumerate(SPLITS)}
    rows["train"] = rows["train"][_train_subset(data_cfg, len(rows["train"]))]
    mean, std = feature_stats(arrays["x"][rows["train"]])

    def make(idx: np.ndarray) -> TensorDictDataset:
        return TensorDictDataset(
            x=torch.from_numpy(normalize(arrays["x"][idx], mean, std)),
            y=torch.from_numpy(arrays["y"][idx].astype(np.int64)),
            y_local=torch.from_numpy(arrays["y_local"][idx].astype(np.int64)),
        )

    speaker_attrs = {
        k[len("spk_") :]: [float(v) for v in arrays[k]] for k in arrays if k.startswith("spk_")
    }
    speaker_attrs["sex"] = [int(v) for v in speaker_attrs["sex"]]
    info = {
        "kind": "speech",
        "name": "synthetic_speech",
        "x_shape": (data_cfg.n_frames, data_cfg.n_mels),
        "n_classes": data_cfg.n_speakers,
        "n_local_classes": len(PHONES),
        "phone_names": list(PHONES),
        "phone_classes": list(PHONE_CLASS),
        "sample_rate": data_cfg.sample_rate,
        "feature": feature_info(data_cfg.sample_rate, data_cfg.n_mels, mean, std),
        "speaker_attrs": speaker_attrs,
        "n_speakers": data_cfg.n_speakers,
        "n_heldout_speakers": data_cfg.n_heldout_speakers,
        "heldout_speaker_ids": list(
            range(data_cfg.n_speakers, data_cfg.n_speakers + data_cfg.n_heldout_speakers)
        ),
        "utterance_ids": {
            name: [[int(arrays["y"][i]), int(arrays["utt"][i])] for i in idx]
            for name, idx in rows.items()
        },
        "binarized": False,
        "cache_file": str(cache_path(data_cfg)),
        "source": source,
        "load_seconds": time.perf_counter() - t0,
    }
    heldout = make(rows["heldout"]) if len(rows["heldout"]) else None
    return DataBundle(
        train=make(rows["train"]),
        val=make(rows["val"]),
        test=make(rows["test"]),
        heldout=heldout,
        info=info,
    )


__all__ = [
    "PHONES",
    "PHONE_CLASS",
    "SPLITS",
    "VERSION",
    "SpeakerParams",
    "UtteranceSpec",
    "cache_path",
    "corpus_plan",
    "corpus_speakers",
    "frame_phones",
    "generate_corpus",
    "load_corpus",
    "render_waveforms",
    "sample_speaker",
    "sample_utterance",
    "synthesize_utterance",
    "synthetic_speech",
]

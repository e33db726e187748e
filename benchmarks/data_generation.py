"""Benchmark of the synthetic speech corpus: generation time, cache load time, probe sanity.

Prints (1) the cold generation time of a corpus in a fresh temporary cache folder, (2) the time
of a second, cached load, and (3) how visible the ground truth is in the features: accuracy of a
logistic-regression probe (scikit-learn) predicting the speaker from one frame and from the
utterance-mean frame, and the phone from one frame, trained on the train split and scored on the
test split (chance levels printed beside).

Usage::

    python benchmarks/data_generation.py [--profile quick] [--frames 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def probe_accuracy(x_tr, y_tr, x_te, y_te, max_iter: int = 300) -> float:
    """Held-out accuracy of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(x_tr, y_tr)
    return float(clf.score(x_te, y_te))


def probes(bundle, max_frames: int = 20000, seed: int = 0) -> dict[str, float]:
    """Speaker-from-frame, speaker-from-utterance-mean and phone-from-frame probe accuracies."""
    rng = np.random.default_rng(seed)
    tr, te = bundle.train.tensors, bundle.test.tensors
    x_tr, x_te = tr["x"].numpy(), te["x"].numpy()  # (N, T, M)
    n_mels = x_tr.shape[-1]
    f_tr, f_te = x_tr.reshape(-1, n_mels), x_te.reshape(-1, n_mels)  # (N*T, M)
    spk_tr = np.repeat(tr["y"].numpy(), x_tr.shape[1])
    spk_te = np.repeat(te["y"].numpy(), x_te.shape[1])
    ph_tr, ph_te = tr["y_local"].numpy().reshape(-1), te["y_local"].numpy().reshape(-1)
    i_tr = rng.permutation(len(f_tr))[:max_frames]
    i_te = rng.permutation(len(f_te))[:max_frames]
    n_spk = bundle.info["n_classes"]
    return {
        "speaker_from_frame": probe_accuracy(f_tr[i_tr], spk_tr[i_tr], f_te[i_te], spk_te[i_te]),
        "speaker_from_utterance_mean": probe_accuracy(
            x_tr.mean(1), tr["y"].numpy(), x_te.mean(1), te["y"].numpy()
        ),
        "phone_from_frame": probe_accuracy(f_tr[i_tr], ph_tr[i_tr], f_te[i_te], ph_te[i_te]),
        "speaker_chance": 1.0 / n_spk,
        "phone_majority": float(np.bincount(ph_te).max() / len(ph_te)),
    }


def time_corpus(profile: str = "quick", seed: int = 0) -> tuple[dict, object]:
    """Cold generation (in a fresh temporary cache folder) and cached load of the corpus.

    Returns ``({"corpus", "cold_s", "cached_s", "items", "source_cold", "source_cached"},
    bundle)``; the corpus is the ``profile``'s speech preset (the quick one when that preset
    reads real data). Imports (scipy.signal, librosa) are paid before the timing.
    """
    import librosa.filters  # noqa: F401
    import scipy.signal  # noqa: F401

    from paperlib.config import load
    from paperlib.data import load_data

    with tempfile.TemporaryDirectory() as cache_dir:
        cfg = load(profile, "speech", data__cache_dir=cache_dir, data__seed=seed).data
        if cfg.name != "synthetic_speech":
            cfg = load("quick", "speech", data__cache_dir=cache_dir, data__seed=seed).data
        t = time.perf_counter()
        bundle = load_data(cfg)
        cold, source_cold = time.perf_counter() - t, bundle.info["source"]
        t = time.perf_counter()
        bundle = load_data(cfg)
        warm = time.perf_counter() - t
        d = cfg
        out = {
            "corpus": f"{d.n_speakers}+{d.n_heldout_speakers} speakers x {d.utts_per_speaker} "
            f"utts, {d.n_frames} frames, {d.n_mels} mels",
            "cold_s": cold,
            "cached_s": warm,
            "source_cold": source_cold,
            "source_cached": bundle.info["source"],
            "items": {k: len(getattr(bundle, k)) for k in ("train", "val", "test")},
        }
    return out, bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--frames", type=int, default=20000, help="frames per probe split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    # The feature code imports scipy.signal and librosa lazily; pay that once, outside the timing.
    import librosa.filters  # noqa: F401
    import scipy.signal  # noqa: F401

    from paperlib.config import load
    from paperlib.data import load_data

    print(f"imports: {time.perf_counter() - t0:.2f} s")
    with tempfile.TemporaryDirectory() as cache_dir:
        cfg = load(args.profile, "speech", data__cache_dir=cache_dir, data__seed=args.seed).data
        if cfg.name != "synthetic_speech":
            cfg = load("quick", "speech", data__cache_dir=cache_dir, data__seed=args.seed).data
        d = cfg
        print(
            f"corpus: {d.n_speakers} speakers + {d.n_heldout_speakers} held out, "
            f"{d.utts_per_speaker} utterances each, {d.n_frames} frames, {d.n_mels} mels"
        )
        t = time.perf_counter()
        bundle = load_data(cfg)
        cold = time.perf_counter() - t
        print(f"cold generation: {cold:.2f} s (source={bundle.info['source']})")
        t = time.perf_counter()
        bundle = load_data(cfg)
        warm = time.perf_counter() - t
        print(f"cached load:     {warm:.3f} s (source={bundle.info['source']})")
        sizes = {k: len(getattr(bundle, k)) for k in ("train", "val", "test")}
        sizes["heldout"] = len(bundle.heldout) if bundle.heldout is not None else 0
        print(f"items: {sizes}")
        t = time.perf_counter()
        acc = probes(bundle, args.frames, args.seed)
        print(f"probes ({time.perf_counter() - t:.1f} s, test split):")
        for key, value in acc.items():
            print(f"  {key:28s} {value:.3f}")


if __name__ == "__main__":
    main()

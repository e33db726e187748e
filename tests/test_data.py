"""Datasets: synthetic speech, embedded images, real-data loaders on small fake fixtures.

Sizes are the smoke preset or smaller (each reason on its line); the whole file runs in well
under a minute on 2 cores.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paperlib.config import load
from paperlib.data import load_data, make_loaders
from paperlib.data import speech as sp
from paperlib.data.features import (
    denormalize,
    invert_logmel,
    logmel,
    n_frames_for,
    n_samples_for,
    normalize,
)


def speech_cfg(tmp_path: Path, **over):
    return load("smoke", "speech", data__cache_dir=str(tmp_path / "cache"), **over).data


# ----------------------------------------------------------------------------------------------
# features


def test_logmel_matches_librosa_stft():
    import librosa

    wave = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    ours = logmel(wave, 16000, 24)  # (T, 24)
    spec = np.abs(librosa.stft(wave, n_fft=512, hop_length=160, win_length=400, center=False)) ** 2
    ref = np.log(np.maximum(librosa.feature.melspectrogram(S=spec, sr=16000, n_mels=24), 1e-10)).T
    assert ours.shape == ref.shape == (n_frames_for(4000, 16000), 24)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    # batched call = per-item calls
    batch = logmel(np.stack([wave, wave[::-1]]), 16000, 24)
    np.testing.assert_allclose(batch[0], ours, atol=1e-5)


def test_normalize_roundtrip_and_inverse_shape():
    x = np.random.default_rng(1).normal(-3, 2, size=(5, 7, 8)).astype(np.float32)
    mean, std = x.reshape(-1, 8).mean(0), x.reshape(-1, 8).std(0)
    np.testing.assert_allclose(denormalize(normalize(x, mean, std), mean, std), x, atol=1e-4)
    noise = np.random.default_rng(2).standard_normal(3200) * 0.1
    feats = logmel(noise, 16000, 16)
    wave = invert_logmel(feats, 16000, 16, n_iter=2)
    assert wave.ndim == 1 and np.isfinite(wave).all()
    assert len(wave) == n_samples_for(len(feats), 16000)
    # the level survives the inversion (no blow-up at the un-windowed edges)
    assert 0.5 < np.sqrt(np.mean(wave**2)) / 0.1 < 2.0


# ----------------------------------------------------------------------------------------------
# synthetic speech


def test_speech_shapes_labels_info(tmp_path):
    cfg = speech_cfg(tmp_path)
    b = load_data(cfg)
    info = b.info
    n_train, n_val, n_test = sp._split_counts(
        cfg.utts_per_speaker, cfg.val_fraction, cfg.test_fraction
    )
    assert len(b.train) == cfg.n_speakers * n_train
    assert len(b.val) == cfg.n_speakers * n_val and len(b.test) == cfg.n_speakers * n_test
    assert len(b.heldout) == cfg.n_heldout_speakers * cfg.utts_per_speaker
    item = b.train[0]
    assert item["x"].shape == (cfg.n_frames, cfg.n_mels) and item["x"].dtype.is_floating_point
    assert item["y_local"].shape == (cfg.n_frames,)
    assert info["kind"] == "speech" and info["x_shape"] == (cfg.n_frames, cfg.n_mels)
    assert info["n_classes"] == cfg.n_speakers and info["n_local_classes"] == len(sp.PHONES)
    assert len(info["feature"]["mean"]) == cfg.n_mels and info["sample_rate"] == 16000
    total = cfg.n_speakers + cfg.n_heldout_speakers
    assert all(len(v) == total for v in info["speaker_attrs"].values())
    f0 = np.array(info["speaker_attrs"]["f0_hz"])
    assert ((f0 >= 85) & (f0 <= 255)).all()
    y_local = b.train.tensors["y_local"]
    assert int(y_local.min()) >= 0 and int(y_local.max()) < len(sp.PHONES)
    # phones vary within an utterance
    assert (y_local.max(1).values != y_local.min(1).values).float().mean() > 0.9
    # train features are normalised with train statistics
    x = b.train.tensors["x"].numpy().reshape(-1, cfg.n_mels)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-3)


def test_speech_splits_disjoint(tmp_path):
    b = load_data(speech_cfg(tmp_path))
    ids = {k: {tuple(u) for u in v} for k, v in b.info["utterance_ids"].items()}
    for a in ids:
        for c in ids:
            if a < c:
                assert not ids[a] & ids[c], (a, c)
    train_spk = set(b.train.tensors["y"].tolist())
    held_spk = set(b.heldout.tensors["y"].tolist())
    assert not train_spk & held_spk
    assert set(b.test.tensors["y"].tolist()) <= train_spk
    assert held_spk == set(b.info["heldout_speaker_ids"])


def test_speech_determinism(tmp_path):
    a = sp.generate_corpus(speech_cfg(tmp_path))
    b = sp.generate_corpus(speech_cfg(tmp_path))
    c = sp.generate_corpus(speech_cfg(tmp_path, data__seed=1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["x"], c["x"])
    # a speaker does not depend on the corpus size
    assert (
        sp.sample_speaker(0, 3) == sp.corpus_speakers(speech_cfg(tmp_path, data__n_speakers=9))[3]
    )


def test_speech_cache_hit_and_corruption(tmp_path):
    cfg = speech_cfg(tmp_path)
    first = load_data(cfg)
    assert first.info["source"] == "generated"
    path = sp.cache_path(cfg)
    assert path.exists() and path.with_suffix(".json").exists()
    t0 = time.perf_counter()
    second = load_data(cfg)
    assert time.perf_counter() - t0 < 2.0
    assert second.info["source"] == "cache"
    np.testing.assert_array_equal(
        first.train.tensors["x"].numpy(), second.train.tensors["x"].numpy()
    )
    # truncate the cache: detected (warning names the file) and regenerated
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match=path.name):
        third = load_data(cfg)
    assert third.info["source"] == "generated"
    np.testing.assert_array_equal(
        first.train.tensors["x"].numpy(), third.train.tensors["x"].numpy()
    )
    # a flipped byte with the size intact is caught by the checksum
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="corrupted"):
        assert load_data(cfg).info["source"] == "generated"


def test_speech_max_items(tmp_path):
    b = load_data(speech_cfg(tmp_path, data__max_items=5))
    assert len(b.train) == 5


def test_render_waveforms_match_features(tmp_path):
    cfg = speech_cfg(tmp_path)
    b = load_data(cfg)
    waves = sp.render_waveforms(cfg, "test", [0, 3])
    assert waves.shape == (2, n_samples_for(cfg.n_frames, cfg.sample_rate))
    feat = b.info["feature"]
    raw = denormalize(b.test.tensors["x"][[0, 3]], feat["mean"], feat["std"])
    np.testing.assert_allclose(logmel(waves, cfg.sample_rate, cfg.n_mels), raw, atol=1e-2)
    w = sp.synthesize_utterance(sp.sample_speaker(0, 0), ["sil", "s", "iy"], [50, 80, 120])
    assert w.shape == (4000,) and np.isfinite(w).all() and np.abs(w).max() > 0.01
    with pytest.raises(ValueError, match="unknown phone"):
        sp.synthesize_utterance(sp.sample_speaker(0, 0), ["zz"], [50])


def test_speaker_and_phone_visible_in_frames(tmp_path):
    from sklearn.linear_model import LogisticRegression

    # 8 speakers x 10 utterances of 32 frames: enough frames for a linear probe, ~1 s to make
    cfg = speech_cfg(tmp_path, data__n_speakers=8, data__utts_per_speaker=10, data__n_frames=32,
                     data__n_mels=24, data__n_heldout_speakers=0)  # fmt: skip
    b = load_data(cfg)
    tr, te = b.train.tensors, b.test.tensors
    f_tr, f_te = tr["x"].reshape(-1, cfg.n_mels).numpy(), te["x"].reshape(-1, cfg.n_mels).numpy()
    spk_tr = tr["y"].repeat_interleave(cfg.n_frames).numpy()
    spk_te = te["y"].repeat_interleave(cfg.n_frames).numpy()
    acc_spk = LogisticRegression(max_iter=300).fit(f_tr, spk_tr).score(f_te, spk_te)
    assert acc_spk > 3 * (1 / cfg.n_speakers), acc_spk  # chance 0.125
    ph_tr, ph_te = tr["y_local"].reshape(-1).numpy(), te["y_local"].reshape(-1).numpy()
    acc_ph = LogisticRegression(max_iter=300).fit(f_tr, ph_tr).score(f_te, ph_te)
    majority = np.bincount(ph_te).max() / len(ph_te)
    assert acc_ph > majority + 0.3, (acc_ph, majority)


def test_smoke_preset_is_fast(tmp_path):
    cfg = speech_cfg(tmp_path)
    load_data(speech_cfg(tmp_path / "warm"))  # imports paid outside the timing
    t0 = time.perf_counter()
    load_data(cfg)
    assert time.perf_counter() - t0 < 5.0  # ~0.2 s alone; generous for a loaded machine


# ----------------------------------------------------------------------------------------------
# embedded images


def image_cfg(name: str, **over):
    return load("smoke", "images", data__name=name, **over).data


def test_mnist5k_digits_shapes_binarized_stratified():
    b = load_data(image_cfg("mnist5k"))
    assert len(b.train) + len(b.val) + len(b.test) == 5000
    assert b.train[0]["x"].shape == (1, 28, 28)
    x = b.train.tensors["x"]
    assert set(np.unique(x.numpy()).tolist()) == {0.0, 1.0}
    assert b.info["binarized"] and b.info["n_classes"] == 10 and b.info["n_local_classes"] is None
    for split in (b.train, b.val, b.test):
        counts = np.bincount(split.tensors["y"].numpy(), minlength=10)
        assert counts.max() - counts.min() <= 1  # 500 per class in, stratified out
    d = load_data(image_cfg("digits8x8"))
    assert d.train[0]["x"].shape == (1, 8, 8) and d.info["x_shape"] == (1, 8, 8)
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert len(load_data(image_cfg("digits8x8", data__max_items=50)).train) == 50


def test_make_loaders_batches(tmp_path):
    loaders = make_loaders(speech_cfg(tmp_path, data__batch_size=4))
    batch = next(iter(loaders["train"]))
    assert set(batch) == {"x", "y", "y_local"} and batch["x"].shape == (4, 16, 16)
    assert batch["y_local"].shape == (4, 16) and "heldout" in loaders
    img = next(iter(make_loaders(image_cfg("digits8x8", data__batch_size=8))["train"]))
    assert set(img) == {"x", "y"} and img["x"].shape == (8, 1, 8, 8)


# ----------------------------------------------------------------------------------------------
# real loaders on fake fixtures


def write_idx(path: Path, arr: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    data = header + arr.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def fake_mnist(folder: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    write_idx(
        folder / "train-images-idx3-ubyte.gz",
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
    )
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(
        folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    )
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(n_test) % 10).astype(np.uint8))


@pytest.fixture
def no_download(monkeypatch):
    monkeypatch.setenv("PAPERLIB_NO_DOWNLOAD", "1")


def test_mnist_fashion_from_idx(tmp_path, no_download):
    fake_mnist(tmp_path / "mnist")
    b = load_data(image_cfg("mnist", data__data_dir=str(tmp_path), data__val_fraction=0.25))
    assert len(b.test) == 20 and len(b.train) + len(b.val) == 40 and len(b.val) == 10
    assert b.train[0]["x"].shape == (1, 28, 28) and b.info["binarized"]
    fake_mnist(tmp_path / "fashion_mnist")
    assert len(load_data(image_cfg("fashion_mnist", data__data_dir=str(tmp_path))).test) == 20
    # a truncated file is a ValueError naming it
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        load_data(image_cfg("mnist", data__data_dir=str(tmp_path)))


def test_cifar10_binary(tmp_path, no_download):
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                 "data_batch_5.bin", "test_batch.bin"]:  # fmt: skip
        rec = rng.integers(0, 256, (10, 3073), dtype=np.uint8)
        rec[:, 0] = np.arange(10)
        (folder / name).write_bytes(rec.tobytes())
    b = load_data(image_cfg("cifar10", data__data_dir=str(tmp_path), data__val_fraction=0.2))
    assert b.train[0]["x"].shape == (3, 32, 32) and len(b.test) == 10 and len(b.val) == 10
    assert not b.info["binarized"] and float(b.train.tensors["x"].max()) <= 1.0
    (folder / "test_batch.bin").write_bytes(rec.tobytes()[:-7])
    with pytest.raises(ValueError, match="test_batch.bin"):
        load_data(image_cfg("cifar10", data__data_dir=str(tmp_path)))


def write_timit_utt(folder: Path, stem: str, seconds: float, rng) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * 16000)
    sf.write(
        folder / f"{stem}.WAV", rng.standard_normal(n) * 0.1, 16000, format="NIST", subtype="PCM_16"
    )
    half = n // 2
    (folder / f"{stem}.PHN").write_text(f"0 2000 h#\n2000 {half} aa\n{half} {n} s\n")


def test_timit_fixture(tmp_path, no_download):
    rng = np.random.default_rng(0)
    root = tmp_path / "timit"
    for spk in ("FAKE0", "MAKE1"):
        for i, stem in enumerate(["SA1", "SI1", "SX2", "SX3", "SX4"]):
            write_timit_utt(root / "TRAIN" / "DR1" / spk, stem, 0.5 + 0.1 * i, rng)
    write_timit_utt(root / "TEST" / "DR1" / "MDAB0", "SI9", 0.6, rng)  # a core-test speaker
    write_timit_utt(root / "TEST" / "DR1" / "MXYZ0", "SI8", 0.6, rng)  # not core test
    cfg = load("paper", "speech", data__data_dir=str(tmp_path), data__cache_dir=str(tmp_path / "c"),
               data__n_frames=16, data__n_mels=16, data__val_fraction=0.25,
               data__test_fraction=0.25).data  # fmt: skip
    b = load_data(cfg)
    assert b.info["n_classes"] == 2 and b.info["speakers"][-1] == "MDAB0"
    assert b.info["heldout_note"].startswith("standard")
    assert set(b.heldout.tensors["y"].tolist()) == {2}
    assert b.train[0]["x"].shape == (16, 16)
    phones = {b.info["phone_names"][i] for i in b.train.tensors["y_local"].unique().tolist()}
    assert phones <= {"h#", "aa", "s"} and "aa" in phones
    # 4 non-SA utterances per speaker: 2 train, 1 val, 1 test (SA1 excluded)
    assert len(b.info["speakers"]) == 3 and load_data(cfg).info["source"] == "cache"


def test_librispeech_fixture(tmp_path, no_download):
    rng = np.random.default_rng(0)
    for spk in ("19", "26", "32"):
        chap = tmp_path / "librispeech" / "dev-clean" / spk / "100"
        chap.mkdir(parents=True)
        for u in range(4):
            sf.write(chap / f"{spk}-100-{u:04d}.flac", rng.standard_normal(8000) * 0.1, 16000)
    cfg = load("paper", "speech", data__name="librispeech", data__data_dir=str(tmp_path),
               data__cache_dir=str(tmp_path / "c"), data__n_frames=16, data__n_mels=16,
               data__n_heldout_speakers=1, data__val_fraction=0.25, data__test_fraction=0.25).data  # fmt: skip
    b = load_data(cfg)
    assert b.info["n_classes"] == 2 and "y_local" not in b.train[0]
    assert set(b.heldout.tensors["y"].tolist()) == {2}


@pytest.mark.parametrize(
    "name,hint",
    [
        ("mnist", "yann.lecun.com"),
        ("fashion_mnist", "zalandoresearch"),
        ("cifar10", "cifar.html"),
        ("timit", "LDC93S1"),
        ("librispeech", "openslr.org/12"),
    ],  # fmt: skip
)
def test_missing_dataset_errors(tmp_path, no_download, name, hint):
    cfg = load("paper", "images", data__name=name, data__data_dir=str(tmp_path / "nowhere")).data
    with pytest.raises(FileNotFoundError) as err:
        load_data(cfg)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / name) in msg and hint in msg and "Expected layout" in msg


def test_sphere_fallback_parser(tmp_path, monkeypatch):
    from paperlib.data.real import read_sphere

    samples = (np.sin(np.arange(1600) / 5.0) * 8000).astype("<i2")
    header = "NIST_1A\n   1024\nsample_count -i 1600\nsample_rate -i 16000\nsample_n_bytes -i 2\n"
    header += "sample_byte_format -s2 01\nsample_coding -s3 pcm\nend_head\n"
    path = tmp_path / "X.WAV"
    path.write_bytes(header.encode().ljust(1024, b" ") + samples.tobytes())

    def refuse(*args, **kwargs):
        raise RuntimeError("libsndfile refused")

    monkeypatch.setattr(sf, "read", refuse)  # force the header parser
    wave, sr = read_sphere(path)
    assert sr == 16000 and np.allclose(wave * 32768, samples)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="X.WAV"):
        read_sphere(path)

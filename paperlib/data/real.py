"""Real datasets of the ``paper`` profile, read from ``data_cfg.data_dir`` (DESIGN section 3).

=================  ==========================================================================
name               expected layout under ``data_dir``
=================  ==========================================================================
``mnist``          ``mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
``fashion_mnist``  ``fashion_mnist/`` the same four IDX files
``cifar10``        ``cifar10/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (binary
                   version, no pickle), or ``cifar10/cifar-10-batches-py/`` (python version,
                   read with pickle: only use files you downloaded yourself)
``timit``          ``timit/`` in the LDC layout: ``TRAIN/DR*/<speaker>/<utt>.WAV`` (NIST SPHERE)
                   with ``.PHN`` beside; ``TEST/`` likewise (any letter case)
``librispeech``    ``librispeech/<subset>/<speaker>/<chapter>/*.flac`` (e.g. train-clean-100)
=================  ==========================================================================

MNIST, Fashion-MNIST and CIFAR-10 are downloaded into that folder when it is missing and the
network allows (official mirrors; each file's MD5 is checked against the published value; set
``PAPERLIB_NO_DOWNLOAD=1`` to forbid it). TIMIT (LDC93S1) is licensed and LibriSpeech large:
they are only read. A missing dataset raises FileNotFoundError naming the folder, the layout and
where to obtain it; a corrupted file raises ValueError naming the file.

Images: MNIST and Fashion-MNIST are binarized at 0.5 (as `paperlib.data.images`); CIFAR-10 is
kept 8-bit, scaled to [0, 1] (``info["binarized"] = False``). Official train/test splits; the
validation split is a stratified ``val_fraction`` of the official training set.

Speech: log-mel frames from `paperlib.data.features.logmel`, cut into non-overlapping chunks of
``n_frames`` (a shorter remainder is dropped). TIMIT: SA sentences excluded; the speakers of
TRAIN are the classes (their utterances split into train/val/test by ``val_fraction`` /
``test_fraction``, whole utterances per split), the 24 core-test speakers of TEST are the
``heldout`` split (all TEST speakers when none of the core-test speakers is present; stated in
``info["heldout_note"]``); ``y_local`` is the TIMIT phone (61 labels) at each frame's centre.
LibriSpeech: no phone labels (no ``y_local``); ``n_heldout_speakers`` speakers (seeded choice)
form ``heldout``; at most ``utts_per_speaker`` utterances per speaker are used. ``n_speakers``
is not used for real speech: every speaker of the split is a class. Features are cached like the
synthetic corpus (key: parameters plus the list of audio files with their sizes).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
import time
import urllib.request
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
    normalize,
)
from paperlib.data.images import binarize, image_bundle, stratified_splits
from paperlib.records import atomic_path
from paperlib.runtime import in_work_dir

# Bump when the real-speech feature pipeline changes (cache key).
REAL_VERSION = 1

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Official MD5 checksums of the .gz files (as published by the dataset pages / torchvision).
_IDX_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
_IDX_MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_CIFAR_BIN = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
              "data_batch_5.bin", "test_batch.bin"]  # fmt: skip

_SOURCES = {
    "mnist": "the official MNIST page (http://yann.lecun.com/exdb/mnist/) or the mirror "
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 binary version, "
    "cifar-10-binary.tar.gz, extracted)",
    "timit": "the Linguistic Data Consortium, catalogue LDC93S1 (https://catalog.ldc.upenn.edu/"
    "LDC93S1; licensed)",
    "librispeech": "https://www.openslr.org/12 (e.g. train-clean-100.tar.gz, extracted)",
}
_LAYOUTS = {
    "mnist": "mnist/train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]",
    "fashion_mnist": "fashion_mnist/ with the four IDX files named as for MNIST",
    "cifar10": "cifar10/cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin, test_batch.bin",
    "timit": "timit/TRAIN/DR1/FCJF0/SI1027.WAV (+ .PHN) ... and timit/TEST/...",
    "librispeech": "librispeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac",
}

# The 61 TIMIT phone labels of the .PHN files.
TIMIT_PHONES: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ax", "ax-h", "axr", "ay", "b", "bcl", "ch", "d", "dcl", "dh",
    "dx", "eh", "el", "em", "en", "eng", "epi", "er", "ey", "f", "g", "gcl", "h#", "hh", "hv",
    "ih", "ix", "iy", "jh", "k", "kcl", "l", "m", "n", "ng", "nx", "ow", "oy", "p", "pau", "pcl",
    "q", "r", "s", "sh", "t", "tcl", "th", "uh", "uw", "ux", "v", "w", "y", "z", "zh",
)  # fmt: skip
# The 24 speakers of the standard TIMIT core test set (2 male, 1 female per dialect region).
TIMIT_CORE_TEST: frozenset[str] = frozenset({
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0", "FPKT0", "MLLL0",
    "MTLS0", "FJLM0", "MBPM0", "MKLT0", "FNLP0", "MCMJ0", "MJDH0", "FMGD0", "MGRT0", "MNJM0",
    "FDHC0", "MJLN0", "MPAM0", "FMLD0",
})  # fmt: skip


def missing_error(name: str, folder: Path, detail: str = "") -> FileNotFoundError:
    """The FileNotFoundError of a missing dataset: folder, expected layout, where to get it."""
    msg = (
        f"dataset '{name}' not found in {folder}. Expected layout under data_dir: "
        f"{_LAYOUTS[name]}. Obtain it from {_SOURCES[name]} and set data.data_dir to the folder "
        f"that holds '{folder.name}'."
    )
    return FileNotFoundError(msg + (f" ({detail})" if detail else ""))


# ----------------------------------------------------------------------------------------------
# downloads (images only)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str, timeout: float = 20.0) -> None:
    """Download ``url`` to ``dest`` atomically, keeping it only if its MD5 equals ``md5``."""
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                fh.write(chunk)
        got = _md5(tmp)
        if got != md5:
            raise ValueError(f"download of {url} has MD5 {got}, expected {md5}; not kept")


def _downloads_allowed() -> bool:
    return os.environ.get("PAPERLIB_NO_DOWNLOAD", "0") in ("", "0")


def _try_download_idx(name: str, folder: Path) -> str:
    """Download the four IDX files of ``name``; '' on success, else the reason."""
    if not _downloads_allowed():
        return "download disabled by PAPERLIB_NO_DOWNLOAD"
    errors = []
    for base in _IDX_MIRRORS[name]:
        try:
            for fname, md5 in _IDX_MD5[name].items():
                if not (folder / fname).exists():
                    _download(base + fname, folder / fname, md5)
            return ""
        except Exception as err:  # network down, HTTP error, bad checksum
            errors.append(f"{base}: {type(err).__name__}: {err}")
    return "download failed: " + "; ".join(errors)


def _try_download_cifar(folder: Path) -> str:
    if not _downloads_allowed():
        return "download disabled by PAPERLIB_NO_DOWNLOAD"
    archive = folder / "cifar-10-binary.tar.gz"
    try:
        if not archive.exists():
            _download(_CIFAR_URL, archive, _CIFAR_MD5, timeout=60.0)
        out = folder / "cifar-10-batches-bin"
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():  # only the six expected regular files, by name
                base = Path(member.name).name
                if member.isfile() and base in _CIFAR_BIN:
                    data = tar.extractfile(member).read()
                    with atomic_path(out / base) as tmp:
                        tmp.write_bytes(data)
        return ""
    except Exception as err:
        return f"download failed: {type(err).__name__}: {err}"


# ----------------------------------------------------------------------------------------------
# IDX and CIFAR readers

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), e.g. MNIST's ``train-images-idx3-ubyte``.

    Layout: 2 zero bytes, a dtype code, the number of dimensions d, d big-endian uint32 sizes,
    then the data. Raises ValueError naming the file when it is truncated or malformed.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path} is truncated (header)")
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"IDX file {path} is truncated or corrupted: {len(raw) - header} data bytes, "
            f"expected {expected} for shape {shape}"
        )
    return np.frombuffer(raw[header:], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find_file(folder: Path, base: str) -> Path | None:
    for cand in (folder / base, folder / (base + ".gz")):
        if cand.is_file():
            return cand
    return None


def load_idx_dataset(name: str, folder: Path) -> dict[str, np.ndarray]:
    """The four arrays of an MNIST-style dataset from ``folder`` (downloading when allowed)."""
    missing = [b for b in IDX_FILES.values() if _find_file(folder, b) is None]
    detail = ""
    if missing and name in _IDX_MD5:
        detail = _try_download_idx(name, folder)
        missing = [b for b in IDX_FILES.values() if _find_file(folder, b) is None]
    if missing:
        raise missing_error(name, folder, (detail + "; " if detail else "") + f"missing {missing}")
    out = {key: read_idx(_find_file(folder, base)) for key, base in IDX_FILES.items()}
    for split in ("train", "test"):
        x, y = out[f"{split}_images"], out[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{folder}: {split} images {x.shape} and labels {y.shape} do not match "
                "(expected (N, H, W) and (N,))"
            )
    return out


def _official_bundle(
    x_train, y_train, x_test, y_test, data_cfg, name: str, extra: dict[str, Any]
) -> DataBundle:
    """Official train/test; val = stratified val_fraction of the official training set."""
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    n_tr = len(x_train)
    within = stratified_splits(y_train, data_cfg.val_fraction, 0.0, data_cfg.seed)
    splits = {"train": within["train"], "val": within["val"], "test": np.arange(n_tr, len(x))}
    return image_bundle(x, y, data_cfg, name, extra, splits=splits)


def _idx_images(data_cfg, name: str) -> DataBundle:
    folder = in_work_dir(data_cfg.data_dir) / name
    arr = load_idx_dataset(name, folder)
    # binarize at half intensity (127.5 / 255), (N, 1, 28, 28)
    x_tr = binarize(arr["train_images"], 255.0)[:, None]
    x_te = binarize(arr["test_images"], 255.0)[:, None]
    extra = {"source": str(folder), "threshold": 0.5}
    return _official_bundle(
        x_tr, arr["train_labels"], x_te, arr["test_labels"], data_cfg, name, extra
    )


@DATASETS.register("mnist")
def mnist(data_cfg) -> DataBundle:
    """MNIST (60k + 10k) from ``data_dir/mnist``; binarized at 0.5; (1, 28, 28)."""
    return _idx_images(data_cfg, "mnist")


@DATASETS.register("fashion_mnist")
def fashion_mnist(data_cfg) -> DataBundle:
    """Fashion-MNIST (60k + 10k) from ``data_dir/fashion_mnist``; binarized at 0.5; (1, 28, 28)."""
    return _idx_images(data_cfg, "fashion_mnist")


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: records of 1 label byte + 3072 bytes (3 x 32 x 32, RGB planes).

    Returns (x (N, 3, 32, 32) uint8, y (N,) int64); ValueError naming the file when its size
    is not a whole number of records or a label is out of 0..9.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % rec:
        raise ValueError(
            f"CIFAR-10 batch {path} is truncated or corrupted: {raw.size} bytes is not a "
            f"multiple of the {rec}-byte record"
        )
    table = raw.reshape(-1, rec)
    y = table[:, 0].astype(np.int64)
    if y.max() > 9:
        raise ValueError(f"CIFAR-10 batch {path} has labels outside 0..9 (corrupted?)")
    return table[:, 1:].reshape(-1, 3, 32, 32), y


def _read_cifar_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The python version is a pickle; read only files the user placed there themselves.
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")  # noqa: S301
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return x, np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as err:
        raise ValueError(f"cannot read CIFAR-10 python batch {path}: {err}") from err


@DATASETS.register("cifar10")
def cifar10(data_cfg) -> DataBundle:
    """CIFAR-10 (50k + 10k) from ``data_dir/cifar10``; 8-bit scaled to [0, 1]; (3, 32, 32)."""
    folder = in_work_dir(data_cfg.data_dir) / "cifar10"
    bin_dir, py_dir = folder / "cifar-10-batches-bin", folder / "cifar-10-batches-py"
    detail = ""
    if not bin_dir.is_dir() and not py_dir.is_dir():
        detail = _try_download_cifar(folder)
    if bin_dir.is_dir():
        missing = [f for f in _CIFAR_BIN if not (bin_dir / f).is_file()]
        if missing:
            raise missing_error("cifar10", folder, f"missing {missing} in {bin_dir}")
        parts = [read_cifar_bin(bin_dir / f) for f in _CIFAR_BIN]
    elif py_dir.is_dir():
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        missing = [f for f in names if not (py_dir / f).is_file()]
        if missing:
            raise missing_error("cifar10", folder, f"missing {missing} in {py_dir}")
        parts = [_read_cifar_py(py_dir / f) for f in names]
    else:
        raise missing_error("cifar10", folder, detail)
    x_tr = np.concatenate([p[0] for p in parts[:5]]).astype(np.float32) / 255.0
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    x_te, y_te = parts[5][0].astype(np.float32) / 255.0, parts[5][1]
    extra = {"source": str(folder), "levels": 256}
    return _official_bundle(x_tr, y_tr, x_te, y_te, data_cfg, "cifar10", extra)


# ----------------------------------------------------------------------------------------------
# audio


def read_sphere(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a NIST SPHERE file (TIMIT's .WAV): 1024-byte text header, then int16 PCM.

    Tries soundfile first (libsndfile reads SPHERE and RIFF); falls back to a header parser
    for uncompressed 16-bit PCM. Returns (float32 waveform in [-1, 1], sample rate).
    """
    import soundfile as sf

    path = Path(path)
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=False)
        return np.asarray(wave, dtype=np.float32).reshape(-1), int(sr)
    except Exception as sf_err:  # fall back to the tiny SPHERE parser below
        raw = path.read_bytes()
        if not raw.startswith(b"NIST_1A"):
            raise ValueError(f"cannot read audio file {path}: {sf_err}") from sf_err
        try:
            hsize = int(raw[8:16].strip())
            fields = {}
            for line in raw[16:hsize].decode("ascii", "replace").splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    fields[parts[0]] = parts[2]
            sr = int(fields["sample_rate"])
            n = int(fields["sample_count"])
            if int(fields.get("sample_n_bytes", 2)) != 2:
                raise ValueError("only 16-bit SPHERE is supported")
            order = "<" if fields.get("sample_byte_format", "01") == "01" else ">"
            data = np.frombuffer(raw[hsize : hsize + 2 * n], dtype=f"{order}i2")
            if len(data) != n:
                raise ValueError(f"{len(data)} of {n} samples present (truncated)")
        except (KeyError, ValueError) as err:
            raise ValueError(f"cannot read SPHERE file {path}: {err}") from err
        return data.astype(np.float32) / 32768.0, sr


def _load_wave(path: Path, sample_rate: int) -> np.ndarray:
    wave, sr = read_sphere(path)
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    return wave


def read_phn(path: Path, n_frames: int, sample_rate: int, file_rate: int = 16000) -> np.ndarray:
    """TIMIT phone id at each frame's centre from a .PHN file ("start end label" in samples).

    Frames outside every segment get "h#" (silence). ValueError names the file on a bad line or
    an unknown label.
    """
    hop, _, n_fft = frame_params(sample_rate, DEFAULT_HOP_MS, DEFAULT_WIN_MS)
    # frame centres in the .PHN file's sample clock
    centres = (np.arange(n_frames) * hop + n_fft / 2) * (file_rate / sample_rate)
    labels = np.full(n_frames, TIMIT_PHONES.index("h#"), dtype=np.int64)
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            start, end, label = int(parts[0]), int(parts[1]), parts[2]
            pid = TIMIT_PHONES.index(label)
        except (ValueError, IndexError) as err:
            raise ValueError(
                f"{path}:{lineno}: expected 'start end phone' with a TIMIT phone, got {line!r}"
            ) from err
        labels[(centres >= start) & (centres < end)] = pid
    return labels


def _ci_child(folder: Path, name: str) -> Path | None:
    """The child of ``folder`` called ``name`` in any letter case."""
    if not folder.is_dir():
        return None
    for child in folder.iterdir():
        if child.name.lower() == name.lower():
            return child
    return None


def _timit_root(folder: Path) -> Path | None:
    for cand in (folder, _ci_child(folder, "timit"), _ci_child(folder, "data")):
        if cand is not None and _ci_child(cand, "train") is not None:
            return cand
    return None


def _timit_utterances(split_dir: Path) -> dict[str, list[tuple[Path, Path | None]]]:
    """{speaker: [(wav, phn), ...]} of a TIMIT split folder, SA sentences excluded, sorted."""
    out: dict[str, list[tuple[Path, Path | None]]] = {}
    for region in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for spk in sorted(p for p in region.iterdir() if p.is_dir()):
            for wav in sorted(spk.iterdir()):
                if wav.suffix.lower() != ".wav" or wav.stem.upper().startswith("SA"):
                    continue
                phn = next(
                    (p for p in spk.iterdir() if p.stem == wav.stem and p.suffix.lower() == ".phn"),
                    None,
                )
                out.setdefault(spk.name.upper(), []).append((wav, phn))
    return out


def _file_signature(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f}:{f.stat().st_size}\n".encode())
    return h.hexdigest()


def _featurize(
    items: list[tuple[int, Path, Path | None, int]], data_cfg, with_phones: bool
) -> dict[str, np.ndarray]:
    """Chunks of n_frames log-mel frames from (speaker id, audio, phn, split code) items."""
    xs, ys, locs, splits, utts = [], [], [], [], []
    for u, (spk, wav_path, phn, code) in enumerate(items):
        wave = _load_wave(wav_path, data_cfg.sample_rate)
        hop, _, n_fft = frame_params(data_cfg.sample_rate)
        if len(wave) < n_fft:
            continue
        feats = logmel(wave, data_cfg.sample_rate, data_cfg.n_mels)  # (T, M)
        n_chunks = len(feats) // data_cfg.n_frames
        if n_chunks == 0:
            continue
        t_used = n_chunks * data_cfg.n_frames
        xs.append(feats[:t_used].reshape(n_chunks, data_cfg.n_frames, -1))
        if with_phones:
            if phn is None:
                raise FileNotFoundError(f"phone file (.PHN) for {wav_path} not found beside it")
            lab = read_phn(phn, t_used, data_cfg.sample_rate)
            locs.append(lab.reshape(n_chunks, data_cfg.n_frames).astype(np.int16))
        ys.append(np.full(n_chunks, spk, dtype=np.int64))
        splits.append(np.full(n_chunks, code, dtype=np.int8))
        utts.append(np.full(n_chunks, u, dtype=np.int64))
    if not xs:
        raise ValueError(
            f"no audio file in {data_cfg.data_dir} is long enough for n_frames={data_cfg.n_frames}"
        )
    arrays = {
        "x": np.concatenate(xs),
        "y": np.concatenate(ys),
        "split": np.concatenate(splits),
        "utt": np.concatenate(utts),
    }
    if with_phones:
        arrays["y_local"] = np.concatenate(locs)
    return arrays


def _split_utterances(n: int, data_cfg, rng: np.random.Generator) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) of one speaker's n utterances (whole utterances)."""
    n_val = int(round(data_cfg.val_fraction * n))
    n_test = int(round(data_cfg.test_fraction * n))
    if n - n_val - n_test < 1:  # keep at least one training utterance per speaker
        n_test = max(0, min(n_test, n - 1))
        n_val = max(0, min(n_val, n - 1 - n_test))
    codes = np.zeros(n, dtype=np.int8)
    perm = rng.permutation(n)
    codes[perm[:n_val]] = 1
    codes[perm[n_val : n_val + n_test]] = 2
    return codes


def _speech_bundle(
    arrays: dict[str, np.ndarray], data_cfg, n_classes: int, extra: dict[str, Any]
) -> DataBundle:
    """Normalise with train statistics and wrap the splits (train / val / test / heldout)."""
    rows = {name: np.flatnonzero(arrays["split"] == code)
            for code, name in enumerate(("train", "val", "test", "heldout"))}  # fmt: skip
    if data_cfg.max_items and data_cfg.max_items < len(rows["train"]):
        keep = np.random.default_rng([data_cfg.seed, 6]).permutation(len(rows["train"]))
        rows["train"] = rows["train"][np.sort(keep[: data_cfg.max_items])]
    if not len(rows["train"]):
        raise ValueError(f"no training chunk found under {data_cfg.data_dir}")
    mean, std = feature_stats(arrays["x"][rows["train"]])
    has_local = "y_local" in arrays

    def make(idx: np.ndarray) -> TensorDictDataset:
        t = {
            "x": torch.from_numpy(normalize(arrays["x"][idx], mean, std)),
            "y": torch.from_numpy(arrays["y"][idx].astype(np.int64)),
        }
        if has_local:
            t["y_local"] = torch.from_numpy(arrays["y_local"][idx].astype(np.int64))
        return TensorDictDataset(**t)

    info = {
        "kind": "speech",
        "x_shape": (data_cfg.n_frames, data_cfg.n_mels),
        "n_classes": n_classes,
        "sample_rate": data_cfg.sample_rate,
        "feature": feature_info(data_cfg.sample_rate, data_cfg.n_mels, mean, std),
        "binarized": False,
        "split_sizes": {k: len(v) for k, v in rows.items()},
        **extra,
    }
    return DataBundle(
        train=make(rows["train"]),
        val=make(rows["val"]),
        test=make(rows["test"]),
        heldout=make(rows["heldout"]) if len(rows["heldout"]) else None,
        info=info,
    )


def _cached_features(name: str, data_cfg, files: list[Path], build) -> tuple[dict, str]:
    params = {
        "dataset": name,
        "version": REAL_VERSION,
        "root": str(in_work_dir(data_cfg.data_dir).resolve()),
        "files": _file_signature(files),
        "seed": data_cfg.seed,
        "n_frames": data_cfg.n_frames,
        "n_mels": data_cfg.n_mels,
        "sample_rate": data_cfg.sample_rate,
        "val_fraction": data_cfg.val_fraction,
        "test_fraction": data_cfg.test_fraction,
        "n_heldout_speakers": data_cfg.n_heldout_speakers,
        "utts_per_speaker": data_cfg.utts_per_speaker,
    }
    return load_or_build(cache_file(data_cfg.cache_dir, name, params), params, build)


@DATASETS.register("timit")
def timit(data_cfg) -> DataBundle:
    """TIMIT: TRAIN speakers as classes (utterance splits), core-test speakers held out."""
    t0 = time.perf_counter()
    folder = in_work_dir(data_cfg.data_dir) / "timit"
    root = _timit_root(folder)
    if root is None:
        raise missing_error("timit", folder, "no TRAIN folder found")
    train_spk = _timit_utterances(_ci_child(root, "train"))
    test_dir = _ci_child(root, "test")
    test_spk = _timit_utterances(test_dir) if test_dir is not None else {}
    if not train_spk:
        raise missing_error("timit", folder, f"no speaker folder with .WAV files in {root}/TRAIN")
    core = {s: v for s, v in test_spk.items() if s in TIMIT_CORE_TEST}
    note = "standard 24-speaker core test set"
    if not core:
        core = test_spk
        note = "no core-test speaker found: all TEST speakers are held out"
    speakers = sorted(train_spk)
    held = sorted(core)
    rng = np.random.default_rng([data_cfg.seed, 7])
    items: list[tuple[int, Path, Path | None, int]] = []
    for k, spk in enumerate(speakers):
        utts = train_spk[spk][: data_cfg.utts_per_speaker]
        codes = _split_utterances(len(utts), data_cfg, rng)
        items += [(k, w, p, int(c)) for (w, p), c in zip(utts, codes)]
    for j, spk in enumerate(held):
        items += [(len(speakers) + j, w, p, 3) for w, p in core[spk]]
    files = [w for _, w, _, _ in items]
    arrays, source = _cached_features(
        "timit", data_cfg, files, lambda: _featurize(items, data_cfg, True)
    )
    extra = {
        "name": "timit",
        "n_local_classes": len(TIMIT_PHONES),
        "phone_names": list(TIMIT_PHONES),
        "speakers": speakers + held,
        "heldout_speaker_ids": list(range(len(speakers), len(speakers) + len(held))),
        "heldout_note": note,
        "source": source,
        "load_seconds": time.perf_counter() - t0,
    }
    return _speech_bundle(arrays, data_cfg, len(speakers), extra)


@DATASETS.register("librispeech")
def librispeech(data_cfg) -> DataBundle:
    """LibriSpeech: speaker labels only; ``n_heldout_speakers`` speakers held out (seeded)."""
    t0 = time.perf_counter()
    folder = in_work_dir(data_cfg.data_dir) / "librispeech"
    if not folder.is_dir():
        raise missing_error("librispeech", folder)
    base = _ci_child(folder, "LibriSpeech") or folder
    # {speaker: [flac, ...]} over every subset folder (or speaker folders directly under base)
    per_spk: dict[str, list[Path]] = {}
    for flac in sorted(base.rglob("*.flac")):
        per_spk.setdefault(flac.parent.parent.name, []).append(flac)
    if not per_spk:
        raise missing_error("librispeech", folder, "no .flac file found")
    names = sorted(per_spk, key=lambda s: (len(s), s))
    if data_cfg.n_heldout_speakers >= len(names):
        raise ValueError(
            f"data.n_heldout_speakers={data_cfg.n_heldout_speakers} but only {len(names)} "
            f"speakers in {folder}; lower it"
        )
    rng = np.random.default_rng([data_cfg.seed, 8])
    perm = rng.permutation(len(names))
    held = sorted(names[i] for i in perm[: data_cfg.n_heldout_speakers])
    speakers = [s for s in names if s not in set(held)]
    items: list[tuple[int, Path, Path | None, int]] = []
    for k, spk in enumerate(speakers):
        files = per_spk[spk]
        files = [
            files[i] for i in np.sort(rng.permutation(len(files))[: data_cfg.utts_per_speaker])
        ]
        codes = _split_utterances(len(files), data_cfg, rng)
        items += [(k, f, None, int(c)) for f, c in zip(files, codes)]
    for j, spk in enumerate(held):
        items += [
            (len(speakers) + j, f, None, 3) for f in per_spk[spk][: data_cfg.utts_per_speaker]
        ]
    files = [f for _, f, _, _ in items]
    arrays, source = _cached_features(
        "librispeech", data_cfg, files, lambda: _featurize(items, data_cfg, False)
    )
    extra = {
        "name": "librispeech",
        "n_local_classes": None,
        "speakers": speakers + held,
        "heldout_speaker_ids": list(range(len(speakers), len(speakers) + len(held))),
        "source": source,
        "load_seconds": time.perf_counter() - t0,
    }
    return _speech_bundle(arrays, data_cfg, len(speakers), extra)


__all__ = [
    "TIMIT_CORE_TEST",
    "TIMIT_PHONES",
    "cifar10",
    "fashion_mnist",
    "librispeech",
    "load_idx_dataset",
    "missing_error",
    "mnist",
    "read_cifar_bin",
    "read_idx",
    "read_phn",
    "read_sphere",
    "timit",
]

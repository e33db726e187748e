"""Evaluation: EER, probes, minibatch I(x;z), encoding a split, classifiers and conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from paperlib.data import TensorDictDataset
from paperlib.evaluation import conversion
from paperlib.evaluation import evaluate as ev
from paperlib.models.dsae import DSAE

T, N_MELS, N_SPEAKERS, N_PHONES = 6, 5, 3, 4


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clusters(n_per: int, n_classes: int, dim: int, spread: float, seed: int = 0):
    """Gaussian clusters around well separated directions; spread 0 gives exact copies."""
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(n_classes, dim)
    y = np.repeat(np.arange(n_classes), n_per)
    return centres[y] + spread * rng.standard_normal((len(y), dim)), y


def _speech_loader(n: int = 24, batch_size: int = 5, seed: int = 0) -> DataLoader:
    """Fake speech: speaker offsets on all frames, phone offsets per frame (x, y, y_local)."""
    g = torch.Generator().manual_seed(seed)
    speaker_mu = 3.0 * torch.randn(N_SPEAKERS, N_MELS, generator=g)
    phone_mu = 3.0 * torch.randn(N_PHONES, N_MELS, generator=g)
    y = torch.arange(n) % N_SPEAKERS
    y_local = torch.randint(N_PHONES, (n, T), generator=g)
    x = speaker_mu[y][:, None] + phone_mu[y_local] + 0.3 * torch.randn(n, T, N_MELS, generator=g)
    return DataLoader(TensorDictDataset(x=x, y=y, y_local=y_local), batch_size=batch_size)


def _dsae() -> DSAE:
    torch.manual_seed(0)
    return DSAE(n_mels=N_MELS, z_dim=3, s_dim=2, hidden=8, n_frames=T)


# ------------------------------------------------------------------------------------------ EER
def test_eer_zero_for_separable_embeddings():
    emb, y = _clusters(10, 4, 8, spread=0.1)
    assert ev.eer(emb, y) == pytest.approx(0.0, abs=1e-9)


def test_eer_half_for_random_embeddings():
    rng = np.random.default_rng(0)
    emb, y = rng.standard_normal((200, 8)), rng.integers(0, 5, 200)
    assert abs(ev.eer(emb, y) - 0.5) < 0.1


def test_eer_subsampled_pairs_and_errors():
    emb, y = _clusters(20, 3, 6, spread=0.1)
    assert ev.eer(emb, y, max_pairs=300, seed=1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="both"):
        ev.eer(emb[:5], np.zeros(5))


def test_eer_lies_between_brute_force_bounds():
    """At every threshold min(FPR, FNR) <= EER <= max(FPR, FNR) somewhere on the crossing:
    the interpolated EER lies between max_t min(FPR, FNR) and min_t max(FPR, FNR)."""
    emb, y = _clusters(15, 3, 4, spread=6.0, seed=2)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(len(y), k=1)
    scores, target = (unit[i] * unit[j]).sum(1), y[i] == y[j]
    fpr = np.array([(scores[~target] >= t).mean() for t in scores])
    fnr = np.array([(scores[target] < t).mean() for t in scores])
    value = ev.eer(emb, y, center=False)  # the brute force above scores un-centred vectors
    assert np.max(np.minimum(fpr, fnr)) - 1e-9 <= value <= np.min(np.maximum(fpr, fnr)) + 1e-9
    assert 0.05 < value < 0.5  # a noisy but informative case


def test_eer_centring_removes_a_common_offset():
    # 8 speakers around random centres; a common offset comparable to their spread bends the
    # angles from the origin unevenly and doubles the un-centred EER; centring undoes any offset
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 20)
    emb = rng.standard_normal((8, 8))[y] + 0.3 * rng.standard_normal((160, 8))
    offset = 2.0 * np.ones(8)
    centred = ev.eer(emb + offset, y)
    assert centred == pytest.approx(ev.eer(emb, y))  # invariant to the offset
    assert centred == pytest.approx(ev.eer(emb - emb.mean(0), y, center=False))
    assert ev.eer(emb + offset, y, center=False) > 1.5 * centred


# --------------------------------------------------------------------------------------- probes
def test_linear_probe_separable_and_random():
    train, ytr = _clusters(20, 4, 6, spread=0.5, seed=0)
    test, yte = _clusters(20, 4, 6, spread=0.5, seed=1)
    assert ev.linear_probe(train, ytr, test, yte) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    acc = ev.linear_probe(
        rng.standard_normal((300, 6)),
        rng.integers(0, 4, 300),
        rng.standard_normal((300, 6)),
        rng.integers(0, 4, 300),
    )
    assert abs(acc - 0.25) < 0.1
    with pytest.raises(ValueError, match="two classes"):
        ev.linear_probe(train, np.zeros(len(train)), test, yte)


# ------------------------------------------------------------------------------ minibatch I(x;z)
def test_minibatch_mi_distinct_posteriors_is_log_n():
    rng = np.random.default_rng(0)
    n, d = 50, 4
    mu = 5.0 * rng.standard_normal((n, d))
    logvar = np.full((n, d), math.log(1e-6))
    z = mu + 1e-3 * rng.standard_normal((n, d))
    assert ev.aggregate_mi_xz(z, mu, logvar, chunk=7) == pytest.approx(math.log(n), abs=1e-3)


def test_minibatch_mi_identical_posteriors_is_zero():
    rng = np.random.default_rng(0)
    n, d = 40, 3
    mu, logvar = np.zeros((n, d)), np.zeros((n, d))
    z = rng.standard_normal((n, d))
    assert ev.aggregate_mi_xz(z, mu, logvar) == pytest.approx(0.0, abs=1e-9)


def test_minibatch_mi_chunking_is_exact():
    rng = np.random.default_rng(1)
    mu, logvar = rng.standard_normal((33, 2)), 0.3 * rng.standard_normal((33, 2))
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((33, 2))
    full = ev.aggregate_mi_xz(z, mu, logvar, chunk=1000)
    assert ev.aggregate_mi_xz(z, mu, logvar, chunk=4) == pytest.approx(full, rel=1e-10)
    assert 0.0 <= full <= math.log(33)


# ----------------------------------------------------------------------------- encode a split
def test_encode_dataset_keys_and_shapes():
    model = _dsae()
    enc = ev.encode_dataset(model, _speech_loader(n=12), max_items=11)
    n = 11
    expect = {
        "z_mean": (n, 3),
        "z_logvar": (n, 3),
        "z_sample": (n, 3),
        "s_pooled": (n, 2),
        "s_frames": (n, 2),
        "frame_index": (n,),
        "y": (n,),
        "y_local_at_frame": (n,),
        "kl_z": (n,),
        "kl_s": (n,),
        "log_px": (n,),
        "elbo": (n,),
    }
    assert {k: v.shape for k, v in enc.items()} == expect
    assert ((enc["frame_index"] >= 0) & (enc["frame_index"] < T)).all()
    np.testing.assert_allclose(enc["elbo"], enc["log_px"] - enc["kl_z"] - enc["kl_s"], rtol=1e-5)
    assert model.training  # mode restored
    rd = ev.rate_distortion(enc)
    assert rd["rate_nats"] == pytest.approx(enc["kl_z"].mean())
    assert rd["distortion_nats"] == pytest.approx(-enc["log_px"].mean())


def test_encode_dataset_picks_phone_at_chosen_frame():
    loader = _speech_loader(n=10)
    enc = ev.encode_dataset(_dsae(), loader)
    y_local = torch.cat([b["y_local"] for b in loader]).numpy()
    np.testing.assert_array_equal(
        enc["y_local_at_frame"], y_local[np.arange(10), enc["frame_index"]]
    )


def test_probe_and_disentanglement_keys():
    model = _dsae()
    enc_tr = ev.encode_dataset(model, _speech_loader(n=24, seed=0))
    enc_te = ev.encode_dataset(model, _speech_loader(n=12, seed=0))
    pm = ev.probe_metrics(enc_tr, enc_te)
    assert set(pm) == {
        "probe_acc",
        "probe_acc_sample",
        "probe_acc_knn",
        "probe_chance",
        "kl_z_nats",
    }
    dm = ev.disentanglement_matrix(enc_tr, enc_te)
    assert set(dm) == {
        "speaker_probe_acc_z",
        "speaker_probe_acc_s",
        "speaker_chance",
        "phone_probe_acc_z",
        "phone_probe_acc_s",
        "phone_chance",
    }
    assert all(0.0 <= v <= 1.0 for v in dm.values())


def test_posthoc_mi_uses_fresh_estimator():
    pytest.importorskip("paperlib.estimators.mi")
    enc = ev.encode_dataset(_dsae(), _speech_loader(n=24))
    out = ev.posthoc_mi(enc, steps=5, seed=0)
    assert set(out) == {"mi_xz_nats", "mi_xz_bound_nats", "mi_zs_nats"}
    assert 0.0 <= out["mi_xz_nats"] <= out["mi_xz_bound_nats"] == pytest.approx(math.log(24))
    assert math.isfinite(out["mi_zs_nats"])


def test_nll_is_finite_and_consistent():
    model = _dsae()
    loader = _speech_loader(n=8)
    torch.manual_seed(0)
    nats = ev.nll_nats(model, loader, n_samples=4)
    torch.manual_seed(0)
    bpd = ev.nll_bits_per_dim(model, loader, n_samples=4)
    # bits/dim = nats / (T * n_mels * ln 2), same samples
    assert bpd == pytest.approx(nats / (T * N_MELS * math.log(2)), rel=1e-6)


# ----------------------------------------------------------------- classifiers and generation
def test_voice_conversion_metrics():
    loader = _speech_loader(n=24)
    spk = conversion.train_speaker_classifier(loader)
    phone = conversion.train_phone_classifier(loader, context=1)
    assert spk.score(torch.cat([b["x"] for b in loader]), torch.cat([b["y"] for b in loader])) > 0.9
    out = conversion.voice_conversion(_dsae(), loader, spk, phone, n_pairs=10, seed=0, batch_size=4)
    assert set(out) == {
        "vc_speaker_acc",
        "vc_speaker_leak",
        "vc_phone_acc",
        "real_speaker_acc",
        "real_phone_acc",
        "recon_speaker_acc",
        "recon_phone_acc",
    }
    assert all(0.0 <= v <= 1.0 for v in out.values())
    assert out["real_speaker_acc"] > 0.9 and out["real_phone_acc"] > 0.9
    ex = conversion.voice_conversion_examples(_dsae(), loader, n_examples=2)
    assert ex["converted"].shape == ex["content"].shape == (2, T, N_MELS)
    assert (ex["content_speaker"] != ex["speaker_speaker"]).all()


class _ImageModel(torch.nn.Module):
    """A stand-in with encode and sample: z = class-mean image, samples copy it."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        z = x.flatten(1)
        return z, torch.zeros_like(z)

    def sample(self, z, generator=None):
        return z.view(-1, 1, 4, 4)


def test_class_consistency_with_copying_sampler():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    protos = torch.stack([torch.eye(4), torch.eye(4).flip(0)])[:, None]  # (2, 1, 4, 4)
    x = (protos[y] + 0.1 * torch.rand(40, 1, 4, 4, generator=g)).clamp(0, 1)
    loader = DataLoader(TensorDictDataset(x=x, y=y), batch_size=16)
    clf = ev.train_image_classifier(loader)
    acc = ev.class_consistency(_ImageModel(), loader, clf, n_per_item=2, generator=g)
    assert acc == pytest.approx(1.0)


class _ClassKeepingModel(_ImageModel):
    """z = the image; samples are the class prototype nearest to z (a decoder that uses z)."""

    def __init__(self, protos):
        super().__init__()
        self.protos = protos.flatten(1)

    def sample(self, z, generator=None):
        nearest = torch.cdist(z, self.protos).argmin(1)
        return self.protos[nearest].view(-1, 1, 4, 4)


def test_class_consistency_shuffled_z_is_the_floor():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    protos = torch.rand(4, 1, 4, 4, generator=g).round()
    x = (protos[y] + 0.05 * torch.rand(200, 1, 4, 4, generator=g)).clamp(0, 1)
    loader = DataLoader(TensorDictDataset(x=x, y=y), batch_size=50)
    clf = ev.train_image_classifier(loader)
    model = _ClassKeepingModel(protos)
    assert ev.class_consistency(model, loader, clf, n_per_item=4, generator=g) == 1.0
    floor = ev.class_consistency(model, loader, clf, n_per_item=4, z_source="shuffled", seed=1)
    # another item's z keeps its class only when the two items share one: ~ sum_k p_k^2 = 0.25
    assert 0.1 < floor < 0.4
    with pytest.raises(ValueError, match="z_source"):
        ev.class_consistency(model, loader, clf, z_source="other")


def test_posthoc_mi_zs_interval_on_all_rows():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1200, 2))
    s = np.concatenate(
        [
            np.sinh(2.0 * (0.9 * z[:, :1] + 0.436 * rng.standard_normal((1200, 1)))),
            rng.standard_normal((1200, 1)),
        ],
        1,
    )
    out = ev.posthoc_mi_zs({"z_sample": z, "s_pooled": s}, seed=0)
    assert out["mi_zs_rows"] == 1200  # every row held out once
    assert out["mi_zs_nats_low"] < out["mi_zs_nats"] < out["mi_zs_nats_high"]
    truth = -0.5 * math.log(1 - 0.9**2 / (0.9**2 + 0.436**2))  # corr of z_1 and s_1 before sinh
    assert out["mi_zs_nats_low"] > 0.5 * truth and out["mi_zs_nats"] < 1.2 * truth, (out, truth)
    with pytest.raises(ValueError, match="s_frames"):
        ev.posthoc_mi_zs({"z_sample": z}, s_key="s_frames")


def test_describe_regime_says_whether_cmi_has_something_to_remove():
    shared = {
        "mi_zs_nats": 0.41,
        "mi_zs_nats_low": 0.30,
        "mi_zs_nats_high": 0.52,
        "speaker_probe_acc_s": 0.11,
        "speaker_chance": 0.016,
    }
    text = ev.describe_regime(shared)
    assert text == (
        "under mi, z and s share 0.41 [0.30, 0.52] nats (bootstrap interval over one run's "
        "rows); s predicts the speaker at 0.11 (chance 0.016): cmi has something to remove"
    )
    nothing = {**shared, "mi_zs_nats": 0.02, "mi_zs_nats_low": -0.05, "mi_zs_nats_high": 0.09}
    assert ev.describe_regime(nothing).endswith("cmi has nothing to remove")
    with pytest.raises(ValueError, match="mi_zs_nats"):
        ev.describe_regime({"probe_acc": 0.5})


# ----------------------------------------------------------------------- floors per experiment
@pytest.mark.parametrize("experiment_name", ["speech", "images"])
def test_floors_keys_and_values(experiment_name):
    from paperlib import config
    from paperlib.data import load_data, make_loaders
    from paperlib.studies import references

    cfg = config.load("smoke", experiment_name)
    bundle = load_data(cfg.data)
    clf = references.fit_classifiers(cfg, bundle)
    fl = references.floors(cfg, bundle, clf)
    assert all("@" in k and k.split("@")[1] in references.REFERENCES for k in fl)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    n = cfg.eval.max_items
    train = ev.collect_arrays(loaders["train"], n, ("y",))
    test = ev.collect_arrays(loaders["test"], n, ("x", "y"))
    # chance: the most frequent training label, scored on the test labels
    assert fl["probe_acc@chance"] == pytest.approx(ev._chance_accuracy(train["y"], test["y"]))
    if experiment_name == "images":
        assert fl["class_consistency@ceiling"] == fl["probe_acc@raw_input"]
        assert fl["probe_acc@raw_input"] == pytest.approx(clf.image.score(test["x"], test["y"]))
    else:
        assert fl["eer@chance"] == 0.5 and 0.0 <= fl["eer@random_init"] <= 1.0
        assert fl["probe_acc@raw_input"] == pytest.approx(clf.speaker.score(test["x"], test["y"]))
    # random init is rebuilt from the seed: the same floors again
    assert references.floors(cfg, bundle, clf) == fl
    assert 0.0 <= fl["probe_acc@random_init"] <= 1.0


def test_regime_over_seeds_reads_the_t_interval_not_averaged_bootstrap_bounds():
    from paperlib import config
    from paperlib.stats import t_interval
    from paperlib.studies.experiment import ExperimentResult

    res = ExperimentResult(cfg=config.load("smoke", "speech"), seeds=[3, 4, 5])
    v = [0.80, 0.60, 0.68]
    res.metrics = {
        "mi": {
            "mi_zs_nats": v,
            "mi_zs_nats_low": [x - 0.05 for x in v],  # each seed's bootstrap over rows
            "mi_zs_nats_high": [x + 0.05 for x in v],
        }
    }
    means = res.means()["mi"]
    _, low, high = t_interval(v)
    assert (means["mi_zs_nats_low"], means["mi_zs_nats_high"]) == pytest.approx((low, high))
    assert means["mi_zs_nats_seeds"] == 3
    assert f"[{low:.2f}, {high:.2f}] nats (95 % t-interval over 3 seeds)" in ev.describe_regime(
        means
    )
    summary = res.summary()["mi"]  # the metrics.json body: the bounds are not averaged
    assert summary["mi_zs_nats"]["low"] == pytest.approx(low)
    assert math.isnan(summary["mi_zs_nats_low"]["mean"])


def test_experiment_result_paired_differences():
    from paperlib import config
    from paperlib.studies.experiment import ExperimentResult

    res = ExperimentResult(cfg=config.load("smoke", "speech"), seeds=[3, 4, 5])
    res.metrics = {
        "elbo": {"probe_acc": [0.40, 0.42, 0.41]},
        "mi": {"probe_acc": [0.50, 0.55, 0.52]},
        "cmi": {"probe_acc": [0.52, 0.56, 0.55]},
    }
    out = res.paired()
    assert out["cmi - mi"]["probe_acc"]["mean"] == pytest.approx(0.02)
    assert out["cmi - elbo"]["probe_acc"]["n"] == 3
    assert out["cmi - mi"]["probe_acc"]["low"] < 0.02 < out["cmi - mi"]["probe_acc"]["high"]


def test_the_knn_probe_reads_what_a_linear_probe_cannot_and_chooses_k_on_training_rows_only():
    from paperlib.evaluation.evaluate import KNN_K, knn_probe, linear_probe

    rng = np.random.default_rng(0)
    # the label is the sign of x1 * x2 (XOR of quadrants): no line separates it
    x = rng.uniform(-1, 1, size=(1200, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    tr, te = slice(0, 800), slice(800, None)
    assert linear_probe(x[tr], y[tr], x[te], y[te]) < 0.65
    acc, k = knn_probe(x[tr], y[tr], x[te], y[te])
    assert acc > 0.9 and k in KNN_K
    # the test split chooses nothing: other test labels leave k as it was
    acc_shuffled, k_shuffled = knn_probe(x[tr], y[tr], x[te], rng.permutation(y[te]))
    assert k_shuffled == k and acc_shuffled < 0.65
    with pytest.raises(ValueError, match="two classes"):
        knn_probe(x[tr], np.zeros(800), x[te], y[te])

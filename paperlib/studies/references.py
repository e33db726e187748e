"""Floors and references: what a metric is worth beside chance, an untrained model, the raw input
and the evaluating classifier itself.

Computed once per experiment, beside the runs (``ExperimentResult.compute_floors``), with the
classifiers that every run of the experiment shares (`fit_classifiers`): a speaker and a phone
classifier on real utterances (voice conversion), or a class classifier on real images (class
consistency). `REFERENCES` names the references; `floors` returns ``"<metric>@<reference>"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paperlib import runtime
from paperlib.config import Config
from paperlib.data import DataBundle, make_loaders
from paperlib.evaluation import conversion, evaluate
from paperlib.models import build_model


@dataclass
class Classifiers:
    """Classifiers trained once on real data, shared by every run of an experiment."""

    speaker: Any = None
    phone: Any = None
    image: Any = None


def fit_classifiers(cfg: Config, bundle: DataBundle) -> Classifiers:
    """Speaker and phone classifiers (speech) or a class classifier (images) on real training data."""
    loaders = make_loaders(cfg.data, bundle, seed=0)
    if bundle.info["kind"] == "speech":
        clf = Classifiers(speaker=conversion.train_speaker_classifier(loaders["train"]))
        if bundle.info.get("n_local_classes"):
            clf.phone = conversion.train_phone_classifier(loaders["train"])
        return clf
    if bundle.info["kind"] == "image":
        return Classifiers(image=evaluate.train_image_classifier(loaders["train"]))
    return Classifiers()


# Class consistency: at least this many test items, each with CLASS_CONSISTENCY_SAMPLES samples
# (500 x 4 = 2000 samples: standard error below 0.011 at any accuracy, against ~0.03 for the
# earlier 128 x 1).
CLASS_CONSISTENCY_ITEMS = 500
CLASS_CONSISTENCY_SAMPLES = 4

# Floors and ceilings are stored as "<metric>@<reference>", reference one of:
REFERENCES: dict[str, str] = {
    "chance": "chance: always the most frequent training label (EER: 0.5)",
    "random_init": "random init: the same architecture untrained, same probe",
    "raw_input": "raw input: logistic regression on utterance-mean log-mel frames or pixels",
    "ceiling": "ceiling: the evaluating classifier on real test data",
    "shuffled_z": "shuffled z: samples from another item's z (mean over runs)",
}


def floors(
    cfg: Config,
    bundle: DataBundle,
    classifiers: Classifiers | None = None,
    seeds: list[int] | None = None,
    split: str = "test",
) -> dict[str, float]:
    """Floors and ceilings to put beside the metrics, computed once per experiment.

    Keys are ``"<metric>@<reference>"`` with the references of `REFERENCES`:

    - ``@chance``: ``probe_acc``, ``probe_acc_sample``, ``probe_acc_knn``, ``speaker_probe_acc_s``,
      ``phone_probe_acc_z``, ``vc_speaker_acc``, ``vc_phone_acc``, ``class_consistency``
      (always the most frequent training label), ``eer`` (0.5);
    - ``@random_init``: the model of `cfg` built with each seed in `seeds` (default
      ``[cfg.train.seed]``) and not trained, encoded like a trained run and probed by the same
      probes (``probe_acc``, ``probe_acc_sample``, ``probe_acc_knn``, speech also ``eer`` and
      the disentanglement probes); the mean over seeds;
    - ``@raw_input``: ``probe_acc`` (and beside ``probe_acc_knn``) from a logistic regression
      on the raw input (speech: the
      utterance-mean log-mel frame -> speaker; images: pixels -> class), speech also ``eer``
      of centred utterance-mean frames on the held-out speakers;
    - ``@ceiling``: ``class_consistency`` (the image classifier on real test images, which is
      also ``probe_acc@raw_input``), ``vc_speaker_acc`` and ``vc_phone_acc`` (the speaker and
      phone classifiers on real test utterances).

    The per-run floor ``class_consistency@shuffled_z`` needs a trained decoder and comes from
    `evaluate_run`.

    Parameters
    ----------
    cfg : the experiment's base Config.
    bundle : its data.
    classifiers : from `fit_classifiers` (fitted here when None).
    seeds : seeds of the random-init models.
    split : the evaluated split.
    """
    classifiers = classifiers if classifiers is not None else fit_classifiers(cfg, bundle)
    seeds = list(seeds) if seeds is not None else [cfg.train.seed]
    if not seeds:
        raise ValueError("floors: seeds must name at least one seed (or be None)")
    loaders = make_loaders(cfg.data, bundle, seed=seeds[0])
    out = _random_init_floors(cfg, bundle, loaders, seeds, split)
    _add_raw_input_references(out, cfg, bundle, loaders, classifiers, split)
    return out


def _random_init_floors(
    cfg: Config, bundle: DataBundle, loaders, seeds: list[int], split: str
) -> dict[str, float]:
    """The ``@chance`` probe floors (of the first seed) and the ``@random_init`` floors (mean over
    `seeds`) of `floors`."""
    n = cfg.eval.max_items
    kind = bundle.info["kind"]
    out: dict[str, float] = {}
    # random init: build exactly as `train` does, then evaluate without fitting
    per_seed: dict[str, list[float]] = {}
    for seed in seeds:
        runtime.seed_everything(seed)
        model = build_model(cfg.model, bundle.info).eval()
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        enc_tr = evaluate.encode_dataset(model, loaders["train"], max_items=n, generator=gen)
        enc_te = evaluate.encode_dataset(model, loaders[split], max_items=n, generator=gen)
        got = evaluate.probe_metrics(enc_tr, enc_te, seed=seed)
        if seed == seeds[0]:
            out["probe_acc@chance"] = got["probe_chance"]
            out["probe_acc_sample@chance"] = got["probe_chance"]
            out["probe_acc_knn@chance"] = got["probe_chance"]
        got = {k: got[k] for k in ("probe_acc", "probe_acc_sample", "probe_acc_knn")}
        if kind == "speech":
            dis = evaluate.disentanglement_matrix(enc_tr, enc_te, seed=seed)
            if seed == seeds[0]:
                out["speaker_probe_acc_s@chance"] = dis["speaker_chance"]
                if "phone_chance" in dis:
                    out["phone_probe_acc_z@chance"] = dis["phone_chance"]
            got.update({k: v for k, v in dis.items() if not k.endswith("_chance")})
            if "heldout" in loaders:
                held = evaluate.encode_dataset(
                    model, loaders["heldout"], max_items=n, generator=gen
                )
                got["eer"] = evaluate.eer(held["z_mean"], held["y"], seed=seed)
        for k, v in got.items():
            per_seed.setdefault(k, []).append(v)
    out.update({f"{k}@random_init": float(np.mean(v)) for k, v in per_seed.items()})
    return out


def _add_raw_input_references(
    out: dict[str, float],
    cfg: Config,
    bundle: DataBundle,
    loaders,
    classifiers: Classifiers,
    split: str,
) -> None:
    """Add the ``@raw_input`` and ``@ceiling`` references of `floors` to `out`, and the chance
    levels that follow from the probe chance already in `out`."""
    n = cfg.eval.max_items
    kind = bundle.info["kind"]
    if kind == "speech":
        test = evaluate.collect_arrays(loaders[split], n, ("x", "y"))
        if classifiers.speaker is not None:
            acc = classifiers.speaker.score(test["x"], test["y"])
            out["probe_acc@raw_input"] = out["probe_acc_knn@raw_input"] = acc
            out["vc_speaker_acc@ceiling"] = acc
            out["vc_speaker_acc@chance"] = out["probe_acc@chance"]
        if classifiers.phone is not None:
            frames = evaluate.collect_arrays(loaders[split], min(n, 500), ("x", "y_local"))
            out["vc_phone_acc@ceiling"] = classifiers.phone.score(frames["x"], frames["y_local"])
            if "phone_probe_acc_z@chance" in out:
                out["vc_phone_acc@chance"] = out["phone_probe_acc_z@chance"]
        out["eer@chance"] = 0.5
        if "heldout" in loaders:
            held = evaluate.collect_arrays(loaders["heldout"], n, ("x", "y"))
            out["eer@raw_input"] = evaluate.eer(held["x"].mean(axis=1), held["y"])
    elif kind == "image" and classifiers.image is not None:
        test = evaluate.collect_arrays(loaders[split], n, ("x", "y"))
        acc = classifiers.image.score(test["x"], test["y"])
        out["probe_acc@raw_input"] = out["probe_acc_knn@raw_input"] = acc
        out["class_consistency@ceiling"] = acc
        out["class_consistency@chance"] = out["probe_acc@chance"]

"""Evaluating one trained run: every metric of DESIGN section 4 that applies to its data.

`evaluate_run` is what `paperlib.studies.experiment` calls after `train_run`: encodings, probes,
the information metrics (post-hoc I(z; s), the penalty's target read by the other critic family,
the training critic's own reading), then the speech or image metrics. Each section's wall
seconds go into the metrics (``eval_seconds_<section>``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from paperlib.config import Config
from paperlib.data import DataBundle, make_loaders
from paperlib.estimators import instrument
from paperlib.evaluation import conversion, evaluate
from paperlib.progress import Stopwatch
from paperlib.studies.references import (
    CLASS_CONSISTENCY_ITEMS,
    CLASS_CONSISTENCY_SAMPLES,
    Classifiers,
)
from paperlib.training.regularizers import grid_of


def evaluate_run(
    model,
    cfg: Config,
    bundle: DataBundle,
    classifiers: Classifiers,
    split: str = "test",
    critic: torch.nn.Module | None = None,
    other: dict[str, Any] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
    """Every metric of DESIGN section 4 that applies to this dataset, on `split`.

    Post-hoc I(z; s_1:T) (``mi_zs_nats`` with ``mi_zs_nats_low`` / ``_high``) is estimated on
    the encoded *training* split (up to ``eval.max_items`` rows, cross-fitted, bootstrap
    interval; `evaluate.posthoc_mi_zs`) by a fresh set critic on the whole sequence s_1:T, the
    quantity the training critic estimates; ``mi_zs_pooled_nats`` is the same on s averaged
    over the sequence (a lower bound). A few hundred test rows would leave these too noisy.
    The bounds are this run's bootstrap over rows; over seeds, the tables and metrics.json use
    the t-interval of the per-seed estimates (`ExperimentResult.summary`), never averaged bounds.
    With the run's training `critic` (cmi), ``mi_zs_critic_nats`` is that critic's own
    estimate on the `split` rows it never trained on (`evaluate.critic_mi_zs`). Class consistency uses 500 test
    items x 4 samples and comes with its per-run floor ``class_consistency@shuffled_z``. The
    EER is on centred embeddings (`evaluate.eer`). `other` is the run's saved last-monitor
    critic of the other family (`train.History.other_family`): when it was fitted as this
    evaluation would fit its own, it is read instead of fitting a second one
    (``mi_zs_target_from_monitor`` 1.0).

    Returns
    -------
    (metrics, encodings) where encodings holds the encoded ``train`` and `split` sets.
    """
    seed = cfg.train.seed
    loaders = make_loaders(cfg.data, bundle, seed=seed)
    n = cfg.eval.max_items
    torch.manual_seed(seed)  # the posterior samples drawn while encoding
    gen = torch.Generator().manual_seed(seed)
    # each section's wall seconds go into the metrics (eval_seconds_<section>; issue 22)
    clock = Stopwatch()
    with clock("encode"):
        enc = {
            name: evaluate.encode_dataset(
                model, loaders[name], max_items=n, generator=gen, sequences=True
            )
            for name in ("train", split)
        }
    m: dict[str, float] = {}
    with clock("probes"):
        m.update(evaluate.probe_metrics(enc["train"], enc[split], seed=seed))
    m.update(evaluate.rate_distortion(enc[split]))
    m.update(_information_metrics(model, cfg, loaders, enc, split, critic, other, clock))
    for e in enc.values():  # the sequences are large (images: N x H W x Ds) and used only here
        e.pop("s_seq")
    if bundle.info["kind"] == "speech":
        m.update(_speech_metrics(model, cfg, loaders, enc, split, classifiers, gen, clock))
    elif bundle.info["kind"] == "image":
        m.update(_image_metrics(model, cfg, loaders, split, classifiers, clock))
    m.update(clock.metrics("eval_seconds"))
    return m, enc


def _information_metrics(model, cfg, loaders, enc, split, critic, other, clock) -> dict[str, float]:
    """I(x;z) of the encoded `split`; post-hoc I(z;s) on the training encodings; the penalty's
    target read by the other critic family; the training critic's own reading (cmi)."""
    seed, n = cfg.train.seed, cfg.eval.max_items
    m: dict[str, float] = {}
    e = enc[split]
    m["mi_xz_nats"] = evaluate.aggregate_mi_xz(e["z_sample"], e["z_mean"], e["z_logvar"])
    m["mi_xz_bound_nats"] = math.log(len(e["z_sample"]))
    with clock("posthoc_mi_zs"):
        m.update(evaluate.posthoc_mi_zs(enc["train"], seed=seed, s_key="s_seq"))
        pooled = evaluate.posthoc_mi_zs(enc["train"], seed=seed, s_key="s_pooled")
    m.update({k.replace("mi_zs_nats", "mi_zs_pooled_nats"): v for k, v in pooled.items()})
    # the penalty's target (I(z; s_window) or I(z; s_1:T)) read by the other critic family,
    # trained on a pool of encodings of four fifths of the training items, stopped early on
    # the last fifth, read on the `split` encodings
    x_train = _items_x(loaders["train"].dataset, n).to(evaluate.model_device(model, None))
    z_out, s_out = torch.as_tensor(enc[split]["z_sample"]), torch.as_tensor(enc[split]["s_seq"])
    fit = other_fit_settings(cfg, model)
    with clock("other_family"):
        # the run's last monitor may have fitted this very critic on these items and weights
        critic_o = saved_other_critic(other, fit, len(x_train), z_out.shape[1], s_out.shape[2])
        reuse = critic_o is not None
        if not reuse:
            critic_o = fit_other_family(model, x_train, fit, z_out.shape[1], s_out.shape[2], seed)
        reading = instrument.read_other(critic_o, z_out, s_out, seed=seed)
    for key, name in (("", "nats"), ("_low", "low"), ("_high", "high"), ("_nwj", "nwj")):
        m[f"mi_zs_target_nats{key}"] = reading[name]
    m["mi_zs_target_from_monitor"] = float(reuse)
    if critic is not None:
        with clock("training_critic"):
            m.update(evaluate.critic_mi_zs(critic, enc[split], seed=seed))
    return m


def other_fit_settings(cfg: Config, model) -> dict[str, Any]:
    """How evaluation fits the other family for this run (`instrument.fit_other`'s settings:
    the target, sizes and evaluation's budget), besides its rows and seed."""
    return dict(
        critic_pairs=cfg.objective.critic_pairs, grid=grid_of(model),
        window=cfg.objective.critic_window, lr=cfg.objective.critic_lr,
        hidden=cfg.objective.critic_hidden,
        **instrument.evaluation_budget(cfg.objective.critic_pairs, cfg.eval.posthoc_critic_steps),
    )  # fmt: skip


def fit_other_family(model, x_train, fit: dict[str, Any], z_dim: int, s_dim: int, seed: int):
    """Evaluation's own other-family critic: `fit` (`other_fit_settings`) on a pool of posterior
    samples of four fifths of the training items `x_train`, stopped early on the last fifth."""
    sample, select = instrument.fit_and_select(model, x_train, samples=instrument.POOL_SAMPLES)
    return instrument.fit_other(
        sample=sample, z_dim=z_dim, s_dim=s_dim, seed=seed, select=select, **fit
    )


def saved_other_critic(
    other: dict[str, Any] | None, fit: dict[str, Any], items: int, z_dim: int, s_dim: int
):
    """The saved last-monitor critic (`train.History.other_family`) rebuilt, when it was fitted
    as `fit` on as many training items; else None."""
    if other is None or not _fitted_alike(other, fit, items):
        return None
    critic = instrument.other_critic(
        fit["critic_pairs"], z_dim, s_dim, fit["grid"], fit["hidden"], fit["window"]
    )
    critic.load_state_dict(other["state"])
    return critic.eval()


def _fitted_alike(other: dict[str, Any], fit: dict[str, Any], items: int) -> bool:
    """Whether a saved other-family critic (`train.History.other_family`) was fitted as
    evaluation fits its own: the same target, sizes and budget, on as many training items (the
    first of the split in both)."""

    def plain(d: dict[str, Any]) -> dict[str, Any]:  # a saved tuple may come back a list
        return {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in d.items()}

    return int(other["items"]) == items and plain(other["fit"]) == plain(fit)


def _speech_metrics(model, cfg, loaders, enc, split, classifiers, gen, clock) -> dict[str, float]:
    """Speech only: EER on held-out speakers, the disentanglement matrix, NLL, voice conversion."""
    seed, n = cfg.train.seed, cfg.eval.max_items
    m: dict[str, float] = {}
    if "heldout" in loaders:
        with clock("eer"):
            held = evaluate.encode_dataset(model, loaders["heldout"], max_items=n, generator=gen)
            m["eer"] = evaluate.eer(held["z_mean"], held["y"], seed=seed)
    with clock("probes"):
        m.update(evaluate.disentanglement_matrix(enc["train"], enc[split], seed=seed))
    with clock("nll"):
        m["nll_nats"] = evaluate.nll_nats(
            model, loaders[split], n_samples=cfg.eval.iw_samples, max_items=min(n, 256)
        )
    if classifiers.speaker is not None:
        with clock("voice_conversion"):
            m.update(
                conversion.voice_conversion(
                    model,
                    loaders[split],
                    classifiers.speaker,
                    classifiers.phone,
                    n_pairs=min(n, 200),
                    seed=seed,
                )  # fmt: skip
            )
    return m


def _image_metrics(model, cfg, loaders, split, classifiers, clock) -> dict[str, float]:
    """Images only: NLL in bits per dimension; class consistency and its shuffled-z floor."""
    seed, n = cfg.train.seed, cfg.eval.max_items
    m: dict[str, float] = {}
    with clock("nll"):
        m["nll_bits_per_dim"] = evaluate.nll_bits_per_dim(
            model, loaders[split], n_samples=cfg.eval.iw_samples, max_items=min(n, 256)
        )
    if classifiers.image is not None:
        for key, source in (
            ("class_consistency", "own"),
            ("class_consistency@shuffled_z", "shuffled"),
        ):
            with clock("class_consistency"):
                m[key] = evaluate.class_consistency(
                    model, loaders[split], classifiers.image,
                    n_per_item=CLASS_CONSISTENCY_SAMPLES,
                    generator=torch.Generator(device=evaluate.model_device(model, None)).manual_seed(seed),
                    max_items=CLASS_CONSISTENCY_ITEMS, z_source=source, seed=seed,
                )  # fmt: skip
    return m


def _items_x(dataset, n: int) -> torch.Tensor:
    """``x`` of the first `n` items of a dataset, stacked."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors["x"][:n]
    return torch.stack([dataset[i]["x"] for i in range(min(n, len(dataset)))])

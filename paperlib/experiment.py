"""Experiments: train every objective for every seed, evaluate, collect metrics.

This is what the notebooks call, so that they stay a parameters cell plus a few lines::

    res = experiment.run_experiment(cfg, ["elbo", "mi", "cmi"], seeds=[0, 1, 2])
    res.metrics  # {objective: {metric: [value per seed]}}  -> records.write_metrics

Training runs are resumable: each (objective, weights, seed, config) has a run folder under
``runs/`` holding its checkpoints, so a notebook killed mid-way picks up where it stopped, and
a finished run is not trained again.

Weights. ``alpha`` and ``beta`` come from the validation sweep of notebook 03, handed over
explicitly: 03 writes ``results/03_information_plane/selected_weights.json`` with its
provenance (profile, steps, seeds, a hash of the experiment's base config, commit), and 01/02
read it with `load_selection`, which refuses a file made for another profile, step count or
configuration (DESIGN section 2, "Fair comparison"). Passing numbers overrides it. Nothing that
a run produces is written back into the package.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlib import conversion, evaluate, instrument, records, runtime, stats
from paperlib.config import Config
from paperlib.data import DataBundle, load_data, make_loaders
from paperlib.models import build_model
from paperlib.progress import Stopwatch
from paperlib.regularizers import grid_of

#: the name of notebook 03's selection file (in its results folder)
SELECTION_FILE = "selected_weights.json"

# Used only when no selection is given for an (experiment, objective): a documented starting
# point, not a tuned value. alpha > 1 actively raises I(x;z) through the bounded minibatch
# estimate (DESIGN section 2).
FALLBACK_WEIGHTS: dict[str, dict[str, float]] = {
    "elbo": {"alpha": 0.0, "beta": 0.0},
    "mi": {"alpha": 2.0, "beta": 0.0},
    "cmi": {"alpha": 2.0, "beta": 2.0},
    "cmi_club": {"alpha": 2.0, "beta": 2.0},
}


def weights_for(
    experiment: str,
    objective: str,
    alpha: float | None = None,
    beta: float | None = None,
    selection: dict[str, Any] | None = None,
) -> dict[str, float]:
    """alpha and beta for one objective: explicit values, else `selection`, else the fallback.

    ``selection`` is ``{objective: {"alpha", "beta"}}`` from `load_selection`. ``elbo`` always
    uses alpha = beta = 0, and ``mi`` beta = 0, whatever is passed.
    """
    recorded = (selection or {}).get(objective, {})
    fallback = FALLBACK_WEIGHTS.get(objective, {"alpha": 0.0, "beta": 0.0})
    w = {k: float(recorded.get(k, fallback[k])) for k in ("alpha", "beta")}
    if objective != "elbo" and alpha is not None:
        w["alpha"] = float(alpha)
    if objective in ("cmi", "cmi_club") and beta is not None:
        w["beta"] = float(beta)
    if objective == "elbo":
        w = {"alpha": 0.0, "beta": 0.0}
    elif objective == "mi":
        w["beta"] = 0.0
    return w


def base_hash(cfg: Config) -> str:
    """A hash of what a weight selection depends on: `cfg` without the objective's name,
    weights and the training seed (those vary inside a sweep)."""
    neutral = cfg.replace(
        objective__name="elbo",
        objective__alpha=0.0,
        objective__beta=0.0,
        train__seed=0,
        data__data_dir="",  # where the files are found is not what was selected on
        data__cache_dir="",
    )
    return config_hash(neutral)


def write_selection(
    path: str | Path,
    selections: dict[str, dict[str, Any]],
    configs: dict[str, Config],
    seeds: list[int],
) -> Path:
    """Notebook 03: write the chosen weights of every experiment with their provenance."""
    profiles = {c.profile for c in configs.values()}
    if len(profiles) != 1:
        raise ValueError(f"write_selection: configs of several profiles {sorted(profiles)}")
    payload = {
        "profile": profiles.pop(),
        "split": "val",
        "seeds": list(seeds),
        "git_commit": records.git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "experiments": {
            name: {
                "steps": configs[name].train.steps,
                "base_hash": base_hash(configs[name]),
                "weights": {o: w for o, w in sel.items() if not o.startswith("_")},
                "evidence": sel.get("_evidence", {}),
            }
            for name, sel in selections.items()
        },
    }
    records.write_json(path, payload)
    return Path(path)


def load_selection(path: str | Path, cfg: Config) -> dict[str, dict[str, float]]:
    """Notebooks 01/02: the weights notebook 03 chose for ``cfg.experiment``, checked.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist (run notebook 03 first, or pass alpha and beta).
    ValueError
        When the file was made for another profile, experiment, step count or base config.
    """
    path = Path(path)
    fix = f"run `./run_all.sh --profile {cfg.profile} --only 03` first, or pass alpha and beta"
    if not path.exists():
        raise FileNotFoundError(f"no weight selection at {path}: {fix}")
    data = json.loads(path.read_text())
    entry = data.get("experiments", {}).get(cfg.experiment)
    problems = []
    if data.get("profile") != cfg.profile:
        problems.append(f"profile {data.get('profile')!r} (this run: {cfg.profile!r})")
    if entry is None:
        problems.append(f"no entry for experiment {cfg.experiment!r}")
    else:
        if entry["steps"] != cfg.train.steps:
            problems.append(f"{entry['steps']} training steps (this run: {cfg.train.steps})")
        if entry["base_hash"] != base_hash(cfg):
            problems.append(
                f"base config {entry['base_hash']} (this run: {base_hash(cfg)}; data, model, "
                "objective or training settings differ)"
            )
    if problems:
        raise ValueError(f"the weight selection {path} was made for " + "; ".join(problems) +
                         f"; {fix}")  # fmt: skip
    return {o: {k: float(v[k]) for k in ("alpha", "beta")} for o, v in entry["weights"].items()}


def run_config(base: Config, objective: str, seed: int, **weights: float) -> Config:
    """The Config of one training run: `base` with this objective, its weights and seed."""
    w = {"alpha": 0.0, "beta": 0.0, **weights}
    return base.replace(
        objective__name=objective,
        objective__alpha=w["alpha"],
        objective__beta=w["beta"],
        train__seed=seed,
    )


def objective_grid(
    experiment: str,
    objectives: list[str],
    alpha: float | None = None,
    beta: float | None = None,
    selection: dict[str, dict[str, float]] | None = None,
) -> list[tuple[str, float, float]]:
    """(objective, alpha, beta) per objective, with the weights of `weights_for`."""
    out = []
    for o in objectives:
        w = weights_for(experiment, o, alpha, beta, selection)
        out.append((o, w["alpha"], w["beta"]))
    return out


def grid_configs(
    base: Config, grid: list[tuple[str, float, float]], seeds: list[int]
) -> list[Config]:
    """The Config of every training run of `grid` x `seeds`, objective-major.

    `run_experiment` and `sweep` train exactly these, in this order; ``paperlib.plan`` lists
    them for the launcher, so the two cannot drift apart.
    """
    return [run_config(base, o, s, alpha=a, beta=b) for o, a, b in grid for s in seeds]


def config_hash(cfg: Config) -> str:
    """A short stable hash of a Config (names run folders): its `Config.identity` (fields added
    later that the run never reads left out, `paperlib.config.ADDED_LATER`) without the
    progress flag."""
    d = cfg.identity()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("progress",)}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def run_dir_for(cfg: Config, root: str | Path | None = None) -> Path:
    """``runs/<experiment>/<profile>/<objective>_a<alpha>_b<beta>_s<seed>_<hash>``."""
    root = Path(root) if root is not None else runtime.work_dir() / "runs"
    o = cfg.objective
    name = f"{o.name}_a{o.alpha:g}_b{o.beta:g}_s{cfg.train.seed}_{config_hash(cfg)}"
    return root / cfg.experiment / cfg.profile / name


def train_run(
    cfg: Config,
    bundle: DataBundle,
    run_root: str | Path | None = None,
    run_dir: str | Path | None = None,
):
    """Build the model and objective named by `cfg` and fit them (resuming when possible).

    Runs are resumable and cached under ``runs/<experiment>/<profile>/`` (`run_dir_for`), or in
    `run_dir` when given (one folder that a study resumes from budget to budget).

    Returns
    -------
    (model, objective, history) with the model in eval mode on its training device.
    """
    from paperlib.regularizers import build_objective
    from paperlib.train import fit

    runtime.seed_everything(cfg.train.seed)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    model = build_model(cfg.model, bundle.info)
    # the objective's own generator (critic shuffles, prior samples) follows the run's seed
    objective = build_objective(cfg.objective, model, seed=cfg.train.seed)
    run_dir = run_dir if run_dir is not None else run_dir_for(cfg, run_root)
    history = fit(model, objective, loaders, cfg, run_dir=run_dir)
    model.eval()
    return model, objective, history


# ----------------------------------------------------------------------------------------------
# evaluation per experiment


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

    - ``@chance``: ``probe_acc``, ``probe_acc_sample``, ``speaker_probe_acc_s``,
      ``phone_probe_acc_z``, ``vc_speaker_acc``, ``vc_phone_acc``, ``class_consistency``
      (always the most frequent training label), ``eer`` (0.5);
    - ``@random_init``: the model of `cfg` built with each seed in `seeds` (default
      ``[cfg.train.seed]``) and not trained, encoded like a trained run and probed by the same
      probes (``probe_acc``, ``probe_acc_sample``, speech also ``eer`` and the disentanglement
      probes); the mean over seeds;
    - ``@raw_input``: ``probe_acc`` from a logistic regression on the raw input (speech: the
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
        got = {k: got[k] for k in ("probe_acc", "probe_acc_sample")}
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

    if kind == "speech":
        test = evaluate.collect_arrays(loaders[split], n, ("x", "y"))
        if classifiers.speaker is not None:
            acc = classifiers.speaker.score(test["x"], test["y"])
            out["probe_acc@raw_input"] = acc
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
        out["probe_acc@raw_input"] = acc
        out["class_consistency@ceiling"] = acc
        out["class_consistency@chance"] = out["probe_acc@chance"]
    return out


def evaluate_run(
    model,
    cfg: Config,
    bundle: DataBundle,
    classifiers: Classifiers,
    split: str = "test",
    critic: torch.nn.Module | None = None,
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
    EER is on centred embeddings (`evaluate.eer`).

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
    e = enc[split]
    m["mi_xz_nats"] = evaluate.aggregate_mi_xz(e["z_sample"], e["z_mean"], e["z_logvar"])
    m["mi_xz_bound_nats"] = math.log(len(e["z_sample"]))
    with clock("posthoc_mi_zs"):
        m.update(evaluate.posthoc_mi_zs(enc["train"], seed=seed, s_key="s_seq"))
        pooled = evaluate.posthoc_mi_zs(enc["train"], seed=seed, s_key="s_pooled")
    m.update({k.replace("mi_zs_nats", "mi_zs_pooled_nats"): v for k, v in pooled.items()})
    # the penalty's target (I(z; s_window) or I(z; s_1:T)) read by the other critic family,
    # trained on fresh encodings of four fifths of the training items, stopped early on the
    # last fifth, read on the `split` encodings
    x_train = _items_x(loaders["train"].dataset, n).to(_device_of(model))
    sample, select = instrument.fit_and_select(model, x_train)
    with clock("other_family"):
        other = instrument.other_reading(
            cfg.objective.critic_pairs, grid_of(model), sample,
            torch.as_tensor(enc[split]["z_sample"]), torch.as_tensor(enc[split]["s_seq"]),
            window=cfg.objective.critic_window, batch_size=cfg.data.batch_size,
            lr=cfg.objective.critic_lr, seed=seed, select=select,
            **instrument.evaluation_budget(cfg.objective.critic_pairs, cfg.eval.posthoc_critic_steps),
        )  # fmt: skip
    for key, name in (("", "nats"), ("_low", "low"), ("_high", "high"), ("_nwj", "nwj")):
        m[f"mi_zs_target_nats{key}"] = other[name]
    if critic is not None:
        with clock("training_critic"):
            m.update(evaluate.critic_mi_zs(critic, enc[split], seed=seed))
    for e in enc.values():  # the sequences are large (images: N x H W x Ds) and used only here
        e.pop("s_seq")
    kind = bundle.info["kind"]
    if kind == "speech":
        if "heldout" in loaders:
            with clock("eer"):
                held = evaluate.encode_dataset(
                    model, loaders["heldout"], max_items=n, generator=gen
                )
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
    elif kind == "image":
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
                        generator=torch.Generator(device=_device_of(model)).manual_seed(seed),
                        max_items=CLASS_CONSISTENCY_ITEMS, z_source=source, seed=seed,
                    )  # fmt: skip
    m.update(clock.metrics("eval_seconds"))
    return m, enc


def _items_x(dataset, n: int) -> torch.Tensor:
    """``x`` of the first `n` items of a dataset, stacked."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors["x"][:n]
    return torch.stack([dataset[i]["x"] for i in range(min(n, len(dataset)))])


def _device_of(model) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# ----------------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """Everything a notebook needs for its figures and metrics.json.

    ``metrics[objective][metric]`` is a list with one value per seed; ``histories``,
    ``encodings`` and ``models`` keep the first seed's run of each objective for figures.
    """

    cfg: Config
    seeds: list[int]
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    encodings: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    bundle: DataBundle | None = None
    classifiers: Classifiers | None = None
    wall_seconds: float = 0.0
    floors: dict[str, float] = field(default_factory=dict)

    def loader(self, split: str):
        """A DataLoader over one split of the experiment's data (unshuffled for val/test)."""
        return make_loaders(self.cfg.data, self.bundle, seed=self.seeds[0])[split]

    def embeddings(self, split: str = "test") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{objective: (posterior means of z, labels)}`` of the first seed, for t-SNE plots."""
        return {o: (e[split]["z_mean"], e[split]["y"]) for o, e in self.encodings.items()}

    def seed_points(self, x: str, y: str) -> dict[str, list[tuple[float, float, str]]]:
        """``{objective: [(x, y, "seed k")]}``, one point per seed (e.g. rate vs distortion)."""
        return {
            o: [(m[x][i], m[y][i], f"seed {s}") for i, s in enumerate(self.seeds)]
            for o, m in self.metrics.items()
        }

    def means(self) -> dict[str, dict[str, float]]:
        """``{objective: {metric: mean over seeds}}``.

        A metric m with per-seed bootstrap bounds is given its interval over seeds instead of
        averaged bounds (`paperlib.stats.across_seeds`): ``m_low`` / ``m_high`` are the 95 %
        t-interval of its per-seed values (with one seed, that seed's bootstrap bounds), and
        ``m_seeds`` the number of seeds, which says which of the two it is.
        """
        out = {
            o: {k: float(np.nanmean(v)) for k, v in ms.items()} for o, ms in self.metrics.items()
        }
        for o, ms in self.metrics.items():
            for m, iv in stats.across_seeds(ms, self.seeds).items():
                out[o].update({f"{m}_low": iv["low"], f"{m}_high": iv["high"]})
                out[o][f"{m}_seeds"] = iv["n"]
        return out

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{objective: {metric: {"mean", "std", "per_seed"}}}`` (the metrics.json body,
        `records.summarize_objective`: a metric with per-seed bootstrap bounds also holds its
        t-interval over seeds, and the bounds are not averaged).

        Floors and ceilings (`compute_floors`) and paired differences (`paired`) are separate,
        so this stays the metrics.json layout; pass them to ``records.write_metrics`` as
        ``floors=res.floors`` and ``paired=res.paired()`` to store them in ``_meta``.
        """
        return {o: records.summarize_objective(ms, self.seeds) for o, ms in self.metrics.items()}

    def compute_floors(self) -> dict[str, float]:
        """`floors` of this experiment (random init over the experiment's seeds), cached."""
        if not self.floors:
            if self.bundle is None:
                raise ValueError("compute_floors: this ExperimentResult holds no data bundle")
            self.floors = floors(self.cfg, self.bundle, self.classifiers, seeds=self.seeds)
        return self.floors

    def paired(
        self,
        pairs: tuple[tuple[str, str], ...] = (("cmi", "mi"), ("cmi", "elbo")),
        level: float = 0.95,
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Paired per-seed differences, e.g. ``{"cmi - mi": {metric: {mean, low, high, n}}}``.

        Every objective ran on the same seeds, so ``metrics[o][k][i]`` of two objectives pair
        up by position; see `paperlib.stats.paired_table` (t-interval at `level`; pairs whose
        objectives did not run, and metrics with fewer than 2 finite pairs, are left out).
        """
        return stats.paired_table(self.metrics, self.seeds, pairs=pairs, level=level)


#: a training critic whose balanced accuracy stays below this is a broken instrument (chance is
#: 0.5): its runs are flagged in the tables instead of being compared silently
CRITIC_CHANCE_MARGIN = 0.55


def training_critic(objective) -> torch.nn.Module | None:
    """The objective's I(z; s) critic (cmi), or None."""
    critics = getattr(objective, "critics", {})
    return critics["zs"] if "zs" in critics else None


def training_metrics(history) -> dict[str, float]:
    """What a run's training says about itself, as metrics.

    ``train_seconds``; ``train_steps`` and ``best_step`` (the weights kept: the best validation
    ELBO when it was tracked); ``trained`` (1.0 when `History.trained`: it stopped on its
    validation plateau or gained < 1 % over its last fifth, ``val_elbo_gain_last_fifth``); ``critic_acc_zs_final`` and ``mi_zs_train_final``, the training
    critic's balanced accuracy and I(z;s) estimate averaged over the last 20 % of logged steps
    (cmi only); ``critic_at_chance`` = 1.0 when that accuracy is below `CRITIC_CHANCE_MARGIN`.
    """
    m = {"train_seconds": float(history.train_seconds), "train_steps": float(history.steps)}
    if history.best_step is not None:
        m["best_step"] = float(history.best_step)
    # trained: stopped on the validation plateau, or < 1 % better over the last fifth of steps
    gain = history.val_elbo_gain()
    if math.isfinite(gain):  # NaN (not tracked before the last fifth) stays out of the tables
        m["val_elbo_gain_last_fifth"] = gain
    m["trained"] = float(history.trained())
    rows = [r for r in history.rows if "critic_acc_zs" in r]
    if rows:
        tail = rows[-max(1, len(rows) // 5) :]
        m["critic_acc_zs_final"] = float(np.mean([r["critic_acc_zs"] for r in tail]))
        m["mi_zs_train_final"] = float(np.mean([r.get("mi_zs", np.nan) for r in tail]))
        m["critic_at_chance"] = float(m["critic_acc_zs_final"] < CRITIC_CHANCE_MARGIN)
    # the warm-up: the critic's held-out accuracy (each batch before it trained on it) when
    # beta started, and that step (-1: it never started)
    held = [r for r in history.rows if "critic_acc_zs_heldout" in r]
    if held:
        on = [r for r in held if r.get("beta", 0.0) > 0]
        m["beta_start"] = float(on[0]["beta_start"]) if on else -1.0
        before = [r for r in held if r.get("beta", 0.0) == 0]
        if before:
            m["critic_acc_before_beta"] = float(before[-1]["critic_acc_zs_heldout"])
        m["critic_acc_zs_heldout_final"] = float(held[-1]["critic_acc_zs_heldout"])
    # the monitor's last reading: the training critic beside the other family on validation
    mon = [r for r in history.rows if "monitor_ratio" in r]
    if mon:
        for key in ("mi_zs_val_critic", "mi_zs_val_other", "monitor_ratio"):
            m[f"{key}_final"] = float(mon[-1][key])
    return m


def run_experiment(
    base: Config,
    objectives: list[str],
    seeds: list[int],
    *,
    alpha: float | None = None,
    beta: float | None = None,
    split: str = "test",
    run_root: str | Path | None = None,
    bundle: DataBundle | None = None,
    selection: dict[str, dict[str, float]] | None = None,
) -> ExperimentResult:
    """Train and evaluate every objective for every seed.

    Parameters
    ----------
    base : the experiment's Config (a preset, e.g. ``config.load("quick", "speech")``).
    objectives : names from paperlib.regularizers (elbo, mi, cmi, cmi_club).
    seeds : one training run per seed and objective.
    alpha, beta : override the selected weights.
    selection : ``{objective: {"alpha", "beta"}}`` from `load_selection` (notebook 03's choice);
        None uses `FALLBACK_WEIGHTS` for what alpha and beta do not give.
    split : "test" for reported numbers; "val" for model selection (never tune on test).
    run_root : where run folders (checkpoints) live; default ``runs/``.
    bundle : a loaded dataset to reuse (default: ``load_data(base.data)``).
    """
    t0 = time.perf_counter()
    bundle = bundle if bundle is not None else load_data(base.data)
    classifiers = fit_classifiers(base, bundle)
    res = ExperimentResult(cfg=base, seeds=list(seeds), bundle=bundle, classifiers=classifiers)
    grid = objective_grid(base.experiment, objectives, alpha, beta, selection)
    res.weights = {o: {"alpha": a, "beta": b} for o, a, b in grid}
    for i, cfg in enumerate(grid_configs(base, grid, list(seeds))):
        objective = cfg.objective.name
        model, trained, history = train_run(cfg, bundle, run_root)
        metrics, enc = evaluate_run(
            model, cfg, bundle, classifiers, split=split, critic=training_critic(trained)
        )
        metrics.update(training_metrics(history))
        for key, value in metrics.items():
            res.metrics.setdefault(objective, {}).setdefault(key, []).append(float(value))
        if i % len(seeds) == 0:  # the first seed of this objective
            res.histories[objective] = history.rows
            res.encodings[objective] = enc
            res.models[objective] = model
    res.wall_seconds = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------------------------
# notebooks 01 and 02: the objectives compared on the same seeds


@dataclass
class Comparison:
    """What notebooks 01 and 02 report besides their figures (see `compare_objectives`).

    ``res`` holds the trained models, metrics per seed, histories and encodings; ``floors`` the
    chance, random-init, raw-input and ceiling references; ``paired`` the per-seed differences
    ``cmi - mi`` and ``cmi - elbo``; ``regime`` whether z and s share information under ``mi``.
    """

    res: ExperimentResult
    floors: dict[str, float]
    paired: dict[str, dict[str, dict[str, float]]]
    regime: str
    params: dict[str, Any]

    def write_metrics(self, out_dir: str | Path) -> Path:
        """``<out_dir>/metrics.json``: the metrics per seed, with the parameters, weights, wall
        time, floors, paired differences and regime in ``_meta``."""
        return records.write_metrics(
            f"{out_dir}/metrics.json",
            self.res.metrics,
            self.res.cfg,
            params=self.params,
            weights=self.res.weights,
            wall_seconds=self.res.wall_seconds,
            floors=self.floors,
            paired=self.paired,
            regime=self.regime,
        )


def compare_objectives(params: Mapping[str, Any], cfg: Config) -> Comparison:
    """Train every objective of ``params["objectives"]`` for every seed and evaluate on the test
    split; then the floors, the paired differences and the regime.

    `params` are a notebook's resolved parameters (``paperlib.plan.setup``). Weights: ``alpha``
    and ``beta`` of None take the weights that notebook 03 chose for this profile and step
    count, read from ``<results_dir>/03_information_plane/`` (relative to the working folder,
    like the notebooks' other paths); `load_selection` refuses a stale or foreign selection, and
    ``setup`` has already refused reported seeds that chose it.
    """
    alpha, beta = params["alpha"], params["beta"]
    selection = None
    if alpha is None or beta is None:  # the weights notebook 03 chose, checked against this cfg
        path = Path(params["results_dir"]) / "03_information_plane" / SELECTION_FILE
        selection = load_selection(path, cfg)
    res = run_experiment(
        cfg, params["objectives"], params["seeds"], alpha=alpha, beta=beta, selection=selection
    )
    regime = (
        evaluate.describe_regime(res.means()["mi"]) if "mi" in res.metrics else "mi not trained"
    )
    return Comparison(res, res.compute_floors(), res.paired(), regime, dict(params))


# ----------------------------------------------------------------------------------------------
# weight selection on the validation split (notebook 03)


#: `sweep_grid`'s betas value for cmi at beta = alpha: ELBO + alpha I(x;z|s), the paper's form
TIED = "tied"


def sweep_grid(
    objectives: list[str], alphas: list[float], betas: list[float] | str
) -> list[tuple[str, float, float]]:
    """(objective, alpha, beta) triples: elbo once, mi per alpha, cmi per (alpha, beta).

    ``betas="tied"`` gives cmi at beta = alpha only: with I(z;s|x) = 0 that is ELBO +
    alpha I_q(x; z | s), the objective the paper argues for, and half the runs of a grid.
    """
    if isinstance(betas, str) and betas != TIED:
        raise ValueError(f"betas must be a list of numbers or {TIED!r}, got {betas!r}")
    grid: list[tuple[str, float, float]] = []
    for o in objectives:
        if o == "elbo":
            grid.append(("elbo", 0.0, 0.0))
        elif o == "mi":
            grid += [("mi", float(a), 0.0) for a in alphas]
        elif betas == TIED:
            grid += [(o, float(a), float(a)) for a in alphas]
        else:
            grid += [(o, float(a), float(b)) for a in alphas for b in betas]
    return grid


def sweep(
    base: Config,
    grid: list[tuple[str, float, float]],
    seeds: list[int],
    *,
    split: str = "val",
    run_root: str | Path | None = None,
    bundle: DataBundle | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (objective, alpha, beta) of `grid` for every seed on `split`.

    Returns one row per run: ``{"objective", "alpha", "beta", "seed", **metrics}``. Model
    selection uses ``split="val"``; the test split is never looked at here.
    """
    bundle = bundle if bundle is not None else load_data(base.data)
    classifiers = fit_classifiers(base, bundle)
    rows = []
    for cfg in grid_configs(base, grid, list(seeds)):
        o = cfg.objective
        model, trained, history = train_run(cfg, bundle, run_root)
        metrics, _ = evaluate_run(
            model, cfg, bundle, classifiers, split=split, critic=training_critic(trained)
        )
        metrics.update(training_metrics(history))
        rows.append(
            {
                "objective": o.name,
                "alpha": o.alpha,
                "beta": o.beta,
                "seed": cfg.train.seed,
                "split": split,
                **metrics,
            }
        )
    return rows


def sweeps(
    bases: dict[str, Config],
    grid: list[tuple[str, float, float]],
    seeds: list[int],
    *,
    split: str = "val",
    jobs: int = 1,
) -> dict[str, list[dict[str, Any]]]:
    """`sweep` of several experiments, ``{name: rows}``, up to `jobs` of them at once.

    The experiments are independent, so with ``jobs > 1`` each runs in its own process (spawned:
    a fresh interpreter, safe inside a Jupyter kernel) with one CPU thread, and the two sweeps
    of notebook 03 take the time of the longer one instead of their sum. Run folders, results
    and order are those of ``jobs=1``.
    """
    if jobs < 1:
        raise ValueError(f"sweeps: jobs must be >= 1, got {jobs}")
    jobs = min(jobs, len(bases))
    if jobs == 1:
        return {name: sweep(cfg, grid, seeds, split=split) for name, cfg in bases.items()}
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    # the workers' threads: set in the environment they are spawned with, then put back
    threads = str(max(1, runtime.cpu_cores() // jobs))
    saved = (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS"))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {
                name: pool.submit(sweep, cfg, grid, list(seeds), split=split)
                for name, cfg in bases.items()
            }
            return {name: f.result() for name, f in futures.items()}
    finally:
        for key, value in zip(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), saved):
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


def select_weights(rows: list[dict[str, Any]], criterion: str = "probe_acc") -> dict[str, Any]:
    """Per objective, the (alpha, beta) with the best mean `criterion` over seeds.

    Returns ``{objective: {"alpha", "beta", criterion}, "_evidence": {...}}`` (`write_selection`
    stores it); the evidence keeps every row, the criterion and the split.
    """
    best: dict[str, Any] = {}
    groups: dict[tuple[str, float, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["alpha"], r["beta"]), []).append(r[criterion])
    for (o, a, b), vals in groups.items():
        score = float(np.mean(vals))
        if o not in best or score > best[o][criterion]:
            best[o] = {"alpha": a, "beta": b, criterion: score}
    best["_evidence"] = {
        "criterion": f"mean {criterion} over seeds on the '{rows[0]['split']}' split",
        "rows": rows,
        "git_commit": records.git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return best


def _label(r: dict[str, Any]) -> str:
    if r["objective"] == "elbo":
        return "elbo"
    if r["objective"] == "mi":
        return f"a={r['alpha']:g}"
    return f"a={r['alpha']:g}, b={r['beta']:g}"


def points(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float, str]]]:
    """``{objective: [(mean x, mean y, label)]}`` over seeds per grid point, for the plane plots."""
    groups: dict[tuple[str, float, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["alpha"], r["beta"]), []).append(r)
    out: dict[str, list[tuple[float, float, str]]] = {}
    for (o, _, _), rs in groups.items():
        pt = (float(np.mean([r[x] for r in rs])), float(np.mean([r[y] for r in rs])), _label(rs[0]))
        out.setdefault(o, []).append(pt)
    return out


def probe_vs_beta(
    rows: list[dict[str, Any]], metric: str = "probe_acc"
) -> dict[str, list[tuple[float, float, float]]]:
    """``{"alpha=a": [(beta, mean, sd)]}``: `mi` rows give beta = 0 of their alpha's line."""
    groups: dict[tuple[float, float], list[float]] = {}
    for r in rows:
        if r["objective"] in ("mi", "cmi"):
            groups.setdefault((r["alpha"], r["beta"]), []).append(r[metric])
    series: dict[str, list[tuple[float, float, float]]] = {}
    for (a, b), vals in sorted(groups.items()):
        series.setdefault(f"alpha = {a:g}", []).append(
            (b, float(np.mean(vals)), float(np.std(vals)))
        )
    return series


def rows_to_metrics(rows: list[dict[str, Any]], suffix: str = "") -> dict[str, dict[str, list]]:
    """metrics.json body for a sweep: one entry per grid point, named ``cmi_a2_b4<suffix>``."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        name = f"{r['objective']}_a{r['alpha']:g}_b{r['beta']:g}{suffix}"
        for k, v in r.items():
            if k not in ("alpha", "beta", "seed") and isinstance(v, (int, float)):
                out.setdefault(name, {}).setdefault(k, []).append(float(v))
    return out

"""Configuration: frozen dataclasses per block, validated, and `load` for the named presets.

One `Config` holds everything a run needs; it is saved beside every result (checkpoints,
metrics.json), so a number can always be traced back to the settings that produced it.

Presets are keyed by profile (``smoke`` | ``quick`` | ``paper``) and experiment
(``speech`` | ``images`` | ``toy`` | ``mechanism``); their values, each with its reason, live in
``paperlib/presets/`` (one module per experiment)::

    cfg = load("quick", "speech", objective__beta=2.0, train__steps=500)

Every value is validated when the dataclass is built: an unknown key, a wrong type or an
out-of-range value raises a ValueError naming the key and what would be accepted. Component
names (``data.name``, ``model.name``, ``objective.name``) are only type-checked here: this module
imports nothing else of paperlib but the plain data of ``paperlib.presets`` (docs/DESIGN.md,
"Architecture"). They are checked where they are used (the registries' ``get`` names the key and
the registered names) and, before any notebook runs, by the runner's parameter check
(paperlib.studies.components.registered).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from paperlib.presets import PRESETS

PROFILES = ("smoke", "quick", "paper")
EXPERIMENTS = ("speech", "images", "toy", "mechanism")


def _spec(default: Any, *, choices=None, lo=None, hi=None, lo_open=False, doc: str = ""):
    """A dataclass field with validation metadata (accepted choices and numeric range)."""
    meta = {"choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open, "doc": doc}
    return field(default=default, metadata=meta)


def _type_ok(value: Any, annotation: Any) -> bool:
    """Strict isinstance for the few annotation shapes used here (no bool-as-int, int ok as float)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(annotation)
        return isinstance(value, tuple) and all(_type_ok(v, args[0]) for v in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


class _Validated:
    """Mixin: check every field against its annotation, choices and range after __init__."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = f"{_block_name(type(self))}.{f.name}"
            ann = hints[f.name]
            # Accept lists for tuple fields (JSON round trips turn tuples into lists).
            if typing.get_origin(ann) is tuple and isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            # Accept ints for float fields, stored as float for a stable saved config.
            if ann is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                object.__setattr__(self, f.name, value)
            if not _type_ok(value, ann):
                raise ValueError(
                    f"config key '{where}' must be of type {_type_name(ann)}, "
                    f"got {value!r} ({type(value).__name__})"
                )
            meta = f.metadata
            choices = meta.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(
                    f"config key '{where}' = {value!r} is not accepted; "
                    f"choose one of {list(choices)}"
                )
            lo, hi = meta.get("lo"), meta.get("hi")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                too_low = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
                too_high = hi is not None and value > hi
                if too_low or too_high:
                    lo_s = "-inf" if lo is None else f"{lo}"
                    hi_s = "inf" if hi is None else f"{hi}"
                    bracket = "(" if meta.get("lo_open") else "["
                    raise ValueError(
                        f"config key '{where}' = {value!r} is out of range; "
                        f"accepted: {bracket}{lo_s}, {hi_s}]"
                    )


def _block_name(cls: type) -> str:
    return {
        DataConfig: "data",
        ModelConfig: "model",
        ObjectiveConfig: "objective",
        TrainConfig: "train",
        EvalConfig: "eval",
    }.get(cls, cls.__name__)


@dataclass(frozen=True)
class DataConfig(_Validated):
    """Which dataset, its size and how it is batched (DESIGN section 3)."""

    name: str = _spec(
        "synthetic_speech", doc="a registered dataset (paperlib.data.DATASETS; checked at use)"
    )
    data_dir: str = _spec("data", doc="folder with real datasets (paper profile)")
    cache_dir: str = _spec(".cache/paperlib", doc="where generated corpora are cached")
    batch_size: int = _spec(32, lo=1)
    seed: int = _spec(0, lo=0, doc="seed of the generated corpus and of the splits")
    # synthetic speech
    n_speakers: int = _spec(64, lo=2)
    n_heldout_speakers: int = _spec(16, lo=0)
    utts_per_speaker: int = _spec(40, lo=3)
    n_frames: int = _spec(64, lo=4, doc="frames per utterance (10 ms hop)")
    n_mels: int = _spec(40, lo=8)
    sample_rate: int = _spec(16000, lo=8000)
    # splits of the training speakers' utterances (speech) or of the images
    val_fraction: float = _spec(0.1, lo=0.0, hi=0.5)
    test_fraction: float = _spec(0.2, lo=0.0, hi=0.5)
    max_items: int = _spec(0, lo=0, doc="cap on training items; 0 means all")
    # images
    image_size: int = _spec(0, lo=0, doc="downsample square images to this side; 0 = native")
    # known-factor sequences (paperlib.data.factors; notebook 05)
    n_sequences: int = _spec(2000, lo=8, doc="sequences generated (all splits together)")
    n_global: int = _spec(8, lo=2, doc="K, classes of the global factor g")
    n_local: int = _spec(4, lo=2, doc="classes of the local factor l_t")
    leak: float = _spec(
        0.5, lo=0.0, hi=1.0, lo_open=True, doc="share of g's signal visible in a single frame x_t"
    )


@dataclass(frozen=True)
class ModelConfig(_Validated):
    """Model family and sizes (DESIGN section 1)."""

    name: str = _spec("dsae", doc="a registered model (paperlib.models.MODELS; checked at use)")
    z_dim: int = _spec(16, lo=1)
    s_dim: int = _spec(16, lo=1)
    hidden: int = _spec(128, lo=1)
    # DSAE
    posterior: str = _spec("factorized", choices=("factorized", "full"))
    decoder_variance: str = _spec(
        "ml",
        choices=("ml", "gradient"),
        doc="the decoder variance's fit: its ML value from the residuals, or by the optimiser",
    )
    # PixelCNN-VAE
    n_layers: int = _spec(5, lo=1, doc="gated masked-convolution layers in the context stack")
    kernel_size: int = _spec(3, lo=1, doc="odd kernel size of the gated layers")
    output: str = _spec("bernoulli", choices=("bernoulli", "softmax256", "logistic_mix"))
    n_mixtures: int = _spec(5, lo=1)
    enc_channels: int = _spec(32, lo=1)
    z_to_head: str = _spec(
        "spatial",
        choices=("spatial", "broadcast"),
        doc="how z reaches the PixelCNN head: a z-only spatial map, or one broadcast vector",
    )


@dataclass(frozen=True)
class ObjectiveConfig(_Validated):
    """Objective and its estimators (DESIGN section 2)."""

    name: str = _spec(
        "elbo",
        doc="a registered objective (paperlib.training.regularizers.OBJECTIVES; checked at use)",
    )
    alpha: float = _spec(0.0, lo=0.0, hi=20.0, doc="weight of I_q(x;z)")
    beta: float = _spec(0.0, lo=0.0, hi=100.0, doc="weight of I_q(z;s)")
    mi_xz: str = _spec(
        "minibatch",
        choices=("minibatch", "density_ratio", "mmd"),
        doc="estimator of KL(q(z)||p(z)) for I_q(x;z)",
    )
    critic_hidden: int = _spec(128, lo=1)
    critic_lr: float = _spec(1e-3, lo=0.0, lo_open=True)
    n_critic: int = _spec(
        1,
        lo=0,
        doc="critic steps per model step (0: the I(z;s) critic trains only in its catch-up "
        "bursts, critic_refresh_every)",
    )
    critic_pairs: str = _spec(
        "set",
        choices=("set", "sequence", "step", "window", "conv"),
        doc="what the I(z;s) critic pairs with z: all of s_1:T (set), a GRU summary, one s_t, "
        "each local window of s on its grid (window), or the grid mean-pooled by a conv (conv)",
    )
    critic_window: int = _spec(5, lo=1, doc="odd receptive field of the 'window' critic")
    critic_positions: int = _spec(
        0,
        lo=0,
        doc="positions of the 'window' critic's grid scored per critic step, drawn at random "
        "(0: all of them); its estimate and the penalty always use every position",
    )
    critic_phi_layers: int = _spec(
        2,
        lo=1,
        doc="layers of the 'set' critic's per-position network phi (1: the critic before "
        "issue 20's qualification, which recovered too little planted I(z; s_1:T))",
    )
    critic_replay: int = _spec(
        0,
        lo=0,
        doc="earlier batches of (z, s) the critics train on beside the current one (a replay "
        "buffer: more pairs per critic step, no extra model pass)",
    )
    warmup_steps: int = _spec(0, lo=0, doc="steps before beta switches on (critic warms up)")
    warmup_plateau: int = _spec(
        0,
        lo=0,
        doc="after warmup_steps, beta waits until the critic's held-out accuracy has not "
        "improved by 0.005 for this many steps (0: beta starts at warmup_steps)",
    )
    warmup_max_steps: int = _spec(
        0, lo=0, doc="the plateau wait ends here at the latest (0: no cap)"
    )
    beta_ramp_steps: int = _spec(0, lo=0, doc="steps over which beta rises linearly to its value")
    monitor_every: int = _spec(
        0,
        lo=0,
        doc="steps between fits of a fresh critic of the other family on validation rows, "
        "logged beside the training critic's reading there (0: never)",
    )
    monitor_fit_items: int = _spec(
        0,
        lo=0,
        doc="training items the monitor's fresh critic fits on (a pool of posterior samples "
        "of each, stopped early on a fifth) with evaluation's budget, before it is read on the "
        "validation rows (0: it fits on three eighths of the validation items instead)",
    )
    critic_refresh_every: int = _spec(
        0,
        lo=0,
        doc="steps between catch-up bursts of the I(z;s) critic on the current encoder (at a "
        "validation step, after the monitor reads it; needs monitor_fit_items; 0: never)",
    )
    critic_refresh_steps: int = _spec(
        100, lo=1, doc="critic updates of one catch-up burst (critic_refresh_every)"
    )
    zs_penalty: str = _spec(
        "estimate",
        choices=("estimate", "hinge"),
        doc="what the encoder minimises for I(z;s): the critic's estimate mean_i T(z_i, s_i), "
        "or its hinge mean_i max(T(z_i, s_i), 0), which gives no reward for pushing a pair "
        "below the product of marginals, where the critic only extrapolates",
    )
    kl_s_weight: float = _spec(
        1.0, lo=0.0, hi=1.0, doc="gamma on KL_s; < 1 weakens the local prior (DSAE regime)"
    )


@dataclass(frozen=True)
class TrainConfig(_Validated):
    """The one training loop (paperlib.training.train.fit)."""

    steps: int = _spec(1000, lo=1)
    lr: float = _spec(1e-3, lo=0.0, lo_open=True)
    grad_clip: float = _spec(5.0, lo=0.0, doc="0 disables clipping")
    precision: str = _spec(
        "fp32",
        choices=("fp32", "bf16"),
        doc="'bf16': bf16 autocast of the forward passes and losses (model and critics); "
        "faster on a GPU or a CPU with AMX (amx_bf16 in /proc/cpuinfo), slower elsewhere",
    )
    seed: int = _spec(0, lo=0)
    device: str = _spec("auto", choices=("auto", "cpu", "cuda"))
    checkpoint_every: int = _spec(200, lo=0, doc="steps between checkpoints; 0 disables")
    log_every: int = _spec(20, lo=1)
    progress: bool = _spec(True)
    eval_every: int = _spec(
        0, lo=0, doc="steps between validation-ELBO evaluations (best checkpoint); 0 = never"
    )
    patience: int = _spec(
        0, lo=0, doc="evaluations without a better validation ELBO before stopping; 0 = never"
    )
    val_items: int = _spec(512, lo=1, doc="validation items of each evaluation")
    num_threads: int = _spec(
        0, lo=0, doc="torch CPU threads; 0: $OMP_NUM_THREADS, else the cores other runs left"
    )


@dataclass(frozen=True)
class EvalConfig(_Validated):
    """Evaluation sizes (DESIGN section 4)."""

    max_items: int = _spec(2000, lo=1, doc="cap on items encoded per split")
    iw_samples: int = _spec(16, lo=1, doc="importance samples of the IW bound")
    posthoc_critic_steps: int = _spec(1000, lo=1)
    tsne_points: int = _spec(500, lo=10)
    n_samples: int = _spec(8, lo=1, doc="generated samples per z in grids")


@dataclass(frozen=True)
class Config:
    """A whole run: data, model, objective, training and evaluation."""

    profile: str = "quick"
    experiment: str = "speech"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(
                f"profile {self.profile!r} is not accepted; choose one of {list(PROFILES)}"
            )
        if self.experiment not in EXPERIMENTS:
            raise ValueError(
                f"experiment {self.experiment!r} is not accepted; choose one of {list(EXPERIMENTS)}"
            )
        every, val = self.objective.critic_refresh_every, self.train.eval_every
        if every and (val == 0 or every % val):
            # the bursts run at validation steps (train._validate)
            raise ValueError(
                f"objective.critic_refresh_every={every} must be a multiple of "
                f"train.eval_every={val} (the critic's bursts run at validation steps); "
                "set it to a multiple, or 0 for no bursts"
            )

        if self.objective.n_critic == 0 and (every == 0 or self.objective.mi_xz == "density_ratio"):
            raise ValueError(
                "objective.n_critic=0 trains the I(z;s) critic only in its catch-up bursts: it "
                f"needs objective.critic_refresh_every > 0 (got {every}) and no other critic "
                f"(objective.mi_xz='minibatch' or 'mmd', got {self.objective.mi_xz!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """`to_dict` without the fields added later that this run never reads (`identity`)."""
        return identity(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        d = dict(d)
        blocks = {name: _BLOCKS[name](**_check_keys(name, d.pop(name, {}))) for name in _BLOCKS}
        unknown = set(d) - {"profile", "experiment"}
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; accepted: {_top_keys()}")
        return cls(**d, **blocks)

    def replace(self, **overrides: Any) -> Config:
        """A copy with ``block__key=value`` overrides applied (validated)."""
        return _apply(self, overrides)


_BLOCKS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def _top_keys() -> list[str]:
    return ["profile", "experiment", *_BLOCKS]


def _check_keys(block: str, values: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ValueError(f"config block '{block}' must be a dict, got {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(_BLOCKS[block])]
    for key in values:
        if key not in names:
            raise ValueError(
                f"unknown config key '{block}.{key}'; accepted keys of '{block}': {names}"
            )
    return values


def _apply(cfg: Config, overrides: dict[str, Any]) -> Config:
    per_block: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in overrides.items():
        block, sep, name = key.replace(".", "__").partition("__")
        if not sep:
            if block in _BLOCKS and isinstance(value, dict):
                per_block.setdefault(block, {}).update(value)
                continue
            if block in ("profile", "experiment"):
                top[block] = value
                continue
            raise ValueError(
                f"unknown config key '{key}'; use 'block__key' with block one of {list(_BLOCKS)}"
            )
        if block not in _BLOCKS:
            raise ValueError(
                f"unknown config block '{block}' in '{key}'; accepted: {list(_BLOCKS)}"
            )
        per_block.setdefault(block, {})[name] = value
    new_blocks = {
        b: dataclasses.replace(getattr(cfg, b), **_check_keys(b, kv)) for b, kv in per_block.items()
    }
    return dataclasses.replace(cfg, **top, **new_blocks)


# ----------------------------------------------------------------------------------------------
# A run's identity: what names its folder and what a checkpoint must match to be resumed


def _bursts(d: dict[str, Any]) -> bool:
    """Whether a run's critic takes catch-up bursts (critic_refresh_*; not elbo, mi)."""
    objective = d["objective"]
    return objective.get("critic_refresh_every", 0) != 0 and objective.get("name") not in (
        "elbo",
        "mi",
    )


#: fields added after run folders were first named, each with the test of whether a run (its
#: config as a dict) reads it. Where a run does not, the field is left out of its identity, so
#: that adding a field neither renames finished runs nor stops them resuming. critic_phi_layers
#: is read by the 'set' critic of an objective that trains an I(z;s) critic (not elbo, mi);
#: precision changes a run only when it is not fp32; monitor_fit_items only when it is not 0
#: in a run that monitors or refreshes a training critic (not elbo, mi); critic_positions and
#: critic_refresh_* only when they act, in such a run; zs_penalty only when it is not the
#: estimate, in such a run; decoder_variance by a DSAE, where it is not "gradient" (what every
#: DSAE run before it did).
ADDED_LATER: dict[tuple[str, str], Any] = {
    ("objective", "critic_phi_layers"): lambda d: (
        d["objective"].get("critic_pairs") == "set"
        and d["objective"].get("name") not in ("elbo", "mi")
    ),
    ("train", "precision"): lambda d: d["train"].get("precision", "fp32") != "fp32",
    ("objective", "zs_penalty"): lambda d: (
        d["objective"].get("zs_penalty", "estimate") != "estimate"
        and d["objective"].get("name") not in ("elbo", "mi")
    ),
    ("objective", "monitor_fit_items"): lambda d: (
        d["objective"].get("monitor_fit_items", 0) != 0
        and (
            d["objective"].get("monitor_every", 0) > 0
            or d["objective"].get("critic_refresh_every", 0) > 0
        )
        and d["objective"].get("name") not in ("elbo", "mi")
    ),
    ("objective", "critic_positions"): lambda d: (
        d["objective"].get("critic_positions", 0) != 0
        and d["objective"].get("critic_pairs") == "window"
        and d["objective"].get("name") not in ("elbo", "mi")
    ),
    # runs before it fitted the DSAE's decoder variance by gradient
    ("model", "decoder_variance"): lambda d: (
        d["model"].get("name") == "dsae"
        and d["model"].get("decoder_variance", "gradient") != "gradient"
    ),
    ("objective", "critic_refresh_every"): _bursts,
    ("objective", "critic_refresh_steps"): _bursts,
}


def identity(d: dict[str, Any]) -> dict[str, Any]:
    """A config dict (`Config.to_dict`, or one read from a checkpoint written before a field
    existed) without the `ADDED_LATER` fields its run does not read."""
    read = {field: test(d) for field, test in ADDED_LATER.items()}
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for (block, key), is_read in read.items():
        if not is_read:
            out.get(block, {}).pop(key, None)
    return out


# ----------------------------------------------------------------------------------------------
# Presets: their values and reasons live in paperlib/presets/ (one module per experiment)


def load(profile: str = "quick", experiment: str = "speech", **overrides: Any) -> Config:
    """Build a validated Config from a named preset plus ``block__key=value`` overrides.

    The preset is ``paperlib.presets.<experiment>.<PROFILE>`` (e.g. ``presets.speech.QUICK``).

    Parameters
    ----------
    profile : {"smoke", "quick", "paper"}
    experiment : {"speech", "images", "toy", "mechanism"}
    **overrides
        ``train__steps=100`` style keys, or whole blocks as dicts (``train={"steps": 100}``).

    Raises
    ------
    ValueError
        On an unknown profile, experiment or key, a wrong type or an out-of-range value; the
        message names the key and what would be accepted.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not accepted; choose one of {list(PROFILES)}")
    if experiment not in EXPERIMENTS:
        raise ValueError(
            f"experiment {experiment!r} is not accepted; choose one of {list(EXPERIMENTS)}"
        )
    preset = PRESETS[(profile, experiment)]
    base = Config.from_dict({"profile": profile, "experiment": experiment, **preset})
    return _apply(base, overrides)


def presets() -> list[tuple[str, str]]:
    """All (profile, experiment) pairs that `load` accepts."""
    return [(p, e) for p in PROFILES for e in EXPERIMENTS if (p, e) in PRESETS]

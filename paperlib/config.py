"""Configuration: frozen dataclasses per block and named presets.

One `Config` holds everything a run needs; it is saved beside every result (checkpoints,
metrics.json), so a number can always be traced back to the settings that produced it.

Presets are keyed by profile (``smoke`` | ``quick`` | ``paper``) and experiment
(``speech`` | ``images`` | ``toy`` | ``mechanism``)::

    cfg = load("quick", "speech", objective__beta=2.0, train__steps=500)

Every value is validated when the dataclass is built: an unknown key, a wrong type or an
out-of-range value raises a ValueError naming the key and what would be accepted. Component
names (``data.name``, ``model.name``, ``objective.name``) are only type-checked here: this module
imports nothing else of paperlib (docs/DESIGN.md, "Architecture"). They are checked where they
are used (the registries' ``get`` names the key and the registered names) and, before any
notebook runs, by the runner's parameter check (paperlib.components.registered).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

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
        "elbo", doc="a registered objective (paperlib.regularizers.OBJECTIVES; checked at use)"
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
    n_critic: int = _spec(1, lo=1, doc="critic steps per model step")
    critic_pairs: str = _spec(
        "set",
        choices=("set", "sequence", "step", "window", "conv"),
        doc="what the I(z;s) critic pairs with z: all of s_1:T (set), a GRU summary, one s_t, "
        "each local window of s on its grid (window), or the grid mean-pooled by a conv (conv)",
    )
    critic_window: int = _spec(5, lo=1, doc="odd receptive field of the 'window' critic")
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
    kl_s_weight: float = _spec(
        1.0, lo=0.0, hi=1.0, doc="gamma on KL_s; < 1 weakens the local prior (DSAE regime)"
    )


@dataclass(frozen=True)
class TrainConfig(_Validated):
    """The one training loop (paperlib.train.fit)."""

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

#: fields added after run folders were first named, each with the test of whether a run (its
#: config as a dict) reads it. Where a run does not, the field is left out of its identity, so
#: that adding a field neither renames finished runs nor stops them resuming. critic_phi_layers
#: is read by the 'set' critic of an objective that trains an I(z;s) critic (not elbo, mi);
#: precision changes a run only when it is not fp32.
ADDED_LATER: dict[tuple[str, str], Any] = {
    ("objective", "critic_phi_layers"): lambda d: (
        d["objective"].get("critic_pairs") == "set"
        and d["objective"].get("name") not in ("elbo", "mi")
    ),
    ("train", "precision"): lambda d: d["train"].get("precision", "fp32") != "fp32",
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
# Presets. Each line states its reason where the value is not the dataclass default.

_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # --- toy: linear-Gaussian sequence with known MI, for tests -------------------------------
    ("smoke", "toy"): dict(
        data=dict(name="toy", batch_size=64),
        model=dict(name="toy", z_dim=2, s_dim=2, hidden=32),
        train=dict(steps=30, checkpoint_every=0, log_every=5, progress=False),
        objective=dict(critic_hidden=32),
    ),
    ("quick", "toy"): dict(
        data=dict(name="toy", batch_size=128),
        model=dict(name="toy", z_dim=2, s_dim=2, hidden=64),
        train=dict(steps=1500, checkpoint_every=500),
        objective=dict(critic_hidden=64),
    ),
    # --- speech: DSAE on the synthetic multi-speaker corpus ----------------------------------
    ("smoke", "speech"): dict(
        data=dict(
            n_speakers=6,
            n_heldout_speakers=3,
            utts_per_speaker=12,
            n_frames=16,
            n_mels=16,
            val_fraction=0.25,  # >= 18 items per split: the post-hoc critics hold rows out
            test_fraction=0.25,
        ),
        model=dict(name="dsae", z_dim=4, s_dim=4, hidden=16),
        objective=dict(critic_hidden=16, warmup_steps=2),
        train=dict(steps=6, checkpoint_every=0, log_every=2, progress=False, eval_every=3),
        eval=dict(max_items=200, posthoc_critic_steps=20, tsne_points=40),
    ),
    ("quick", "speech"): dict(
        # log B = log 128 = 4.85 nats > log 64 = 4.16, what telling 64 speakers apart takes: the
        # minibatch I(x;z) reward is bounded by log B
        data=dict(
            n_speakers=64, n_heldout_speakers=16, utts_per_speaker=40, n_frames=64, batch_size=128
        ),
        model=dict(name="dsae", z_dim=16, s_dim=16, hidden=128),
        objective=dict(
            # The regime (DESIGN section 1): with gamma = 1 the local path held no speaker
            # information under `elbo` (validation probe of s: 0.02, chance 0.016); gamma = 0.1
            # lets s carry some (0.14), so redundancy between z and s can arise at all.
            kl_s_weight=0.1,
            # I(z; s_1:T) over the whole sequence, all pairs of a batch (critics.SetCritic), on
            # the scale of the reward; beta switches on once the critic has warmed up
            critic_pairs="set",
            # 3 critic steps per model step, lr 3e-3: of 0.5 planted nats the set critic
            # recovered 0.76 with 2 steps, 0.89 with 3; of 1 nat 0.68 at lr 1e-3, 0.89 at 3e-3
            # (benchmarks/qualify_critics.py)
            n_critic=3,
            critic_lr=3e-3,
            warmup_steps=100,
            warmup_plateau=60,
            warmup_max_steps=300,
            beta_ramp_steps=100,
            monitor_every=200,
        ),
        # until the validation ELBO stops improving (best weights kept), at most 500 steps;
        # lr 2e-3: at 600 steps the validation speaker probe of `mi` was 0.74 (0.66 at 1e-3,
        # 800 steps; hidden 64 gave 0.65), the most the quick budget affords
        train=dict(steps=500, lr=2e-3, checkpoint_every=100, eval_every=50, patience=4),
        eval=dict(posthoc_critic_steps=300),
    ),
    ("paper", "speech"): dict(
        # TIMIT has 462 training speakers: log 512 = 6.2 nats > log 462 = 6.1
        data=dict(name="timit", n_mels=80, n_frames=128, batch_size=512),
        # the factorized posterior q(s_t | x_t) keeps I(z; s | x) = 0, so that ELBO + alpha I(x;z)
        # - beta I(z;s) with alpha = beta is ELBO + alpha I(x;z|s) exactly (DESIGN section 1);
        # the DSAE paper's full q(s | x, z) makes s depend on z given x and breaks that identity
        model=dict(name="dsae", z_dim=64, s_dim=32, hidden=256, posterior="factorized"),
        objective=dict(critic_hidden=256, n_critic=2, critic_pairs="set", warmup_steps=2000),
        train=dict(steps=60000, checkpoint_every=2000, eval_every=1000, patience=10),
        eval=dict(max_items=10000, posthoc_critic_steps=5000, tsne_points=2000),
    ),
    # --- images: PixelCNN-VAE ------------------------------------------------------------------
    ("smoke", "images"): dict(
        data=dict(name="digits8x8", batch_size=32),
        model=dict(
            name="pixelcnn_vae",
            z_dim=4,
            s_dim=8,
            hidden=8,
            n_layers=2,
            enc_channels=8,
        ),
        objective=dict(critic_hidden=16, warmup_steps=2),
        # eval_every exercises the quick profile's best-validation path
        train=dict(steps=6, checkpoint_every=0, log_every=2, progress=False, eval_every=3),
        eval=dict(max_items=200, posthoc_critic_steps=20, tsne_points=40, n_samples=2),
    ),
    ("quick", "images"): dict(
        # 14x14 (2x2 area-downsampled) keeps the sweep and three seeds x three objectives within
        # the quick profile's CPU budget; the paper profile uses native 28x28 MNIST. log 32 = 3.5
        # nats > log 10, the class's entropy.
        data=dict(name="mnist5k", batch_size=32, image_size=14),
        model=dict(name="pixelcnn_vae", z_dim=16, s_dim=32, hidden=32, n_layers=5, enc_channels=32),
        objective=dict(
            # I(z; s_window), 5x5 windows of s on the pixel grid (critics.WindowCritic): s_1:T of
            # the PixelCNN is x again (results/s_content: x from s_1:T at R^2 0.97, the class at
            # 0.88 against 0.84 from x), so I(z; s_1:T) ~ I(x; z) would cancel the reward
            critic_pairs="window",
            critic_window=5,
            # the critic keeps up with the moving encoder: with 2 steps per model step on the
            # batch of 32, lr 1e-3, it read 0.06 nats on validation rows at step 400 where a
            # fresh critic of the other family read 0.86 (15x apart); 4 steps on the batch and
            # the 3 before it (128 rows), lr 3e-3: 0.61 against 0.67 (1.1x)
            n_critic=4,
            critic_replay=3,
            critic_lr=3e-3,
            # the critic warms up until its held-out accuracy stops rising, then beta ramps in
            warmup_steps=100,
            warmup_plateau=60,
            warmup_max_steps=300,
            beta_ramp_steps=100,
            # a fresh critic of the other family on validation rows at steps 300 and 600
            monitor_every=300,
        ),
        # at 600 steps the validation class probe of `mi` was 0.84 (raw pixels 0.81)
        train=dict(steps=600, checkpoint_every=200, eval_every=50, patience=4),
        eval=dict(posthoc_critic_steps=300),
    ),
    ("paper", "images"): dict(
        data=dict(name="mnist", batch_size=128),
        model=dict(name="pixelcnn_vae", z_dim=32, s_dim=64, hidden=64, n_layers=8, enc_channels=64),
        # the window target, as in the quick profile (s_1:T of a PixelCNN holds x)
        objective=dict(
            critic_hidden=256,
            critic_pairs="window",
            critic_window=5,
            n_critic=4,
            critic_replay=3,
            critic_lr=3e-3,
            warmup_steps=2000,
            beta_ramp_steps=2000,
        ),  # fmt: skip
        train=dict(steps=50000, checkpoint_every=2000, eval_every=1000, patience=10),
        eval=dict(max_items=10000, posthoc_critic_steps=5000, tsne_points=2000),
    ),
    # --- mechanism: DSAE on sequences with known factors (notebook 05) ----------------------
    ("smoke", "mechanism"): dict(
        data=dict(
            name="factors",
            n_sequences=160,  # >= 32 items per split: the probes and post-hoc critics hold rows out
            n_frames=8,
            n_mels=8,
            n_global=4,
            batch_size=32,
            val_fraction=0.2,
            test_fraction=0.2,
        ),
        model=dict(name="dsae", z_dim=2, s_dim=2, hidden=8),
        objective=dict(critic_hidden=8, critic_pairs="step"),
        train=dict(steps=6, checkpoint_every=0, log_every=2, progress=False),
        eval=dict(max_items=200, posthoc_critic_steps=10),
    ),
    ("quick", "mechanism"): dict(
        data=dict(
            name="factors",
            n_sequences=1500,
            n_frames=16,  # T = 16: per-frame noise on g averages out over the sequence (4x)
            n_mels=16,  # D features per frame
            n_global=8,
            n_local=4,
            leak=0.1,  # the centre of the leak dial: one frame shows little of g
            batch_size=64,
            val_fraction=0.2,
            test_fraction=0.2,
        ),
        # tiny: 3 objectives x 5 seeds x several dial points within the notebook's few minutes
        model=dict(name="dsae", z_dim=2, s_dim=4, hidden=32),
        # per-frame pairs (z, s_t) and 2 critic steps per model step; the sequence critic (GRU
        # summary) took 2x the time per step and was no more accurate in a trial at leak 0.3
        objective=dict(critic_hidden=32, critic_pairs="step", n_critic=2),
        # lr 3e-3: at 1e-3 the local path had not learned l_t after 300 steps (probe 0.50)
        train=dict(steps=300, lr=3e-3, checkpoint_every=0, log_every=10, progress=False),
        eval=dict(max_items=600, posthoc_critic_steps=200),
    ),
}
# The paper profile of the toy experiment is the quick one: the toy model has no paper scale.
_PRESETS[("paper", "toy")] = _PRESETS[("quick", "toy")]
# The mechanism study is a controlled CPU experiment; its paper profile is the quick one.
_PRESETS[("paper", "mechanism")] = _PRESETS[("quick", "mechanism")]


def load(profile: str = "quick", experiment: str = "speech", **overrides: Any) -> Config:
    """Build a validated Config from a named preset plus ``block__key=value`` overrides.

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
    preset = _PRESETS[(profile, experiment)]
    base = Config.from_dict({"profile": profile, "experiment": experiment, **preset})
    return _apply(base, overrides)


def presets() -> list[tuple[str, str]]:
    """All (profile, experiment) pairs that `load` accepts."""
    return [(p, e) for p in PROFILES for e in EXPERIMENTS if (p, e) in _PRESETS]

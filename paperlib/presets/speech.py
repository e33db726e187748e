"""Speech presets: DSAE on the synthetic multi-speaker corpus (quick) or TIMIT (paper).

What notebooks 00, 01 and 03 train for ``experiment="speech"``. Each profile is a dict of
config blocks (``data``, ``model``, ``objective``, ``train``, ``eval``) holding only what
differs from the dataclass defaults of ``paperlib.config``; a comment gives each value's reason.
The walkthrough (notebook 00) trains the quick preset shrunk by `WALKTHROUGH_SHRINK`.
"""

SMOKE = dict(
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
)

QUICK = dict(
    # log B = log 128 = 4.85 nats > log 64 = 4.16, what telling 64 speakers apart takes: the
    # minibatch I(x;z) reward is bounded by log B
    data=dict(
        n_speakers=64, n_heldout_speakers=16, utts_per_speaker=40, n_frames=64, batch_size=128
    ),
    # the decoder variance takes its default, the ML fit: at 500 steps of `mi` (seed 200,
    # validation) the speaker probe on z read 0.89 against the gradient fit's 0.73, NLL 225
    # against 1,490 nats/sequence, where the raw-input probe reads 0.84
    # (results/speech_budget_variance/, docs/DESIGN.md section 1)
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
        # the monitor's fresh critic fits on training items, as evaluation's does: fitted on
        # three eighths of the 256 validation items it read -0.39 nats on a cmi run where the
        # training critic's NWJ lower bound was 0.58; on 1,792 training items, 1.25 beside
        # the training critic's 1.47 (docs/DESIGN.md, "Instrument")
        monitor_fit_items=2000,
    ),
    # until the validation ELBO stops improving (best weights kept), at most 500 steps;
    # lr 2e-3: at 600 steps the validation speaker probe of `mi` was 0.74 (0.66 at 1e-3,
    # 800 steps; hidden 64 gave 0.65), the most the quick budget affords
    train=dict(steps=500, lr=2e-3, checkpoint_every=100, eval_every=50, patience=4),
    eval=dict(posthoc_critic_steps=300),
)

PAPER = dict(
    # TIMIT has 462 training speakers: log 512 = 6.2 nats > log 462 = 6.1
    data=dict(name="timit", n_mels=80, n_frames=128, batch_size=512),
    # the factorized posterior q(s_t | x_t) keeps I(z; s | x) = 0, so that ELBO + alpha I(x;z)
    # - beta I(z;s) with alpha = beta is ELBO + alpha I(x;z|s) exactly (DESIGN section 1);
    # the DSAE paper's full q(s | x, z) makes s depend on z given x and breaks that identity
    model=dict(name="dsae", z_dim=64, s_dim=32, hidden=256, posterior="factorized"),
    objective=dict(critic_hidden=256, n_critic=2, critic_pairs="set", warmup_steps=2000),
    train=dict(steps=60000, checkpoint_every=2000, eval_every=1000, patience=10),
    eval=dict(max_items=10000, posthoc_critic_steps=5000, tsne_points=2000),
)

# --- notebook 00, the walkthrough: the smoke preset in the smoke profile, else QUICK shrunk ---

#: the walkthrough's changes to the quick speech preset, to fit its 3-minute budget
WALKTHROUGH_SHRINK = {
    "data__n_speakers": 32,  # of 64: the corpus renders in seconds
    "data__n_heldout_speakers": 8,  # held-out speakers for the verification EER
    "data__utts_per_speaker": 24,  # of 40
    "model__hidden": 64,  # of 128: LSTM steps about 3x faster
    "eval__posthoc_critic_steps": 200,  # of 300
}

#: the walkthrough's step count per profile (its parameter ``steps = None``); the walkthrough's
#: budget is 3 minutes: fewer steps than the speech preset's 500 (None: the smoke preset's)
WALKTHROUGH_STEPS = {"smoke": None, "quick": 300, "paper": 300}

#: the walkthrough trains and shows one run
WALKTHROUGH_SEEDS = {"smoke": [0], "quick": [0], "paper": [0]}

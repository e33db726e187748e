# %% [markdown]
# # 01 · State-space model: DSAE on speech
#
# The paper's speech experiment. A DSAE (Li & Mandt 2018) has a global latent z (one per
# utterance) and local latents s_t (one per frame). We train it with three objectives and ask
# what z holds:
#
# - `elbo`: the plain ELBO;
# - `mi`: ELBO + alpha I(x;z), the usual remedy for an ignored z;
# - `cmi`: ELBO + alpha I(x;z) - beta I(z;s), the paper's proposal (I(z;s) from an adversarial
#   density-ratio critic).
#
# **Makes:** training curves, t-SNE of z by speaker, the metric table (speaker probe, EER, KL,
# post-hoc I(x;z) and I(z;s)), disentanglement heatmaps (what z and s know about speaker and
# phone), rate-distortion points, and a voice-conversion spectrogram grid with audio.
# Writes `results/01_speech_dsae/` (PNG + PDF + metrics.json).
#
# **Time:** quick profile (synthetic corpus, 5 seeds) about 2.7 hours on one core: a `cmi` run
# trains in about 15 minutes (its monitor refits the other critic family), `mi` 5, `elbo` 6,
# and evaluation adds about 1, 3 and 3.5 minutes a run (40 minutes in all with every run
# cached, b00fde8; each run's `train_seconds` and `eval_seconds_*` in metrics.json); `python -m paperlib.suite.launch --launcher local` trains
# the runs beside the notebook on a second core. Smoke profile seconds. Training runs are
# checkpointed under `runs/`: rerunning after a crash resumes.

# %%
# Install cell (python -m paperlib.suite.colab sync writes it from pyproject's project.urls).
# On Google Colab: install paperlib from the repository, keeping Colab's own torch build, and
# work in /content/paperlib-work. Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from importlib.metadata import version

    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q"),
            f"torch=={version('torch')}",
            "paperlib @ git+https://github.com/akuzawa-repro/seqvae-cmi-suite",
        ],
        check=True,
    )
    from paperlib.suite import colab

    colab.setup()

# %%
from IPython.display import Audio, display

from paperlib.data import features
from paperlib.evaluation import conversion
from paperlib.reports import plots, plots_generation, plots_information, summary
from paperlib.studies.experiment import compare_objectives
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
seeds = None
objectives = ["elbo", "mi", "cmi"]
alpha = None
beta = None
dataset = None
data_dir = None
steps = None
overrides = {}  # config values replacing the preset's: {"block__key": value}
results_dir = "../results"
out_dir = "../results/01_speech_dsae"

# %%
params, cfg = setup("01_speech_dsae", globals())
figs = summary.Figures(out_dir)
cfg

# %% [markdown]
# `cfg` is the profile's speech preset with `dataset`, `data_dir` and `steps`; `paperlib.suite.plan`
# lists the same runs for the cluster launcher (`python -m paperlib.suite.launch`).
#
# ## Train every objective for every seed, then evaluate on the test split
# Weights: `alpha`/`beta` of None use the values that the validation sweep (notebook 03) chose
# for this profile at this step count; a stale or foreign selection is refused. The seeds
# (100-102 in the quick profile) are disjoint from the sweep's. `compare_objectives` also
# computes the floors, the paired differences and the regime shown below.

# %%
run = compare_objectives(params, cfg)
res = run.res
res.weights

# %% [markdown]
# ## Floors and ceilings
# A comparison counts only between models that learned something. Beside every metric we put
# chance, the same architecture at random initialisation (probed the same way), a raw-input
# baseline and, where one exists, a ceiling.

# %%
run.floors

# %%
fig = plots.fig_training_curves(
    res.histories, keys=["elbo", "kl_z", "mi_zs", "critic_acc_zs_heldout", "beta"]
)
figs.add(
    "training_curves",
    fig,
    "Training curves of the first seed: ELBO, KL(q(z|x)||p(z)) and the training "
    "critic's I(z;s) estimate per objective, its accuracy on each new batch before it trains "
    "on it (held out), and beta, which ramps in once that accuracy has plateaued.",
)

# %% [markdown]
# **What to look for.** The paper's premise is that the plain ELBO lets z go unused: `elbo`'s
# KL(q(z|x)||p(z)) drifting towards 0 while `mi` and `cmi` hold it up. On `cmi` the training
# critic's accuracy should rise above 0.5 (it tells joint (z, s) pairs from shuffled ones) and
# then be pushed back towards 0.5 as the encoder removes what z and s share; its I(z;s)
# estimate should end below `mi`'s. A critic that stays at 0.5 from the first step never
# measured anything (a broken instrument, flagged in the table below). Curves still falling at
# the last step mean the budget is too short for the comparisons to mean much.

# %%
fig = plots.fig_metric_table(
    res.summary(),
    floors=run.floors,
    metric_names=[
        "probe_acc",
        "probe_acc_sample",
        "eer",
        "kl_z_nats",
        "mi_xz_nats",
        "mi_zs_target_nats",
    ],
)
figs.add(
    "metrics",
    fig,
    "Test metrics, mean ± sd over seeds (dots: seeds): speaker probe on z, "
    "verification EER on held-out speakers, rate and post-hoc MI estimates.",
)


# %% [markdown]
# **What to look for.** The paper predicts that `cmi` keeps more of the speaker in z than `mi` at
# an equal or lower I(z;s). Read each bar against its reference lines: a bar at the random-init
# line means that z learned nothing, whatever the ordering of the objectives. A dagger on `cmi`
# marks seeds whose training critic stayed at chance (a broken instrument, not a result).

# %% [markdown]
# ## Paired differences on the same seeds
# Every objective trains on the same seeds, so each seed gives one difference `cmi - mi` and
# `cmi - elbo`. Bars are 95 % t-intervals over seeds; an interval that spans 0 is no evidence
# either way.

# %%
fig = plots.fig_paired_differences(
    run.paired,
    metric_names=[
        "probe_acc",
        "eer",
        "mi_xz_nats",
        "mi_zs_target_nats",
        "speaker_probe_acc_s",
        "vc_speaker_acc",
    ],
)
figs.add(
    "paired_differences",
    fig,
    "Paired per-seed differences cmi - mi and cmi - elbo on the test split, mean and 95 % "
    "t-interval over seeds.",
)

# %% [markdown]
# **What to look for.** Support for the paper is `cmi - mi` above 0 on the speaker probe of z
# and on voice-conversion speaker accuracy, below 0 on the EER and on I(z;s), and not below 0
# on I(x;z): z keeps more of the speaker while sharing less with s. The speaker probe on s
# (`speaker_probe_acc_s`) should fall, since the penalty's gradient reaches s as well. Only
# intervals wholly on one side of 0 count; with one seed (smoke) there is no interval at all.

# %% [markdown]
# ## The regime: do z and s share information under `mi`?
# `cmi` can only remove information that z and s share. If the `mi` model's z and s share
# nothing measurable, `cmi` has nothing to remove here, and equal numbers are the expected
# outcome rather than a failure of the method.

# %%
print(run.regime)

# %%
fig = plots.fig_tsne(
    res.embeddings("test"),
    max_points=cfg.eval.tsne_points,
    label_name="speaker",
)
figs.add(
    "tsne_z", fig, "t-SNE of the posterior means of z on test utterances, coloured by speaker."
)

# %% [markdown]
# **What to look for.** If z is the global (speaker) variable, each speaker's utterances form
# their own cluster, more cleanly under `cmi` than under `mi`. One blob of mixed colours for
# `elbo` is the ignored z that motivates the paper. t-SNE distorts distances and cluster sizes:
# read it as a picture of the probe accuracy in the table, not as a measurement.

# %%
fig = plots.fig_disentanglement(res.means())
figs.add(
    "disentanglement",
    fig,
    "Probe accuracy of z and of s for the speaker and for the phone at a frame: "
    "ideally z knows the speaker only and s the phone only.",
)

# %% [markdown]
# **What to look for.** The ideal is a diagonal: z reads the speaker and not the phone, s reads
# the phone and not the speaker. The paper's claim concerns the speaker-from-s cell: penalising
# I(z;s) should lower it under `cmi` relative to `mi` while speaker-from-z stays as high or
# rises. Phone-from-z near chance is expected for every objective; well above chance would mean
# z spends its capacity on local content.

# %%
fig = plots_information.fig_rate_distortion(res.seed_points("rate_nats", "distortion_nats"))
figs.add(
    "rate_distortion",
    fig,
    "Rate KL(q(z|x)||p(z)) against distortion -log p(x|z,s) per objective and seed.",
)

# %% [markdown]
# **What to look for.** `mi` and `cmi` should sit to the right of `elbo` (more rate spent on z);
# points at a rate near 0 are a collapsed z. The theory says `cmi` buys information about x that
# s does not already hold, so at a comparable rate its distortion should be no worse than
# `mi`'s; a `cmi` cloud clearly above `mi`'s at the same rate means the penalty cost
# reconstruction without a gain elsewhere. Seeds of one objective far apart say the budget is
# too short to compare objectives.

# %% [markdown]
# ## Voice conversion: swap z between utterances
# Each row keeps the content (s) of one utterance and takes z from an utterance of another
# speaker. Audio is rendered from the log-mel frames by Griffin-Lim.

# %%
vc = conversion.voice_conversion_examples(
    res.models[objectives[-1]], res.loader("test"), n_examples=3, seed=params["seeds"][0]
)
fig = plots_generation.fig_voice_conversion(vc)
figs.add(
    "voice_conversion",
    fig,
    f"Voice conversion with the `{objectives[-1]}` model: content source, speaker "
    "source and the converted log-mel spectrogram.",
)

# %% [markdown]
# **What to look for.** The converted spectrogram should keep the content source's timing
# (where the energy changes from phone to phone) and take the speaker source's pitch and formant
# spacing (the spacing of the horizontal bands). A converted panel that looks like the content
# source means z is ignored; one that looks like the speaker source means z carries the content
# too. In the audio below, listen for the content utterance in the speaker's voice.

# %%
info = res.bundle.info
for name in ("content", "speaker", "converted"):
    wave = features.features_to_audio(vc[name][0], info["feature"])
    display(name, Audio(wave, rate=info["sample_rate"]))

# %%
run.write_metrics(out_dir)
res.summary()

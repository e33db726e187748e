# %% [markdown]
# # 00 · Walkthrough: what the global latent z should hold
#
# A newcomer's tour of the suite's question, in about 3 minutes on a CPU with 2 GB of memory:
# the idea in a few paragraphs and one diagram, then a tiny DSAE trained on synthetic speech
# with the plain ELBO (`elbo`) and with the paper's regularizer (`cmi`), and what changes.
#
# **Makes:** the information diagram, a metric table, t-SNE of z, the disentanglement heatmap,
# and `metrics.json`, in `results/00_walkthrough/` (PNG + PDF). **Time:** quick profile about
# 11 minutes at one thread (b00fde8, beside other runs: `cmi` trains 7 minutes, most of it its
# monitor's fits of the other critic family, `elbo` 1; evaluation 3 minutes, most of it the
# other family's fit for `elbo`); smoke profile seconds.
#
# The model sizes, training length and weights below are this suite's reconstruction, not the
# paper's settings: only the paper's abstract and introduction were at hand.

# %% [markdown]
# ## The idea
#
# A sequential VAE explains a sequence x = x_1..x_T (here: log-mel frames of an utterance) with
# two kinds of latent variables: a **global** z, one per sequence (ideally: who speaks), and
# **local** s_t, one per frame (ideally: what is said at frame t). The decoder generates each
# frame from both, p(x_t | z, s_t), panel (a) below.
#
# Nothing in the ELBO forces z to be used. The local path is expressive enough to explain the
# frames on its own, so z is often ignored (posterior collapse) or shares its information with s.
# The common remedy adds alpha I(x; z) to the ELBO. The paper's observation: when z and s are
# independent given x (I(z; s | x) = 0, true for this DSAE's factorized posterior), the chain rule
# splits that mutual information in two, panel (b):
#
#     I(x; z) = I(x; z | s) + I(z; s).
#
# (Expand I(x, s; z) both ways: I(z; s) + I(x; z | s) = I(x; z) + I(z; s | x).) Maximizing I(x; z)
# therefore also rewards I(z; s), information that z merely duplicates from s. The proposed
# objective `cmi` keeps the first part and penalizes the second:
#
#     ELBO + alpha I(x; z) - beta I(z; s),
#
# which for alpha = beta is ELBO + alpha I(x; z | s). I(z; s) has no closed form; a critic that
# tells pairs (z, s) of one utterance from shuffled pairs estimates it (adversarial density ratio).

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
import pandas as pd
from IPython.display import Audio, display

from paperlib import records
from paperlib.data import load_data, speech
from paperlib.reports import plots, plots_information, summary
from paperlib.studies import experiment
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
seeds = None
steps = None
beta = None
out_dir = "../results/00_walkthrough"

# %%
params, cfg = setup("00_walkthrough", globals())
figs = summary.Figures(out_dir)
cfg

# %% [markdown]
# `cfg` is the smoke speech preset in the smoke profile; otherwise the quick speech preset shrunk
# to fit the 3-minute budget (half the speakers, a smaller LSTM; `paperlib.suite.plan` lists the
# changes).

# %%
fig = plots_information.fig_information_diagram()
figs.add(
    "information_diagram",
    fig,
    "(a) The sequential VAE's generative model; (b) information diagram of x, z and s under "
    "the encoder when I(z;s|x) = 0: I(x;z) = I(x;z|s) + I(z;s), and cmi rewards only I(x;z|s).",
)

# %% [markdown]
# **What to look for.** This figure is the theory, not a measurement. In (b), I(x;z) splits into
# the part of z that s does not hold, I(x;z|s), and the part z shares with s, I(z;s). `mi`
# rewards both parts alike, so z may as well copy local detail that s already carries; `cmi`
# subtracts beta I(z;s), and at beta = alpha what remains is alpha I(x;z|s): only information
# that s lacks, which for a sequence is the global factor (here the speaker). The experiments
# below check the prediction that follows: under `cmi`, z knows more about the speaker and
# shares less with s.

# %% [markdown]
# ## The data: synthetic multi-speaker speech
# Every utterance is rendered by a source-filter synthesizer from a speaker (pitch, vocal-tract
# length, breathiness, ...) and a random phone sequence, so the ground truth is known: the
# speaker is the global factor, the phone at each frame the local one. Two test utterances:

# %%
bundle = load_data(cfg.data)
items = [0, len(bundle.test) - 1]
waves = speech.render_waveforms(cfg.data, "test", items)
for i, wave in zip(items, waves):
    display(f"speaker {int(bundle.test[i]['y'])}", Audio(wave, rate=cfg.data.sample_rate))

# %% [markdown]
# ## Train a tiny DSAE with `elbo` and with `cmi`
# Same data, model, seed and number of steps; only the objective differs. `beta` of None uses the
# weight recorded by the validation sweep of notebook 03 (or the documented fallback, alpha =
# beta = 2, before that sweep has run). The weights used are shown below the cell.

# %%
res = experiment.run_experiment(cfg, ["elbo", "cmi"], params["seeds"], beta=beta, bundle=bundle)
res.weights

# %% [markdown]
# ## What changes
# Test-split numbers (seed mean). Speaker probe: accuracy of a linear classifier that reads the
# speaker from z (posterior means, then samples); from s it should be low, and so should the
# phone from z. KL(q(z|x) || p(z)) is the rate spent on z; I(x; z) and I(z; s) are post-hoc
# estimates in nats by critics trained after the fact (noisy at this size; a negative value means
# "indistinguishable from 0"). The last row is cmi minus elbo.
#
# What to look for, if the paper's argument holds here: `cmi` raises the speaker probe on z and
# I(x; z) while lowering what s knows about the speaker and I(z; s). Read the signs in the last
# row rather than expecting them: one seed of a tiny model moves these numbers by several
# points, so a difference of that size is not evidence either way (notebook 01 trains a larger
# model with five seeds).

# %%
columns = [
    "probe_acc",
    "probe_acc_sample",
    "speaker_probe_acc_s",
    "phone_probe_acc_z",
    "kl_z_nats",
    "mi_xz_nats",
    "mi_zs_nats",
]
table = pd.DataFrame(res.means()).T[columns]
table.loc["cmi - elbo"] = table.loc["cmi"] - table.loc["elbo"]
print(
    f"chance: speaker {res.means()['elbo']['speaker_chance']:.3f}, phone {res.means()['elbo']['phone_chance']:.3f}"
)
table.rename(columns=plots.METRIC_LABELS).round(3)

# %%
fig = plots.fig_tsne(
    res.embeddings("test"),
    max_points=cfg.eval.tsne_points,
    label_name="speaker",
)
figs.add(
    "tsne_z",
    fig,
    "t-SNE of the posterior means of z on test utterances, coloured by speaker: utterances of "
    "one speaker should cluster.",
)

# %% [markdown]
# **What to look for.** Points of one colour (one speaker) should gather in their own cluster,
# more so for `cmi` than for `elbo`. A single blob of mixed colours means z holds little about
# the speaker. With one seed of a tiny model the picture is noisy, and t-SNE distorts distances:
# the speaker probe in the table above is the number to trust.

# %%
fig = plots.fig_disentanglement(res.means())
figs.add(
    "disentanglement",
    fig,
    "Linear-probe accuracy of z and of s for the speaker and for the phone at a frame: ideally "
    "z knows the speaker only and s the phone only.",
)

# %% [markdown]
# **What to look for.** The ideal is a diagonal: high speaker-from-z and phone-from-s, low
# phone-from-z and speaker-from-s (chance levels are printed above the table). The paper's
# argument predicts that `cmi` lowers speaker-from-s relative to `elbo` (its penalty pushes the
# speaker out of the local path) while raising speaker-from-z. Equal cells for the two
# objectives mean the penalty did not act at this size.

# %% [markdown]
# ## Where next
# Notebook 01 runs the full speech experiment (three objectives including `mi`, five seeds,
# verification EER, voice conversion); 02 the autoregressive PixelCNN-VAE on images; 03 the
# weight sweep and the information plane. The last cell writes this notebook's metrics.json.

# %%
records.write_metrics(
    f"{out_dir}/metrics.json",
    res.metrics,
    cfg,
    params=params,
    weights=res.weights,
    wall_seconds=res.wall_seconds,
)

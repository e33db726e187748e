# %% [markdown]
# # 02 · Autoregressive model: PixelCNN-VAE on images
#
# The paper's image experiment. The decoder is a gated PixelCNN whose z-free context stack
# computes the local features s_t = h(x_<t) at every pixel; 1x1 layers combine s_t with z. A
# PixelCNN this strong can model digits without z, so under the plain ELBO z tends to be ignored.
# We compare `elbo`, `mi` (ELBO + alpha I(x;z)) and `cmi` (ELBO + alpha I(x;z) - beta I(z;s)).
#
# **Makes:** training curves, the metric table (class probe on z, KL, NLL in bits/dim, class
# consistency of samples, post-hoc I(x;z) and I(z;s)), t-SNE of z by class, rate-distortion
# points and sample grids (each row one z; columns are samples). Writes
# `results/02_images_pixelcnn_vae/` (PNG + PDF + metrics.json).
#
# **Time:** quick profile (MNIST-5k at 14x14, 3 seeds) about 11 minutes on one core; smoke
# profile seconds. Runs are checkpointed under `runs/`: rerunning after a crash resumes.

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
from paperlib.evaluation import evaluate
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
out_dir = "../results/02_images_pixelcnn_vae"

# %%
params, cfg = setup("02_images_pixelcnn_vae", globals())
figs = summary.Figures(out_dir)
cfg

# %% [markdown]
# `cfg` is the profile's image preset with `dataset`, `data_dir` and `steps`; `paperlib.suite.plan`
# lists the same runs for the cluster launcher (`python -m paperlib.suite.launch`).
#
# ## Train every objective for every seed, then evaluate on the test split
# As in notebook 01: `alpha`/`beta` of None use the weights that notebook 03 chose on the
# validation split, and `compare_objectives` also computes the floors, the paired differences
# and the regime shown below.

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
# **What to look for.** With a PixelCNN decoder the paper expects posterior collapse under the
# plain ELBO: `elbo`'s KL(q(z|x)||p(z)) falling to about 0, because the decoder can model the
# digits from x_<t alone. `mi` and `cmi` should keep it well above 0. On `cmi` the training
# critic's accuracy should rise above 0.5 and then be pushed back towards it as the encoder
# removes what z shares with the context features s_t; its I(z;s) estimate should end below
# `mi`'s. A critic flat at 0.5 from the start is a broken instrument, not a result.

# %%
fig = plots.fig_metric_table(
    res.summary(),
    floors=run.floors,
    metric_names=[
        "probe_acc",
        "probe_acc_sample",
        "kl_z_nats",
        "nll_bits_per_dim",
        "class_consistency",
        "mi_zs_target_nats",
    ],
)
figs.add(
    "metrics",
    fig,
    "Test metrics, mean ± sd over seeds (dots: seeds): class probe on z (means "
    "and samples), rate, NLL, class consistency of samples and post-hoc I(z;s).",
)


# %% [markdown]
# **What to look for.** The paper predicts that `cmi` keeps more of the class in z than `mi` at
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
        "class_consistency",
        "mi_xz_nats",
        "mi_zs_target_nats",
        "nll_bits_per_dim",
    ],
)
figs.add(
    "paired_differences",
    fig,
    "Paired per-seed differences cmi - mi and cmi - elbo on the test split, mean and 95 % "
    "t-interval over seeds.",
)

# %% [markdown]
# **What to look for.** Support for the paper is `cmi - mi` above 0 on the class probe of z and
# on the class consistency of samples, below 0 on I(z;s), and not below 0 on I(x;z). The NLL
# difference should stay near 0: the penalty should move information between z and s, not
# cost likelihood. Only intervals wholly on one side of 0 count; with one seed (smoke) there is
# no interval at all.

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
    label_name="class",
)
figs.add("tsne_z", fig, "t-SNE of the posterior means of z on test images, coloured by class.")

# %% [markdown]
# **What to look for.** If z carries the digit, the test images of one class gather in their own
# cluster, more cleanly under `cmi` than under `mi`. A collapsed `elbo` z shows as one blob of
# mixed colours (z is noise from the prior). t-SNE distorts distances and cluster sizes: read it
# as a picture of the class probe in the table, not as a measurement.

# %%
fig = plots_information.fig_rate_distortion(res.seed_points("rate_nats", "distortion_nats"))
figs.add(
    "rate_distortion",
    fig,
    "Rate KL(q(z|x)||p(z)) against distortion -log p(x|z) per objective and seed.",
)

# %% [markdown]
# **What to look for.** Collapse shows as `elbo` points at a rate near 0. `mi` and `cmi` should
# spend rate on z; since the decoder is strong, that rate buys little distortion, so the points
# move right more than down. At a comparable rate `cmi` should not be clearly above (worse
# than) `mi`: the theory says it spends z's rate on what the context s_t cannot supply.

# %% [markdown]
# ## Samples: does z steer the decoder?
# Each row is one z: from a test image of each class (first column) or from the prior.
# If z carries the class, the samples in a row share the source image's digit.

# %%
for o in objectives:
    images, labels = evaluate.sample_grid(
        res.models[o], res.loader("test"), n_samples=cfg.eval.n_samples, seed=params["seeds"][0]
    )
    fig = plots_generation.fig_sample_grid(
        images, labels, title=f"{o}: each row one z, columns are samples"
    )
    figs.add(
        f"samples_{o}",
        fig,
        f"Samples of the `{o}` model: first column the test image that gave z "
        "(blank for prior rows), then autoregressive samples given that z.",
    )

# %% [markdown]
# **What to look for** (one grid per objective). Where z steers the decoder, every sample in a
# row shows the digit of the row's source image (first column), in varied styles; under `cmi`
# this should hold in more rows than under `mi` (the class-consistency metric counts it). Rows
# of unrelated digits, as a collapsed `elbo` z produces, mean the decoder ignores z. Rows that
# copy the source image pixel for pixel mean z holds local detail too, which the paper's
# objective is meant to push into s.

# %%
run.write_metrics(out_dir)
res.summary()

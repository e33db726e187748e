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
# **Time:** quick profile (MNIST-5k at 14x14, 3 seeds) about 10 minutes on 2 CPU cores; smoke
# profile seconds. Runs are checkpointed under `runs/`: rerunning after a crash resumes.

# %%
# Install cell (python -m paperlib.colab sync writes it from pyproject's project.urls).
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
    from paperlib import colab

    colab.setup()

# %%
from paperlib import config, evaluate, experiment, io, notebooks, plots, summary

# %% tags=["parameters"]
profile = "quick"
seeds = None
objectives = ["elbo", "mi", "cmi"]
alpha = None
beta = None
dataset = "mnist5k"
data_dir = "../data"
steps = None
out_dir = "../results/02_images_pixelcnn_vae"

# %%
params = notebooks.check_params("02_images_pixelcnn_vae", globals())
cfg = config.load(profile, "images", data__name=dataset, data__data_dir=data_dir)
if steps is not None:
    cfg = cfg.replace(train__steps=steps)
cfg

# %% [markdown]
# ## Train every objective for every seed, then evaluate on the test split

# %%
res = experiment.run_experiment(cfg, objectives, params["seeds"], alpha=alpha, beta=beta)
res.weights

# %%
fig = plots.fig_training_curves(res.histories, keys=["elbo", "kl_z", "mi_zs"])
summary.add_figure(
    fig,
    out_dir,
    "training_curves",
    "Training curves of the first seed: ELBO, KL(q(z|x)||p(z)) and the training "
    "critic's I(z;s) estimate per objective.",
)

# %%
fig = plots.fig_metric_table(
    res.summary(),
    [
        "probe_acc",
        "probe_acc_sample",
        "kl_z_nats",
        "nll_bits_per_dim",
        "class_consistency",
        "mi_zs_nats",
    ],
)
summary.add_figure(
    fig,
    out_dir,
    "metrics",
    "Test metrics, mean ± sd over seeds (dots: seeds): class probe on z (means "
    "and samples), rate, NLL, class consistency of samples and post-hoc I(z;s).",
)

# %%
fig = plots.fig_tsne(
    res.embeddings("test"),
    max_points=cfg.eval.tsne_points,
    label_name="class",
)
summary.add_figure(
    fig, out_dir, "tsne_z", "t-SNE of the posterior means of z on test images, coloured by class."
)

# %%
fig = plots.fig_rate_distortion(res.seed_points("rate_nats", "distortion_nats"))
summary.add_figure(
    fig,
    out_dir,
    "rate_distortion",
    "Rate KL(q(z|x)||p(z)) against distortion -log p(x|z) per objective and seed.",
)

# %% [markdown]
# ## Samples: does z steer the decoder?
# Each row is one z: from a test image of each class (first column) or from the prior.
# If z carries the class, the samples in a row share the source image's digit.

# %%
for o in objectives:
    images, labels = evaluate.sample_grid(
        res.models[o], res.loader("test"), n_samples=cfg.eval.n_samples, seed=params["seeds"][0]
    )
    fig = plots.fig_sample_grid(images, labels, title=f"{o}: each row one z, columns are samples")
    summary.add_figure(
        fig,
        out_dir,
        f"samples_{o}",
        f"Samples of the `{o}` model: first column the test image that gave z "
        "(blank for prior rows), then autoregressive samples given that z.",
    )

# %%
io.write_metrics(
    f"{out_dir}/metrics.json",
    res.metrics,
    cfg,
    params=params,
    weights=res.weights,
    wall_seconds=res.wall_seconds,
)
res.summary()

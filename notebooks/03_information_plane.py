# %% [markdown]
# # 03 · Information plane: sweeps of alpha and beta (validation split)
#
# The figure that tests the paper's information-theoretic argument directly. For each model we
# train `mi` over a grid of alpha and `cmi` at beta = alpha (ELBO + alpha I(x;z|s), the paper's
# form; the paper profile sweeps a grid of beta), evaluate on the **validation** split, and plot
#
# - the information plane: post-hoc I(z;s) (x) against I(x;z) (y), estimated by critics trained
#   after the fact (not the training critic). `mi` should move up and to the right (more
#   information in z, some of it redundant with s); `cmi` up and to the left;
# - rate-distortion points across the grid;
# - probe accuracy of z against beta.
#
# It also selects, per objective, the weights with the best mean validation probe accuracy over
# two seeds, trained for as many steps as the experiments. The selection, with every row as
# evidence and its provenance (profile, steps, seeds, a hash of the base config, commit), goes to
# `selected_weights.json` in the output folder; notebooks 01 and 02 read it from there and
# refuse it when it does not match their configuration. `run_all.sh` runs this notebook first.
#
# **Time:** quick profile about 51 minutes on 2 CPU cores with every run cached (b00fde8:
# evaluation only, the two sweeps in parallel, an images run 6 minutes, a speech `mi` run 4,
# a speech `cmi` run half a minute as it reads its monitor's critic). From an empty `runs/`
# training adds about 6.5 hours of one core: a `cmi` run 30-50 minutes (speech: its monitor;
# images: its critic's updates and bursts), an `mi` run 4-15. `python -m
# paperlib.suite.launch --launcher local` trains the runs beside the notebook. Smoke seconds.

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
from paperlib import records
from paperlib.reports import plots_information, summary
from paperlib.studies import experiment, selection
from paperlib.suite import plan
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
seeds = None
experiments = ["speech", "images"]
alphas = None
betas = None
widen_rounds = None
steps = None
overrides = {}  # config values replacing the preset's: {"block__key": value}
out_dir = "../results/03_information_plane"

# %%
params, cfgs = setup("03_information_plane", globals())  # one base Config per experiment
figs = summary.Figures(out_dir)
# mi per alpha; cmi per (alpha, beta), beta = alpha when betas is "tied"
grid = plan.sweep_grid(params)
grid

# %% [markdown]
# ## The sweep
# Every (objective, alpha, beta) of the grid for every seed, evaluated on the validation split.
# The experiments' sweeps are independent: one process each.

# %%
rows = experiment.sweeps(cfgs, grid, params["seeds"], split="val", jobs=len(cfgs))

# %% [markdown]
# A weight chosen at the smallest or largest value of its grid is not yet a choice: the best may
# lie beyond it. Up to `widen_rounds` times, each such choice adds the next weight outward (at
# the other weight's chosen value; tied grids move both) and trains it on the same seeds.

# %%
for _ in range(params["widen_rounds"]):
    extra = {n: g for n in experiments if (g := selection.widening(rows[n]))}
    if not extra:
        break
    print("widening:", extra)
    more = experiment.sweeps({n: cfgs[n] for n in extra}, extra, params["seeds"], split="val",
                             jobs=len(extra))  # fmt: skip
    for n, r in more.items():
        rows[n] += r

# %%
for name in experiments:
    fig = plots_information.fig_information_plane(
        selection.points(rows[name], "mi_zs_target_nats", "mi_xz_nats")
    )
    figs.add(
        f"information_plane_{name}",
        fig,
        f"{name}: I(z;s) as the penalty targets it (images: 5x5 windows of s; speech: s_1:T), "
        "read by the other critic family, against I(x;z) on the validation split for every "
        "(objective, alpha, beta) of the grid; labels give the weights.",
    )

# %% [markdown]
# **What to look for** (one plane per experiment). The argument predicts that raising alpha
# moves `mi` up and to the right (more I(x;z), part of it shared with s), while `cmi` at the
# same alpha sits to the left of `mi` (less I(z;s)) at a similar height. Support is a `cmi`
# point left of the `mi` point with the same alpha. `cmi` points on top of `mi`'s mean the
# penalty did not act (see the training critic in notebooks 01 and 02); `cmi` points at I(x;z)
# near 0 mean beta was strong enough to empty z. Small negative post-hoc estimates mean "not
# distinguishable from 0".

# %%
for name in experiments:
    fig = plots_information.fig_rate_distortion(
        selection.points(rows[name], "rate_nats", "distortion_nats")
    )
    figs.add(
        f"rate_distortion_{name}",
        fig,
        f"{name}: rate KL(q(z|x)||p(z)) against distortion across the grid (validation split).",
    )

# %% [markdown]
# **What to look for.** Larger alpha should buy rate (points further right) and, with a decoder
# that uses z, lower distortion. At a comparable rate, `cmi` should not be clearly worse than
# `mi`: the theory says it spends the same budget on what s cannot supply. Points at a rate
# near 0 are a collapsed z for that weight.

# %%
for name in experiments:
    fig = plots_information.fig_probe_vs_beta(selection.probe_vs_beta(rows[name]))
    figs.add(
        f"probe_vs_beta_{name}",
        fig,
        f"{name}: validation probe accuracy of z against beta, one line per alpha "
        "(beta = 0 is `mi`).",
    )

# %% [markdown]
# **What to look for.** The paper predicts that the probe of z rises from beta = 0 (`mi`) as
# beta grows, up to a point past which the penalty starts to empty z and the probe falls. The
# selection below takes the best point. A flat line means beta does not matter at this size, so
# the `cmi` vs `mi` comparison of notebooks 01 and 02 is expected to be a tie; a line that only
# falls means any penalty hurts here. One seed per point (smoke) cannot tell these apart.

# %% [markdown]
# ## The selection
# Per objective, the weights with the best mean validation probe accuracy, with every row as
# evidence; notebooks 01 and 02 read them.

# %%
chosen = {name: selection.select_weights(rows[name]) for name in experiments}
selection.write_selection(f"{out_dir}/selected_weights.json", chosen, cfgs, params["seeds"])
{n: {o: w for o, w in s.items() if o != "_evidence"} for n, s in chosen.items()}

# %%
reading_edges = selection.reading_edges(chosen)
print(reading_edges)

# %% [markdown]
# The line above names each weight still on its grid's edge after the widening rounds, with the
# next value to try (`-p widen_rounds`, `-p alphas` / `-p betas`, or the paper profile's wider
# grid).

# %%
metrics = {}
for name in experiments:
    metrics.update(selection.rows_to_metrics(rows[name], suffix=f"_{name}"))
records.write_metrics(
    f"{out_dir}/metrics.json",
    metrics,
    None,
    profile=profile,
    params=params,
    split="val",
    notes=reading_edges,
)

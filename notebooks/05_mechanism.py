# %% [markdown]
# # 05 · Mechanism: when does penalising I(z;s) help?
#
# A controlled study on sequences whose factors we set by construction
# (`paperlib.data.factors`): a global factor g (K classes, constant over the sequence) and local
# factors l_t, rendered to frames x_t by a fixed random nonlinear map plus noise. Two dials:
#
# - **leak**: how much of g one frame x_t shows (the rest of g is visible only by pooling over
#   the sequence), i.e. how much of g the DSAE's factorized local path q(s_t | x_t) can recover;
# - **z_dim**: the budget on z.
#
# For each dial point we train the DSAE under `elbo`, `mi` and `cmi` (5 seeds each in the quick
# profile) and measure on held-out sequences: the probe of g from z, of l_t from z, of g from s,
# post-hoc I(z;s) with a bootstrap interval, I(x;z), and the training critic's accuracy. The
# weights (alpha for `mi`, and beta for `cmi` at the same alpha) are chosen on the
# **validation** split at the centre point; the test split is used only for the reported numbers.
#
# Figures: the probe of g from z against each dial (mi and cmi side by side, 95 % t-intervals,
# with floor and ceiling); local information in z against each dial; the information plane.
#
# **Time:** quick profile about 11 minutes on 2 cores from an empty `runs/` (e720872: 683 s
# wall; the 60 reported runs of 300 steps train in 522 s of one thread, the selection's runs
# and its widening the rest) and 2.5 minutes with every run cached (b00fde8, one thread);
# smoke seconds. Finished runs are cached under runs/ and not trained again.

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

from paperlib import records
from paperlib.reports import plots_mechanism, summary
from paperlib.studies import mechanism
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
seeds = None
leaks = None
z_dims = None
alphas = None
betas = None
selection_seeds = None
widen_rounds = None
steps = None
out_dir = "../results/05_mechanism"

# %%
params, base = setup("05_mechanism", globals())  # the mechanism preset, with `steps`
figs = summary.Figures(out_dir)
centre = {"leak": params["leaks"][0], "z_dim": params["z_dims"][0]}
points = mechanism.dial_points(centre, leak=params["leaks"], z_dim=params["z_dims"])
[mechanism.point_name(p) for p in points]

# %% [markdown]
# ## Weights, chosen on the validation split
#
# alpha for `mi` from the grid; then beta for `cmi` at `mi`'s alpha, so that the two objectives
# differ only by the -beta I(z;s) term. Criterion: the validation probe of g from z at the centre.
# A weight chosen on its grid's edge adds the next value outward and is chosen again, up to
# `widen_rounds` times; the line after the weights names any weight still on an edge.

# %%
selection = mechanism.select_weights(
    base, centre, params["alphas"], params["betas"], params["selection_seeds"],
    widen_rounds=params["widen_rounds"],
)  # fmt: skip
weights = {o: w for o, w in selection.items() if o != "_evidence"}
records.write_json(f"{out_dir}/selected_weights.json", selection)
print("tried:", selection["_evidence"]["grids"])
print("still on an edge (weight: next value):", selection["_evidence"]["on_edge"] or "none")
weights

# %% [markdown]
# ## The sweep (test split) and the floor and ceiling of the probe

# %%
refs = mechanism.references_by_point(base, points, params["seeds"])
rows = mechanism.run_sweep(base, points, ["elbo", "mi", "cmi"], params["seeds"], weights)
pd.DataFrame(rows).groupby(["point", "objective"])[
    ["probe_acc", "local_probe_acc_z", "g_probe_acc_s", "mi_zs_nats", "mi_xz_nats"]
].mean().round(3)

# %%
fig = plots_mechanism.fig_dial_sweep(
    mechanism.dial_panels(rows, centre, "probe_acc"),
    "probe accuracy of g from z",
    references=mechanism.probe_references(refs, rows, centre),
    xlabels=mechanism.DIAL_LABELS,
    title="Global factor in z (test split, 95 % t-intervals over seeds)",
)
figs.add(
    "g_probe_vs_dials",
    fig,
    "Probe of the global factor g from z against each dial (the other at its centre), elbo, "
    "mi and cmi side by side with 95 % t-intervals over seeds; grey: chance, the untrained "
    "DSAE, and probes on the raw frames and on one frame.",
)

# %% [markdown]
# **What to look for.** Where cmi's interval sits wholly above mi's, penalising I(z;s) helped z
# keep the global factor. The argument predicts this where one frame shows little of g (low
# leak: the local path cannot simply hold g per frame, so mi's z competes for local detail) and
# where z's budget is tight (small z_dim). At high leak z reaches the ceiling under every
# objective and there is nothing to gain. The one-frame probe is what a factorized local path
# can see of g; the raw-frames probe is a linear ceiling.

# %%
reading_probe = mechanism.reading_probe(rows, refs[mechanism.point_name(centre)])
print(reading_probe)

# %%
fig = plots_mechanism.fig_dial_sweep(
    {
        f"{d}, {what}": s
        for metric, what in (("local_probe_acc_z", "l_t from z"), ("g_probe_acc_s", "g from s"))
        for d, s in mechanism.dial_panels(rows, centre, metric).items()
    },
    "probe accuracy",
    xlabels={
        f"{d}, {w}": mechanism.DIAL_LABELS[d]
        for d in mechanism.DIALS
        for w in ("l_t from z", "g from s")
    },
    panel_titles={
        f"{d}, {w}": f"probe of {w}" for d in mechanism.DIALS for w in ("l_t from z", "g from s")
    },
    title="Local information in z and global information in s (test split, 95 % t-intervals)",
)
figs.add(
    "local_info_vs_dials",
    fig,
    "Left pair: probe of the local factor l_t (at a random frame) from z against each dial; "
    "right pair: probe of g from s pooled over time. 95 % t-intervals over seeds.",
)

# %% [markdown]
# **What to look for.** Local information in z is what mi may buy with z's budget and cmi
# should drop (s holds l_t). Global information in s is what cmi's penalty should push out of
# the local path: its gradient reaches s as well as z. If neither moves, the penalty did not
# act, which the critic's accuracy below helps to explain.

# %%
reading_local = mechanism.reading_local(rows)
print(reading_local)

# %%
fig = plots_mechanism.fig_information_plane_intervals(
    mechanism.plane_points(rows), title="Information plane (test split, post-hoc estimates)"
)
figs.add(
    "information_plane",
    fig,
    "Post-hoc I(z;s) (fresh density-ratio critic, z sample against pooled s) against I(x;z) "
    "(minibatch aggregate-posterior estimate), mean and 95 % t-interval over seeds per "
    "objective and dial point.",
)

# %% [markdown]
# **What to look for.** At equal I(x;z), cmi should sit left of mi (less shared with s). A
# training critic that *stays* near 0.5 accuracy never told joint from shuffled pairs, so its
# penalty had no direction: such runs are listed below as a broken instrument. One that rises
# and then falls back towards 0.5 is being defeated by the model, which is the penalty working.

# %%
reading_plane = mechanism.reading_plane(rows)
print(reading_plane)

# %% [markdown]
# ## Paired differences cmi - mi (per seed, 95 % t-intervals)

# %%
paired = {
    m: mechanism.paired_differences(rows, m)
    for m in ("probe_acc", "local_probe_acc_z", "g_probe_acc_s", "mi_zs_nats", "mi_xz_nats")
}
pd.DataFrame(
    {
        (m, p): {k: d[k] for k in ("mean", "lo", "hi", "n")}
        for m, by in paired.items()
        for p, d in by.items()
    }
).T.round(3)

# %%
records.write_metrics(
    f"{out_dir}/metrics.json",
    mechanism.rows_to_metrics(rows),
    base,
    profile=profile,
    params=params,
    split="test",
    weights=selection,
    references=refs,
    paired_differences_cmi_minus_mi=paired,
    cmi_above_mi_on_g_probe=mechanism.separated(rows, "probe_acc"),
    flagged_critics=mechanism.flagged_critics(rows),
    notes="\n\n".join([reading_probe, reading_local, reading_plane]),
)

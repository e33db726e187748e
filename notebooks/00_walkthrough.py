# %% [markdown]
# # 00 · Walkthrough (pipeline check)
#
# A tiny notebook that proves the pipeline end to end: it plots the closed-form mutual
# information of rho-correlated Gaussian pairs, I = -d/2 log(1 - rho^2), the ground truth that
# paperlib's estimators are tested against. Runs in seconds.

# %%
import numpy as np

from paperlib import notebooks, plots_min

# %% tags=["parameters"]
profile = "quick"
seeds = None
steps = None
beta = None
out_dir = "../results/00_walkthrough"

# %%
params = notebooks.check_params("00_walkthrough", globals())
params

# %%
rho = np.linspace(0.0, 0.99, 100)
fig = plots_min.fig_gaussian_mi(rho, dims=(1, 4, 8))
plots_min.save_figure(fig, f"{out_dir}/gaussian_mi")

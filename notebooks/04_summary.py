# %% [markdown]
# # 04 · Summary
#
# Reads every notebook's `metrics.json` and `figures.json` and writes `results/README.md`:
# the regime map (where `cmi` beats `mi` on the global factor, against z's budget), the
# paper-style tables (objective x metric, mean ± std over seeds, best per column in bold),
# every figure with one sentence on what it shows, the profile, versions, git commit and the
# total wall time. Runs in seconds; `run_all.sh` runs it last.

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
from pathlib import Path

from IPython.display import Markdown

from paperlib.reports import regime, summary
from paperlib.reports.plots_mechanism import fig_regime_map
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
results_dir = "../results"
out_dir = "../results/04_summary"

# %%
params, _ = setup("04_summary", globals())  # the summary trains nothing: no Config
Path(out_dir).mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The regime map
#
# Every study's paired cmi - mi difference on its global factor (05's g, 01's speaker, 02's
# class), from a linear and a k-NN probe on z, against the dimension of z, with decisions at
# the stated margins, Holm-corrected over the whole map.

# %%
rows = regime.regime_rows(results_dir)
figs = summary.Figures(out_dir)
if rows:
    figs.add(
        "regime_map",
        fig_regime_map(*regime.regime_panels(rows)),
        "Paired cmi - mi on the global-factor probe against z's dimension, per study, with "
        "95 % t-intervals over seeds; the grey band is the margin that matters.",
    )
regime.write_regime(rows, out_dir)
Markdown(regime.regime_table(rows) + "\n\n" + regime.regime_legend(rows) if rows else "no rows")

# %% [markdown]
# **What to look for.** A point above the grey band whose interval clears it is a regime where
# `cmi` helps; an interval inside the band is "no difference that matters"; one that straddles
# the band's edge is undecided at this number of seeds.

# %%
readme = summary.write_summary(results_dir, regime_figure=bool(rows))
Markdown(readme.read_text())

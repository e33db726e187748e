# %% [markdown]
# # 04 · Summary
#
# Reads every notebook's `metrics.json` and `figures.json` and writes `results/README.md`:
# the paper-style tables (objective x metric, mean ± std over seeds, best per column in bold),
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

from paperlib.reports import summary
from paperlib.suite.plan import setup

# %% tags=["parameters"]
profile = "quick"
results_dir = "../results"
out_dir = "../results/04_summary"

# %%
params, _ = setup("04_summary", globals())  # the summary trains nothing: no Config
Path(out_dir).mkdir(parents=True, exist_ok=True)

# %%
readme = summary.write_summary(results_dir)
Markdown(readme.read_text())

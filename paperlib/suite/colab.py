"""Open any notebook on Google Colab (or Binder): one install cell, one repository URL.

The repository's URL lives in one place, ``[project.urls] Repository`` in pyproject.toml.
From it ``python -m paperlib.suite.colab sync`` writes

- the install cell that every notebook starts with (`install_cell`): on Colab it installs
  paperlib from the repository with pip, keeping Colab's own torch build, then calls `setup`;
  anywhere else it does nothing;
- the README's badge block (`badges_markdown`): Binder, and Colab for every notebook;

and rebuilds the notebooks' ``.ipynb`` twins. ``python -m paperlib.suite.colab check`` reports what
is out of date without writing (tests/test_install.py runs it). To point the suite at a fork,
change the URL in pyproject.toml and run ``python -m paperlib.suite.colab sync``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from paperlib.runtime import WORKDIR_ENV

_CHECKOUT = Path(__file__).resolve().parents[2]
#: the first line of the install cell: how `sync` finds the cell to replace
MARKER = (
    "# Install cell (python -m paperlib.suite.colab sync writes it from pyproject's project.urls)."
)
BADGES_BEGIN = "<!-- badges: python -m paperlib.suite.colab sync writes this block -->"
BADGES_END = "<!-- /badges -->"
#: the branch the badges open
BRANCH = "main"


def repository_url() -> str:
    """The repository's URL: pyproject's ``[project.urls] Repository`` (or the installed metadata).

    Raises
    ------
    LookupError
        When neither a checkout's pyproject.toml nor the installed metadata names one.
    """
    pyproject = _CHECKOUT / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        urls = tomllib.loads(pyproject.read_text()).get("project", {}).get("urls", {})
        if "Repository" in urls:
            return str(urls["Repository"]).rstrip("/")
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        for entry in metadata("paperlib").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip() == "Repository":
                return url.strip().rstrip("/")
    except PackageNotFoundError:
        pass
    raise LookupError(
        f'no repository URL: add `Repository = "https://github.com/OWNER/REPO"` under '
        f"[project.urls] in {pyproject}"
    )


def github_path(url: str | None = None) -> str:
    """``OWNER/REPO`` of a GitHub URL (Colab and Binder address repositories that way).

    Raises
    ------
    ValueError
        For a URL that is not ``https://github.com/OWNER/REPO``.
    """
    url = url or repository_url()
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if not m:
        raise ValueError(
            f"repository URL {url!r} is not accepted; Colab and Binder need "
            "https://github.com/OWNER/REPO"
        )
    return f"{m.group(1)}/{m.group(2)}"


def install_cell(url: str | None = None) -> str:
    """The source of the install cell that starts every notebook.

    It defines no global names besides modules and functions, so a notebook's parameter check
    (`paperlib.suite.params.check_params`) sees nothing new.
    """
    url = url or repository_url()
    return f"""{MARKER}
# On Google Colab: install paperlib from the repository, keeping Colab's own torch build, and
# work in /content/paperlib-work. Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from importlib.metadata import version

    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q"),
            f"torch=={{version('torch')}}",
            "paperlib @ git+{url}",
        ],
        check=True,
    )
    from paperlib.suite import colab

    colab.setup()"""


def setup(root: str | Path | None = None) -> Path:
    """Prepare a session on an installed (non-checkout) paperlib, as on Colab.

    Creates the working folder `root` (default ``$PAPERLIB_WORKDIR``, else
    ``/content/paperlib-work`` on Colab, else ``./paperlib-work``) with a ``notebooks/`` inside,
    makes that the current directory (so the notebooks' ``../results`` and ``../data`` land in
    `root`), and sets ``PAPERLIB_WORKDIR`` so that ``runs/`` and the data cache go there too.

    Returns
    -------
    The working folder.
    """
    if root is None:
        colab_default = "/content/paperlib-work" if Path("/content").is_dir() else "paperlib-work"
        root = os.environ.get("PAPERLIB_WORKDIR") or colab_default  # WORKDIR_ENV
    root = Path(root).expanduser().resolve()
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    os.chdir(root / "notebooks")
    os.environ[WORKDIR_ENV] = str(root)
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    gpu = "a GPU" if torch.cuda.is_available() else "no GPU"
    print(f"paperlib: working folder {root} (torch {torch.__version__}, {build} build, {gpu})")
    return root


def colab_url(notebook: str, url: str | None = None) -> str:
    """The Colab address that opens ``notebooks/<notebook>.ipynb`` of the repository."""
    return (
        f"https://colab.research.google.com/github/{github_path(url)}/blob/{BRANCH}/"
        f"notebooks/{notebook}.ipynb"
    )


def binder_url(notebook: str = "00_walkthrough", url: str | None = None) -> str:
    """The mybinder.org address that opens ``notebooks/<notebook>.ipynb`` in JupyterLab."""
    return (
        f"https://mybinder.org/v2/gh/{github_path(url)}/HEAD?labpath=notebooks%2F{notebook}.ipynb"
    )


def badges_markdown(url: str | None = None) -> str:
    """The README's badge block: Binder and Colab for the walkthrough, then Colab per notebook."""
    from paperlib.suite.params import notebook_names

    url = url or repository_url()
    names = [n for n in notebook_names() if n != "04_summary"]  # the summary needs results
    links = " · ".join(f"[{n}]({colab_url(n, url)})" for n in names)
    return "\n".join(
        [
            BADGES_BEGIN,
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(url=url)})",
            "[![Open the walkthrough in Colab]"
            f"(https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url('00_walkthrough', url)})",
            "",
            f"Every notebook on Colab: {links}.",
            BADGES_END,
        ]
    )


def _with_install_cell(source: str, cell: str) -> str:
    """A percent-format notebook source whose first code cell is `cell`."""
    cells = re.split(r"(?m)^(?=# %%)", source)
    head = [c for c in cells if c and not c.startswith("# %%")]
    cells = [c for c in cells if c.startswith("# %%")]
    new = f"# %%\n{cell}\n\n"
    for i, c in enumerate(cells):
        if c.startswith("# %% [markdown]"):
            continue
        if MARKER in c:
            cells[i] = new
        else:
            cells.insert(i, new)
        break
    text = "".join(head + cells)
    return text if text.endswith("\n") else text + "\n"


def sync(check: bool = False, readme: str | Path | None = None) -> list[Path]:
    """Write the install cell into every notebook source, the badges into the README, and
    rebuild the ``.ipynb`` twins.

    Parameters
    ----------
    check : write nothing; return what is out of date.
    readme : the README to update (default: the checkout's README.md).

    Returns
    -------
    The files that were (or, with ``check``, would be) rewritten.
    """
    from paperlib.suite.notebooks import NOTEBOOK_DIR, sync_ipynb

    url = repository_url()
    changed: list[Path] = []
    for src in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py")):
        text = src.read_text()
        new = _with_install_cell(text, install_cell(url))
        if new != text:
            changed.append(src)
            if not check:
                src.write_text(new)
    readme = Path(readme) if readme else _CHECKOUT / "README.md"
    text = readme.read_text()
    if BADGES_BEGIN not in text or BADGES_END not in text:
        raise ValueError(f"{readme} lacks the badge block ({BADGES_BEGIN} ... {BADGES_END})")
    before, rest = text.split(BADGES_BEGIN, 1)
    after = rest.split(BADGES_END, 1)[1]
    new = before + badges_markdown(url) + after
    if new != text:
        changed.append(readme)
        if not check:
            readme.write_text(new)
    changed += sync_ipynb(check=check)
    return changed


if __name__ == "__main__":
    from paperlib.suite.notebooks import sync_command

    sync_command(sync, "paperlib.suite.colab", sys.argv[1:])

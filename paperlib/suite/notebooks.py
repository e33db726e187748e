"""The notebooks as files: where their sources are, and their output-free ``.ipynb`` twins.

`find_notebook_dir` locates the percent-format sources ``NN_name.py`` (a checkout's
``notebooks/``, else the copy inside a wheel); `sync_ipynb` rebuilds each ``.ipynb`` twin from its
source (``python -m paperlib.suite.notebooks sync|check``). What a notebook accepts as parameters, and
the set-up each one starts with, are in `paperlib.suite.params`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]
#: the notebooks' sources in a source checkout (a pyproject.toml beside the package)
CHECKOUT_NOTEBOOKS = _PACKAGE.parent / "notebooks"
#: the copy that a wheel ships (pyproject maps notebooks/ to the package paperlib._notebooks)
PACKAGED_NOTEBOOKS = _PACKAGE / "_notebooks"


def _has_sources(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("[0-9][0-9]_*.py"))


def find_notebook_dir() -> Path:
    """The folder of the notebooks' percent-format sources ``NN_name.py``.

    A source checkout's ``notebooks/`` first, else the copy inside an installed wheel.

    Raises
    ------
    FileNotFoundError
        Naming both places that were searched, when neither holds a notebook source.
    """
    checkout = CHECKOUT_NOTEBOOKS if (_PACKAGE.parent / "pyproject.toml").exists() else None
    for folder in (checkout, PACKAGED_NOTEBOOKS):
        if folder is not None and _has_sources(folder):
            return folder
    raise FileNotFoundError(
        "no notebook sources (NN_name.py) found; looked in "
        f"{CHECKOUT_NOTEBOOKS} (a source checkout) and {PACKAGED_NOTEBOOKS} (an installed "
        "wheel). Run from a clone of the repository, or reinstall paperlib from it "
        "(pip install git+<repository URL>) so that the wheel carries the notebooks."
    )


try:
    NOTEBOOK_DIR = find_notebook_dir()
except FileNotFoundError:  # reported by the runner when it needs them; importing must work
    NOTEBOOK_DIR = CHECKOUT_NOTEBOOKS


def _content(nb: Any) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """What a twin must agree on: each cell's type, source, tags, and whether it has outputs.

    Cell ids, execution counts and the cell and notebook metadata that JupyterLab and
    ``jupytext --sync`` write are left out: they differ between tools without changing the
    notebook.
    """
    return [
        (
            c.cell_type,
            c.source.strip("\n"),
            tuple(c.get("metadata", {}).get("tags", ())),
            bool(c.get("outputs")),
        )
        for c in nb.cells
    ]


def _twin(src: Path) -> Any:
    """The output-free notebook built from a percent-format source, with stable cell ids."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    for i, cell in enumerate(nb.cells):  # stable ids, so an unchanged source gives equal bytes
        cell.id = f"cell-{i:03d}"
    return nb


def sync_ipynb(check: bool = False, folder: str | Path | None = None) -> list[Path]:
    """Rebuild each ``NN_name.ipynb`` (output-free) from its percent-format ``.py`` source.

    A twin counts as stale only when its cells differ from the source in type, source text or
    tags, or when it holds outputs (see `_content`); a twin that ``jupytext --sync`` or
    JupyterLab wrote with other cell ids or metadata is in sync and left as it is.

    Parameters
    ----------
    check : when True nothing is written; the stale twins are returned instead.
    folder : the notebooks' folder (default: `NOTEBOOK_DIR`).

    Returns
    -------
    The stale twins (written, unless ``check``).
    """
    import nbformat

    folder = Path(folder) if folder is not None else NOTEBOOK_DIR
    stale: list[Path] = []
    for src in sorted(folder.glob("[0-9][0-9]_*.py")):
        nb = _twin(src)
        twin = src.with_suffix(".ipynb")
        if twin.exists():
            try:
                current = _content(nbformat.reads(twin.read_text(), as_version=4))
            except (ValueError, KeyError):  # not a notebook any more: rebuild it
                current = None
            if current == _content(nb):
                continue
        stale.append(twin)
        if not check:
            twin.write_text(nbformat.writes(nb))
    return stale


def sync_command(sync: Callable[..., list[Path]], module: str, argv: list[str]) -> None:
    """``python -m <module> sync|check``: write what `sync` generates, or exit non-zero naming
    the out-of-date files (``sync(check=True)`` returns them without writing)."""
    import sys

    if argv == ["sync"]:
        for path in sync():
            print(f"wrote {path}")
    elif argv == ["check"]:
        stale = sync(check=True)
        if stale:
            sys.exit(f"out of date (run python -m {module} sync): {[str(p) for p in stale]}")
    else:
        sys.exit(f"usage: python -m {module} sync|check")


if __name__ == "__main__":
    import sys

    sync_command(sync_ipynb, "paperlib.suite.notebooks", sys.argv[1:])
